"""Unit tests of plugins/module_utils/_packages.py, the host side of sglang_packages."""

import base64
import json
import re

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _packages as K


def test_helper_stdin_is_the_helper_source_plus_one_call():
    data = K.helper_stdin({"action": "probe", "requirements": ["tiktoken"]})
    assert "def do_install(request):" in data
    match = re.search(r"\nraise SystemExit\(main\('([A-Za-z0-9+/=]+)'\)\)\n$", data)
    assert json.loads(base64.b64decode(match.group(1))) == {"action": "probe", "requirements": ["tiktoken"]}


def test_proxy_credentials_are_masked_everywhere_but_package_names_are_kept():
    params = {"http_proxy": "http://proxy:3128", "https_proxy": "http://bob:s3cret@proxy:3128"}
    secrets = K.url_secrets(params)
    assert secrets == ["http://bob:s3cret@proxy:3128", "bob:s3cret", "s3cret"]
    value = {"google-auth": ["1.0", "2.0"],
             "msg": ["ProxyError to http://bob:s3cret@proxy:3128", "user bob:s3cret",
                     "index https://u:tok@mirror/simple"]}
    assert K.redact(value, secrets) == {
        "google-auth": ["1.0", "2.0"],
        "msg": ["ProxyError to ********", "user ********", "index https://********@mirror/simple"]}
    assert K.url_secrets({"http_proxy": "", "https_proxy": "http://proxy:3128"}) == []


def test_index_credentials_are_secrets_too():
    params = {"index_url": "https://alice:SENTINEL-index@mirror/simple", "http_proxy": "",
              "extra_index_urls": ["https://extra/simple", "https://SENTINEL-extra@x/simple"]}
    secrets = K.url_secrets(params)
    assert secrets == ["https://alice:SENTINEL-index@mirror/simple", "alice:SENTINEL-index", "SENTINEL-index",
                       "https://SENTINEL-extra@x/simple", "SENTINEL-extra"]
    # a traceback that quotes the password alone (urllib: "nonnumeric port: 'token@host'")
    assert K.redact("nonnumeric port: 'SENTINEL-index@mirror'", secrets) == "nonnumeric port: '********@mirror'"
    # pip's own echo masks the password only; the user goes too
    masked = K.redact("Looking in indexes: https://alice:****@mirror/simple; alice:SENTINEL-index", secrets)
    assert masked == "Looking in indexes: https://********@mirror/simple; ********"


def test_validate_names_the_role_variables():
    assert K.validate({"requirements": ["tiktoken==0.14.0"], "extra_args": ["--pre"]}) == []
    problems = K.validate({"requirements": ["tiktoken; rm -rf /"], "extra_args": ["--upgrade"]})
    assert len(problems) == 2
    assert "sglang_packages_pip entry" in problems[0] and "sglang_packages_extra_args" in problems[1]


def test_build_request_sends_the_ca_content_only_to_the_install():
    params = {"requirements": ["tiktoken"], "extra_args": [], "index_url": "", "extra_index_urls": [],
              "http_proxy": "", "https_proxy": "", "no_proxy": "", "wheelhouse": None,
              "timeout": 60, "retries": 3, "ca_bundle": "/etc/ca.pem"}
    assert K.build_request(params, "probe") == {"action": "probe", "requirements": ["tiktoken"],
                                                "extra_args": []}
    install = K.build_request(params, "install", dry_run=True, ca_pem="PEM")
    assert (install["ca_pem"], install["ca_bundle_host"], install["dry_run"]) == ("PEM", "/etc/ca.pem", True)
    assert "ca_bundle" not in install  # the helper writes its own file from ca_pem


def test_diff_lists_versions_before_and_after():
    out = K.diff({"tiktoken": ["0.12.0", "0.14.0"], "sentencepiece": [None, "0.2.1"]}, "c")
    assert out["before"] == "tiktoken==0.12.0\n"
    assert out["after"] == "sentencepiece==0.2.1\ntiktoken==0.14.0\n"
    assert K.diff({}, "c", ["tiktoken"])["after"] == "tiktoken\n"

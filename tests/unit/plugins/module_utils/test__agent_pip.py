"""Unit tests of plugins/module_utils/_agent_pip.py, the in-container pip helper of the packages role."""

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from unittest import mock

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _packages
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_pip as P

CA = "/tmp/ca-for-pip.pem"


@pytest.mark.parametrize("text, name, key, spec", [
    ("sentencepiece", "sentencepiece", "sentencepiece", ""),
    ("tiktoken==0.14.0", "tiktoken", "tiktoken", "==0.14.0"),
    ("Foo_Bar.baz >= 1.0, <2", "Foo_Bar.baz", "foo-bar-baz", ">=1.0,<2"),
    ("requests[socks]~=2.31", "requests", "requests", "~=2.31"),
])
def test_parse_requirement(text, name, key, spec):
    req = P.parse_requirement(text)
    assert (req["name"], req["key"], req["spec"]) == (name, key, spec)


@pytest.mark.parametrize("text", [
    "tiktoken; rm -rf /", "--index-url=http://evil", "git+https://x/y.git", "./local.whl",
    "tiktoken @ https://x/t.whl", "tiktoken==", "", "tiktoken; python_version>'3'",
])
def test_bad_requirements_are_refused(text):
    with pytest.raises(P.PipError, match="sglang_packages_pip entry"):
        P.parse_requirement(text)


def test_duplicate_requirement():
    with pytest.raises(P.PipError, match="names tiktoken twice"):
        P.parse_requirements(["tiktoken", "TikToken>=0.5"])


@pytest.mark.parametrize("spec, version, ok", [
    ("", "1.0", True), ("==0.14.0", "0.14.0", True), ("==0.14.0", "0.14.1", False),
    (">=0.2,<0.3", "0.2.1", True), ("~=2.31", "2.32.3", True), ("~=2.31", "3.0", False),
    ("==2.*", "2.5", True), ("!=1.0", "1.0", False), ("==1.0", None, False),
])
def test_specifier_contains_both_implementations(spec, version, ok):
    assert P.specifier_contains(spec, version) is ok
    if version is not None and spec:
        assert P._simple_contains(spec, version) is ok


def test_plan_constraints_and_changes():
    installed = {"tiktoken": ("tiktoken", "0.12.0"), "numpy": ("numpy", "2.4.6"),
                 "torch": ("torch", "2.5.0+rocm6.4"), "sglang": ("sglang", "0.5.7")}
    reqs = P.parse_requirements(["sentencepiece", "tiktoken==0.14.0", "numpy"])
    rows = P.plan(reqs, installed)
    assert [(r["name"], r["installed"], r["satisfied"]) for r in rows] == [
        ("sentencepiece", None, False), ("tiktoken", "0.12.0", False), ("numpy", "2.4.6", True)]
    # everything the image has is pinned, except the packages being installed
    missing = {r["key"] for r in rows if not r["satisfied"]}
    assert P.constraints(installed, missing) == ["numpy==2.4.6", "sglang==0.5.7", "torch==2.5.0+rocm6.4"]
    after = dict(installed, tiktoken=("tiktoken", "0.14.0"), sentencepiece=("sentencepiece", "0.2.1"))
    assert P.changes(installed, after) == {"sentencepiece": [None, "0.2.1"], "tiktoken": ["0.12.0", "0.14.0"]}
    assert P.changes(installed, installed) == {}


def test_pip_argv_online_offline_and_dry_run():
    request = {"index_url": "https://mirror/simple", "extra_index_urls": ["https://extra/simple"],
               "ca_bundle": CA, "timeout": 30, "retries": 2, "extra_args": ["--pre"]}
    assert P.pip_argv("/opt/venv/bin/python3", request, ["tiktoken==0.14.0"], "/tmp/c.txt", "23.0.1") == [
        "/opt/venv/bin/python3", "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--progress-bar", "off", "--constraint", "/tmp/c.txt", "--timeout", "30", "--retries", "2",
        "--root-user-action=ignore", "--cert", CA, "--pre", "tiktoken==0.14.0"]
    offline = P.pip_argv("python3", {"wheelhouse": "/c/wheelhouse", "index_url": "https://x"},
                         ["a"], "/tmp/c.txt", "21.3", dry_run=True)
    assert "--root-user-action=ignore" not in offline
    assert offline[-5:] == ["--no-index", "--find-links", "/c/wheelhouse", "--dry-run", "a"]
    assert "--index-url" not in offline


def test_index_credentials_travel_in_pips_environment_never_on_its_argv():
    request = {"index_url": "https://alice:SENTINEL-index@mirror/simple",
               "extra_index_urls": ["https://bob:SENTINEL-extra1@extra/simple", "https://SENTINEL-extra2@x/s"]}
    argv = P.pip_argv("python3", request, ["tiktoken"], "/tmp/c.txt", "23.0.1")
    assert "SENTINEL" not in " ".join(argv) and "--index-url" not in argv and "--extra-index-url" not in argv
    assert P.index_env(request) == {
        "PIP_INDEX_URL": "https://alice:SENTINEL-index@mirror/simple",
        "PIP_EXTRA_INDEX_URL": "https://bob:SENTINEL-extra1@extra/simple https://SENTINEL-extra2@x/s"}
    assert P.index_env(dict(request, wheelhouse="/c/wheelhouse")) == {}
    assert P.index_env({}) == {}


def test_an_index_with_credentials_is_checked_with_basic_auth_not_a_bad_port():
    """urllib reads https://user:token@host as a port and raised InvalidURL (a traceback that
    quoted the token); the check sends the credentials as pip does, in an Authorization header."""
    import http.server
    import threading
    seen = {}

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.update(path=self.path, auth=self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://alice:SENTINEL-index@127.0.0.1:%d/simple" % server.server_port
        with mock.patch.dict(os.environ, {"no_proxy": "*"}):
            assert P.check_index(url, {"timeout": 5}, "tiktoken") is None
    finally:
        server.shutdown()
        server.server_close()
    assert seen == {"path": "/simple/tiktoken/",
                    "auth": "Basic " + base64.b64encode(b"alice:SENTINEL-index").decode()}
    assert P.split_credentials("https://mirror/simple") == ("https://mirror/simple", {})
    assert P.split_credentials("https://tok%40en@mirror/simple")[1]["Authorization"] == \
        "Basic " + base64.b64encode(b"tok@en:").decode()


def test_install_gives_pip_the_indexes_in_its_environment():
    seen = {}

    def fake_run(argv, env=None, timeout=None):
        seen.update(argv=argv, env=env)
        return 0, "Looking in indexes: https://alice:****@mirror/simple\nWould install tiktoken-0.14.0"

    request = {"requirements": ["not-installed-pkg-xyz"], "dry_run": True,
               "index_url": "https://alice:SENTINEL-index@mirror/simple",
               "extra_index_urls": ["https://bob:SENTINEL-extra@extra/simple"]}
    with mock.patch.object(P, "installed_distributions", return_value={}), \
            mock.patch.object(P, "_pip_version", return_value="23.0"), \
            mock.patch.object(P, "check_index", return_value=None), \
            mock.patch.object(P, "_run", side_effect=fake_run):
        P.do_install(request)
    assert "SENTINEL" not in " ".join(seen["argv"])
    assert seen["env"]["PIP_INDEX_URL"] == "https://alice:SENTINEL-index@mirror/simple"
    assert seen["env"]["PIP_EXTRA_INDEX_URL"] == "https://bob:SENTINEL-extra@extra/simple"


@pytest.mark.parametrize("args, message", [
    (["--upgrade"], "may not contain --upgrade"),
    (["--index-url=http://x"], "may not contain --index-url"),
    (["-c", "x"], "may not contain -c"),
    (["tiktoken"], "is not a pip option"),
])
def test_extra_args_cannot_take_over(args, message):
    with pytest.raises(P.PipError, match=message):
        P.validate_extra_args(args)
    P.validate_extra_args(["--pre", "--break-system-packages"])


def test_failure_classification_names_the_variables():
    request = {"ca_bundle_host": "/etc/ssl/certs/ca-certificates.crt"}
    tls = P.classify_pip_failure("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]"
                                 " certificate verify failed'))", request, "https://u:p@pypi.org/simple")
    assert "sglang_packages_ca_bundle" in tls and "https://***@pypi.org/simple" in tls and "u:p" not in tls
    net = P.classify_pip_failure("WARNING: Retrying ... NewConnectionError ... Connection refused", {},
                                 "https://pypi.org/simple")
    assert "pip index https://pypi.org/simple is unreachable" in net and "sglang_packages_https_proxy" in net
    pinned = P.classify_pip_failure("ERROR: ResolutionImpossible: numpy", {}, "x")
    assert "would change a package the image pins" in pinned
    pep668 = P.classify_pip_failure("error: externally-managed-environment", {}, "x")
    assert "--break-system-packages" in pep668
    assert "no matching distribution in /w" in P.classify_pip_failure(
        "ERROR: No matching distribution found for tiktoken==9", {"wheelhouse": "/w"}, "x")


def test_dry_run_without_staged_wheelhouse_reports_the_missing_packages(tmp_path):
    request = {"action": "install", "requirements": ["not-installed-pkg-xyz"], "dry_run": True,
               "wheelhouse": str(tmp_path / "absent")}
    with mock.patch.object(P, "_run") as run_:
        result = P.do_install(request)
    assert result["changed"] is True and result["would_install"] == ["not-installed-pkg-xyz"]
    run_.assert_not_called()


def test_ca_content_is_a_temporary_cert_file_for_pip_then_removed():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    seen = {}

    def fake_run(argv, env=None, timeout=None):
        cert = argv[argv.index("--cert") + 1]
        with open(cert, encoding="utf-8") as handle:
            seen.update(cert=cert, pem=handle.read(), checked=check.call_args.args[1]["ca_bundle"])
        return 0, "Would install not-installed-pkg-xyz-1.0 regex-2024.1"

    with mock.patch.object(P, "installed_distributions", return_value={"regex": ("regex", "2023.1")}), \
            mock.patch.object(P, "_pip_version", return_value="23.0"), \
            mock.patch.object(P, "_configured_index", return_value=None), \
            mock.patch.object(P, "check_index", return_value=None) as check, \
            mock.patch.object(P, "_run", side_effect=fake_run):
        result = P.do_install({"requirements": ["not-installed-pkg-xyz"], "ca_pem": pem, "dry_run": True})
    assert seen["pem"] == pem and seen["checked"] == seen["cert"]
    assert not os.path.exists(seen["cert"])
    assert result["would_install"] == ["not-installed-pkg-xyz-1.0", "regex-2024.1"]
    assert result["changes"] == {"not-installed-pkg-xyz": [None, "1.0"], "regex": ["2023.1", "2024.1"]}
    assert "ca_pem" not in json.dumps(result) and "MIIB" not in json.dumps(result)


def test_install_checks_the_index_before_pip(tmp_path):
    request = {"requirements": ["not-installed-pkg-xyz"], "index_url": "https://idx.example/simple"}
    with mock.patch.object(P, "_pip_version", return_value="23.0"), \
            mock.patch.object(P, "check_index", return_value="[Errno 111] Connection refused") as check, \
            mock.patch.object(P, "_run") as run_:
        with pytest.raises(P.PipError, match=r"pip index https://idx.example/simple is unreachable"):
            P.do_install(request)
    check.assert_called_once()
    assert check.call_args.args[0] == "https://idx.example/simple"
    run_.assert_not_called()


def test_install_runs_pip_once_with_constraints_and_reports_changes(tmp_path):
    before = {"numpy": ("numpy", "2.0"), "tiktoken": ("tiktoken", "0.12.0")}
    after = dict(before, tiktoken=("tiktoken", "0.14.0"))
    seen = {}

    def fake_run(argv, env=None, timeout=None):
        seen["argv"] = argv
        with open(argv[argv.index("--constraint") + 1], encoding="utf-8") as handle:
            seen["constraints"] = handle.read().split()
        return 0, "Successfully installed tiktoken-0.14.0"

    with mock.patch.object(P, "installed_distributions", side_effect=[before, after]), \
            mock.patch.object(P, "_pip_version", return_value="23.0"), \
            mock.patch.object(P, "_configured_index", return_value=None), \
            mock.patch.object(P, "check_index", return_value=None), \
            mock.patch.object(P, "_run", side_effect=fake_run):
        result = P.do_install({"requirements": ["tiktoken==0.14.0", "numpy"]})
    assert seen["constraints"] == ["numpy==2.0"]
    assert seen["argv"][-1] == "tiktoken==0.14.0"
    assert result["changed"] is True and result["changes"] == {"tiktoken": ["0.12.0", "0.14.0"]}


def test_install_failure_explains_pins():
    before = {"numpy": ("numpy", "2.0")}
    with mock.patch.object(P, "installed_distributions", return_value=before), \
            mock.patch.object(P, "_pip_version", return_value="23.0"), \
            mock.patch.object(P, "_configured_index", return_value=None), \
            mock.patch.object(P, "check_index", return_value=None), \
            mock.patch.object(P, "_run", return_value=(1, "ERROR: ResolutionImpossible")):
        with pytest.raises(P.PipError, match="pip install scipy==1.10.1 failed.*image pins"):
            P.do_install({"requirements": ["scipy==1.10.1"]})


def run_helper(request):
    """The helper as sglang_packages runs it: its source and the request on python3 -'s stdin."""
    proc = subprocess.run([sys.executable, "-"], input=_packages.helper_stdin(request).encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, lines  # one answer, nothing else on stdout
    return json.loads(lines[0])


def test_helper_runs_standalone_as_the_module_runs_it():
    answer = run_helper({"action": "probe", "requirements": ["pytest>=1", "not-installed-pkg-xyz==1.0"]})
    rows = {row["name"]: row for row in answer["requirements"]}
    assert rows["pytest"]["satisfied"] is True and rows["pytest"]["installed"]
    assert answer["missing"] == ["not-installed-pkg-xyz==1.0"] and answer["changed"] is False
    assert "error" in run_helper({"action": "probe", "requirements": ["a; b"]})
    assert "unknown action" in run_helper({"action": "nope"})["error"]


def test_a_hung_pip_is_killed_at_the_deadline_with_everything_it_started(tmp_path):
    pidfile = tmp_path / "grandchild"
    hang = ("import subprocess, sys, time\n"
            "child = subprocess.Popen(['sleep', '60'])\n"
            "open(sys.argv[1], 'w').write(str(child.pid))\n"
            "print('Looking in indexes: https://pypi.org/simple', flush=True)\n"
            "time.sleep(60)\n")
    P.set_deadline(1.0)
    started = time.monotonic()
    try:
        with pytest.raises(P.PipError) as exc:
            P._run([sys.executable, "-c", hang, str(pidfile)])
    finally:
        P.set_deadline(None)
    assert time.monotonic() - started < 10
    assert str(exc.value).startswith("`%s -c %s %s` did not finish within 1 s in the container and was killed "
                                     "with everything it started. The limit is exec_timeout "
                                     "(sglang_docker_exec_timeout) less a margin for the answer"
                                     % (os.path.basename(sys.executable), hang, pidfile))
    assert str(exc.value).endswith("Last output:\nLooking in indexes: https://pypi.org/simple")
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % grandchild) as handle:
                if handle.read().split(") ")[1][0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("pip's child %d outlived the deadline" % grandchild)


def test_without_a_deadline_run_waits_and_the_module_always_sends_one():
    P.set_deadline(None)
    assert P.remaining() is None
    assert P._run([sys.executable, "-c", "print('ok')"]) == (0, "ok\n")
    P.set_deadline(5, clock=lambda: 100.0)
    try:
        assert P.remaining(clock=lambda: 103.0) == 2.0 and P.remaining(clock=lambda: 200.0) == 0.0
    finally:
        P.set_deadline(None)

"""Every option of every module whose name looks secret is no_log=True.

ansible-test's validate-modules only warns (no-log-needed); this fails. An option "looks secret"
by _secrets.is_secret_name (api_key, hf_token, registry_password, ...) or by
_secrets.may_carry_credentials (a URL or proxy: ``https://user:token@host``); an option of type
path names a file that holds a secret and is not one itself. The argument spec
is the one each module's main() really gives AnsibleModule; a module that is only the
documentation of an action plugin is read from its DOCUMENTATION options.
"""

import importlib
import pathlib
from unittest import mock

import pytest
import yaml

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import is_secret_name, may_carry_credentials

MODULES = sorted(path.stem for path in (pathlib.Path(__file__).resolve().parents[4] / "plugins" / "modules").glob("*.py")
                 if path.stem != "__init__")


class _Captured(Exception):
    pass


def argument_spec(name):
    """(spec, real): the module's argument spec as main() builds it, or its documented options."""
    module = importlib.import_module("ansible_collections.sglang_rocm.fleet.plugins.modules." + name)
    if not hasattr(module, "AnsibleModule"):
        return yaml.safe_load(module.DOCUMENTATION).get("options") or {}, False
    seen = {}

    def capture(*args, **kwargs):
        seen.update(kwargs.get("argument_spec") or args[0])
        raise _Captured()

    with mock.patch.object(module, "AnsibleModule", side_effect=capture), pytest.raises(_Captured):
        module.main()
    return seen, True


def looks_secret(option):
    return is_secret_name(option) or may_carry_credentials(option)


def unprotected(spec, real, prefix=""):
    found = []
    for option, settings in sorted(spec.items()):
        settings = settings or {}
        # a path names the file that holds a secret (client_key, a TLS key file), not the secret
        if looks_secret(option) and settings.get("type") != "path" and (not real or settings.get("no_log") is not True):
            found.append(prefix + option)
        found.extend(unprotected(settings.get("options") or settings.get("suboptions") or {}, real,
                                 prefix + option + "."))
    return found


def test_every_module_is_walked():
    assert {"container_prepare", "sglang_packages", "sglang_server", "image_manifest"} <= set(MODULES)
    assert all(argument_spec(name)[0] for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_secret_looking_option_is_no_log(name):
    spec, real = argument_spec(name)
    assert unprotected(spec, real) == [], (
        "%s: options whose names look secret must be no_log=True in the argument spec (a module that "
        "only documents an action plugin must not take them)" % name)


@pytest.mark.parametrize("option, secret", [
    ("api_key", True), ("hf_token", True), ("registry_password", True), ("index_url", True),
    ("extra_index_urls", True), ("https_proxy", True), ("client_credential", True), ("auth", True),
    ("tokenizer", False), ("secrets_dir", False), ("max_total_tokens", False), ("no_proxy", False),
])
def test_the_rule_itself(option, secret):
    assert looks_secret(option) is secret

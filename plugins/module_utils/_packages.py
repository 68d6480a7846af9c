# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Host side of the sglang_packages module, testable without AnsibleModule or Docker.

The work inside the container is done by _agent_pip.py, sent through the docker CLI seam's agent
protocol (_docker_cli.DockerCli.call_agent, the same way sglang_server sends its agent).
PackagesManager asks it what is missing and, when something is, to install it, and turns its
answers into a result, a diff and error messages. The boundaries are injected: ``docker`` (a
DockerCli), ``read_file(path) -> str`` for the CA bundle on the host, and ``warn(text)``.
"""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_pip
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    DEFAULT_EXEC_TIMEOUT,
    ContainerMissing,
    ModuleFailure,
    agent_stdin,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import MASK, USERINFO, mask_text, url_credentials
AGENT_MARGIN = 10  # seconds of exec_timeout left for the helper to answer after it stopped pip

# request fields taken from the module's options as they are
_REQUEST_FIELDS = ("index_url", "extra_index_urls", "http_proxy", "https_proxy", "no_proxy",
                   "wheelhouse", "timeout", "retries")


def helper_stdin(payload):
    """Source sent to ``python3 -`` in the container: the pip helper plus one call with PAYLOAD."""
    return agent_stdin(_agent_pip, payload)


def url_secrets(params):
    """The credentials (``user:password``) in the proxy and index URLs and the URLs that carry
    them (a private index is often ``https://user:token@host/simple``)."""
    secrets = []
    urls = [params.get(name) or "" for name in ("http_proxy", "https_proxy", "index_url")]
    for value in urls + list(params.get("extra_index_urls") or []):
        secrets.extend(url_credentials(value))
    return secrets


def redact(value, secrets=()):
    """Copy of VALUE with known secrets and the user:password part of any URL masked in every
    string, at any depth (keys are package names and are kept as they are)."""
    if isinstance(value, dict):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    if isinstance(value, str):
        return USERINFO.sub("//%s@" % MASK, mask_text(value, secrets))
    return value


def validate(params):
    """Problems with the options, as the packages role's variables name them; [] when fine."""
    problems = []
    try:
        _agent_pip.parse_requirements(params.get("requirements"))
    except _agent_pip.PipError as exc:
        problems.append(str(exc))
    try:
        _agent_pip.validate_extra_args(params.get("extra_args"))
    except _agent_pip.PipError as exc:
        problems.append(str(exc))
    return problems


def build_request(params, action, dry_run=False, ca_pem=None):
    request = {"action": action, "requirements": list(params.get("requirements") or []),
               "extra_args": list(params.get("extra_args") or [])}
    if action == "install":
        request.update((name, params.get(name)) for name in _REQUEST_FIELDS)
        request["ca_bundle_host"] = params.get("ca_bundle") or ""
        request["dry_run"] = bool(dry_run)
        if ca_pem:
            request["ca_pem"] = ca_pem
    return request


def diff(changes, container, would_install=()):
    """Ansible diff of the distributions that change: ``name==version`` lines before and after.
    Without versions (check mode could not ask pip) the requirements that would be installed."""
    def lines(index):
        return "".join("%s==%s\n" % (name, versions[index])
                       for name, versions in sorted(changes.items()) if versions[index])
    if changes:
        return {"before": lines(0), "after": lines(1),
                "before_header": "%s: packages before" % container,
                "after_header": "%s: packages after" % container}
    return {"before": "", "after": "".join(item + "\n" for item in would_install),
            "before_header": "%s: packages before" % container,
            "after_header": "%s: would install" % container}


class PackagesError(ModuleFailure):
    """A packages failure that is not the docker CLI's (settings, the CA bundle)."""


class PackagesManager:
    """Install what is missing of ``requirements`` in one container; report what changed."""

    def __init__(self, params, docker, read_file, check_mode=False, want_diff=False,
                 warn=None):
        self.p = params
        self.docker = docker
        self.read_file = read_file
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.warn = warn or (lambda text: None)
        self.secrets = url_secrets(params)

    def fail(self, text, cls=PackagesError, **result):
        raise cls("Host %s: %s" % (self.p["host"], redact(text, self.secrets)),
                  **redact(result, self.secrets))

    def helper(self, request):
        # the helper stops pip itself before the docker CLI is stopped (which would leave pip running)
        exec_timeout = self.p.get("exec_timeout") or DEFAULT_EXEC_TIMEOUT
        request = dict(request, deadline=max(1, exec_timeout - min(AGENT_MARGIN, exec_timeout // 4)))
        try:
            return self.docker.call_agent(self.p["container"], self.p["python"], _agent_pip, request,
                                          what="the pip helper", python_name="sglang_packages_python",
                                          secrets=self.secrets)
        except ModuleFailure as exc:
            self.fail(exc.msg, type(exc), **exc.result)

    def ca_pem(self):
        path = self.p.get("ca_bundle")
        if not path or self.p.get("wheelhouse"):
            return None
        try:
            pem = self.read_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            self.fail("the CA bundle %s (sglang_packages_ca_bundle) cannot be read on the host: "
                      "%s. Give the path of a PEM file on the host, for example "
                      "/etc/ssl/certs/ca-certificates.crt" % (path, exc))
        if "-----BEGIN CERTIFICATE-----" not in pem:
            self.fail("the CA bundle %s (sglang_packages_ca_bundle) holds no PEM certificate; "
                      "give a PEM file, for example /etc/ssl/certs/ca-certificates.crt" % path)
        return pem

    def run(self):
        problems = validate(self.p)
        if problems:
            self.fail("invalid package settings, nothing was installed: " + "; ".join(problems),
                      problems=problems)
        result = {"changed": False, "requirements": [], "missing": [], "changes": {},
                  "container_absent": False}
        if not self.p["requirements"]:
            return result
        try:
            probe = self.helper(build_request(self.p, "probe"))
        except ContainerMissing as exc:
            if not self.check_mode:
                raise
            self.warn("%s; check mode assumes it will exist" % exc.msg)
            missing = list(self.p["requirements"])
            result.update(missing=missing, container_absent=True)
            if self.p["install"]:
                result.update(changed=True, would_install=missing)
                if self.want_diff:
                    result["diff"] = diff({}, self.p["container"], missing)
            return result
        result.update(requirements=probe["requirements"], missing=probe["missing"],
                      python=probe.get("python"))
        if not probe["missing"] or not self.p["install"]:
            return result
        answer = self.helper(build_request(self.p, "install", dry_run=self.check_mode,
                                           ca_pem=self.ca_pem()))
        result.update(changed=bool(answer.get("changed")), requirements=answer["requirements"],
                      changes=answer.get("changes") or {})
        for key in ("would_install", "pip_output_tail"):
            if key in answer:
                result[key] = answer[key]
        if self.want_diff and result["changed"]:
            result["diff"] = diff(result["changes"], self.p["container"],
                                  result.get("would_install", ()))
        return redact(result, self.secrets)

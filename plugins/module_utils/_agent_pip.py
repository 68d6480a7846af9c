# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""pip inside the SGLang container: requirement checks, constraints, install, error wording.

This file is also the program the sglang_packages module runs INSIDE the container: its source
goes to ``python3 -`` on the stdin of ``docker exec -i``, followed by one ``main(<base64 JSON
request>)`` call (see _packages.helper_stdin), and it answers with one JSON line on stdout. So it
uses the standard library only and runs on Python 3.8+. The functions are pure where they can be
and are unit-tested on the controller.

Requests: {"action": "probe", "requirements": [...]} reports what is installed and what is
missing; {"action": "install", ...} installs what is missing with a constraint file made from
the container's own installed versions (minus the packages asked for), so nothing the image pins
is ever upgraded or downgraded. An install request may carry ``ca_pem``, the text of the host's
CA bundle: it is written to a private temporary file in the container for pip's ``--cert`` and
removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_INDEX = "https://pypi.org/simple"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION = r"[A-Za-z0-9.*+!_-]+"
_OP = r"(?:===|==|!=|<=|>=|~=|<|>)"
_CLAUSE = r"\s*" + _OP + r"\s*" + _VERSION + r"\s*"
_REQUIREMENT_RE = re.compile(
    r"^\s*(?P<name>" + _NAME + r")\s*(?:\[(?P<extras>\s*" + _NAME + r"\s*(?:,\s*" + _NAME +
    r"\s*)*)\])?\s*(?P<spec>" + _CLAUSE + r"(?:," + _CLAUSE + r")*)?$")


class PipError(Exception):
    """A failure the role reports as is: what happened and which variable fixes it."""


def normalize_name(name):
    """PEP 503 name: runs of -, _ and . become -, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text):
    """'tiktoken==0.14.0' -> dict(name, key, extras, spec). Names and version specifiers only:
    no URLs, paths, options or markers, so a requirement can never smuggle a pip flag."""
    if not isinstance(text, str):
        raise PipError("sglang_packages_pip entry %r is not a string" % (text,))
    match = _REQUIREMENT_RE.match(text)
    if not match:
        raise PipError("sglang_packages_pip entry %r is not a package name with optional version "
                       "specifiers (for example tiktoken or tiktoken==0.14.0); URLs, paths, "
                       "options and markers are not accepted" % (text,))
    spec = re.sub(r"\s+", "", match.group("spec") or "")
    extras = [e.strip() for e in (match.group("extras") or "").split(",") if e.strip()]
    name = match.group("name")
    return {"name": name, "key": normalize_name(name), "extras": extras, "spec": spec,
            "text": name + ("[%s]" % ",".join(extras) if extras else "") + spec}


def parse_requirements(items):
    parsed, seen = [], {}
    for item in items or []:
        req = parse_requirement(item)
        if req["key"] in seen:
            raise PipError("sglang_packages_pip names %s twice (%r and %r); give one entry with "
                           "all specifiers" % (req["key"], seen[req["key"]], item))
        seen[req["key"]] = item
        parsed.append(req)
    return parsed


OWNED_FLAGS = ("-c", "--constraint", "--index-url", "-i", "--extra-index-url", "--no-index",
               "--find-links", "-f", "--cert", "--dry-run", "-r", "--requirement", "-e",
               "--editable", "-U", "--upgrade", "--force-reinstall", "--no-deps", "--target", "-t",
               "--prefix", "--root", "--user")


def validate_extra_args(args):
    """Extra pip flags may not replace the ones the role owns or undo the image pins."""
    for arg in args or []:
        if not isinstance(arg, str) or not arg.startswith("-"):
            raise PipError("sglang_packages_extra_args entry %r is not a pip option; packages go in "
                           "sglang_packages_pip" % (arg,))
        flag = arg.split("=", 1)[0]
        if flag in OWNED_FLAGS:
            raise PipError("sglang_packages_extra_args may not contain %s: the role sets the index, "
                           "constraints and install mode itself (see sglang_packages_index_url, "
                           "sglang_packages_extra_index_urls, sglang_packages_ca_bundle, "
                           "sglang_packages_wheelhouse) and never upgrades what the image pins"
                           % flag)


def _version_key(version):
    """Fallback ordering when no packaging library exists: numeric release, then the rest."""
    release = re.match(r"^v?(\d+(?:\.\d+)*)", version or "")
    nums = tuple(int(p) for p in release.group(1).split(".")) if release else ()
    while nums and nums[-1] == 0:
        nums = nums[:-1]
    return nums


def _simple_contains(spec, version):
    for clause in [c for c in spec.split(",") if c]:
        match = re.match(r"^(===|==|!=|<=|>=|~=|<|>)(.+)$", clause)
        op, want = match.group(1), match.group(2)
        if op == "===":
            ok = version == want
        elif want.endswith(".*") and op in ("==", "!="):
            prefix = _version_key(want[:-2])
            ok = _version_key(version)[:len(prefix)] == prefix
            ok = ok if op == "==" else not ok
        else:
            have, need = _version_key(version), _version_key(want)
            if op == "~=":
                ok = have >= need and have[:max(len(need) - 1, 1)] == need[:max(len(need) - 1, 1)]
            else:
                ok = {"==": have == need, "!=": have != need, "<=": have <= need,
                      ">=": have >= need, "<": have < need, ">": have > need}[op]
        if not ok:
            return False
    return True


def specifier_contains(spec, version):
    """Whether VERSION satisfies SPEC, with pip's own vendored packaging when it is there."""
    if not spec:
        return True
    if version is None:
        return False
    try:
        try:
            from pip._vendor.packaging.specifiers import SpecifierSet
        except ImportError:
            from packaging.specifiers import SpecifierSet
    except ImportError:
        return _simple_contains(spec, version)
    return SpecifierSet(spec).contains(version, prereleases=True)


def plan(requirements, installed):
    """Per requirement: installed version and whether it is satisfied. INSTALLED maps the
    normalised name to (project name, version)."""
    rows = []
    for req in requirements:
        found = installed.get(req["key"])
        version = found[1] if found else None
        rows.append({"requirement": req["text"], "name": req["name"], "key": req["key"],
                     "installed": version,
                     "satisfied": version is not None and specifier_contains(req["spec"], version)})
    return rows


def constraints(installed, exclude_keys):
    """Constraint lines pinning every installed distribution except EXCLUDE_KEYS (the requested
    packages being installed)."""
    lines = []
    for key in sorted(installed):
        if key in exclude_keys:
            continue
        name, version = installed[key]
        if version and re.match(r"^[A-Za-z0-9.+!_-]+$", version):
            lines.append("%s==%s" % (name, version))
    return lines


def changes(before, after):
    """{name: [old or None, new or None]} for every distribution that differs."""
    out = {}
    for key in sorted(set(before) | set(after)):
        old = before.get(key, (None, None))[1]
        new = after.get(key, (None, None))[1]
        if old != new:
            out[(after.get(key) or before.get(key))[0]] = [old, new]
    return out


def index_urls(request, configured_index):
    """(primary index, extra indexes) pip will use."""
    primary = request.get("index_url") or configured_index or DEFAULT_INDEX
    return primary, list(request.get("extra_index_urls") or [])


def pip_argv(python, request, missing, constraint_file, pip_version, dry_run=False):
    """argv of the pip install for the MISSING requirement texts. The indexes are not on it:
    their URLs may carry credentials, and an argv is visible to ``ps`` in the container and on
    the host, so they travel in pip's environment (index_env)."""
    argv = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off", "--constraint", constraint_file,
            "--timeout", str(int(request.get("timeout") or 60)),
            "--retries", str(int(request.get("retries") or 0))]
    if _version_key(pip_version) >= (22, 1):
        argv.append("--root-user-action=ignore")
    if request.get("wheelhouse"):
        argv.extend(["--no-index", "--find-links", request["wheelhouse"]])
    elif request.get("ca_bundle"):
        argv.extend(["--cert", request["ca_bundle"]])
    if dry_run:
        argv.append("--dry-run")
    argv.extend(request.get("extra_args") or [])
    argv.extend(missing)
    return argv


def _redact(url):
    return re.sub(r"//[^/@]*@", "//***@", url or "")


def unreachable_message(url, detail, request):
    text = "pip index %s is unreachable from the container: %s. " % (_redact(url), detail)
    if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail.lower():
        text += ("TLS verification failed: behind a TLS-inspecting proxy set "
                 "sglang_packages_ca_bundle to a CA bundle on the host that trusts it "
                 "(for example /etc/ssl/certs/ca-certificates.crt)%s. "
                 % (" (now %s)" % request["ca_bundle_host"] if request.get("ca_bundle_host") else ""))
    elif "407" in detail:
        text += "The proxy asks for authentication: put the credentials in the proxy URL. "
    text += ("Check sglang_packages_https_proxy / sglang_packages_http_proxy / "
             "sglang_packages_no_proxy, point sglang_packages_index_url at a reachable mirror, or "
             "install offline from sglang_packages_wheelhouse.")
    return text


def classify_pip_failure(output, request, primary):
    """One sentence that says why pip failed and which variable to change."""
    low = output.lower()
    if "externally-managed-environment" in low:
        return ("the container's Python is marked externally managed (PEP 668); add "
                "--break-system-packages to sglang_packages_extra_args if installing into it is "
                "intended, or set sglang_packages_python to the image's virtual environment")
    if any(s in low for s in ("certificate_verify_failed", "sslerror", "ssl: ")):
        return unreachable_message(primary, "TLS error (CERTIFICATE_VERIFY_FAILED)", request)
    if any(s in low for s in ("could not fetch url", "newconnectionerror", "connecttimeouterror",
                              "max retries exceeded", "proxyerror", "temporary failure in name "
                              "resolution", "network is unreachable", "connection refused")):
        return unreachable_message(primary, "connection failed", request)
    if "resolutionimpossible" in low or "conflicting dependencies" in low or \
            "cannot install" in low:
        return ("installing the requested packages would change a package the image pins; the "
                "image's versions are kept (constraints from its own pip freeze). Choose versions "
                "in sglang_packages_pip that work with the image's packages")
    if "no matching distribution" in low:
        where = request.get("wheelhouse") or _redact(primary)
        return ("no matching distribution in %s for the requested version; check the name and "
                "version in sglang_packages_pip" % where)
    return "pip failed"


# ---- in-container side (runs under the container's Python) ----

def installed_distributions():
    """{normalised name: (name, version)} of what the interpreter can import, first on sys.path wins."""
    from importlib import metadata
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = normalize_name(name)
        if key not in found:
            found[key] = (name, dist.version)
    return found


# The time the whole request may take in the container (the request's ``deadline``, seconds: the
# module's exec_timeout less a margin for the answer); main() sets it. Killing the docker CLI on
# the host does not stop pip in the container, so the helper stops it itself.
_DEADLINE = {"at": None, "seconds": None}


def set_deadline(seconds, clock=time.monotonic):
    _DEADLINE.update(at=clock() + float(seconds) if seconds else None, seconds=seconds)


def remaining(clock=time.monotonic):
    """Seconds left of the request's deadline (None: no deadline)."""
    if _DEADLINE["at"] is None:
        return None
    return max(0.0, _DEADLINE["at"] - clock())


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _run(argv, env=None, timeout=None):
    """Run ARGV (in its own process group) until it exits or the deadline passes: then the whole
    group is killed and PipError names the command and the limit."""
    limit = timeout if timeout is not None else remaining()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        out, _err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, _err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out = b""
        # the command's first words only: the rest may carry index URLs
        command = " ".join([os.path.basename(argv[0])] + list(argv[1:4]))
        tail = out.decode("utf-8", "replace").strip()[-1000:]
        raise PipError("`%s` did not finish within %d s in the container and was killed with "
                       "everything it started. The limit is exec_timeout (sglang_docker_exec_timeout) "
                       "less a margin for the answer: raise it if pip only needs longer, or check "
                       "the index and proxy settings%s"
                       % (command, int(round(limit)), ". Last output:\n" + tail if tail else ""))
    return proc.returncode, out.decode("utf-8", "replace")


def _pip_version(python):
    rc, out = _run([python, "-m", "pip", "--version"])
    match = re.match(r"^pip (\S+)", out)
    if rc != 0 or not match:
        raise PipError("pip is not usable with %s in the container (python -m pip --version: %s); "
                       "set sglang_packages_python to the image's Python" % (python, out.strip()[-300:]))
    return match.group(1)


def _configured_index(python, env):
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"]
    rc, out = _run([python, "-m", "pip", "config", "list"], env=env)
    if rc == 0:
        for line in out.splitlines():
            match = re.match(r"^(?:global|install)\.index-url='(.*)'$", line.strip())
            if match:
                return match.group(1)
    return None


def split_credentials(url):
    """(URL without its user:password part, headers that send them as pip does: Basic auth).
    urllib cannot open a URL that carries credentials (it reads ``user:token@host`` as a port)."""
    from urllib.parse import unquote, urlsplit, urlunsplit
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _at, hostport = parts.netloc.rpartition("@")
    user, _colon, password = userinfo.partition(":")
    token = base64.b64encode(("%s:%s" % (unquote(user), unquote(password))).encode("utf-8")).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), {"Authorization": "Basic " + token}


def check_index(url, request, key):
    """None when URL answers over HTTP (any status but 407 and 5xx), else the reason."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request
    context = ssl.create_default_context(cafile=request.get("ca_bundle") or None)
    handlers = [urllib.request.HTTPSHandler(context=context),
                urllib.request.ProxyHandler(urllib.request.getproxies())]
    opener = urllib.request.build_opener(*handlers)
    bare, headers = split_credentials(url)
    target = bare.rstrip("/") + "/" + key + "/"
    headers["User-Agent"] = "pip"
    try:
        opener.open(urllib.request.Request(target, headers=headers),
                    timeout=max(0.1, min(int(request.get("timeout") or 60), 30,
                                         30 if remaining() is None else remaining()))).close()
    except urllib.error.HTTPError as exc:
        if exc.code == 407 or exc.code >= 500:
            return "HTTP %s from %s" % (exc.code, _redact(target))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", None) or exc)
    return None


def index_env(request):
    """PIP_INDEX_URL and PIP_EXTRA_INDEX_URL (space-separated, as pip reads it) for the indexes
    of REQUEST: pip's environment, never its argv. None of them offline (a wheelhouse)."""
    if request.get("wheelhouse"):
        return {}
    env = {}
    if request.get("index_url"):
        env["PIP_INDEX_URL"] = request["index_url"]
    if request.get("extra_index_urls"):
        env["PIP_EXTRA_INDEX_URL"] = " ".join(request["extra_index_urls"])
    return env


def _pip_env(request):
    env = dict(os.environ)
    env.update(index_env(request))
    for var in ("http_proxy", "https_proxy", "no_proxy"):
        value = request.get(var)
        if value:
            env[var] = env[var.upper()] = value
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _would_install(output):
    for line in output.splitlines():
        if line.startswith("Would install "):
            return line[len("Would install "):].split()
    return []


def would_install_changes(items, before):
    """{name: [installed version or None, version pip would install]} from the NAME-VERSION items
    of pip's ``Would install`` line (pip joins them with the last dash)."""
    out = {}
    for item in items:
        name, _sep, version = item.rpartition("-")
        if not name:
            continue
        found = before.get(normalize_name(name))
        out[found[0] if found else name] = [found[1] if found else None, version]
    return out


def do_probe(request):
    requirements = parse_requirements(request.get("requirements"))
    validate_extra_args(request.get("extra_args"))
    installed = installed_distributions()
    rows = plan(requirements, installed)
    return {"python": sys.version.split()[0], "executable": sys.executable, "requirements": rows,
            "missing": [row["requirement"] for row in rows if not row["satisfied"]],
            "changed": False}


def _write_ca(pem):
    """The host's CA bundle as a private temporary file for pip's --cert; the caller removes it."""
    fd, path = tempfile.mkstemp(prefix="sglang-fleet-pip-ca-", suffix=".pem")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(pem)
    return path


def do_install(request):
    requirements = parse_requirements(request.get("requirements"))
    validate_extra_args(request.get("extra_args"))
    before = installed_distributions()
    rows = plan(requirements, before)
    missing = [row["requirement"] for row in rows if not row["satisfied"]]
    result = {"requirements": rows, "missing": missing, "changed": False, "changes": {}}
    if not missing:
        return result
    dry_run = bool(request.get("dry_run"))
    staged = (os.path.isdir(request["wheelhouse"]) if request.get("wheelhouse")
              else not request.get("ca_bundle") or os.path.isfile(request["ca_bundle"]))
    if dry_run and not staged:
        # check mode did not stage the wheelhouse, so pip cannot be asked
        result.update(changed=True, would_install=missing)
        return result
    ca_file = None
    try:
        if request.get("ca_pem") and not request.get("wheelhouse"):
            ca_file = _write_ca(request["ca_pem"])
            request = dict(request, ca_bundle=ca_file)
        return _install_missing(request, requirements, rows, before, missing, dry_run, result)
    finally:
        if ca_file:
            os.unlink(ca_file)


def _install_missing(request, requirements, rows, before, missing, dry_run, result):
    python = sys.executable
    env = _pip_env(request)
    os.environ.update({k: v for k, v in env.items() if k.lower().endswith("_proxy")})
    pip_version = _pip_version(python)
    primary, extras = index_urls(request, None if request.get("index_url")
                                 else _configured_index(python, env))
    if request.get("wheelhouse"):
        if not os.path.isdir(request["wheelhouse"]):
            raise PipError("the wheelhouse %s is not visible inside the container; the packages "
                           "role stages it under sglang_cache_dir, which the container role mounts "
                           "at the same path (sglang_container_cache_mount: true)"
                           % request["wheelhouse"])
    else:
        if request.get("ca_bundle") and not os.path.isfile(request["ca_bundle"]):
            raise PipError("CA bundle %s is missing inside the container" % request["ca_bundle"])
        for url in [primary] + extras:
            problem = check_index(url, request, normalize_name(requirements[0]["name"]))
            if problem:
                raise PipError(unreachable_message(url, problem, request))
    # only what is installed now is exempt; a satisfied requirement stays pinned like the image
    keys = set(row["key"] for row in rows if not row["satisfied"])
    handle = tempfile.NamedTemporaryFile("w", prefix="sglang-fleet-constraints-", suffix=".txt",
                                         delete=False)
    try:
        with handle:
            handle.write("\n".join(constraints(before, keys)) + "\n")
        if dry_run and _version_key(pip_version) < (22, 2):
            result.update(changed=True, would_install=missing)
            return result
        argv = pip_argv(python, request, missing, handle.name, pip_version, dry_run=dry_run)
        rc, output = _run(argv, env=env)
    finally:
        os.unlink(handle.name)
    result["pip_output_tail"] = output[-3000:]
    if rc != 0:
        raise PipError("pip install %s failed (exit %s): %s. Last pip output:\n%s"
                       % (" ".join(missing), rc, classify_pip_failure(output, request, primary),
                          output.strip()[-1500:]))
    if dry_run:
        items = _would_install(output)
        result.update(changed=True, would_install=items or missing,
                      changes=would_install_changes(items, before))
        return result
    after = installed_distributions()
    result["changes"] = changes(before, after)
    result["changed"] = bool(result["changes"])
    result["requirements"] = plan(requirements, after)
    unmet = [row["requirement"] for row in result["requirements"] if not row["satisfied"]]
    if unmet:
        raise PipError("pip reported success but %s is still not satisfied in the container"
                       % ", ".join(unmet))
    return result


def main(encoded):
    """One request (base64 of its JSON; the source itself arrives on stdin), one JSON answer line."""
    try:
        request = json.loads(base64.b64decode(encoded).decode("utf-8"))
        set_deadline(request.get("deadline"))
        action = request.get("action")
        if action == "probe":
            answer = do_probe(request)
        elif action == "install":
            answer = do_install(request)
        else:
            raise PipError("unknown action %r" % (action,))
    except PipError as exc:
        answer = {"error": str(exc), "changed": False}
    sys.stdout.write(json.dumps(answer, sort_keys=True) + "\n")
    return 0

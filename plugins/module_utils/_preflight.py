# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Preflight policy: validate inputs, evaluate every check, plan and apply safe fixes, report.

Pure logic behind the rocm_preflight module, which ships it to each GPU host; no AnsibleModule
here. The checks themselves, and the registry that lists them, are in _preflight_checks.py; the
fleet report built from the hosts' results is _report_preflight's, on the controller.
"""

from __future__ import absolute_import, division, print_function

import errno
import json
import os
import re
import tempfile

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import (
    CHECKS,
    NUMA_KEY,
    REGISTRY,
    ROLE_VARIABLES,
    _plural,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm import missing_roots, root_error
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._drift import versioned_facts
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _firmware_rules

__metaclass__ = type

REPORT_SCHEMA_VERSION = 1
COMPUTE_PARTITIONS = ("SPX", "DPX", "TPX", "QPX", "CPX")
MEMORY_PARTITIONS = ("NPS1", "NPS2", "NPS4", "NPS8")


def _var(option):
    return "%s (option %s)" % (ROLE_VARIABLES[option], option) if option in ROLE_VARIABLES else option


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Input validation: all problems at once, before anything is read or changed.
# --------------------------------------------------------------------------------------------

def validate_inputs(params, host):
    """Every problem with the preflight's inputs, as messages naming variable, value and fix."""
    errors = []

    def bad(option, seen, expected, fix):
        errors.append("%s on host %s: got %s; expected %s. Fix: %s" % (_var(option), host, seen, expected, fix))

    roots = [(name, params.get(name)) for name in ("sysfs_root", "dev_root", "proc_root")]
    for name, path in missing_roots([(n, p) for n, p in roots if p]):
        errors.append(root_error(name, path, ROLE_VARIABLES[name], host))
    expected_gpus = params.get("expected_gpus")
    if not _is_int(expected_gpus) or expected_gpus < 0:
        bad("expected_gpus", repr(expected_gpus), "an integer >= 0: the GPUs this host must expose",
            "set %s to the host's GPU count (8 on an MI300X platform)." % ROLE_VARIABLES["expected_gpus"])
    tp_size = params.get("tp_size")
    if tp_size is not None and (not _is_int(tp_size) or tp_size < 1):
        bad("tp_size", repr(tp_size), "an integer >= 1 (the server's --tp-size)",
            "set %s to the number of GPUs one server uses, e.g. 4 or 8." % ROLE_VARIABLES["tp_size"])
    for option in ("min_vram_gib", "min_free_disk_gib"):
        number = _number(params.get(option))
        if number is None or number < 0:
            bad(option, repr(params.get(option)), "a number of GiB >= 0",
                "set %s to a non-negative number, e.g. 180." % ROLE_VARIABLES[option])
    gfx = params.get("gfx")
    if not isinstance(gfx, list) or not gfx or not all(isinstance(g, str) and re.match(r"^gfx[0-9a-f]{3,4}$", g) for g in gfx):
        bad("gfx", repr(gfx), "a non-empty list of LLVM GPU targets such as [gfx942]",
            "list the targets your image is built for (the -mi30x images: gfx942).")
    for option, known in (("compute_partitions", COMPUTE_PARTITIONS), ("memory_partitions", MEMORY_PARTITIONS)):
        value = params.get(option)
        unknown = [v for v in value if str(v).upper() not in known] if isinstance(value, list) else None
        if not value or unknown:
            bad(option, repr(value), "a non-empty list drawn from %s" % ", ".join(known),
                "use the partition mode names amd-smi prints, e.g. [%s]." % known[0])
    skip = params.get("skip") or []
    unknown = [name for name in skip if name not in CHECKS]
    if unknown:
        bad("skip", ", ".join(repr(n) for n in unknown), "names of checks: %s" % ", ".join(CHECKS),
            "correct the spelling or remove the entry from %s." % ROLE_VARIABLES["skip"])
    for option, kind in (("pcie_min_speed_gts", "a number of GT/s >= 0 (32 is Gen5; 0 turns the floor off)"),
                         ("max_ce_per_day", "a number >= 0 of correctable errors per GPU per day")):
        number = _number(params.get(option))
        if option in params and (number is None or number < 0):
            bad(option, repr(params.get(option)), kind, "set %s to a non-negative number." % ROLE_VARIABLES[option])
    for option, kind in (("pcie_min_width", "an integer >= 0 of lanes (16; 0 turns the floor off)"),
                         ("max_bad_pages", "an integer >= 0 of retired pages per GPU")):
        value = params.get(option)
        if option in params and (not _is_int(value) or value < 0):
            bad(option, repr(value), kind, "set %s to a non-negative integer." % ROLE_VARIABLES[option])
    kernel_params = params.get("kernel_params")
    if kernel_params is not None and (not isinstance(kernel_params, list) or not all(
            isinstance(arg, str) and arg and not re.search(r"\s", arg) for arg in kernel_params)):
        bad("kernel_params", repr(kernel_params), "a list of kernel arguments such as [pci=realloc=off, amd_iommu=on]",
            "list one argument per item, without spaces, exactly as /proc/cmdline shows it.")
    for option in ("cache_dir", "sysctl_file", "rocm_path"):
        value = params.get(option)
        if value is not None and not os.path.isabs(str(value)):
            bad(option, repr(value), "an absolute path on the host", "give %s as an absolute path." % _var(option))
    return errors


def docker_status(result, docker_host):
    """Normalise a registered community.docker.docker_host_info result (or None)."""
    if result is None:
        return None
    info = result.get("host_info") or {}
    reachable = bool(result.get("can_talk_to_docker")) and bool(info) and not result.get("failed")
    host = docker_host or "unix:///var/run/docker.sock"
    return {
        "host": host,
        "reachable": reachable,
        "version": info.get("ServerVersion"),
        "root_dir": info.get("DockerRootDir"),
        "local": host.startswith("unix://") or host.startswith("/"),
        "error": None if reachable else (result.get("msg") or "docker_host_info returned no host information"),
    }


def docker_status_from_cli(rc, stdout, stderr, docker_host, timeout=None):
    """Normalise the answer of ``docker info --format '{{json .}}'`` like docker_status() does.

    The CLI prints its client half even when the daemon is unreachable (then ServerVersion is
    empty, the reason is on stderr and rc is 1); rc 124 is coreutils timeout giving up.
    """
    host = docker_host or "unix:///var/run/docker.sock"
    info = {}
    try:
        parsed = json.loads(stdout or "{}")
        if isinstance(parsed, dict):
            info = parsed
    except ValueError:
        info = {}
    errors = [str(e) for e in (info.get("ServerErrors") or []) if e]
    reachable = rc == 0 and bool(info.get("ServerVersion")) and not errors
    if reachable:
        error = None
    elif rc == 124:
        error = "the daemon did not answer docker info within %ss" % (timeout,)
    else:
        lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
        error = "; ".join(errors + lines) or "docker info exited %s with no server information" % rc
    return {
        "host": host,
        "reachable": reachable,
        "version": info.get("ServerVersion") or None,
        "root_dir": info.get("DockerRootDir") or None,
        "local": host.startswith("unix://") or host.startswith("/"),
        "error": error,
    }


DOCKER_INFO = ["info", "--format", "{{json .}}"]


def probe_docker(docker, docker_host, timeout, missing=None):
    """Ask the daemon ``docker info`` through the docker CLI seam (``docker``, a
    _docker_cli.DockerCli: C locale, coreutils timeout of ``timeout`` seconds). ``missing`` names
    the binary that is not on the host (``docker`` or ``timeout``) when there is no CLI to ask.
    Never raises: a missing CLI or a silent daemon is an answer."""
    host = docker_host or "unix:///var/run/docker.sock"
    if docker is None:
        return {"host": host, "reachable": False, "version": None, "root_dir": None,
                "local": host.startswith("unix://") or host.startswith("/"),
                "error": "the docker CLI is not on the host's PATH (install docker.io or docker-ce-cli)"
                if missing != "timeout" else
                "coreutils timeout is not on the host's PATH, so docker info is not run without a time limit"}
    done = docker.command(DOCKER_INFO, timeout=timeout)
    return docker_status_from_cli(124 if done.timed_out else done.rc, done.stdout, done.stderr, host, timeout)


IMAGE_INSPECT = ["image", "inspect", "--format", "{{.Id}}"]


def image_status_from_cli(rc, stdout, stderr, image, timeout=None):
    """The image ``image`` as this daemon holds it: {ref, present, id, error}.

    ``id`` is the short image ID (12 hex digits, as ``docker images`` shows it): the digest of
    the image's config, the same whether the host pulled the image or loaded it from an archive,
    so hosts that hold the same bits agree. An image the host does not hold is ``present``
    false with no error (the container stage will fetch it); anything else is an error, and the
    ID is unknown (never compared).
    """
    out = (stdout or "").strip()
    if rc == 0 and out.startswith("sha256:") and len(out) > 19:
        return {"ref": image, "present": True, "id": out.split(":", 1)[1][:12], "error": None}
    text = " ".join(line.strip() for line in (stderr or "").splitlines() if line.strip())
    if rc != 0 and rc != 124 and "no such image" in text.lower():
        return {"ref": image, "present": False, "id": None, "error": None}
    if rc == 124:
        text = "docker image inspect did not answer within %ss" % (timeout,)
    return {"ref": image, "present": None, "id": None,
            "error": text or "docker image inspect exited %s with %r" % (rc, out[:200])}


def probe_image(docker, image, timeout):
    """Ask the daemon for ``image``'s ID through the docker CLI seam; never raises."""
    done = docker.command(IMAGE_INSPECT + ["--", image], timeout=timeout)
    return image_status_from_cli(124 if done.timed_out else done.rc, done.stdout, done.stderr, image, timeout)


def host_summary(facts, docker):
    gpus = facts.get("gpus") or []
    return {
        "gpus": len(gpus),
        "gfx": sorted(set(g["gfx"] for g in gpus if g.get("gfx"))),
        "partitions": sorted(set("%s/%s" % (g["compute_partition"], g["memory_partition"])
                                 for g in gpus if g.get("compute_partition"))),
        "driver": facts.get("driver_version") or ("inbox" if facts.get("amdgpu_loaded") else None),
        "rocm": facts.get("rocm_version"),
        "docker": (docker or {}).get("version"),
    }


def evaluate_checks(facts, settings, host, docker=None, disks=None):
    """Evaluate every check; returns the host report ({host, status, checks: [...], ...}).

    settings: expected_gpus, tp_size, gfx, min_vram_gib, min_free_disk_gib,
    compute_partitions, memory_partitions, skip, cache_dir, container_env, sysctl_file.
    Waived checks (settings["skip"]) are evaluated anyway and reported as skipped with what
    they would have said, so a waiver is never silent.
    """
    ctx = {"facts": facts, "settings": settings, "docker": docker, "disks": disks}
    skip = set(settings.get("skip") or [])
    checks = []
    for check in REGISTRY:
        entry = {"name": check.name}
        entry.update(check.evaluate(ctx))
        if check.name in skip:
            entry["waived_status"] = entry["status"]
            entry["status"] = "skipped"
            entry["observed"] = "waived by %s (would be %s): %s" % (
                ROLE_VARIABLES["skip"], entry["waived_status"], entry["observed"])
            entry["fix"] = None
        entry["remediation"] = None
        checks.append(entry)
    report = build_report(host, checks, host_summary(facts, docker))
    # What the fleet compares (drift by majority) and what the firmware rules require on this host.
    applied = _firmware_rules.evaluate(facts)
    report.update(versions=versioned_facts(facts, docker), firmware_rules=applied,
                  firmware_env=_firmware_rules.env_defaults(applied))
    return report


def build_report(host, checks, summary):
    by_status = dict((status, [c["name"] for c in checks if c["status"] == status])
                     for status in ("pass", "warn", "fail", "skipped", "n/a"))
    status = "fail" if by_status["fail"] else "warn" if by_status["warn"] else "pass"
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "host": host,
        "status": status,
        "failed": by_status["fail"],
        "warnings": by_status["warn"],
        "skipped": by_status["skipped"],
        "counts": dict((k, len(v)) for k, v in by_status.items()),
        "summary": summary,
        "checks": checks,
        "remediation": [],
    }
    report["message"] = failure_message(report)
    return report


def failure_message(report):
    """One message listing every failed check with its fix ('' when nothing failed)."""
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    if not failed:
        return ""
    lines = ["preflight failed on %s: %s of %d failed" % (report["host"], _plural(len(failed), "check"), len(report["checks"]))]
    for check in failed:
        line = "- %s: %s (expected %s). Fix: %s" % (check["name"], check["observed"], check["expected"], check["fix"])
        if check.get("remediation"):
            line += " [remediation: %s]" % check["remediation"]
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Remediation: only what is safe (no reboot, no BIOS, no partition change).
# --------------------------------------------------------------------------------------------

def sysctl_content(old, key, value):
    """sysctl.d file text with `key = value` set once (replacing any spelling of the key)."""
    pattern = re.compile(r"^\s*%s\s*=" % re.escape(key).replace(r"\.", "[./]"))
    lines, found = [], False
    for line in (old or "").splitlines():
        if pattern.match(line):
            if not found:
                lines.append("%s = %s" % (key, value))
                found = True
            continue
        lines.append(line)
    if not found:
        if not lines:
            lines.append("# Managed by sglang_rocm.fleet (preflight role): AMD's MI300X host settings.")
        lines.append("%s = %s" % (key, value))
    return "\n".join(lines) + "\n"


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def plan_remediation(report, facts, settings):
    """The safe fixes for this report's failures: [{check, action, path, before, after, description}]."""
    status = dict((c["name"], c["status"]) for c in report["checks"])
    roots = facts["roots"]
    actions = []
    if status.get("amdgpu_loaded") == "fail" and not facts.get("amdgpu_loaded"):
        actions.append({"check": "amdgpu_loaded", "action": "modprobe", "path": None,
                        "before": "amdgpu not loaded\n", "after": "amdgpu loaded\n",
                        "description": "modprobe amdgpu"})
    if status.get("numa_balancing") == "fail":
        live = os.path.join(roots["proc_root"], "sys/kernel/numa_balancing")
        actions.append({"check": "numa_balancing", "action": "write", "path": live,
                        "before": "%s\n" % facts.get("numa_balancing"), "after": "0\n",
                        "description": "write 0 to %s" % live})
        sysctl_file = settings.get("sysctl_file")
        if sysctl_file:
            old = _read(sysctl_file)
            new = sysctl_content(old, NUMA_KEY, 0)
            if new != old:
                actions.append({"check": "numa_balancing", "action": "file", "path": sysctl_file,
                                "before": old or "", "after": new,
                                "description": "persist %s = 0 in %s" % (NUMA_KEY, sysctl_file)})
    if status.get("cache_dir") == "warn" and settings.get("cache_dir"):
        path = settings["cache_dir"]
        actions.append({"check": "cache_dir", "action": "mkdir", "path": path,
                        "before": "%s absent\n" % path, "after": "%s directory\n" % path,
                        "description": "create %s" % path})
    return actions


def _write_in_place(path, text):
    # procfs files cannot be replaced by rename: write the existing file in place.
    with open(path, "w") as handle:
        handle.write(text)


def _write_atomic(path, text, atomic_move=None):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=".sglang-preflight-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        (atomic_move or os.rename)(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply_remediation(actions, check_mode, run, atomic_move=None):
    """Carry out (or, in check mode, only describe) the planned fixes.

    run(argv) -> (rc, stdout, stderr) runs modprobe. A fix that fails is reported with its
    error, never raised: the check it meant to fix then still fails with that error attached.
    """
    results = []
    for action in actions:
        result = dict(action, changed=True, check_mode=bool(check_mode), error=None)
        if not check_mode:
            try:
                if action["action"] == "modprobe":
                    rc, out, err = run(["modprobe", "amdgpu"])
                    if rc != 0:
                        result.update(changed=False, error="modprobe amdgpu exited %s: %s" % (
                            rc, " ".join((err or out or "").split())[:300]))
                elif action["action"] == "write":
                    _write_in_place(action["path"], action["after"])
                elif action["action"] == "file":
                    _write_atomic(action["path"], action["after"], atomic_move)
                elif action["action"] == "mkdir":
                    os.makedirs(action["path"], 0o755)
            except (IOError, OSError) as exc:
                result.update(changed=False, error="%s: %s" % (action["description"], exc))
        results.append(result)
    return results


def annotate_remediation(report, results):
    """Attach what remediation did (or would do) to the checks it concerns; rebuild the message."""
    by_check = {}
    for result in results:
        if result["error"]:
            text = "failed: %s" % result["error"]
        elif result["check_mode"]:
            text = "would %s" % result["description"]
        else:
            text = "done: %s" % result["description"]
        by_check.setdefault(result["check"], []).append(text)
    for check in report["checks"]:
        if check["name"] in by_check:
            check["remediation"] = "; ".join(by_check[check["name"]])
    report["remediation"] = [dict((k, r[k]) for k in ("check", "description", "changed", "check_mode", "error"))
                             for r in results]
    report["message"] = failure_message(report)
    return report


def diff_entries(results):
    """Ansible diff dicts for the fixes that changed (or would change) something."""
    return [{"before_header": r["path"] or r["description"], "after_header": r["path"] or r["description"],
             "before": r["before"], "after": r["after"]} for r in results if r["changed"]]

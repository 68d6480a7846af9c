# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own plugins only; it is not a
# public API and may change without notice.
"""The rollout model of playbooks/upgrade.yml, pure and unit-tested without Ansible.

One place for: the variables a target may change, the validation of the rollout settings, the
per-host plan (what to apply, what to roll back to), the gates a changed host must pass, the
batch gate (may the next batch start?), the per-host record and the summary, scrubbed with the
one secret rule of _secrets.py. The role roles/upgrade reaches it through the action plugin
``sglang_rocm.fleet.rollout``.
"""

from __future__ import annotations

import json
import re

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import scrub, secret_values

# The variables a target may change; anything else is refused before a host is touched. The
# rollback restores every one of them, so none may be an extra var (-e) either.
TARGET_KEYS = (
    "sglang_image",
    "sglang_model_path",
    "sglang_tokenizer_path",
    "sglang_tp_size",
    "sglang_env",
    "sglang_server_extra_args",
    "sglang_container_env",
)
# Pins of the inventory's image (mirror rewrite, digest) that must not follow a new image.
IMAGE_PINS = ("sglang_container_registry_mirror", "sglang_container_image_digest")
SPEC_KEYS = TARGET_KEYS + IMAGE_PINS

# What a changed host must pass, in order, before it counts as upgraded; a failed gate rolls the
# host back. "health" is the server role's readiness wait, part of the change itself; the gates
# after it are task files roles/upgrade/tasks/gate_<name>.yml, run only on a host that changed.
# A new gate is one entry here (with its condition in host_gates) and one task file.
GATES = ("health", "smoke")

DEFAULT_BATCHES = [1, "25%", "100%"]
STATUSES = ("upgraded", "would_upgrade", "skipped", "rolled_back", "rollback_failed", "failed",
            "unreachable", "in_progress", "not_reached")
# A host left in one of these is not on the target: the run fails for it and the rollout stops.
UNHEALTHY = ("rolled_back", "rollback_failed", "failed", "unreachable", "in_progress")

_BATCH = re.compile(r"^([1-9][0-9]*|([1-9][0-9]?|100)%)$")
_CONFIG_HASH_LABEL = "io.sglang-rocm.fleet.config-hash"


def _is_list(value):
    return isinstance(value, (list, tuple))


def _json(value):
    return json.dumps(value, default=str)


def settings_problems(target, batches, max_fail, smoke_tiers):
    """Every problem with the rollout settings, as text naming the variable and what it takes."""
    problems = []
    if not isinstance(target, dict):
        problems.append("sglang_upgrade_target=%s (a dict whose keys are among %s; not a dict)"
                        % (_json(target), ", ".join(TARGET_KEYS)))
    else:
        unknown = sorted(set(target) - set(TARGET_KEYS))
        if unknown:
            problems.append("sglang_upgrade_target=%s (a dict whose keys are among %s; unknown here: %s)"
                            % (_json(scrub(target)), ", ".join(TARGET_KEYS), ", ".join(unknown)))
    if not _is_list(batches) or not batches or any(not _BATCH.match(str(b)) for b in batches):
        problems.append("sglang_upgrade_batches=%s (a list of positive host counts or percentages "
                        "such as [1, \"25%%\", \"100%%\"])" % _json(batches))
    if isinstance(max_fail, bool) or not re.match(r"^[0-9]+$", str(max_fail)) or int(str(max_fail)) > 100:
        problems.append("sglang_upgrade_max_fail_percentage=%s (an integer 0..100)" % _json(max_fail))
    if not _is_list(smoke_tiers):
        problems.append("sglang_upgrade_smoke_tiers=%s (a list of tier names or tier dicts)" % _json(smoke_tiers))
    return problems


def settings_message(problems):
    return "Nothing was changed. Invalid upgrade settings: %s." % "; ".join(problems)


def extra_vars_message(names):
    """Why target variables given as extra vars are refused, with the fix."""
    verb = "is" if len(names) == 1 else "are"
    return ("Nothing was changed. %s %s set as extra vars (-e), which no rollback can override. Give "
            "the change as sglang_upgrade_target instead, for example -e '{\"sglang_upgrade_target\": "
            "{\"%s\": ...}}', or put it in the inventory." % (", ".join(names), verb, names[0]))


def target_extra_vars(extra_vars):
    """The target variables among the extra vars, in TARGET_KEYS order."""
    return [key for key in TARGET_KEYS if key in (extra_vars or {})]


def missing_images(results):
    """The registry answers (image_manifest's ``images``) of the references that were not found."""
    return [item for item in results or [] if not item.get("found")]


def _registry_answered_missing(item):
    """True when the registry itself said the image is not there (404 or "manifest unknown");
    anything else (a 5xx from the daemon, no answer) means the registry was not reached."""
    message = (item.get("message") or "").lower()
    return item.get("status") == 404 or "manifest unknown" in message or "not found" in message


def missing_images_message(missing, host, docker_host, image):
    asked = "asked through the Docker daemon of %s (%s)" % (host, docker_host)
    parts = []
    for absent, wording in ((True, "The registry has no image"), (False, "The registry could not be asked for image")):
        items = [item for item in missing if _registry_answered_missing(item) == absent]
        if items:
            parts.append("%s %s (%s), %s." % (
                wording, ", ".join(item["reference"] for item in items),
                "; ".join("%s: %s" % (item.get("status") or "?", item.get("message") or "no answer") for item in items),
                asked))
    unreached = any(not _registry_answered_missing(item) for item in missing)
    return ("Nothing was changed. %s Expected an existing tag or digest%s: check sglang_upgrade_target.sglang_image "
            "(now %s), sglang_container_registry_mirror and the registry credentials; set "
            "sglang_upgrade_check_image=false only for a daemon this check cannot reach."
            % (" ".join(parts), " on a registry the daemon can reach (is it up, and is its address right?)"
               if unreached else "", image))


def seen_container(info):
    """What docker_container_info reported of the running container, as the record keeps it."""
    container = (info or {}).get("container") or {}
    labels = (container.get("Config") or {}).get("Labels") or {}
    return {
        "exists": bool((info or {}).get("exists")),
        "image": (container.get("Config") or {}).get("Image"),
        "id": container.get("Id"),
        "started_at": (container.get("State") or {}).get("StartedAt"),
        "config_hash": labels.get(_CONFIG_HASH_LABEL),
    }


def plan_host(current, target, seen):
    """(apply, rollback): the spec to change the host to, and the spec to restore it with.

    ``current`` is the inventory's spec (SPEC_KEYS), ``target`` the change, ``seen`` the recorded
    container. A new image drops the inventory's mirror rewrite and digest pin; a new model path
    moves a tokenizer path that followed the model path along with it. The rollback is the
    inventory's spec on the recorded image.
    """
    apply = dict(current)
    apply.update(target)
    if "sglang_image" in target:
        apply.update({key: "" for key in IMAGE_PINS})
    if ("sglang_model_path" in target and "sglang_tokenizer_path" not in target
            and current.get("sglang_tokenizer_path") == current.get("sglang_model_path")):
        apply["sglang_tokenizer_path"] = target["sglang_model_path"]
    rollback = dict(current)
    if seen.get("exists"):
        rollback["sglang_image"] = seen.get("image")
        rollback.update({key: "" for key in IMAGE_PINS})
    return apply, rollback


def host_gates(smoke_tiers):
    """The gates after the change that this rollout runs on a changed host, in GATES order."""
    wanted = {"health": False, "smoke": bool(smoke_tiers)}
    return [gate for gate in GATES if wanted.get(gate)]


def batch_gate(records, max_fail):
    """(stop, why): may the next batch start, given every host's record so far?

    A failed canary (any unhealthy host of batch 1) always stops the rollout; otherwise it stops
    when more than max_fail percent of the hosts reached so far are unhealthy.
    """
    reached = [r for r in records.values() if r.get("status", "not_reached") != "not_reached"]
    bad = sorted(host for host, r in records.items() if r.get("status") in UNHEALTHY)
    if not bad:
        return False, ""
    if any(records[host].get("batch") == 1 for host in bad):
        return True, "the canary batch did not end healthy (%s)" % ", ".join(bad)
    if len(bad) * 100 > int(max_fail) * len(reached):
        return True, ("%d of %d hosts reached are not on the target (%s), more than "
                      "sglang_upgrade_max_fail_percentage=%s%%" % (len(bad), len(reached), ", ".join(bad), max_fail))
    return False, ""


def next_batch(records):
    return max([r.get("batch") or 0 for r in records.values()] + [0]) + 1


def after_change(container_result, server_result, startup=None):
    """The container and server after the change, as the record keeps them, with the host's
    startup phases (the server role's sglang_server_startup) when it recorded them."""
    container = (container_result or {}).get("container") or {}
    server = server_result or {}
    return {
        "image": (container.get("Config") or {}).get("Image"),
        "id": container.get("Id"),
        "started_at": (container.get("State") or {}).get("StartedAt"),
        "server_action": server.get("action"),
        "server_pid": server.get("pid"),
        "spec_hash": server.get("spec_hash"),
        "startup": startup if isinstance(startup, dict) and startup else None,
    }


def host_changed(container_result, server_result):
    """A host counts as changed when its container was recreated or its server (re)started."""
    return bool((container_result or {}).get("changed") or (server_result or {}).get("changed"))


def finished(record, outcome, now, check_mode=False, changed=False, after=None, error=None, failed_task=None):
    """The host's record after ``outcome``: done (the change and its gates passed), failed (the
    change or a gate failed), rolled_back, rollback_failed or unreachable."""
    record = dict(record)
    if outcome == "done":
        record["status"] = ("would_upgrade" if check_mode else "upgraded") if changed else "skipped"
    elif outcome == "failed":
        record["status"] = "rolling_back" if (record.get("before") or {}).get("exists") else "failed"
        record["failed_task"] = failed_task
        record["error"] = error or "see the task output above"
        return record
    elif outcome == "rollback_failed":
        record["status"] = outcome
        record["rollback_error"] = error or "see the task output above"
    elif outcome in ("rolled_back", "unreachable"):
        record["status"] = outcome
        if error:
            record["error"] = error
    else:
        raise ValueError("unknown rollout outcome %r" % outcome)
    record["finished"] = now
    if after is not None:
        record["after"] = after
    return record


def summary(records, target, batches, run_id, check_mode, now):
    """upgrade_summary.json: every host of the play with what happened to it, scrubbed: the
    target's secret values are masked in it and wherever else they appear (an error quoting a
    command line)."""
    by_status = {status: [] for status in STATUSES}
    for host, record in records.items():
        by_status.setdefault(record.get("status", "not_reached"), []).append(host)
    return scrub({
        "run_id": run_id,
        "written": now,
        "check_mode": bool(check_mode),
        "target": target,
        "batches": batches,
        "counts": {status: len(hosts) for status, hosts in by_status.items()},
        "hosts_by_status": by_status,
        "hosts": records,
    }, secret_values(target))


def summary_lines(data, path):
    """The summary as the run prints it: the change, each status with its hosts, the file."""
    mode = " (check mode)" if data["check_mode"] else ""
    head = "Rollout of %s in batches %s%s:" % (_json(data["target"]), _json(data["batches"]), mode)
    lines = [head]
    lines += ["%s: %s" % (status, ", ".join(hosts)) for status, hosts in data["hosts_by_status"].items() if hosts]
    lines.append("summary: %s" % path)
    return lines


def failures(records, path, target):
    """{host: message} for every host the rollout did not leave on the target (scrubbed)."""
    out = {}
    for host, record in records.items():
        if record.get("status") not in UNHEALTHY:
            continue
        text = "%s: %s" % (host, record["status"])
        if record.get("error"):
            text += " (%s)" % record["error"]
        if record.get("rollback_error"):
            text += "; rollback: %s" % record["rollback_error"]
        out[host] = scrub("%s. Summary: %s" % (text, path), secret_values(target))
    return out

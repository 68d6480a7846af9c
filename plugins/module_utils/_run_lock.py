# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The run lock of a host: one converge at a time (pure logic, stdlib only).

The lock is a small JSON file on the host (``<sglang_cache_dir>/run.lock``) naming the run that
holds it: run id, controller, start time, TTL, and where that run writes its host-side summary.
``decide`` says what a run that wants the lock does with what it finds there; the run_lock
module carries it out (taking the lock with an exclusive create, so two runs cannot both win).
"""

from __future__ import annotations

import datetime
import json
import os

LOCK_KEYS = ("run_id", "controller", "started", "ttl", "summary_path")
BREAK_VARIABLE = "sglang_run_lock_break"


class LockCorrupt(ValueError):
    """The lock file's content is not a lock this collection wrote."""


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def lock_text(run_id, controller, started, ttl, summary_path=None):
    """The lock file's content for a run."""
    return json.dumps({"run_id": run_id, "controller": controller, "started": int(started),
                       "started_utc": iso(started), "ttl": int(ttl),
                       "summary_path": summary_path or None}, sort_keys=True) + "\n"


def parse(text):
    """The lock as a dict; LockCorrupt when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LockCorrupt("not JSON (%s)" % exc)
    if not isinstance(data, dict):
        raise LockCorrupt("not a JSON object")
    if not isinstance(data.get("run_id"), str) or not data["run_id"]:
        raise LockCorrupt("no run_id")
    for key in ("started", "ttl"):
        if isinstance(data.get(key), bool) or not isinstance(data.get(key), (int, float)):
            raise LockCorrupt("%s is not a number" % key)
    return data


def describe(lock):
    return "run %s (controller %s, started %s, TTL %d s)" % (
        lock["run_id"], lock.get("controller") or "?", iso(lock["started"]), lock["ttl"])


def assess(text, run_id, now, summary_exists=lambda path: False):
    """What the lock file says, for run ``run_id`` at epoch ``now``.

    Returns {"state", "holder", "reason"}: state is ``free`` (no lock), ``ours`` (this run holds
    it), ``held`` (another run holds it and may still be running), ``stale`` (another run's lock
    is past its TTL, or that run wrote its summary), or ``corrupt``.
    """
    if text is None:
        return {"state": "free", "holder": None, "reason": None}
    try:
        lock = parse(text)
    except LockCorrupt as exc:
        return {"state": "corrupt", "holder": None,
                "reason": "the lock file is corrupt: %s; content %r" % (exc, text[:200])}
    if lock["run_id"] == run_id:
        return {"state": "ours", "holder": lock, "reason": None}
    expires = lock["started"] + lock["ttl"]
    if now > expires:
        return {"state": "stale", "holder": lock,
                "reason": "expired at %s (TTL %d s)" % (iso(expires), lock["ttl"])}
    if lock.get("summary_path") and summary_exists(lock["summary_path"]):
        return {"state": "stale", "holder": lock,
                "reason": "that run finished (it wrote %s) without releasing the lock"
                          % lock["summary_path"]}
    return {"state": "held", "holder": lock,
            "reason": "until %s at the latest (TTL)" % iso(lock["started"] + lock["ttl"])}


def decide(assessment, host, path, break_lock=False):
    """(action, message): action is ``take``, ``keep``, ``break`` or ``fail``."""
    state, holder, reason = assessment["state"], assessment["holder"], assessment["reason"]
    if state == "free":
        return "take", None
    if state == "ours":
        return "keep", None
    who = describe(holder) if holder else "an unknown run"
    if state == "held":
        text = ("%s: the run lock %s is held by %s, %s: another converge is running on this host, "
                "or was killed before it released the lock" % (host, path, who, reason))
        fix = ("wait for that run to finish, or, when no run is active on this host, rerun with "
               "-e %s=true to break the lock" % BREAK_VARIABLE)
    else:
        text = "%s: the run lock %s is stale: %s" % (
            host, path, "held by %s, %s" % (who, reason) if holder else reason)
        fix = "rerun with -e %s=true to break it" % BREAK_VARIABLE
    if break_lock:
        return "break", "%s; broken (%s=true)" % (text, BREAK_VARIABLE)
    return "fail", "%s; %s" % (text, fix)


def release_decision(text, run_id):
    """(remove?, message) for the run ``run_id`` releasing the lock it found as ``text``."""
    if text is None:
        return False, None
    try:
        lock = parse(text)
    except LockCorrupt as exc:
        return False, "the run lock is corrupt (%s); left as it is" % exc
    if lock["run_id"] != run_id:
        return False, "the run lock is held by %s, not by this run; left as it is" % describe(lock)
    return True, None


# ------------------------------------------------------------------------- the run id

def new_run_id(now, token):
    """A run id: the UTC second (so ids sort by time), then ``token`` (random hex) so that two
    runs started in the same second never share one."""
    return "%s-%s" % (datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ"), token)


def claim_run_dir(results_dir, run_id, mkdir):
    """Create ``<results_dir>/<run_id>`` for this run only: an existing one is never merged into.

    ``mkdir(path)`` creates one directory and raises FileExistsError when it exists. Returns the
    path; raises FileExistsError naming it.
    """
    path = os.path.join(results_dir, run_id)
    try:
        mkdir(path)
    except FileExistsError:
        raise FileExistsError(
            17, "the results directory %s of the new run id already exists: another run made it; "
                "nothing was written to it. Run again (a new id is drawn), or give sglang_run_id "
                "explicitly to add to that run's results" % path)
    return path

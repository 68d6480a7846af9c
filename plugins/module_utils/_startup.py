# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Startup phases of one host: the shape of a phase, the server's phases, the host's record.

A phase is ``{"seconds": float, "at": "<ISO 8601 UTC>"}``, or None when it is not known (never
a zero that was not measured). The sglang_server module reports the server's phases, counted
from the moment it asked the container to start the server; the server role folds them with the
container stage's image timing and the model stage's result into one record per host (the fact
``sglang_server_startup``, see docs/startup.md), which the fleet report shows.
Stdlib only, no Ansible: the module imports it on the GPU host, the filter and the report on the
controller.
"""

from __future__ import annotations

import datetime
import math

# in the order they happen on a cold host
PHASES = ("image_ready", "weights_ready", "process_started", "port_open", "ready")
SERVER_PHASES = ("process_started", "port_open", "ready")
# the sglang_server module's action, as the record words it
SERVER_STATES = {"started": "started", "restarted": "restarted", "none": "unchanged"}
# how the container stage got the image, by its sglang_container_image_source
OBTAINED_BY = {"registry": "pulled", "archive": "loaded"}
# How an artifact (the image, the model) reached a host in this run: it was already there (held),
# it came over the upstream link (pulled from the registry, staged from the hub), from a file the
# host was given (loaded from an archive, staged from a local copy), from peers (received), or not
# at all (failed).
ARRIVALS = ("held", "pulled", "loaded", "staged", "received", "failed")


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def iso_time(epoch):
    """Epoch seconds as ISO 8601 UTC, rounded to milliseconds: 2026-01-05T10:31:02.417+00:00."""
    return datetime.datetime.fromtimestamp(round(epoch, 3), datetime.timezone.utc).isoformat(timespec="milliseconds")


def phase(origin, at):
    """The phase reached at epoch ``at``, counted from epoch ``origin``; None when either is
    unknown. A moment a clock tick before the origin counts as 0."""
    if not (is_number(origin) and is_number(at)):
        return None
    return {"seconds": round(max(0.0, at - origin), 3), "at": iso_time(at)}


def server_phases(launched, process_at=None, port_at=None, ready_at=None, running_since=None):
    """The sglang_server module's ``phases``: for a launch at epoch ``launched``, when the server
    process existed, when its port accepted a connection and when it passed the readiness
    probe. Without a launch (a server left running) every phase is None and ``running_since``
    says when the running server was started; nothing is made up."""
    if not is_number(launched):
        return {"launched_at": None, "process_started": None, "port_open": None, "ready": None,
                "running_since": iso_time(running_since) if is_number(running_since) else None}
    return {"launched_at": iso_time(launched), "process_started": phase(launched, process_at),
            "port_open": phase(launched, port_at), "ready": phase(launched, ready_at),
            "running_since": None}


def _number(value):
    """A number from a fact (set_fact may have turned it into text); None when it is none."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return value if is_number(value) else None


def _given_phase(value):
    """A phase someone else measured: a {seconds, at} whose seconds is a number, else None."""
    if not isinstance(value, dict):
        return None
    seconds = _number(value.get("seconds"))
    if seconds is None:
        return None
    return {"seconds": round(seconds, 3), "at": value.get("at") or None}


def _arrival(how, sources=(), size=None, upstream=0, seconds=None, origin=None):
    return {"how": how, "origin": origin, "sources": [str(s) for s in sources or []],
            "bytes": size, "upstream_bytes": upstream, "seconds": seconds}


def image_arrival(facts):
    """How the image reached the host in this run, from the container role's
    sglang_container_image_facts (``transfer``: the fan-out's record of this host, when the image
    was spread; ``obtained``: set when this run pulled or loaded it; ``size``: the daemon's size
    of the image). ``bytes`` is what reached the host (a pull counts the image's size: the
    registry sends its layers compressed, so that is an upper bound); ``upstream_bytes`` what of
    it came over the upstream link. None when the container stage did not run."""
    facts = facts if isinstance(facts, dict) else {}
    transfer = facts.get("transfer") if isinstance(facts.get("transfer"), dict) else {}
    if not facts.get("id") and not transfer:
        return None
    obtained = _given_phase(facts.get("obtained"))
    seconds = obtained["seconds"] if obtained else None
    size = _number(facts.get("size"))
    if transfer.get("status") in ("received", "failed"):
        return _arrival(transfer["status"], transfer.get("sources"), _number(transfer.get("bytes")), 0, seconds,
                        "peers")
    if obtained is None:
        return _arrival("held", size=0)
    if facts.get("source") == "archive":
        return _arrival("loaded", (), size, 0, seconds, "archive")
    return _arrival("pulled", (), size, size, seconds, "registry")


def model_arrival(result):
    """How the model reached the host in this run, from the model role's sglang_model_result.
    A host that received it from its peers took the fan-out's seconds plus its own verification;
    the seed (or a host that staged for itself) took its stage's seconds, and ``upstream_bytes``
    are the bytes it downloaded from the hub (a resumed file counts only its missing part). None
    when the model stage did not run (sglang_model_source: none)."""
    result = result if isinstance(result, dict) else {}
    if not result.get("role"):
        return None
    fanout = result.get("fanout") if isinstance(result.get("fanout"), dict) else {}
    seconds = _number(result.get("seconds"))
    if result["role"] == "fanout" and fanout.get("status") in ("received", "failed"):
        spent = [v for v in (_number(fanout.get("seconds")), seconds) if v is not None]
        return _arrival(fanout["status"], fanout.get("sources"), _number(fanout.get("bytes")), 0,
                        round(sum(spent), 3) if spent else None, "peers")
    downloaded = _number(result.get("bytes_downloaded")) or 0
    placed = _number(result.get("bytes_placed")) or 0
    if result["role"] in ("seed", "staged") and (downloaded or placed):
        if result.get("source") == "local":
            return _arrival("staged", (), placed, 0, seconds, "local")
        return _arrival("staged", (), downloaded, downloaded, seconds, "hub")
    return _arrival("held", size=0)


def _launched(result):
    phases = (result or {}).get("phases") if isinstance(result, dict) else None
    return phases if isinstance(phases, dict) and phases.get("launched_at") else None


def _restarted_this(server, restart):
    """Whether the handler's restart launched the server the role's call found running (the
    process start it saw is the one the running server has), not one since replaced."""
    launched = _launched(restart)
    started = (launched or {}).get("process_started") or {}
    since = ((server.get("phases") or {}) if isinstance(server.get("phases"), dict) else {}).get("running_since")
    return bool(started.get("at")) and started.get("at") == since


def host_record(server=None, image=None, weights=None, restart=None):
    """One host's startup record (the fact sglang_server_startup).

    ``server``: the sglang_server result of the server role; ``restart``: the result of the
    `restart sglang server` handler, when it ran (a restart there leaves the role's own call
    unchanged); ``image``: the container role's sglang_container_image_facts (``obtained``, the
    phase, is set when this run pulled or loaded the image; ``transfer``, when it came from
    peers); ``weights``: the model role's sglang_model_result (model_arrival; a result without a
    role, such as a registered stage result, gives its ``seconds``).
    Every phase missing from them is None, and so is the phase of an artifact the host already held.
    """
    server = server if isinstance(server, dict) else {}
    launched = _launched(server)
    action = server.get("action")
    if launched is None and _restarted_this(server, restart):
        launched, action = _launched(restart), "restarted"
    phases = launched or server.get("phases") or {}
    image = image if isinstance(image, dict) else {}
    weights = weights if isinstance(weights, dict) else {}
    if weights.get("role"):
        weights_seconds = (model_arrival(weights) or {}).get("seconds")
    else:
        weights_seconds = _number(weights.get("seconds"))
    obtained = _given_phase(image.get("obtained"))
    how = None
    if obtained is not None and (image.get("transfer") or {}).get("status") == "received":
        how = "received"
    elif obtained is not None:
        how = OBTAINED_BY.get(image.get("source"), image.get("source"))
    elif image.get("id"):
        how = "present"
    record = {
        "server": SERVER_STATES.get(action, action),
        "launched_at": phases.get("launched_at"),
        "running_since": phases.get("running_since"),
        "image": how,
        "phases": {
            "image_ready": obtained,
            "weights_ready": None if weights_seconds is None else
            {"seconds": round(weights_seconds, 3), "at": weights.get("at") or None},
        },
    }
    for name in SERVER_PHASES:
        record["phases"][name] = _given_phase(phases.get(name))
    return record


def seconds_of(record, name):
    """A phase's seconds in a host record, or None."""
    value = ((record or {}).get("phases") or {}).get(name) if isinstance(record, dict) else None
    return value.get("seconds") if isinstance(value, dict) and is_number(value.get("seconds")) else None

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
    phase, is set when this run pulled or loaded the image); ``weights``: the model stage's result (``seconds``, optional ``at``).
    Every phase missing from them is None.
    """
    server = server if isinstance(server, dict) else {}
    launched = _launched(server)
    action = server.get("action")
    if launched is None and _restarted_this(server, restart):
        launched, action = _launched(restart), "restarted"
    phases = launched or server.get("phases") or {}
    image = image if isinstance(image, dict) else {}
    weights = weights if isinstance(weights, dict) else {}
    weights_seconds = _number(weights.get("seconds"))
    obtained = _given_phase(image.get("obtained"))
    how = None
    if obtained is not None:
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

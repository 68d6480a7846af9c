"""_startup: the shape of a phase, the server's phases and one host's startup record."""

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.filter.startup_phases import startup_phases
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _startup

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
LAUNCHED = _startup.server_phases(T0, T0 + 0.042, T0 + 4.2, T0 + 5.25)
STARTED = {"changed": True, "action": "started", "phases": LAUNCHED}
LEFT_ALONE = {"changed": False, "action": "none",
              "phases": _startup.server_phases(None, running_since=T0 - 600)}
PULLED = {"reference": "r/sglang:v1", "source": "registry", "id": "sha256:" + "ab" * 32,
          "obtained": {"seconds": 231.5, "at": "2025-12-31T23:56:00.000+00:00"}}
PRESENT = {"reference": "r/sglang:v1", "source": "registry", "id": "sha256:" + "ab" * 32, "obtained": None}


def test_a_phase_counts_from_its_origin_and_is_none_when_unknown():
    assert _startup.phase(T0, T0 + 1.23456) == {"seconds": 1.235, "at": "2026-01-01T00:00:01.235+00:00"}
    assert _startup.phase(T0, T0 - 0.0004)["seconds"] == 0.0  # a clock tick early
    assert _startup.phase(None, T0) is None and _startup.phase(T0, None) is None
    assert _startup.phase(T0, float("nan")) is None and _startup.phase(T0, True) is None


def test_server_phases_of_a_launch_and_of_a_server_left_running():
    assert LAUNCHED == {
        "launched_at": "2026-01-01T00:00:00.000+00:00",
        "process_started": {"seconds": 0.042, "at": "2026-01-01T00:00:00.042+00:00"},
        "port_open": {"seconds": 4.2, "at": "2026-01-01T00:00:04.200+00:00"},
        "ready": {"seconds": 5.25, "at": "2026-01-01T00:00:05.250+00:00"},
        "running_since": None}
    assert LEFT_ALONE["phases"] == {"launched_at": None, "process_started": None, "port_open": None,
                                    "ready": None, "running_since": "2025-12-31T23:50:00.000+00:00"}
    assert _startup.server_phases(None)["running_since"] is None


def test_a_cold_host_record_has_every_phase_in_order():
    record = _startup.host_record(STARTED, image=PULLED, weights={"changed": True, "seconds": 40.25})
    assert record == {
        "server": "started", "launched_at": "2026-01-01T00:00:00.000+00:00", "running_since": None,
        "image": "pulled",
        "phases": {"image_ready": {"seconds": 231.5, "at": "2025-12-31T23:56:00.000+00:00"},
                   "weights_ready": {"seconds": 40.25, "at": None},
                   "process_started": LAUNCHED["process_started"], "port_open": LAUNCHED["port_open"],
                   "ready": LAUNCHED["ready"]}}
    assert list(record["phases"]) == list(_startup.PHASES)


def test_a_warm_host_says_so_and_makes_nothing_up():
    record = _startup.host_record(LEFT_ALONE, image=PRESENT, weights=None)
    assert record["server"] == "unchanged" and record["image"] == "present"
    assert record["running_since"] == "2025-12-31T23:50:00.000+00:00" and record["launched_at"] is None
    assert set(record["phases"].values()) == {None}


@pytest.mark.parametrize("image, how", [
    (dict(PULLED, source="archive"), "loaded"),
    (dict(PULLED, source="peer"), "peer"),
    ({}, None),
    (None, None),
])
def test_how_the_image_came(image, how):
    assert _startup.host_record(STARTED, image=image)["image"] == how


# ------------------------------------------------------------ how each artifact reached the host

RECEIVED = {"name": "image", "status": "received", "sources": ["gpu01"], "bytes": 7340032, "seconds": 1.5,
            "error": None}
SEED = {"role": "seed", "source": "hub", "bytes_total": 50331648, "bytes_downloaded": 50331648,
        "bytes_placed": 50331648, "seconds": 6.5, "fanout": {"status": "held", "sources": [], "bytes": 0}}
FANOUT = {"role": "fanout", "source": "hub", "bytes_total": 50331648, "bytes_downloaded": 0, "seconds": "0.25",
          "fanout": {"status": "received", "sources": ["gpu01", "gpu02"], "bytes": 12582912, "seconds": 2.0}}


def test_the_image_pulled_loaded_received_or_held():
    pulled = _startup.image_arrival(dict(PULLED, size=640 << 20))
    assert pulled == {"how": "pulled", "origin": "registry", "sources": [], "bytes": 640 << 20,
                      "upstream_bytes": 640 << 20, "seconds": 231.5}
    loaded = _startup.image_arrival(dict(PULLED, source="archive", size=100))
    assert (loaded["how"], loaded["bytes"], loaded["upstream_bytes"]) == ("loaded", 100, 0)
    # the fan-out's record says it came from a peer, whatever the image's source setting
    received = _startup.image_arrival(dict(PULLED, size=100, transfer=RECEIVED))
    assert received == {"how": "received", "origin": "peers", "sources": ["gpu01"], "bytes": 7340032,
                        "upstream_bytes": 0, "seconds": 231.5}
    # the seed of a fan-out holds the archive it saved: it pulled the image
    seed = _startup.image_arrival(dict(PULLED, size=100, transfer=dict(RECEIVED, status="held", sources=[])))
    assert (seed["how"], seed["upstream_bytes"]) == ("pulled", 100)
    held = _startup.image_arrival(dict(PRESENT, size=100))
    assert (held["how"], held["bytes"], held["upstream_bytes"], held["seconds"]) == ("held", 0, 0, None)
    assert _startup.image_arrival({}) is None and _startup.image_arrival(None) is None


def test_the_model_staged_received_or_held():
    seed = _startup.model_arrival(SEED)
    assert seed == {"how": "staged", "origin": "hub", "sources": [], "bytes": 50331648,
                    "upstream_bytes": 50331648, "seconds": 6.5}
    # a receiver spent the fan-out's time and its own verification (a number set_fact made text)
    assert _startup.model_arrival(FANOUT) == {"how": "received", "origin": "peers", "sources": ["gpu01", "gpu02"],
                                              "bytes": 12582912, "upstream_bytes": 0, "seconds": 2.25}
    # a resumed file: only what came over the link counts
    resumed = _startup.model_arrival(dict(SEED, bytes_downloaded=2097152, bytes_placed=12582912))
    assert (resumed["bytes"], resumed["upstream_bytes"]) == (2097152, 2097152)
    local = _startup.model_arrival(dict(SEED, source="local", bytes_downloaded=0, bytes_placed=300))
    assert (local["how"], local["origin"], local["bytes"], local["upstream_bytes"]) == ("staged", "local", 300, 0)
    held = _startup.model_arrival(dict(SEED, bytes_downloaded=0, bytes_placed=0))
    assert (held["how"], held["seconds"]) == ("held", None)
    assert _startup.model_arrival(dict(FANOUT, fanout=dict(FANOUT["fanout"], status="held")))["how"] == "held"
    failed = _startup.model_arrival(dict(FANOUT, fanout=dict(FANOUT["fanout"], status="failed", sources=[])))
    assert failed["how"] == "failed"
    assert {a["how"] for a in (seed, held, failed, resumed)} <= set(_startup.ARRIVALS)
    assert _startup.model_arrival({"seconds": 3}) is None and _startup.model_arrival(None) is None


def test_the_record_says_received_and_times_the_weights_the_host_did_not_hold():
    record = _startup.host_record(STARTED, image=dict(PULLED, transfer=RECEIVED), weights=FANOUT)
    assert record["image"] == "received"
    assert record["phases"]["weights_ready"] == {"seconds": 2.25, "at": None}
    assert _startup.host_record(STARTED, weights=SEED)["phases"]["weights_ready"]["seconds"] == 6.5
    held = dict(SEED, bytes_downloaded=0, bytes_placed=0)
    assert _startup.host_record(STARTED, weights=held)["phases"]["weights_ready"] is None


@pytest.mark.parametrize("weights", [None, {}, {"seconds": None}, {"seconds": "n/a"}, {"skipped": True},
                                     {"seconds": float("inf")}, "40"])
def test_weights_without_a_number_are_unknown_never_zero(weights):
    assert _startup.host_record(STARTED, weights=weights)["phases"]["weights_ready"] is None


def test_numbers_that_set_fact_turned_into_text_still_count():
    record = _startup.host_record(STARTED, image=dict(PULLED, obtained={"seconds": "12.5", "at": None}),
                                  weights={"seconds": "3.25"})
    assert record["phases"]["image_ready"] == {"seconds": 12.5, "at": None}
    assert record["phases"]["weights_ready"]["seconds"] == 3.25


def test_a_restart_by_the_handler_is_the_launch_of_the_run():
    handler = {"changed": True, "action": "restarted", "phases": LAUNCHED}
    # the role's own call found the server the handler launched (same process start) running
    found = {"changed": False, "action": "none",
             "phases": _startup.server_phases(None, running_since=T0 + 0.042)}
    record = _startup.host_record(found, restart=handler)
    assert record["server"] == "restarted" and record["phases"]["ready"] == LAUNCHED["ready"]
    # a handler result from before, about a server that has been replaced since, is not used
    assert _startup.host_record(LEFT_ALONE, restart=handler)["server"] == "unchanged"
    # a handler that was skipped (no server ran) changes nothing
    skipped = _startup.host_record(LEFT_ALONE, restart={"skipped": True, "changed": False})
    assert skipped["server"] == "unchanged" and skipped["phases"]["ready"] is None
    # the role's own launch wins over an earlier handler restart
    assert _startup.host_record(STARTED, restart=handler)["server"] == "started"


def test_check_mode_and_missing_results_give_an_empty_record():
    record = _startup.host_record({"changed": True, "action": "started"})
    assert record["server"] == "started" and set(record["phases"].values()) == {None}
    assert _startup.host_record(None)["server"] is None


def test_seconds_of_a_phase():
    record = _startup.host_record(STARTED, image=PULLED)
    assert _startup.seconds_of(record, "image_ready") == 231.5
    assert _startup.seconds_of(record, "weights_ready") is None
    assert _startup.seconds_of(None, "ready") is None and _startup.seconds_of({"phases": None}, "ready") is None


def test_the_filter_is_the_record():
    assert startup_phases(STARTED, PULLED, {"seconds": 1}) == _startup.host_record(STARTED, PULLED, {"seconds": 1})

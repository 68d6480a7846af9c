"""The stand-in loads a local model directory: reads every shard byte, refuses what SGLang refuses.

The model directories are the bed's hub repos (tests/simfleet/hub.py): config.json, the
index with its weight_map, real safetensors shards.
"""
import json
import shutil
import struct

import pytest

from simfleet import hub
from standin_helpers import group_members, start_server
from standin_server import weights

SHARDS = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]


@pytest.fixture(name="model")
def fixture_model(tmp_path):
    repo = hub.generate(tmp_path / "model", "org/tiny", size=3 << 20, shards=3)
    return repo.directory


def shard_bytes(model):
    return sum((model / name).stat().st_size for name in SHARDS)


def rchar(pid):
    """Bytes the process has read through read(2), page cache or not."""
    with open(f"/proc/{pid}/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


def refused(tmp_path, model, *args):
    server = start_server(tmp_path / "srv", *args, model=str(model), wait=False)
    try:
        code = server.wait_exit()
        return code, server.log, server
    finally:
        server.stop()


def test_every_scheduler_reads_every_shard_byte_before_the_port_opens(launch, model):
    server = launch("--tp-size", "2", model=str(model))
    log = server.log
    assert log.count("Loading safetensors checkpoint shards: 100% Completed | 3/3") == 2
    assert log.count(f"[standin] read {shard_bytes(model)} bytes of weights from {model}") == 2
    # the bytes went through read(2) in each scheduler: nothing is pretended
    schedulers = [pid for pid, title in group_members(server.proc.pid).items() if "scheduler" in title]
    assert len(schedulers) == 2 and all(rchar(pid) >= shard_bytes(model) for pid in schedulers)
    assert log.index("Loading safetensors checkpoint shards") < log.index("port_open_at_ms")
    status, _headers, body = server.get("/get_model_info")
    assert status == 200 and json.loads(body)["model_path"] == str(model)


def test_a_missing_shard_is_refused_in_sglang_words_and_the_port_never_opens(tmp_path, model):
    (model / SHARDS[1]).unlink()
    code, log, _server = refused(tmp_path, model)
    assert code != 0
    assert "Scheduler hit an exception" in log
    assert "RuntimeError: Some weights are not initialized from checkpoints: {'model.layers.1." in log
    assert f"weight files named in model.safetensors.index.json but missing: {SHARDS[1]}" in log
    assert "Received sigquit from a child process" in log and "port_open_at_ms" not in log


def test_no_weight_file_at_all(tmp_path, model):
    for name in SHARDS:
        (model / name).unlink()
    code, log, _server = refused(tmp_path, model)
    assert code != 0 and f"RuntimeError: Cannot find any model weights with `{model}`" in log


def test_a_truncated_shard_fails_as_safetensors_does(tmp_path, model):
    path = model / SHARDS[2]
    path.write_bytes(path.read_bytes()[:-100])
    code, log, _server = refused(tmp_path, model)
    assert code != 0 and "Error while deserializing header: MetadataIncompleteBuffer" in log


def test_a_directory_without_config_json(tmp_path, model):
    (model / "config.json").unlink()
    code, log, _server = refused(tmp_path, model)
    assert code == 1 and f"{model} does not appear to have a file named config.json" in log
    assert "Load weight begin" not in log


def test_a_shard_the_index_does_not_name_is_not_loaded(model):
    """SGLang's filter: a stray consolidated file beside indexed shards is skipped."""
    shutil.copy(model / SHARDS[0], model / "consolidated.safetensors")
    files, weight_map = weights.weight_files(str(model))
    assert [f.rsplit("/", 1)[1] for f in files] == SHARDS and len(weight_map) == 6


def test_a_hub_id_still_loads_without_reading_anything(launch):
    server = launch(model="org/not-a-directory")
    assert "Loading safetensors checkpoint shards" not in server.log


@pytest.mark.parametrize("header,reason", [(b"\x01\x00", "HeaderTooSmall"),
                                           (struct.pack("<Q", 200_000_000), "HeaderTooLarge"),
                                           (struct.pack("<Q", 50) + b"{}", "InvalidHeaderLength"),
                                           (struct.pack("<Q", 2) + b"{[", "InvalidHeaderDeserialization")])
def test_malformed_headers(tmp_path, header, reason):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(header)
    with open(path, "rb") as handle, pytest.raises(weights.SafetensorError, match=reason):
        weights.read_header(handle, path.stat().st_size)

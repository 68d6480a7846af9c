"""Load a local model directory's safetensors weights the way SGLang 0.5.7's loader finds them.

Stdlib only: the schedulers run it outside the venv. For `--model-path <directory>`, each
scheduler (as each TP rank of SGLang does) lists `*.safetensors`, keeps the files that
`model.safetensors.index.json`'s weight_map names (sglang/srt/model_loader/weight_utils.py,
filter_duplicate_safetensors_files), then reads every byte of every kept file, checking each
header as the safetensors library does. Nothing is pretended: the time taken is the time to
read the bytes. It fails with SGLang's words:

- no weight file: `Cannot find any model weights with `<path>``
  (sglang/srt/model_loader/loader.py, DefaultModelLoader._prepare_weights);
- a malformed file: safetensors' `Error while deserializing header: ...`;
- a weight of the weight_map that no file holds (a shard is missing): `Some weights are not
  initialized from checkpoints: {...}`, as SGLang's models that check their parameters say
  (0.5.7's Kimi Linear does not check, and would serve with those weights unset).
"""

import glob
import json
import os
import struct
import time

INDEX = "model.safetensors.index.json"
CONFIG = "config.json"
CHUNK = 4 * 1024 * 1024
MAX_HEADER = 100_000_000  # the safetensors library's own limit


class SafetensorError(Exception):
    """safetensors_rust.SafetensorError's words."""


def config_error(path):
    """The error transformers raises for a local directory without config.json, or None."""
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, CONFIG)):
        return (f"OSError: {path} does not appear to have a file named {CONFIG}. "
                f"Checkout 'https://huggingface.co/{path}/tree/None' for available files.")
    return None


def weight_files(path):
    """(files to load, weight_map or None), as SGLang's _prepare_weights picks them."""
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    weight_map = None
    index = os.path.join(path, INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            weight_map = json.load(handle)["weight_map"]
        named = {os.path.join(path, name) for name in weight_map.values()}
        files = [f for f in files if f in named]
    if not files:
        raise RuntimeError(f"Cannot find any model weights with `{path}`")
    return files, weight_map


def read_header(handle, size):
    """The tensors of one open safetensors file, checked as the library checks them."""
    head = handle.read(8)
    if len(head) < 8:
        raise SafetensorError("Error while deserializing header: HeaderTooSmall")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER:
        raise SafetensorError("Error while deserializing header: HeaderTooLarge")
    if 8 + length > size:
        raise SafetensorError("Error while deserializing header: InvalidHeaderLength")
    try:
        header = json.loads(handle.read(length))
    except ValueError as exc:
        raise SafetensorError(f"Error while deserializing header: InvalidHeaderDeserialization ({exc})") from None
    header.pop("__metadata__", None)
    end = max((meta["data_offsets"][1] for meta in header.values()), default=0)
    if 8 + length + end != size:
        raise SafetensorError("Error while deserializing header: MetadataIncompleteBuffer")
    return header


def load(path, log):
    """Read every weight file; returns (bytes read, seconds). `log` takes printf-style args."""
    started = time.monotonic()
    files, weight_map = weight_files(path)
    loaded, total = set(), 0
    for number, name in enumerate(files, 1):
        size = os.path.getsize(name)
        with open(name, "rb") as handle:
            loaded.update(read_header(handle, size))
            total += handle.tell()
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
        log("Loading safetensors checkpoint shards: %d%% Completed | %d/%d", number * 100 // len(files),
            number, len(files))
    missing = set(weight_map or ()) - loaded
    if missing:
        absent = sorted({weight_map[w] for w in missing if not os.path.exists(os.path.join(path, weight_map[w]))})
        if absent:
            log("[standin] weight files named in %s but missing: %s", INDEX, ", ".join(absent))
        raise RuntimeError(f"Some weights are not initialized from checkpoints: {missing}")
    return total, time.monotonic() - started

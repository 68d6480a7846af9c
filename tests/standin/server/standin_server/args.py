"""`sglang.launch_server`'s command line, parsed the way SGLang 0.5.7 parses it.

The flag table (`sglang_flags.json`) is extracted from the 0.5.7 wheel by
tests/standin/tools/extract_flags.py, so every real flag is accepted, unknown
ones fail with argparse's "unrecognized arguments" (exit 2), and argparse's
prefix matching gives the same abbreviations (`--tp` means `--tp-size`).
"""

import argparse
import json
import os
import random
from pathlib import Path

_TABLE = json.loads((Path(__file__).parent / "sglang_flags.json").read_text())
SGLANG_VERSION = _TABLE["sglang_version"]
FIELDS = _TABLE["fields"]  # ServerArgs dataclass fields and defaults, in order

# Stand-in facts about the "hardware", used where SGLang derives defaults from it.
GPU_MEMORY_GB = 192  # MI300X
DEFAULT_CONTEXT_LENGTH = 131072
KV_CACHE_TOKENS = 1_000_000  # what the KV pool of a big GPU holds, roughly


def _nullable_str(value):
    return None if value.lower() in ("none", "null", "") else value


_TYPES = {"str": str, "int": int, "float": float, "json": json.loads,
          "json_list": json.loads, "nullable_str": _nullable_str}


def build_parser():
    parser = argparse.ArgumentParser()
    for entry in _TABLE["arguments"]:
        kwargs = {k: v for k, v in entry.items() if k not in ("flags", "type")}
        if "type" in entry:
            kwargs["type"] = _TYPES[entry["type"]]
        parser.add_argument(*entry["flags"], **kwargs)
    return parser


def merge_config(argv):
    """Expand `--config FILE.yaml` as 0.5.7's ConfigArgumentMerger does.

    Keys become `--<key>` verbatim: 0.5.7 does not turn `_` into `-`, so a key
    like `api_key` ends up as the unknown flag `--api_key`. True booleans become
    bare flags, false ones are dropped, lists expand to several values. Config
    values come first so that the command line wins.
    """
    if "--config" not in argv:
        return argv
    indices = [i for i, arg in enumerate(argv) if arg == "--config"]
    if len(indices) > 1:
        raise ValueError("Multiple config files specified! Only one allowed.")
    index = indices[0]
    if index == len(argv) - 1:
        raise ValueError("No config file specified after --config flag!")
    path = Path(argv[index + 1])
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"Config file must be YAML format, got: {path.suffix}")
    if not path.exists():
        raise ValueError(f"Config file not found: {path}")

    import yaml  # only needed with --config; the image has it through huggingface_hub

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError("Config file must contain a dictionary at root level")
    config_args = []
    for key, value in data.items():
        if isinstance(value, bool):
            if value:
                config_args.append(f"--{key}")
        elif isinstance(value, list):
            if value:
                config_args += [f"--{key}"] + [str(item) for item in value]
        else:
            config_args += [f"--{key}", str(value)]
    return config_args + argv[:index] + argv[index + 2:]


def prepare_server_args(argv):
    """Return the server args as an ordered dict of ServerArgs fields."""
    namespace = build_parser().parse_args(merge_config(list(argv)))
    namespace.tp_size = namespace.tensor_parallel_size
    namespace.pp_size = namespace.pipeline_parallel_size
    namespace.dp_size = namespace.data_parallel_size
    namespace.ep_size = namespace.expert_parallel_size
    args = {name: getattr(namespace, name, default) for name, default in FIELDS.items()}
    _fill_defaults(args)
    return args


def _fill_defaults(args):
    """The handful of derived defaults that show in /get_server_info and logs."""
    args["tokenizer_path"] = args["tokenizer_path"] or args["model_path"]
    args["served_model_name"] = args["served_model_name"] or args["model_path"]
    if args["random_seed"] is None:
        args["random_seed"] = random.randint(0, 1 << 30)
    if args["chunked_prefill_size"] is None:
        args["chunked_prefill_size"] = 16384  # SGLang's choice for >= 160 GB GPUs
    if args["mem_fraction_static"] is None:
        args["mem_fraction_static"] = 0.88
    if args["cuda_graph_max_bs"] is None:
        args["cuda_graph_max_bs"] = 512
    if args["attention_backend"] is None:
        args["attention_backend"] = "aiter"
    if args["device"] is None:
        args["device"] = "cuda"  # torch's name for HIP devices too
    if args["log_level_http"] is None:
        args["log_level_http"] = args["log_level"]


def model_config(args):
    """What SGLang would read from the model's config.json, if it is a local directory."""
    config = {}
    path = Path(args["model_path"]) / "config.json"
    if path.is_file():
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            config = {}
    context = int(args["context_length"] or config.get("max_position_embeddings") or DEFAULT_CONTEXT_LENGTH)
    return {
        "model_type": config.get("model_type", "standin"),
        "architectures": config.get("architectures", ["StandinForCausalLM"]),
        "context_length": context,
        "max_total_num_tokens": args["max_total_tokens"] or max(context, KV_CACHE_TOKENS),
    }


def format_server_args(args):
    """SGLang logs `server_args=ServerArgs(...)` with every field, api_key included."""
    return "ServerArgs(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def env_flag(name, default):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")

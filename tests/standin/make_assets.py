"""Generate the stand-in's tokenizer and ShareGPT-format dataset (deterministic).

Runs at image build time with the image's venv; nothing is downloaded. The tokenizer files
come from standin_server/assets.py (stdlib, shared with the bed's model hub). Output:

    <out>/tokenizer/   tokenizer.json, tokenizer_config.json, special_tokens_map.json,
                       config.json   (a "model directory" without weights)
    <out>/sharegpt.json

    python3 make_assets.py --server-dir /opt/standin --out /opt/standin
"""

import argparse
import json
import random
import sys
from pathlib import Path

DATASET_SEED = 20251231
DATASET_SIZE = 1200  # >= the high tier's 500 prompts, which the random dataset draws without reuse


def write_tokenizer(out, assets):
    out.mkdir(parents=True, exist_ok=True)
    for name, text in assets.tokenizer_files().items():
        (out / name).write_text(text)


def dataset(vocab):
    """ShareGPT-shaped conversations with a spread of prompt and answer lengths."""
    rng = random.Random(DATASET_SEED)
    rows = []
    for i in range(DATASET_SIZE):
        # Mostly short prompts, some long ones, like real chat logs; all below the
        # 1024-token cut of bench_serving's sharegpt sampler.
        prompt_len = min(int(rng.lognormvariate(4.3, 0.9)) + 4, 900)
        answer_len = min(int(rng.lognormvariate(4.8, 0.7)) + 4, 900)
        rows.append({"id": f"standin_{i:05d}",
                     "conversations": [{"from": "human", "value": vocab.sentence(rng, prompt_len)},
                                       {"from": "gpt", "value": vocab.sentence(rng, answer_len)}]})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-dir", required=True, help="directory holding standin_server/")
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    sys.path.insert(0, opts.server_dir)
    from standin_server import assets, vocab

    out = Path(opts.out)
    write_tokenizer(out / "tokenizer", assets)
    (out / "sharegpt.json").write_text(json.dumps(dataset(vocab), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()

"""Generate the stand-in's tokenizer and ShareGPT-format dataset (deterministic).

Runs at image build time with the image's venv (it needs the `tokenizers` library
that transformers brings); nothing is downloaded. Output:

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
CONTEXT_LENGTH = 131072
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}")


def write_tokenizer(out, vocab):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab.VOCAB)},
                                           unk_token=vocab.SPECIAL_TOKENS[vocab.UNK_ID]))
    # Splits exactly like vocab.token_count, so server and client count alike.
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(vocab.SPECIAL_TOKENS)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    special = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": CONTEXT_LENGTH,
              "clean_up_tokenization_spaces": False, "add_bos_token": False,
              "chat_template": CHAT_TEMPLATE, **special}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    # Enough of a model config for tools that read one (no weights: it is a stand-in).
    model = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
             "vocab_size": len(vocab.VOCAB), "max_position_embeddings": CONTEXT_LENGTH,
             "bos_token_id": vocab.BOS_ID, "eos_token_id": vocab.EOS_ID, "pad_token_id": vocab.PAD_ID,
             "torch_dtype": "bfloat16"}
    (out / "config.json").write_text(json.dumps(model, indent=2) + "\n")


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
    from standin_server import vocab

    out = Path(opts.out)
    write_tokenizer(out / "tokenizer", vocab)
    (out / "sharegpt.json").write_text(json.dumps(dataset(vocab), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()

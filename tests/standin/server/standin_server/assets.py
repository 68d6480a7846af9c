"""The stand-in's tokenizer and model config as files (stdlib only).

The image ships them in /opt/standin/tokenizer (tests/standin/make_assets.py) and the bed's
model hub serves them in its generated model repo (tests/simfleet/hub.py), so a model staged
from the hub loads with the same tokenizer the image has. `tokenizer.json` is written exactly
as the `tokenizers` library saves a WordLevel model with a Whitespace pre-tokenizer; the image
build loads it with `AutoTokenizer.from_pretrained` to prove it.
"""

import json

from . import vocab

CONTEXT_LENGTH = 131072
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}")
SPECIAL = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def _pretty(data):
    return json.dumps(data, indent=2, ensure_ascii=False)


def tokenizer_json():
    added = [{"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, token in enumerate(vocab.SPECIAL_TOKENS)]
    return _pretty({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {token: i for i, token in enumerate(vocab.VOCAB)},
                  "unk_token": vocab.SPECIAL_TOKENS[vocab.UNK_ID]},
    })


def model_config(**extra):
    """config.json: enough of a model config for tools that read one; `extra` adds fields."""
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": len(vocab.VOCAB), "max_position_embeddings": CONTEXT_LENGTH,
            "bos_token_id": vocab.BOS_ID, "eos_token_id": vocab.EOS_ID, "pad_token_id": vocab.PAD_ID,
            "torch_dtype": "bfloat16", **extra}


def tokenizer_files(config=None):
    """{file name: text} of the tokenizer directory; `config` replaces config.json's content."""
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": CONTEXT_LENGTH,
                        "clean_up_tokenization_spaces": False, "add_bos_token": False,
                        "chat_template": CHAT_TEMPLATE, **SPECIAL}
    return {
        "tokenizer.json": tokenizer_json(),
        "special_tokens_map.json": _pretty(SPECIAL) + "\n",
        "tokenizer_config.json": _pretty(tokenizer_config) + "\n",
        "config.json": _pretty(config if config is not None else model_config()) + "\n",
    }

from __future__ import annotations

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _secrets


@pytest.mark.parametrize("name", [
    "api_key", "OPENAI_API_KEY", "hf_token", "HF_TOKEN", "apiKey", "clientSecret", "client-secret",
    "db-password", "ssl_keyfile_password", "Authorization", "admin_api_key", "aws_credentials", "key",
])
def test_secret_names(name):
    assert _secrets.is_secret_name(name)


@pytest.mark.parametrize("name", [
    # real sglang server_info keys that only contain a secret word
    "max_total_num_tokens", "max_total_tokens", "tokenizer_path", "skip_tokenizer_init", "ssl_keyfile",
    "speculative_token_map", "bucket_inter_token_latency", "kv_cache_dtype", "keyword", "monkey", "",
])
def test_not_secret_names(name):
    assert not _secrets.is_secret_name(name)


def test_mask_text_masks_the_longest_secret_first():
    assert _secrets.mask_text("k=sk-12345 and sk-1", ["sk-1", "sk-12345", ""]) == "k=******** and ********"


def test_scrub_masks_secret_named_text_at_any_depth_and_known_values_everywhere():
    value = {"api_key": "sk-1", "hf_token": ["t"], "max_total_num_tokens": 4096, "ssl_keyfile": "/k.pem",
             "nested": [{"password": "p", "url": "http://x/?key=sk-1"}], "empty_key": "", "keys": None}
    assert _secrets.scrub(value, ["sk-1"]) == {
        "api_key": "********", "hf_token": "********", "max_total_num_tokens": 4096, "ssl_keyfile": "/k.pem",
        "nested": [{"password": "********", "url": "http://x/?key=********"}], "empty_key": "", "keys": None}


@pytest.mark.parametrize("args, expected", [
    (["--api-key", "x2", "--port", "30000"], ["--api-key", "********", "--port", "30000"]),
    (["--hf-token=abc", "--tp", "4"], ["--hf-token=********", "--tp", "4"]),
    (["--admin-api-key", "--port", "1"], ["--admin-api-key", "--port", "1"]),
    (["--tokenizer-path", "/m", "--max-total-tokens", "8"], ["--tokenizer-path", "/m", "--max-total-tokens", "8"]),
    (["-p", "secret-value", "--ssl-keyfile-password", "pw"], ["-p", "secret-value", "--ssl-keyfile-password", "********"]),
])
def test_scrub_args_masks_the_values_of_secret_looking_flags(args, expected):
    assert _secrets.scrub_args(args) == expected


def test_scrub_masks_argument_lists_at_any_depth():
    target = {"sglang_server_extra_args": ["--api-key", "x2"], "sglang_env": {"WANDB_KEY": "x1", "HF_AUTH": "x3"},
              "plain": ["a", "b"]}
    assert _secrets.scrub(target) == {"sglang_server_extra_args": ["--api-key", "********"],
                                      "sglang_env": {"WANDB_KEY": "********", "HF_AUTH": "********"},
                                      "plain": ["a", "b"]}


def test_secret_values_are_what_scrub_masks():
    target = {"sglang_env": {"WANDB_KEY": "x1", "MODE": "fast", "HF_TOKEN": ["t1", "t2"]},
              "sglang_server_extra_args": ["--api-key", "x2", "--hf-token=x3", "--tp", "4"], "n": 4}
    assert sorted(_secrets.secret_values(target)) == ["t1", "t2", "x1", "x2", "x3"]
    assert _secrets.secret_values({"plain": ["a"], "empty_token": ""}) == []

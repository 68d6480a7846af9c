"""Knob parsing and the synthetic vocabulary."""

import random

import pytest

from standin_server import vocab
from standin_server.knobs import KnobError, Knobs


def test_knobs_from_env():
    knobs = Knobs.from_env({"STANDIN_TPOT_MS": "7.5", "STANDIN_CRASH_AT_START": "true",
                            "STANDIN_CRASH_AFTER_REQUESTS": "3", "STANDIN_ERROR_MODE": "stream",
                            "UNRELATED": "x"})
    assert (knobs.tpot_ms, knobs.crash_at_start, knobs.crash_after_requests) == (7.5, True, 3)
    assert knobs.error_mode == "stream" and knobs.load_seconds == Knobs().load_seconds


@pytest.mark.parametrize("env, message", [
    ({"STANDIN_TPOT_MS": "fast"}, "STANDIN_TPOT_MS='fast': expected a float"),
    ({"STANDIN_ERROR_RATE": "1.5"}, "expected a fraction"),
    ({"STANDIN_ERROR_MODE": "tcp"}, "expected 'http' or 'stream'"),
    ({"STANDIN_CRASH_AT_START": "maybe"}, "expected a bool"),
    ({"STANDIN_LOAD_SECONDS": "-1"}, "must not be negative"),
])
def test_bad_knobs_are_named_in_the_error(env, message):
    with pytest.raises(KnobError, match=message):
        Knobs.from_env(env)


def test_sentence_has_the_requested_token_count():
    rng = random.Random(3)
    for n in (1, 2, 17, 400):
        assert vocab.token_count(vocab.sentence(rng, n)) == n


def test_token_stream_pieces_retokenize_one_to_one():
    stream = vocab.TokenStream(42)
    text = "".join(stream.next_token()[1] for _position in range(500))
    assert vocab.token_count(text) == 500


def test_stable_seed_ignores_hash_randomisation():
    assert vocab.stable_seed(1, "abc") == vocab.stable_seed(1, "abc") != vocab.stable_seed(2, "abc")

"""The stand-in model in-process: lengths, EOS, latency model, fault knobs, metrics text."""

import asyncio

import pytest

from standin_server import args, engine as eng, metrics, vocab
from standin_server.knobs import Knobs

MODEL = {"model_type": "standin", "architectures": ["StandinForCausalLM"], "context_length": 1000,
         "max_total_num_tokens": 100_000}


def make_engine(knobs=None, *argv, **kwargs):
    server_args = args.prepare_server_args(["--model-path", "m", "--random-seed", "1", *argv])
    return eng.Engine(server_args, knobs or Knobs(ttft_ms=0, tpot_ms=0), MODEL, **kwargs)


def collect(engine, prompt_tokens=10, max_new_tokens=8, ignore_eos=True, seed_text="p"):
    async def run():
        return [s async for s in engine.generate(prompt_tokens, max_new_tokens, ignore_eos, seed_text)]
    return asyncio.run(run())


def test_ignore_eos_yields_exactly_max_new_tokens():
    steps = collect(make_engine(), max_new_tokens=8)
    assert [s.completion_tokens for s in steps] == list(range(1, 9))
    assert [s.finish_reason for s in steps[:-1]] == [None] * 7
    assert steps[-1].finish_reason == {"type": "length", "length": 8}
    assert vocab.token_count("".join(s.piece for s in steps)) == 8


def test_without_ignore_eos_the_model_may_stop_early():
    lengths = set()
    for i in range(8):
        steps = collect(make_engine(), max_new_tokens=300, ignore_eos=False, seed_text=f"prompt {i}")
        assert steps[-1].finish_reason == {"type": "stop", "matched": vocab.EOS_ID}
        assert steps[-1].piece == "" and steps[-1].completion_tokens <= 256
        lengths.add(len(steps))
    assert len(lengths) > 1


def test_output_is_deterministic_per_prompt_and_seed():
    first = [s.token_id for s in collect(make_engine(), seed_text="same")]
    assert first == [s.token_id for s in collect(make_engine(), seed_text="same")]
    assert first != [s.token_id for s in collect(make_engine(), seed_text="other")]


def test_latency_grows_with_concurrency():
    requested = []

    async def record(delay):
        requested.append(delay)

    knobs = Knobs(ttft_ms=100, prefill_ms_per_ktok=10, tpot_ms=4, slowdown_per_request=0.5)
    engine = make_engine(knobs, clock=lambda: 0.0, sleep=record)
    collect(engine, prompt_tokens=1000, max_new_tokens=3)
    assert requested == pytest.approx([0.110, 0.114, 0.118])  # clock frozen: cumulative deadlines
    requested.clear()
    engine.running = 2  # two others in flight: latency x (1 + 0.5 * 2)
    collect(engine, prompt_tokens=1000, max_new_tokens=2)
    assert requested == pytest.approx([0.220, 0.228])


def test_context_length_is_enforced_with_sglang_messages():
    engine = make_engine()
    with pytest.raises(eng.RequestError, match=r"The input \(1000 tokens\) is longer than"):
        engine.validate(1000, 1)
    with pytest.raises(eng.RequestError, match="Requested token count exceeds the model's maximum"):
        engine.validate(900, 100)
    engine.validate(900, 99)


def test_error_rate_is_seeded():
    def failures(seed):
        engine = make_engine(Knobs(error_rate=0.5, seed=seed))
        out = []
        for _attempt in range(200):
            try:
                engine.admit()
                out.append(False)
            except eng.InjectedError:
                out.append(True)
        return out

    assert failures(3) == failures(3) != failures(4)
    assert 60 < sum(failures(3)) < 140


def test_crash_knob_fires_on_request_n_plus_one():
    crashes = []
    engine = make_engine(Knobs(crash_after_requests=2), on_crash=lambda: crashes.append(engine.seen))
    for _request in range(3):
        engine.admit()
    assert crashes == [3]


def test_stall_knob_wedges_generation_and_health():
    engine = make_engine(Knobs(ttft_ms=0, tpot_ms=0, stall_after_requests=1))

    async def run():
        engine.admit()
        assert len([s async for s in engine.generate(1, 2, True, "a")]) == 2
        engine.admit()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(collect_async(engine), 0.1)
        assert await engine.health_probe(timeout=0.01) is False

    async def collect_async(e):
        return [s async for s in e.generate(1, 2, True, "b")]

    asyncio.run(run())
    assert engine.status == eng.UNHEALTHY and engine.running == 0


def test_max_running_requests_queues_the_rest():
    engine = make_engine(Knobs(ttft_ms=20, tpot_ms=0), "--max-running-requests", "1")
    seen = []

    async def one(tag):
        async for _step in engine.generate(1, 1, True, tag):
            pass

    async def run():
        tasks = [asyncio.ensure_future(one(t)) for t in "ab"]
        await asyncio.sleep(0.005)
        seen.append((engine.running, engine.queued))
        await asyncio.gather(*tasks)
        seen.append((engine.running, engine.queued))

    asyncio.run(run())
    assert seen == [(1, 1), (0, 0)]


def test_metrics_text_has_sglang_names_and_labels():
    engine = make_engine(None, "--served-model-name", "kimi")
    collect(engine, prompt_tokens=10, max_new_tokens=4)
    text = metrics.render(engine)
    assert "# TYPE sglang:num_running_reqs gauge" in text
    assert ('sglang:num_running_reqs{model_name="kimi",engine_type="unified",tp_rank="0",'
            'pp_rank="0",moe_ep_rank="0"} 0.0') in text
    assert 'sglang:generation_tokens_total{model_name="kimi"} 4.0' in text
    assert 'sglang:prompt_tokens_total{model_name="kimi"} 10.0' in text
    assert 'sglang:time_to_first_token_seconds_count{model_name="kimi"} 1.0' in text
    assert 'sglang:inter_token_latency_seconds_bucket{model_name="kimi",le="+Inf"} 3.0' in text
    for line in text.splitlines():  # every sample line is `name{labels} float`
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])

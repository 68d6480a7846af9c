"""The stand-in server as a process on 127.0.0.1: phases, HTTP protocol, auth, faults, processes."""

import json
import re
import signal
import socket
import threading
import time

import pytest

from standin_helpers import group_members, sse_events, start_server, wait_for

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One ready server shared by the protocol tests; api key and metrics come from --config."""
    workdir = tmp_path_factory.mktemp("shared")
    config = workdir / "server.yaml"
    config.write_text(f"api-key: {KEY}\nenable-metrics: true\nserved-model-name: kimi\n")
    srv = start_server(workdir, "--config", str(config), "--tp-size", "2", "--random-seed", "5")
    yield srv
    srv.stop()


def markers(log):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\[standin\] (\w+)_at_ms=(\d{13})$", log, re.M)}


# -- phases -----------------------------------------------------------------------------

def test_port_closed_then_503_then_200(launch):
    srv = launch(env={"STANDIN_LOAD_SECONDS": "0.6", "STANDIN_WARMUP_SECONDS": "0.6"}, wait=False)
    seen = []

    def record():
        status = srv.health()
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == 200

    wait_for(record, timeout=20, interval=0.01)
    assert seen == [None, 503, 200]
    log = srv.log
    assert "The server is fired up and ready to roll!" in log
    times = markers(log)
    assert times["started"] <= times["port_open"] <= times["ready"]
    assert times["ready"] - times["port_open"] >= 500  # the warm-up knob, in epoch milliseconds
    assert log.index("Uvicorn running on http://127.0.0.1:") < log.index("fired up")


def test_skip_server_warmup_is_ready_as_soon_as_the_port_opens(launch):
    srv = launch("--skip-server-warmup", env={"STANDIN_WARMUP_SECONDS": "30"})
    assert srv.health() == 200
    assert srv.get("/metrics")[0] == 404  # only with --enable-metrics


def test_health_without_generation_probe(launch):
    srv = launch(env={"SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION": "false",
                      "STANDIN_HEALTH_PROBE_MS": "1000"})
    started = time.monotonic()
    assert srv.get("/health")[0] == 200
    assert time.monotonic() - started < 0.7
    status, _headers, body = srv.get("/health_generate")  # still probes: takes the probe time
    assert status == 200 and body == b"" and time.monotonic() - started >= 1.0


# -- protocol ---------------------------------------------------------------------------

def test_generate_stream_format(server):
    status, headers, raw = server.post("/generate", {
        "text": "biku vebu fali", "stream": True, "lora_path": None, "return_logprob": False,
        "logprob_start_len": -1, "sampling_params": {"temperature": 0.0, "max_new_tokens": 6,
                                                     "ignore_eos": True}}, headers=AUTH)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert raw.endswith(b"data: [DONE]\n\n")
    events = sse_events(raw)
    chunks = events[:-1]
    assert [c["meta_info"]["completion_tokens"] for c in chunks] == [1, 2, 3, 4, 5, 6]
    assert all(c["meta_info"]["prompt_tokens"] == 3 for c in chunks)
    texts = [c["text"] for c in chunks]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), "text must be cumulative"
    assert [len(c["output_ids"]) for c in chunks] == [1, 2, 3, 4, 5, 6]
    assert chunks[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 6}
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])
    assert "e2e_latency" in chunks[-1]["meta_info"]
    assert "response_sent_to_client_ts" in chunks[0]["meta_info"]


def test_generate_non_stream_and_input_ids(server):
    status, _headers, raw = server.post("/generate", {"input_ids": [5, 6, 7, 8],
                                                      "sampling_params": {"max_new_tokens": 4, "ignore_eos": True}},
                                        headers=AUTH)
    body = json.loads(raw)
    assert status == 200 and body["meta_info"]["completion_tokens"] == 4
    assert body["meta_info"]["prompt_tokens"] == 4 and len(body["output_ids"]) == 4
    assert body["text"] and not body["text"].startswith(" ")


def test_generate_errors(server):
    status, _headers, raw = server.post("/generate", {"sampling_params": {}}, headers=AUTH)
    assert status == 400 and "Either text, input_ids" in json.loads(raw)["error"]["message"]
    too_long = {"text": "ba " * 10, "sampling_params": {"max_new_tokens": 200_000}}
    status, _headers, raw = server.post("/generate", too_long, headers=AUTH)
    assert status == 400 and "maximum context length" in json.loads(raw)["error"]["message"]
    status, _headers, raw = server.post("/generate", {**too_long, "stream": True}, headers=AUTH)
    assert status == 200  # SGLang reports it inside the stream
    assert "maximum context length" in sse_events(raw)[0]["error"]["message"]
    assert sse_events(raw)[-1] == "[DONE]"


def test_openai_completions(server):
    status, _headers, raw = server.post("/v1/completions", {"model": "any", "prompt": "ba be", "max_tokens": 5,
                                                            "ignore_eos": True}, headers=AUTH)
    body = json.loads(raw)
    assert status == 200 and body["object"] == "text_completion"
    assert body["usage"]["completion_tokens"] == 5 and body["usage"]["prompt_tokens"] == 2
    assert body["choices"][0]["finish_reason"] == "length"
    status, _headers, raw = server.post("/v1/completions", {"prompt": "ba", "max_tokens": 3, "ignore_eos": True,
                                                            "stream": True,
                                                            "stream_options": {"include_usage": True}},
                                        headers=AUTH)
    events = sse_events(raw)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 3
    assert [e["choices"][0]["finish_reason"] for e in events[:-2]] == [None, None, "length"]


def test_openai_chat_completions(server):
    chat = {"model": "kimi", "messages": [{"role": "user", "content": "ba be bi"}], "max_tokens": 4,
            "ignore_eos": True}
    status, _headers, raw = server.post("/v1/chat/completions", chat, headers=AUTH)
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant" and body["usage"]["completion_tokens"] == 4
    status, _headers, raw = server.post("/v1/chat/completions", {**chat, "stream": True}, headers=AUTH)
    events = sse_events(raw)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-2]["choices"][0]["finish_reason"] == "length" and events[-1] == "[DONE]"
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1])
    assert content == body["choices"][0]["message"]["content"]  # same prompt, same output


def test_openai_requires_json_content_type(server):
    status, _headers, raw = server.request("POST", "/v1/completions", headers={**AUTH, "Content-Type": "text/plain"})
    assert status == 400 and "Only 'application/json' is allowed" in json.loads(raw)["message"]


def test_models_and_info(server):
    models = json.loads(server.get("/v1/models", headers=AUTH)[2])
    assert models["object"] == "list"
    card = models["data"][0]
    assert (card["id"], card["owned_by"], card["root"], card["max_model_len"]) == \
        ("kimi", "sglang", "kimi", 131072)
    assert server.get("/v1/models/other", headers=AUTH)[0] == 404
    info = json.loads(server.get("/get_server_info", headers=AUTH)[2])
    assert info["version"] == "0.5.7" and info["api_key"] == KEY and info["tp_size"] == 2
    assert info["internal_states"][0]["api_key"] == KEY and info["status"] == "ready"
    assert json.loads(server.get("/server_info", headers=AUTH)[2])["port"] == server.port
    model = json.loads(server.get("/get_model_info", headers=AUTH)[2])
    assert model["model_path"] == "/models/standin" and model["is_generation"] is True
    assert server.get("/model_info", headers=AUTH)[0] == 200
    assert server.get("/no/such/route", headers=AUTH)[0] == 404


def test_metrics(server):
    server.post("/generate", {"text": "ba", "sampling_params": {"max_new_tokens": 2}}, headers=AUTH)
    status, headers, raw = server.get("/metrics")  # exempt from auth
    text = raw.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert re.search(r'^sglang:num_requests_total\{model_name="kimi"\} [1-9]', text, re.M)
    assert 'sglang:http_requests_total{endpoint="/generate",method="POST"}' in text


# -- auth -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/generate", "/v1/models", "/get_server_info", "/get_model_info",
                                  "/v1/completions", "/no/such/route"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": KEY}, {"Authorization": "Bearer wrong"}])
def test_api_key_is_required(server, path, headers):
    method = "POST" if path in ("/generate", "/v1/completions") else "GET"
    status, _headers, raw = server.request(method, path, {"text": "x"} if method == "POST" else None, headers=headers)
    assert (status, json.loads(raw)) == (401, {"error": "Unauthorized"})


@pytest.mark.parametrize("path", ["/health", "/health_generate", "/metrics"])
def test_health_and_metrics_are_exempt_from_auth(server, path):
    assert server.get(path)[0] == 200


# -- command line and devices -----------------------------------------------------------

def test_unknown_flag_exits_2(launch):
    srv = launch("--tp-size", "4", "--no-such-flag", wait=False)
    assert srv.wait_exit() == 2
    assert "error: unrecognized arguments: --no-such-flag" in srv.log


def test_missing_kfd_is_refused(launch, tmp_path):
    srv = launch("--tp-size", "2", env={"STANDIN_KFD_PATH": str(tmp_path / "nope")}, wait=False)
    assert srv.wait_exit() != 0
    log = srv.log
    assert "Scheduler hit an exception: Traceback (most recent call last):" in log
    assert "RuntimeError: No HIP GPUs are available" in log
    assert "port_open_at_ms" not in log


def test_fewer_render_nodes_than_tp_size_is_refused(launch):
    srv = launch("--tp-size", "4", render_nodes=2, wait=False)
    assert srv.wait_exit() != 0
    assert "RuntimeError: HIP error: invalid device ordinal" in srv.log
    assert re.search(r" TP[23]\] Scheduler hit an exception", srv.log)  # ranks 2 and 3 have no GPU


def test_base_gpu_id_shifts_the_devices_used(launch):
    srv = launch("--tp-size", "2", "--base-gpu-id", "3", render_nodes=4, wait=False)
    assert srv.wait_exit() != 0  # ranks use GPUs 3 and 4; only 0..3 exist
    assert " TP1] Scheduler hit an exception" in srv.log


def test_port_in_use_fails(launch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        srv = launch(port=busy.getsockname()[1], wait=False)
        assert srv.wait_exit() == 1
    assert "error while attempting to bind on address" in srv.log


# -- fault knobs ------------------------------------------------------------------------

def test_crash_at_start(launch):
    srv = launch(env={"STANDIN_CRASH_AT_START": "1"}, wait=False)
    assert srv.wait_exit() != 0
    log = srv.log
    assert "Scheduler hit an exception: Traceback" in log and "HIP out of memory" in log
    assert "fired up" not in log


def test_crash_after_n_requests(launch):
    srv = launch("--tp-size", "2", env={"STANDIN_CRASH_AFTER_REQUESTS": "2"})
    for _request in range(2):
        assert srv.post("/generate", {"text": "ba", "sampling_params": {"max_new_tokens": 2}})[0] == 200
    try:
        srv.post("/generate", {"text": "ba", "sampling_params": {"max_new_tokens": 2000, "ignore_eos": True}})
    except OSError:
        pass  # the connection may die with the server
    assert srv.wait_exit() == -signal.SIGKILL
    log = srv.log
    assert "illegal memory access" in log and "It usually means one child failed." in log
    assert no_processes_left(srv.proc.pid)


def test_error_rate_http_mode(launch):
    srv = launch(env={"STANDIN_ERROR_RATE": "1"})
    status, _headers, raw = srv.post("/generate", {"text": "ba", "stream": True})
    assert status == 500 and "injected" in json.loads(raw)["error"]["message"]
    assert srv.post("/v1/completions", {"prompt": "ba"})[0] == 500


def test_error_rate_stream_mode(launch):
    srv = launch(env={"STANDIN_ERROR_RATE": "1", "STANDIN_ERROR_MODE": "stream"})
    status, _headers, raw = srv.post("/generate", {"text": "ba", "stream": True})
    assert status == 200 and "injected" in sse_events(raw)[0]["error"]["message"]
    assert srv.post("/generate", {"text": "ba"})[0] == 400


def test_stall_makes_health_fail(launch):
    srv = launch(env={"STANDIN_STALL_AFTER_REQUESTS": "1", "SGLANG_HEALTH_CHECK_TIMEOUT": "0.3"})
    assert srv.post("/generate", {"text": "ba", "sampling_params": {"max_new_tokens": 2}})[0] == 200
    with pytest.raises(OSError):
        srv.post("/generate", {"text": "ba"}, timeout=0.5)
    assert srv.get("/health")[0] == 503
    assert "Health check failed." in srv.log


def test_warmup_failure_kills_the_server(launch):
    srv = launch(env={"STANDIN_WARMUP_FAIL": "1"}, wait=False)
    assert srv.wait_exit() == -signal.SIGKILL
    assert "Initialization failed. warmup error" in srv.log
    assert no_processes_left(srv.proc.pid)


# -- processes --------------------------------------------------------------------------

def no_processes_left(pgid):
    return wait_for(lambda: not group_members(pgid), timeout=5)


def test_workers_share_the_server_process_group_and_outlive_a_killed_server(launch):
    srv = launch("--tp-size", "3")
    titles = sorted(group_members(srv.proc.pid).values())
    assert titles[-4:] == ["sglang::detokenizer", "sglang::scheduler_TP0", "sglang::scheduler_TP1",
                           "sglang::scheduler_TP2"]
    worker = next(pid for pid, title in group_members(srv.proc.pid).items() if title.endswith("TP0"))
    with open(f"/proc/{worker}/comm") as comm:
        assert comm.read().strip() == "sglang::schedul"  # 15-character kernel name

    srv.proc.kill()  # only the server pid, as a careless stop would
    srv.proc.wait()
    time.sleep(0.3)
    assert sorted(group_members(srv.proc.pid).values()) == titles[-4:]  # orphans, still running


def test_pdeathsig_knob_makes_workers_die_with_the_server(launch):
    srv = launch("--tp-size", "2", env={"STANDIN_WORKER_PDEATHSIG": "1"})
    srv.proc.kill()
    srv.proc.wait()
    assert no_processes_left(srv.proc.pid)


def test_sigterm_drains_then_kills_the_tree(launch):
    srv = launch("--tp-size", "2", env={"STANDIN_TPOT_MS": "20"})
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", srv.post(
        "/generate", {"text": "ba", "sampling_params": {"max_new_tokens": 25, "ignore_eos": True}})))
    thread.start()
    wait_for(lambda: json.loads(srv.get("/get_load")[2])[0]["num_reqs"] == 1, timeout=5)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    assert srv.get("/health")[0] == 503  # draining
    thread.join(10)
    assert result["r"][0] == 200 and json.loads(result["r"][2])["meta_info"]["completion_tokens"] == 25
    assert srv.wait_exit() == -signal.SIGKILL  # kill_process_tree(include_parent=True)
    assert "Gracefully exiting... Remaining number of requests 1." in srv.log
    assert no_processes_left(srv.proc.pid)

"""The server's bind address end to end in the host modules (real main(), docker CLI faked):
sglang_server refuses an open bind without a key before any docker call, and sglang_bench's
client connects to the address the server binds."""

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_bench, sglang_server

SERVER = {"container": "Kimi-linear", "model_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "tp_size": 4}


def no_docker(call):
    raise AssertionError("docker was called: %s" % (call.argv,))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.213.78.11"])
def test_sglang_server_refuses_an_open_bind_without_a_key_before_any_docker_call(host, fake_docker, run_main, capsys):
    docker = fake_docker(no_docker)
    result = run_main(sglang_server.main, dict(SERVER, host=host), docker, capsys)
    assert result["failed"] is True and docker.calls == []
    assert ("host %r is not a loopback address and api_key is empty" % host) in result["msg"]
    assert "allow_unauthenticated=true" in result["msg"]


def test_sglang_server_refuses_a_key_starting_with_a_dash_without_quoting_it(fake_docker, run_main, capsys):
    docker = fake_docker(no_docker)
    result = run_main(sglang_server.main, dict(SERVER, api_key="-sk-dash-sentinel"), docker, capsys)
    assert result["failed"] is True and docker.calls == []
    assert "api_key cannot be used: it starts with '-'" in result["msg"] and "argparse" in result["msg"]
    assert "sk-dash-sentinel" not in result["_raw"]


def test_sglang_server_binds_loopback_by_default(fake_docker, run_main, capsys):
    docker = fake_docker(no_docker)
    result = run_main(sglang_server.main, dict(SERVER, tp_size=0), docker, capsys)
    assert result["failed"] is True and "loopback" not in result["msg"]
    assert sglang_server.argument_spec()["host"]["default"] == "127.0.0.1"


@pytest.mark.parametrize("bind, client", [
    ("0.0.0.0", "127.0.0.1"),
    ("::", "[::1]"),
    ("10.213.78.11", "10.213.78.11"),
    ("fd00::5", "[fd00::5]"),
    ("127.0.0.1", "127.0.0.1"),
])
def test_sglang_bench_connects_where_the_server_binds(bind, client, tmp_path, fake_docker, run_main, capsys):
    docker = fake_docker(no_docker)
    args = {"container": "Kimi-linear", "model": "m", "run_id": "r1", "results_dir": str(tmp_path / "r1"),
            "host": bind, "tiers": [{"name": "low", "num_prompts": 10, "max_concurrency": 1}]}
    result = run_main(sglang_bench.main, args, docker, capsys, check_mode=True)
    run = result["commands"][0]["run"]
    assert run[run.index("--host", run.index("sglang.bench_serving")) + 1] == client

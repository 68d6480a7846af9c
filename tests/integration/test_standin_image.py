"""The stand-in image in a real engine: the production launch command and the REAL bench_serving.

Needs root (mknod) and a Docker engine: $DOCKER_HOST, else the bed's engine
(tests/scripts/engine.sh). The image is $STANDIN_IMAGE, else whatever
tests/standin/build.py prints (a no-op when the image is already built).
Containers run with --network none and without --privileged; the GPU device
nodes are character nodes with /dev/null's numbers, passed with --device.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = "moonshotai/Kimi-Linear-48B-A3B-Instruct"
# The recipe's launch command, plus --host/--port as the collection passes them.
LAUNCH = ["python3", "-m", "sglang.launch_server", "--model-path", MODEL, "--tokenizer-path", MODEL,
          "--tp", "4", "--trust-remote-code", "--host", "0.0.0.0", "--port", "30000"]
WAIT_READY = """
import sys, time, urllib.request
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline:
    try:
        if urllib.request.urlopen("http://127.0.0.1:30000/health", timeout=25).status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
"""
# Live (non-zombie) processes of the container as JSON argv lists.
LIST_PROCESSES = """
import json, os
procs = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
    except OSError:
        continue
    if state != "Z":
        procs.append(argv)
print(json.dumps(procs))
"""


def docker_host():
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return subprocess.run([str(REPO / "tests/scripts/engine.sh"), "host"], capture_output=True,
                          text=True, check=True).stdout.strip()


def docker(*args, check=True, timeout=300):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout,
                          env={**os.environ, "DOCKER_HOST": docker_host()})


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0 or not shutil.which("docker"):
        pytest.skip("needs root and the docker CLI")
    if docker("version", check=False, timeout=30).returncode != 0:
        pytest.skip(f"no Docker engine at {docker_host()} (tests/scripts/engine.sh start)")
    ref = os.environ.get("STANDIN_IMAGE")
    if not ref:
        build = subprocess.run([sys.executable, str(REPO / "tests/standin/build.py"),
                                "--docker-host", docker_host()], capture_output=True, text=True,
                               check=False, timeout=1800)
        assert build.returncode == 0, build.stderr[-3000:]
        ref = build.stdout.strip().splitlines()[-1]
    assert docker("image", "inspect", ref, check=False).returncode == 0, f"{ref} is not in the engine"
    return ref


@pytest.fixture
def gpu_nodes(tmp_path):
    """Character nodes with /dev/null's numbers: they pass through `docker run --device`."""
    def make(render_nodes=4, kfd=True):
        flags = []
        names = (["kfd"] if kfd else []) + [f"renderD{128 + i}" for i in range(render_nodes)]
        for name in names:
            node = tmp_path / name
            os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
            target = "/dev/kfd" if name == "kfd" else f"/dev/dri/{name}"
            flags += ["--device", f"{node}:{target}"]
        return flags
    return make


@pytest.fixture
def container(image):
    """Start containers (`sleep infinity`, like the recipe's idle shell); removed at teardown."""
    names = []

    def start(device_flags, run_flags=()):
        name = f"standin-it-{uuid.uuid4().hex[:8]}"
        names.append(name)
        docker("run", "-d", "--name", name, "--network", "none", *device_flags, *run_flags, image, "sleep", "infinity")
        return name

    yield start
    for name in names:
        docker("rm", "-f", name, check=False)


def launch_server(name, extra_env=(), model=MODEL):
    env = ["-e", "SGLANG_ROCM_FUSED_DECODE_MLA=0", *extra_env]
    command = " ".join(LAUNCH).replace(MODEL, model) + " >/tmp/server.log 2>&1"
    docker("exec", "-d", *env, name, "sh", "-c", command)


def processes(name):
    return json.loads(docker("exec", name, "python3", "-c", LIST_PROCESSES).stdout)


def server_running(name):
    return any(argv[:3] == ["python3", "-m", "sglang.launch_server"] for argv in processes(name))


def server_log(name):
    return docker("exec", name, "cat", "/tmp/server.log", check=False).stdout


def test_production_command_and_real_bench_serving(container, gpu_nodes):
    name = container(gpu_nodes(render_nodes=4))
    launch_server(name)
    ready = docker("exec", name, "python3", "-c", WAIT_READY, "60", check=False, timeout=120)
    log = server_log(name)
    assert ready.returncode == 0, log
    assert "The server is fired up and ready to roll!" in log
    assert "[standin] ready_at_ms=" in log

    titles = {argv[0] for argv in processes(name)}
    assert {f"sglang::scheduler_TP{rank}" for rank in range(4)} | {"sglang::detokenizer"} <= titles

    bench = docker("exec", "-e", "HF_HUB_OFFLINE=1", name, "python3", "-m", "sglang.bench_serving",
                   "--backend", "sglang", "--dataset-name", "random",
                   "--dataset-path", "/opt/standin/sharegpt.json", "--tokenizer", "/opt/standin/tokenizer",
                   "--num-prompts", "10", "--random-input-len", "64", "--random-output-len", "32",
                   "--output-file", "/tmp/bench.jsonl", check=False, timeout=300)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert "Serving Benchmark Result" in bench.stdout
    lines = docker("exec", name, "cat", "/tmp/bench.jsonl").stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["completed"] == 10
    # Output lengths are the requested ones (ignore_eos) and retokenize to the same count.
    requested = int(re.search(r"^#Output tokens: (\d+)$", bench.stdout, re.M).group(1))
    assert result["total_output_tokens"] == result["total_output_tokens_retokenized"] == requested
    assert result["server_info"]["version"] == "0.5.7" and result["server_info"]["tp_size"] == 4


def test_missing_kfd_refuses_to_start(container, gpu_nodes):
    name = container(gpu_nodes(render_nodes=4, kfd=False))
    launch_server(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ("started_at_ms" not in server_log(name) or server_running(name)):
        time.sleep(0.2)
    log = server_log(name)
    assert not server_running(name), log
    assert "RuntimeError: No HIP GPUs are available" in log
    assert "port_open_at_ms" not in log
    assert not any(argv[0].startswith("sglang::") for argv in processes(name))  # tree torn down


def wait_stopped(name):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ("started_at_ms" not in server_log(name) or server_running(name)):
        time.sleep(0.2)
    return server_log(name)


def test_a_staged_model_serves_offline_with_its_own_tokenizer_and_a_missing_shard_is_refused(
        container, gpu_nodes, tmp_path):
    """The bed hub's generated repo, mounted read-only as the model stage mounts it."""
    from simfleet import hub

    repo = hub.generate(tmp_path / "model", MODEL, size=8 << 20, shards=2)
    mount = f"/models/{MODEL}"
    devices = gpu_nodes(render_nodes=4)
    name = container(devices, ["-v", f"{repo.directory}:{mount}:ro"])
    launch_server(name, ["-e", "HF_HUB_OFFLINE=1"], model=mount)
    ready = docker("exec", name, "python3", "-c", WAIT_READY, "60", check=False, timeout=120)
    log = server_log(name)
    assert ready.returncode == 0, log
    assert log.count(f"[standin] read {repo.total_bytes - sum(f.size for f in repo.files.values() if not f.lfs)} "
                     f"bytes of weights from {mount}") == 4
    bench = docker("exec", "-e", "HF_HUB_OFFLINE=1", name, "python3", "-m", "sglang.bench_serving",
                   "--backend", "sglang", "--dataset-name", "random", "--dataset-path", "/opt/standin/sharegpt.json",
                   "--tokenizer", mount, "--num-prompts", "4", "--random-input-len", "32",
                   "--random-output-len", "8", "--output-file", "/tmp/bench.jsonl", check=False, timeout=300)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    result = json.loads(docker("exec", name, "cat", "/tmp/bench.jsonl").stdout.splitlines()[-1])
    assert result["completed"] == 4 and result["total_output_tokens"] == result["total_output_tokens_retokenized"]

    (repo.directory / "model-00002-of-00002.safetensors").unlink()
    broken = container(devices, ["-v", f"{repo.directory}:{mount}:ro"])
    launch_server(broken, ["-e", "HF_HUB_OFFLINE=1"], model=mount)
    log = wait_stopped(broken)
    assert not server_running(broken), log
    assert "RuntimeError: Some weights are not initialized from checkpoints" in log
    assert "port_open_at_ms" not in log

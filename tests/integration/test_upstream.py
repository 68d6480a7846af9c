"""The bed's upstream link: the registry and the model hub behind one shaped veth, hosts not.

Against the bed at $SIMFLEET_INVENTORY (tests/scripts/integration.sh brings one up): a shard
fetched from the hub by a host crosses the upstream link at the rate `simfleet upstream --rate`
set, is counted on that link, and the same bytes between two hosts go at bridge speed and are
not counted. The link is left unshaped, as the bed starts.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RATE_MBIT = 80
SHARD = "model-00001-of-00004.safetensors"


@pytest.fixture(name="bed")
def fixture_bed():
    path = os.environ.get("SIMFLEET_INVENTORY")
    if not path or not Path(path).is_file():
        pytest.fail("SIMFLEET_INVENTORY must name the simulated fleet's inventory; run "
                    "tests/scripts/integration.sh, or `python3 -m simfleet up` and export it")
    group = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["all"]["children"]["gpu_hosts"]
    if len(group["hosts"]) < 2:
        pytest.fail("the upstream test needs two hosts")
    yield group
    simfleet("upstream", "--rate", "off")


def simfleet(*args):
    out = subprocess.run([sys.executable, "-m", "simfleet", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "tests"))).stdout
    return json.loads(out) if args[0] == "upstream" else out


def in_host(name, *argv, timeout=60):
    from simfleet import net  # the bed's own names (SIMFLEET_INSTANCE)

    return subprocess.run(["nsenter", f"--net={net.netns_path(name)}", *argv], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def fetch(host, url):
    """(bytes, seconds) of a download by curl inside a host's namespace."""
    out = in_host(host, "curl", "-sSfL", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url)
    size, seconds = out.split()
    return int(size), float(seconds)


def test_the_upstream_is_shaped_and_counted_and_host_to_host_is_not(bed):
    group_vars = bed["vars"]
    gpu01, gpu02 = sorted(bed["hosts"])[:2]
    url = f"{group_vars['simfleet_hub_endpoint']}/{group_vars['simfleet_hub_repo']}/resolve/main/{SHARD}"

    link = simfleet("upstream", "--rate", f"{RATE_MBIT}mbit")
    assert link["qdisc"]["kind"] == "tbf" and link["rate"] == f"{RATE_MBIT}mbit"
    size, seconds = fetch(gpu01, url)
    after = simfleet("upstream")
    assert size > 4 << 20
    rate = size * 8 / seconds / 1e6
    assert 0.5 * RATE_MBIT < rate < 1.2 * RATE_MBIT, f"{size} bytes in {seconds:.2f}s = {rate:.0f} Mbit/s"
    sent = after["tx_bytes"] - link["tx_bytes"]
    assert size <= sent < size * 1.05 + 65536, "the upstream counted what it sent, and little else"

    # the same bytes between two hosts: bridge speed, and nothing crosses the upstream link
    address = bed["hosts"][gpu02]["ansible_host"]
    state = Path(bed["hosts"][gpu02]["simfleet_state_dir"])
    served = state / "upstream-test"
    served.mkdir(exist_ok=True)
    (served / SHARD).write_bytes(b"\0" * size)
    from simfleet import net

    server = subprocess.Popen(["nsenter", f"--net={net.netns_path(gpu02)}", sys.executable, "-m", "http.server",
                               "18099", "--bind", address, "--directory", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        before = simfleet("upstream")
        deadline = time.monotonic() + 10
        while True:
            try:
                peer_size, peer_seconds = fetch(gpu01, f"http://{address}:18099/{SHARD}")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        crossed = simfleet("upstream")["tx_bytes"] - before["tx_bytes"]
    finally:
        server.terminate()
        server.wait(timeout=10)
        for path in served.iterdir():
            path.unlink()
        served.rmdir()
    assert peer_size == size
    assert peer_size * 8 / peer_seconds / 1e6 > 3 * RATE_MBIT, "host to host is not shaped"
    assert crossed < 65536


def test_the_upstream_link_is_unshaped_by_default(bed):
    link = simfleet("upstream", "--rate", "off")
    assert link["rate"] is None and link["qdisc"].get("kind") != "tbf"
    assert link["hub"]["up"] and link["hub"]["commit"] == bed["vars"]["simfleet_hub_commit"]

"""The bed's upstream: the registry and the model hub behind one link, which alone can be shaped.

Both run in the namespace `<prefix>upstream` (address config.UPSTREAM) whose only link is a
veth to the bridge, so everything the fleet fetches from them crosses that veth and nothing
else does: host-to-host traffic stays on the bridge. `shape` puts a token bucket (tc TBF; this
kernel has no netem) on the upstream's side of the veth, which limits what leaves the upstream
(image pulls, model downloads); what goes in (the build engine's pushes, requests) is not
limited. `counters` reads the veth's byte counters from the upstream's side: `tx_bytes` is what
the upstream sent to the fleet and the controller.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from . import config, net
from .system import BedError, run

_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)$", re.IGNORECASE)
_RATE_UNITS = {"bit": 1, "kbit": 10 ** 3, "mbit": 10 ** 6, "gbit": 10 ** 9}  # tc's units (SI)
TESTS_DIR = Path(__file__).resolve().parents[1]


def netns_path() -> str:
    return net.netns_path(net.UPSTREAM)


def veth() -> str:
    return net.veth(net.UPSTREAM)


def parse_rate(text: str) -> int:
    """`100mbit`, `1.5gbit`, `800kbit` -> bits per second (tc's units: SI, bits)."""
    match = _RATE_RE.match(str(text).strip())
    if not match or float(match.group(1)) <= 0:
        raise BedError(f"upstream rate {text!r}: expected a positive number with bit, kbit, mbit or gbit "
                       "(tc's units, e.g. 200mbit), or 'off'")
    return int(float(match.group(1)) * _RATE_UNITS[match.group(2).lower()])


def tbf_args(bits_per_second: int) -> list:
    """TBF for that rate: a burst of 20 ms of traffic (at least 64 KiB, so a GSO packet fits)."""
    burst = max(64 * 1024, bits_per_second // 8 // 50)
    return ["tbf", "rate", f"{bits_per_second}bit", "burst", str(burst), "latency", "100ms"]


def shape(rate: str | None) -> None:
    """Limit what leaves the upstream to `rate`; None or 'off' removes the limit."""
    ns = net.netns(net.UPSTREAM)
    if rate in (None, "", "off"):
        run(["tc", "-n", ns, "qdisc", "del", "dev", "eth0", "root"], check=False)
        return
    run(["tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", *tbf_args(parse_rate(rate))])


def qdisc() -> dict:
    """The upstream link's root qdisc as tc reports it (kind, rate, drops), {} without a bed."""
    out = run(["tc", "-n", net.netns(net.UPSTREAM), "-s", "-j", "qdisc", "show", "dev", "eth0"], check=False)
    if out.returncode != 0:
        return {}
    root = next((q for q in json.loads(out.stdout or "[]") if q.get("root")), {})
    keys = ("kind", "bytes", "packets", "drops", "overlimits")
    info = {k: root[k] for k in keys if k in root}
    if root.get("kind") == "tbf":
        info["rate"] = root.get("options", {}).get("rate")
    return info


def counters() -> dict:
    """Bytes that crossed the upstream link, from the upstream's side."""
    stats = Path("/sys/class/net") / veth() / "statistics"
    try:
        # the host-side end counts the other way round: what it received the upstream sent
        sent, received = (int((stats / name).read_text()) for name in ("rx_bytes", "tx_bytes"))
    except OSError as err:
        raise BedError(f"no upstream link {veth()} (is the bed up?): {err}") from err
    return {"interface": veth(), "address": config.UPSTREAM, "tx_bytes": sent, "rx_bytes": received}


def enter(argv: list) -> list:
    return ["nsenter", f"--net={netns_path()}", *argv]


def hub_command(paths: config.Paths, params: dict, token_file: Path | None) -> list:
    argv = ["env", f"PYTHONPATH={TESTS_DIR}", sys.executable, "-m", "simfleet.hub", "serve",
            "--dir", paths.hub_repo, "--repo", params["repo"], "--size", str(params["size"]),
            "--shards", str(params["shards"]), "--seed", str(params["seed"]),
            "--listen", config.HUB, "--pidfile", paths.upstream_run / "hub.pid"]
    if token_file:
        argv += ["--token-file", token_file]
    return enter(argv)

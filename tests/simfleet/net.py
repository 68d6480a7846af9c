"""The bed's network: a bridge on the machine, a namespace + veth per host and one for the
upstream (registry and model hub), NAT egress.

Every iptables rule carries the comment `simfleet`, so `down` deletes exactly the rules the
bed added (also after a crash, when nothing else was recorded).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from . import config
from .system import run

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

# (table, chain, match): egress is masqueraded, and the bridge is accepted in FORWARD both
# ways because Docker's engine, where it manages iptables, sets the FORWARD policy to DROP.
RULES = (
    ("nat", "POSTROUTING", ["-s", str(config.SUBNET), "!", "-o", config.BRIDGE, "-j", "MASQUERADE"]),
    ("filter", "FORWARD", ["-i", config.BRIDGE, "-j", "ACCEPT"]),
    ("filter", "FORWARD", ["-o", config.BRIDGE, "-j", "ACCEPT"]),
)
UPSTREAM = "upstream"  # the namespace (and host-side veth) of the registry and the model hub
_NETNS_RE = re.compile(rf"^{re.escape(config.NETNS_PREFIX)}(gpu\d+|{UPSTREAM})$")


def netns(name: str) -> str:
    return config.NETNS_PREFIX + name


def veth(name: str) -> str:
    # host-side end of the host's link; interface names are limited to 15 bytes
    return config.NETNS_PREFIX + name


def netns_path(name: str) -> str:
    return f"/run/netns/{netns(name)}"


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def other_bridges() -> list:
    """Bridges of other bed instances that are up on this machine."""
    out = run(["ip", "-o", "link", "show", "type", "bridge"], check=False).stdout or ""
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2]
    return [n for n in names if re.fullmatch(r"sfbr\d", n) and n != config.BRIDGE]


def create_bridge() -> None:
    run(["ip", "link", "add", config.BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{config.GATEWAY}/{config.SUBNET.prefixlen}", "dev", config.BRIDGE])
    run(["ip", "link", "set", config.BRIDGE, "up"])


def create_host(name: str, address: str) -> None:
    ns = netns(name)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth(name), "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth(name), "master", config.BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/{config.SUBNET.prefixlen}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", config.GATEWAY])


def create_upstream() -> None:
    """The upstream's namespace: one veth to the bridge, the address config.UPSTREAM."""
    create_host(UPSTREAM, config.UPSTREAM)


def set_host_link(name: str, up: bool) -> None:
    """cut/restore: the host keeps running, but its cable is pulled."""
    run(["ip", "link", "set", veth(name), "up" if up else "down"])


def bed_namespaces() -> list:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line and _NETNS_RE.match(line.split()[0])]


def remove_all() -> None:
    """Delete every bed namespace (their veths go with them), stray veths and the bridge."""
    for ns in bed_namespaces():
        run(["ip", "netns", "delete", ns], check=False)
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    for line in out.splitlines():
        ifname = line.split(":")[1].strip().split("@")[0]
        if _NETNS_RE.match(ifname):
            run(["ip", "link", "delete", ifname], check=False)
    if link_exists(config.BRIDGE):
        run(["ip", "link", "delete", config.BRIDGE], check=False)


def add_rules() -> None:
    for table, chain, match in RULES:
        run(["iptables", "-w", "-t", table, "-I", chain, "1", *match,
             "-m", "comment", "--comment", config.RULE_TAG])


def tagged_rules() -> list:
    """(table, rule args as printed by `iptables -S`) for every rule carrying the bed's tag."""
    found = []
    for table in ("filter", "nat"):
        out = run(["iptables", "-w", "-t", table, "-S"], check=False).stdout
        for line in out.splitlines():
            args = shlex.split(line)
            if args[:1] == ["-A"] and _has_tag(args):
                found.append((table, args))
    return found


def _has_tag(args: list) -> bool:
    return any(a == "--comment" and b == config.RULE_TAG for a, b in zip(args, args[1:]))


def remove_rules() -> int:
    rules = tagged_rules()
    for table, args in rules:
        run(["iptables", "-w", "-t", table, "-D", *args[1:]], check=False)
    return len(rules)


def read_ip_forward() -> str:
    return IP_FORWARD.read_text().strip()


def write_ip_forward(value: str) -> None:
    IP_FORWARD.write_text(value + "\n")

"""Fixed names and addresses of the bed, and where its files live."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

# SIMFLEET_INSTANCE=N (1..9) runs a second, independent bed beside the default one (for
# development: two people or two scenarios at once). Each instance gets its own subnet, bridge,
# namespace prefix, iptables tag, cgroup, state/run dirs and registry storage.
INSTANCE = os.environ.get("SIMFLEET_INSTANCE", "")
if INSTANCE and not (INSTANCE.isdigit() and 1 <= int(INSTANCE) <= 9):
    raise SystemExit(f"SIMFLEET_INSTANCE={INSTANCE!r}: expected a digit 1..9 (or unset for the default bed)")
SUBNET = ipaddress.ip_network(os.environ.get("SIMFLEET_SUBNET", f"10.213.{77 + int(INSTANCE or 0)}.0/24"))
GATEWAY = str(SUBNET.network_address + 1)           # the bridge's address: the controller's side
# The upstream: the registry and the model hub in their own namespace behind one link (its
# own veth to the bridge), the only link `up --upstream-rate` shapes.
UPSTREAM = str(SUBNET.network_address + 2)
FIRST_HOST = 11                                      # gpu01 is .11
MAX_HOSTS = 99                                       # gpu01..gpu99
BRIDGE = f"sfbr{INSTANCE or 0}"
NETNS_PREFIX = f"sf{INSTANCE}-"
RULE_TAG = f"simfleet{INSTANCE}"                     # iptables comment on every rule the bed adds
CGROUP_NAME = f"simfleet{INSTANCE}"                  # cgroup subtree holding every process the bed starts

REGISTRY_PORT = 5000
REGISTRY_TLS_PORT = 5443
REGISTRY = f"{UPSTREAM}:{REGISTRY_PORT}"
REGISTRY_TLS = f"{UPSTREAM}:{REGISTRY_TLS_PORT}"
HUB_PORT = 8080
HUB = f"{UPSTREAM}:{HUB_PORT}"
HUB_ENDPOINT = f"http://{HUB}"                      # what HF_ENDPOINT is set to on the bed
IMAGE_REPOSITORY = "lmsysorg/sglang"                # the production repository name
IMAGE_TAG = "v0.5.7-rocm700-mi30x"
IMAGE = f"{REGISTRY}/{IMAGE_REPOSITORY}:{IMAGE_TAG}"
REGISTRY_USER = "simfleet"

ENGINE_HOST = os.environ.get("SIMFLEET_ENGINE_HOST", "unix:///run/sglang-fleet-engine/docker.sock")
# certs.d is per machine, not per dockerd: every simulated dockerd reads this one.
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


def host_name(index: int) -> str:
    return f"gpu{index:02d}"


def host_address(index: int) -> str:
    return str(SUBNET.network_address + FIRST_HOST - 1 + index)


@dataclass(frozen=True)
class Paths:
    """Bulky state under `state`, short socket/pid paths under `run`, survivors under `cache`."""

    state: Path
    run: Path
    cache: Path

    @classmethod
    def from_env(cls) -> "Paths":
        return cls(
            state=Path(os.environ.get("SIMFLEET_STATE", f"/var/lib/simfleet{INSTANCE}")),
            # unix socket paths must stay under 108 bytes, hence a short fixed runtime dir
            run=Path(os.environ.get("SIMFLEET_RUN", f"/run/simfleet{INSTANCE}")),
            cache=Path(os.environ.get("SGLANG_FLEET_CACHE", "/var/cache/sglang-rocm-fleet")),
        )

    @property
    def bed_file(self) -> Path:
        return self.state / "bed.json"

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yml"

    @property
    def client_key(self) -> Path:
        return self.state / "ssh" / "id_ed25519"

    @property
    def registry_state(self) -> Path:
        return self.state / "registry"

    @property
    def registry_storage(self) -> Path:
        # persistent, so a rerun's push only sends what changed
        return self.cache / f"registry{INSTANCE}"

    @property
    def hub_repo(self) -> Path:
        # persistent: a generated repo of the same parameters is reused, not written again
        return self.cache / f"hub{INSTANCE}"

    @property
    def upstream_state(self) -> Path:
        return self.state / "upstream"

    @property
    def upstream_run(self) -> Path:
        return self.run / "upstream"

    @property
    def control_path_dir(self) -> Path:
        return self.run / "cp"

    def host_state(self, name: str) -> Path:
        return self.state / "hosts" / name

    def host_run(self, name: str) -> Path:
        return self.run / name

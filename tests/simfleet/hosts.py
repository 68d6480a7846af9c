"""One simulated host: its files, its sshd and its dockerd, both run inside its namespace.

Daemons are started with `nsenter --net=` (not `ip netns exec`, which remounts /sys and hides
the cgroup mounts dockerd needs), so they share the machine's filesystem and only the network
is the host's own.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from . import config, net
from .config import Paths
from .system import run


@dataclass(frozen=True)
class Host:
    index: int
    profile: str

    @property
    def name(self) -> str:
        return config.host_name(self.index)

    @property
    def address(self) -> str:
        return config.host_address(self.index)


@dataclass(frozen=True)
class HostFiles:
    """Where a host's files live; every host-side path handed to Ansible is one of these."""

    paths: Paths
    name: str

    @property
    def state(self) -> Path:
        return self.paths.host_state(self.name)

    @property
    def run(self) -> Path:
        return self.paths.host_run(self.name)

    @property
    def root(self) -> Path:           # fake ROCm host tree: sys/, dev/, proc/ (and the
        return self.state             # per-host paths of inventory.HOST_PATHS)

    @property
    def home(self) -> Path:           # root's $HOME in this host's ssh sessions
        return self.state / "home"

    @property
    def docker_sock(self) -> Path:
        return self.run / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run / "sshd.pid"

    @property
    def dockerd_pidfile(self) -> Path:
        return self.run / "dockerd.pid"

    @property
    def uts_ns(self) -> Path:         # the host's own hostname lives in this UTS namespace
        return self.run / "uts"

    @property
    def exec_root(self) -> Path:
        return self.run / "exec"

    def log(self, daemon: str) -> Path:
        return self.state / "log" / f"{daemon}.log"


def keygen(path: Path, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])


def prepare(host: Host, files: HostFiles, authorized_keys: Path) -> None:
    """Directories, host key, sshd and dockerd configs. Host trees are written separately."""
    # Only what a fresh host has; the roles create their own directories (cache, staging, ...).
    for directory in (files.run, files.home, files.state / "log", files.state / "docker",
                      files.state / "etc/sysctl.d"):
        directory.mkdir(parents=True, exist_ok=True)
    files.home.chmod(0o700)
    # A persistent UTS namespace (bind-mounted on a file) so `hostname` says gpuNN, as on a fleet.
    files.uts_ns.touch()
    run(["unshare", f"--uts={files.uts_ns}", "hostname", host.name])
    keygen(files.state / "ssh/ssh_host_ed25519_key", f"root@{host.name}")
    (files.state / "ssh/sshd_config").write_text(sshd_config(host, files, authorized_keys))
    # An own (empty) daemon.json, so a machine-wide /etc/docker/daemon.json never leaks in.
    (files.state / "daemon.json").write_text(json.dumps({}) + "\n")


def sshd_config(host: Host, files: HostFiles, authorized_keys: Path) -> str:
    return "\n".join((
        f"ListenAddress {host.address}:22",
        f"HostKey {files.state / 'ssh/ssh_host_ed25519_key'}",
        f"PidFile {files.sshd_pidfile}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PrintMotd no",
        "MaxStartups 64:30:128",
        "MaxSessions 64",
        # Hosts share one filesystem: a per-host $HOME keeps ~/.ansible, ~/.docker/config.json
        # and pip caches of one host from making another look converged.
        f"SetEnv HOME={files.home}",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ))


def _enter(host: Host, files: HostFiles) -> list:
    return ["nsenter", f"--net={net.netns_path(host.name)}", f"--uts={files.uts_ns}"]


def sshd_command(host: Host, files: HostFiles) -> list:
    return [*_enter(host, files), "/usr/sbin/sshd", "-D",
            "-f", files.state / "ssh/sshd_config", "-E", files.log("sshd")]


def dockerd_command(host: Host, files: HostFiles) -> list:
    return [
        *_enter(host, files), "dockerd",
        "--host", files.docker_host,
        "--config-file", files.state / "daemon.json",
        "--data-root", files.state / "docker",
        "--exec-root", files.exec_root,
        "--pidfile", files.dockerd_pidfile,
        "--bridge=none", "--iptables=false", "--ip6tables=false",
        "--insecure-registry", config.REGISTRY,
        # Own cgroup subtree per host (containers are found and cleaned per host), and an own
        # containerd namespace in case dockerd attaches to a shared system containerd.
        "--cgroup-parent", f"/{config.CGROUP_NAME}/{host.name}/containers",
        "--containerd-namespace", f"simfleet-{host.name}",
        "--containerd-plugins-namespace", f"simfleet-{host.name}-plugins",
    ]


# ---------------------------------------------------------------------------------------------
# probes

def ssh_ready(address: str, timeout: float = 0.5) -> bool:
    """sshd accepted a connection and sent its banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def docker_api(sock: Path, method: str, path: str, timeout: float = 1.0) -> tuple:
    """One HTTP/1.0 request to a dockerd's unix socket: (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        conn.sendall(f"{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0]           # HTTP/1.0 200 OK
    return int(status_line.split()[1]), data.split(b"\r\n\r\n", 1)[-1]


def docker_ping(sock: Path, timeout: float = 1.0) -> bool:
    """GET /_ping on the daemon's unix socket answers 200 OK."""
    try:
        return docker_api(sock, "GET", "/_ping", timeout)[0] == 200
    except (OSError, IndexError, ValueError):
        return False


def kill_containers(socks: list) -> int:
    """SIGKILL every running container of each dockerd; returns how many were killed."""
    killed = 0
    for sock in socks:
        try:
            status, body = docker_api(sock, "GET", "/containers/json", timeout=5)
            for container in json.loads(body) if status == 200 else []:
                if docker_api(sock, "POST", f"/containers/{container['Id']}/kill", timeout=10)[0] == 204:
                    killed += 1
        except (OSError, IndexError, ValueError):
            pass  # a dead dockerd has nothing to kill; its leftovers go with its cgroup
    return killed


def ssh_command(paths: Paths, address: str, *remote: str) -> list:
    """The ssh command line Ansible's inventory amounts to, for humans and checks."""
    return ["ssh", "-i", str(paths.client_key), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", f"root@{address}", *remote]

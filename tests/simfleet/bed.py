"""Bring the simulated fleet up and down, and report on it.

`bed.json` in the state dir records what the bed did to the machine (processes, the previous
ip_forward value, files created outside its own dirs) and is written before each change, so a
crashed run is undone by the next `down` or `up`. `down` also sweeps by name (namespaces,
the bridge, tagged iptables rules, the bed's cgroups), which needs no record at all.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import config, hosts, hub, inventory, net, profiles, registry, system, upstream
from .config import Paths
from .hosts import Host, HostFiles
from .system import BedError, Tracked

SSHD_PRIVSEP_DIR = Path("/run/sshd")
RUN_NETNS = Path("/run/netns")
# Machine-wide paths the daemons and tools create when missing, whatever their own dirs are:
# dockerd's trust key and plugin dir, containerd's shim sockets, libmount's utab dir.
MACHINE_PATHS = tuple(Path(p) for p in (
    "/etc/docker", "/etc/docker/key.json", "/run/docker", "/run/docker/plugins",
    "/run/containerd", "/run/containerd/s", "/run/mount",
))
REQUIRED_TOOLS = ("ip", "iptables", "nsenter", "unshare", "dockerd", "docker", "docker-registry", "sshd", "ssh",
                  "ssh-keygen", "umount")


class Bed:
    def __init__(self, paths: Paths | None = None, out=print):
        self.paths = paths or Paths.from_env()
        self.out = out
        self.state: dict = {}

    # ------------------------------------------------------------------------------ state file

    def load(self) -> dict | None:
        try:
            return json.loads(self.paths.bed_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self) -> None:
        self.paths.bed_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.bed_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.paths.bed_file)

    def _hosts(self, state: dict | None = None) -> list:
        state = state if state is not None else self.state
        return [Host(h["index"], h["profile"]) for h in state.get("hosts", [])]

    def _record(self, key: str, proc: Tracked) -> None:
        self.state.setdefault("procs", {})[key] = proc.to_json()
        self.save()

    def _created(self, path: Path) -> None:
        self.state.setdefault("created", []).append(str(path))
        self.save()

    # ------------------------------------------------------------------------------------- up

    def up(self, host_profiles: list, *, image: str | None = None, auth: bool = False, fresh: bool = False,
           timeout: float = 180, keep_on_failure: bool = False, upstream_rate: str | None = None,
           hub_params: dict | None = None, hub_token: bool = False) -> None:
        """Build len(host_profiles) hosts; reuse a healthy bed of the same shape unless fresh.

        hub_params: the model hub's repo (repo, size, shards, seed; hub.DEFAULT_* for the rest);
        upstream_rate: the upstream link's rate (tc units), None for an unshaped link.
        """
        started = time.monotonic()
        _require_root_and_tools(auth)
        if upstream_rate not in (None, "off"):
            upstream.parse_rate(upstream_rate)  # refuse a bad rate before anything is built
        hub_params = hub_repo_params(hub_params)
        wanted = [Host(i + 1, p) for i, p in enumerate(host_profiles)]
        previous = self.load()
        if previous and not fresh and self._reusable(previous, wanted, auth, hub_params, hub_token):
            self.state = previous
            self._refresh(image, upstream_rate)
            self.out(f"simfleet: reused the running bed ({len(wanted)} hosts) in {time.monotonic() - started:.1f}s; "
                     f"inventory {self.paths.inventory}")
            return
        if previous or self._leftovers():
            self.out("simfleet: tearing down the previous bed first")
            self.down(quiet=True)
        try:
            self._build(wanted, image=image, auth=auth, timeout=timeout, upstream_rate=upstream_rate,
                        hub_params=hub_params, hub_token=hub_token)
        except (BedError, OSError, subprocess.SubprocessError) as err:
            if keep_on_failure:
                self.out(f"simfleet: up failed; bed left in place for inspection (state {self.paths.state})")
            else:
                self.out("simfleet: up failed; tearing down what was built")
                self.down(quiet=True)
            raise BedError(str(err)) from err
        self.out(f"simfleet: {len(wanted)} hosts up in {time.monotonic() - started:.1f}s; "
                 f"inventory {self.paths.inventory}")

    def _build(self, wanted: list, *, image: str | None, auth: bool, timeout: float, upstream_rate: str | None,
               hub_params: dict, hub_token: bool) -> None:
        paths = self.paths
        step = _Steps(self.out)
        self.state = {"version": 1, "hosts": [{"index": h.index, "profile": h.profile, "cut": False} for h in wanted],
                      "procs": {}, "created": [], "auth": None, "image": None,
                      "ip_forward_prev": net.read_ip_forward()}
        paths.run.mkdir(parents=True, exist_ok=True)
        paths.control_path_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.save()

        with step("network"):
            for path in (RUN_NETNS, SSHD_PRIVSEP_DIR, *MACHINE_PATHS):
                if not path.exists():
                    self._created(path)
            net.create_bridge()
            net.add_rules()
            net.write_ip_forward("1")
            net.create_upstream()
            for host in wanted:
                net.create_host(host.name, host.address)

        with step("keys, configs and host trees"):
            hosts.keygen(paths.client_key, "simfleet-controller")
            authorized = paths.client_key.parent / "authorized_keys"
            shutil.copyfile(paths.client_key.with_name("id_ed25519.pub"), authorized)
            # keygen and tree writing mostly wait on subprocesses and the filesystem
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda host: _prepare_host(paths, host, authorized), wanted))
            SSHD_PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

        with step(f"model hub repo ({hub_params['size']} bytes in {hub_params['shards']} shards)"):
            repo = hub.generate(paths.hub_repo, hub_params["repo"], hub_params["size"], hub_params["shards"],
                                hub_params["seed"])
            self.state["upstream"] = {"rate": None, "hub": hub_params, "commit": repo.commit,
                                      "bytes": repo.total_bytes, "token_file": self._hub_token() if hub_token else None}
            self.save()

        services = []  # (name, readiness probe, log, popen) for everything that must answer
        with step("start registry, hub and daemons"):
            reg = paths.registry_state
            paths.registry_storage.mkdir(parents=True, exist_ok=True)
            registry.write_config(reg / "config.yml", paths.registry_storage, addr=config.REGISTRY)
            popen = self._spawn("registry", upstream.enter(registry.command(reg / "config.yml")),
                                reg / "registry.log", system.cgroup_dir("upstream"))
            services.append((f"registry {config.REGISTRY}", _bind(registry.ready, config.REGISTRY),
                             reg / "registry.log", popen))
            if auth:
                services.append(self._start_tls_registry())
            services.append(self._start_hub())
            for host in wanted:
                files = HostFiles(paths, host.name)
                cgroup = system.cgroup_dir(host.name, "daemons")
                popen = self._spawn(f"{host.name}/sshd", hosts.sshd_command(host, files), files.log("sshd"), cgroup)
                services.append((f"{host.name} sshd {host.address}:22", _bind(hosts.ssh_ready, host.address),
                                 files.log("sshd"), popen))
                popen = self._spawn(f"{host.name}/dockerd", hosts.dockerd_command(host, files),
                                    files.log("dockerd"), cgroup)
                services.append((f"{host.name} dockerd {files.docker_host}",
                                 _bind(hosts.docker_ping, files.docker_sock), files.log("dockerd"), popen))

        with step(f"wait for {len(services)} services"):
            logs = {service[0]: service[2] for service in services}
            # a daemon that exited will never answer: fail at once with its log
            checks = {name: _unless_dead(probe, popen, log, name) for name, probe, log, popen in services}
            system.wait_until(checks, timeout, on_fail=lambda name: system.tail(logs[name], 10))

        with step("ssh login with the generated key"):
            _check_logins(paths, wanted)

        if upstream_rate not in (None, "off"):
            with step(f"shape the upstream link to {upstream_rate}"):
                self._shape(upstream_rate)

        if image:
            with step(f"push {image} as {config.IMAGE}"):
                self.state["image"] = image
                self.state["digest"] = registry.push(image)
                self.save()
        elif not registry.has_image():
            self.out(f"simfleet: note: {config.IMAGE} is not in the registry yet (use up --image REF)")

        self._write_inventory()

    def _spawn(self, key: str, argv: list, log: Path, cgroup: Path | None) -> subprocess.Popen:
        proc, popen = system.spawn(argv, log=log, cgroup=cgroup)
        self._record(key, proc)
        return popen

    def _start_tls_registry(self) -> tuple:
        reg = self.paths.registry_state
        ca_crt, crt, key = registry.make_ca_and_cert(reg / "tls")
        htpasswd, password_file = registry.make_credentials(reg)
        for directory in (config.DOCKER_CERTS_DIR.parent, config.DOCKER_CERTS_DIR):
            if not directory.exists():
                directory.mkdir(parents=True)
                self._created(directory)
        self.state["auth"] = {"username": config.REGISTRY_USER, "password_file": str(password_file),
                              "ca_file": str(ca_crt)}
        self._created(config.DOCKER_CERTS_DIR / config.REGISTRY_TLS)
        registry.trust_ca(ca_crt)
        registry.write_config(reg / "config-tls.yml", self.paths.registry_storage, addr=config.REGISTRY_TLS,
                              tls=(crt, key), htpasswd=htpasswd, purge_uploads=False)
        popen = self._spawn("registry-tls", upstream.enter(registry.command(reg / "config-tls.yml")),
                            reg / "registry-tls.log", system.cgroup_dir("upstream"))
        return (f"registry {config.REGISTRY_TLS} (TLS, auth)", lambda: registry.ready(config.REGISTRY_TLS, ca=ca_crt),
                reg / "registry-tls.log", popen)

    def _hub_token(self) -> str:
        """A token the hub requires, in a 0600 file (never on a command line)."""
        path = self.paths.upstream_state / "hub-token"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("hf_" + secrets.token_urlsafe(24))
        return str(path)

    def _start_hub(self) -> tuple:
        info = self.state["upstream"]
        token = info.get("token_file")
        self.paths.upstream_run.mkdir(parents=True, exist_ok=True)
        log = self.paths.upstream_state / "hub.log"
        popen = self._spawn("upstream/hub", upstream.hub_command(self.paths, info["hub"], Path(token) if token else None),
                            log, system.cgroup_dir("upstream"))
        return (f"model hub {config.HUB_ENDPOINT}", _bind(hub.ready, config.HUB), log, popen)

    def _shape(self, rate: str | None) -> None:
        upstream.shape(rate)
        self.state["upstream"]["rate"] = None if rate in (None, "off") else rate
        self.save()

    def _reusable(self, previous: dict, wanted: list, auth: bool, hub_params: dict, hub_token: bool) -> bool:
        if self._hosts(previous) != wanted or bool(previous.get("auth")) != auth:
            return False
        previous_upstream = previous.get("upstream") or {}
        if previous_upstream.get("hub") != hub_params or bool(previous_upstream.get("token_file")) != hub_token:
            return False
        procs = [Tracked.from_json(v) for v in previous.get("procs", {}).values()]
        if not procs or not all(p.alive() for p in procs):
            return False
        return registry.ready(config.REGISTRY) and hub.ready(config.HUB) and all(
            hosts.docker_ping(HostFiles(self.paths, h.name).docker_sock) for h in wanted)

    def _refresh(self, image: str | None, upstream_rate: str | None = None) -> None:
        """Reuse: reconnect cut hosts, rewrite host trees (tests may have changed them), and
        shape the upstream link as asked (unshaped when no rate is given)."""
        self._shape(upstream_rate)
        for entry, host in zip(self.state["hosts"], self._hosts()):
            if entry.get("cut"):
                net.set_host_link(host.name, True)
                entry["cut"] = False
            profiles.install_tree(HostFiles(self.paths, host.name).root, profiles.get_profile(host.profile))
        self.save()
        if image:
            self.state["image"] = image
            self.state["digest"] = registry.push(image)
            self.save()
        self._write_inventory()

    def _leftovers(self) -> bool:
        return bool(net.bed_namespaces() or net.link_exists(config.BRIDGE) or net.tagged_rules()
                    or system.cgroup_pids() or self.paths.run.exists() or self.paths.state.exists())

    # ----------------------------------------------------------------------------------- down

    def down(self, quiet: bool = False) -> None:
        """Undo everything the bed did; safe to run twice and with nothing up."""
        started = time.monotonic()
        state = self.load() or {}
        say = (lambda *_: None) if quiet else self.out
        procs = {k: Tracked.from_json(v) for k, v in state.get("procs", {}).items()}
        # The daemons' own pidfiles cover a run that crashed before recording its pids.
        for pidfile in sorted(self.paths.run.glob("*/*.pid")) if self.paths.run.exists() else []:
            proc = system.read_pidfile(pidfile)
            if proc is not None and self._ours(proc.pid):
                procs.setdefault(f"{pidfile.parent.name}/{pidfile.stem}", proc)

        # Containers are killed through their own dockerd (a teardown need not wait out their
        # stop timeouts); then dockerd is stopped gracefully and takes its containerd with it.
        killed = hosts.kill_containers(sorted(self.paths.run.glob("*/docker.sock")) if self.paths.run.exists() else [])
        dockerds = [p for k, p in procs.items() if k.endswith("/dockerd")]
        forced = system.stop(dockerds, timeout=45)
        others = [p for k, p in procs.items() if not k.endswith("/dockerd")]
        forced += system.stop(others, timeout=5)
        leftover = system.kill_cgroups()
        for uts in self.paths.run.glob("*/uts") if self.paths.run.exists() else []:
            system.run(["umount", str(uts)], check=False)
        unmounted = system.unmount_under(self.paths.state, self.paths.run)
        rules = net.remove_rules()
        namespaces = net.bed_namespaces()
        net.remove_all()
        # another instance's bed (SIMFLEET_INSTANCE) still routes through ip_forward
        if state.get("ip_forward_prev") is not None and not net.other_bridges():
            net.write_ip_forward(state["ip_forward_prev"])
        registry.untrust_ca()
        _remove_created([Path(p) for p in state.get("created", [])])
        shutil.rmtree(self.paths.run, ignore_errors=True)
        # Docker data roots hold tens of thousands of files each; deleting them is bound by the
        # filesystem (online discard here), and deleting the hosts side by side halves the time.
        host_dirs = sorted((self.paths.state / "hosts").glob("*")) if self.paths.state.exists() else []
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda path: system.run(["rm", "-rf", str(path)], check=False, timeout=1800), host_dirs))
        shutil.rmtree(self.paths.state, ignore_errors=True)
        say(f"simfleet: down in {time.monotonic() - started:.1f}s: killed {killed} containers, stopped "
            f"{len(procs)} daemons ({len(forced)} needed SIGKILL), killed {leftover} leftover processes, "
            f"removed {len(namespaces)} namespaces, {rules} iptables rules")
        if unmounted:
            say(f"simfleet: unmounted {len(unmounted)} mounts dockerd leaves behind (netns handles, data roots)")

    def _ours(self, pid: int) -> bool:
        """Whether a pid read from a pidfile is a daemon the bed started, not a recycled pid:
        every bed daemon names the bed's run or state dir on its command line."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return str(self.paths.run) + "/" in cmdline or str(self.paths.state) + "/" in cmdline

    # --------------------------------------------------------------------------- other verbs

    def require_state(self) -> dict:
        state = self.load()
        if not state:
            raise BedError(f"no bed is up (no {self.paths.bed_file}); run `python3 -m simfleet up` first")
        self.state = state
        return state

    def status(self) -> dict:
        state = self.require_state()
        auth = state.get("auth")
        report = {"registry": {config.REGISTRY: registry.ready(config.REGISTRY)},
                  "image": {config.IMAGE: registry.has_image()}, "hosts": [],
                  "upstream": self.upstream_report()}
        if auth:
            report["registry"][config.REGISTRY_TLS] = registry.ready(config.REGISTRY_TLS, ca=Path(auth["ca_file"]))
        for entry, host in zip(state["hosts"], self._hosts()):
            files = HostFiles(self.paths, host.name)
            report["hosts"].append({
                "name": host.name, "address": host.address, "profile": host.profile,
                "ssh": hosts.ssh_ready(host.address), "docker": hosts.docker_ping(files.docker_sock),
                "link": "cut" if entry.get("cut") else "up",
            })
        return report

    def upstream_report(self, rate: str | None = None, change: bool = False) -> dict:
        """The upstream link: hub, rate, qdisc and byte counters; change=True sets the rate first."""
        state = self.require_state()
        if not state.get("upstream"):
            raise BedError("this bed has no upstream namespace (built by an older simfleet): run `up --fresh`")
        if change:
            if rate not in (None, "off"):
                upstream.parse_rate(rate)
            self._shape(rate)
        info = self.state["upstream"]
        return {"hub": {"endpoint": config.HUB_ENDPOINT, "up": hub.ready(config.HUB), "repo": info["hub"]["repo"],
                        "commit": info["commit"], "bytes": info["bytes"], "token": bool(info.get("token_file"))},
                "registry": config.REGISTRY, "rate": info.get("rate"), "qdisc": upstream.qdisc(),
                **upstream.counters()}

    def cut(self, name: str, restore: bool = False) -> None:
        self.require_state()
        for entry, host in zip(self.state["hosts"], self._hosts()):
            if host.name == name:
                net.set_host_link(name, restore)
                entry["cut"] = not restore
                self.save()
                return
        raise BedError(f"no host {name!r} in the bed; hosts: {', '.join(h.name for h in self._hosts())}")

    def write_inventory(self) -> str:
        self.require_state()
        return self._write_inventory()

    def _write_inventory(self) -> str:
        text = inventory.render(inventory.build(self.paths, self._hosts(), auth=self.state.get("auth"),
                                                upstream=self.state.get("upstream")))
        self.paths.inventory.write_text(text)
        return text

    def tag(self, new_tag: str, env: list, source: str | None) -> str:
        self.require_state()
        if not registry.ready(config.REGISTRY):
            raise BedError(f"the bed's registry at {config.REGISTRY} is not answering")
        # default: the engine image `up --image` published, else the registry's production tag
        return registry.publish_variant(new_tag, env, source or self.state.get("image") or config.IMAGE)


# ---------------------------------------------------------------------------------------------
# helpers

class _Steps:
    """Times each phase of `up`, so slow phases show in the output."""

    def __init__(self, out):
        self.out = out

    def __call__(self, title: str):
        return _Step(self.out, title)


class _Step:
    def __init__(self, out, title):
        self.out, self.title = out, title

    def __enter__(self):
        self.started = time.monotonic()

    def __exit__(self, kind, *_):
        if kind is None:
            self.out(f"  {self.title}: {time.monotonic() - self.started:.1f}s")


def _prepare_host(paths: Paths, host: Host, authorized: Path) -> None:
    files = HostFiles(paths, host.name)
    hosts.prepare(host, files, authorized)
    profiles.install_tree(files.root, profiles.get_profile(host.profile))


def hub_repo_params(given: dict | None) -> dict:
    """The hub's repo parameters, hub.DEFAULT_* where not given."""
    params = {"repo": hub.DEFAULT_REPO, "size": hub.DEFAULT_SIZE, "shards": hub.DEFAULT_SHARDS, "seed": 0}
    params.update({k: v for k, v in (given or {}).items() if v is not None})
    return params


def _bind(func, *args):
    return lambda: func(*args)


def _unless_dead(check, popen: subprocess.Popen, log: Path, name: str):
    def probe():
        if popen.poll() is not None:
            raise BedError(f"{name} exited with status {popen.returncode}:\n{system.tail(log, 15)}")
        return check()
    return probe


def _check_logins(paths: Paths, wanted: list) -> None:
    """ssh root@host with the generated key, all hosts at once."""
    running = {h.name: subprocess.Popen(hosts.ssh_command(paths, h.address, "echo", "ok"), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for h in wanted}
    failed = []
    for name, proc in running.items():
        out, err = proc.communicate(timeout=60)
        if out.strip() != "ok":
            failed.append(f"{name}: {err.strip()}")
    if failed:
        raise BedError("ssh login failed:\n" + "\n".join(failed))


def _remove_created(created: list) -> None:
    """Remove what the bed created outside its own dirs: files first, then directories that
    are empty by then, deepest first (someone else may have put files in them since)."""
    for path in created:
        if path.name == config.REGISTRY_TLS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() or path.is_symlink():
            path.unlink()
    for path in sorted(set(created), key=lambda p: -len(p.parts)):
        if path == RUN_NETNS and path.is_dir() and not any(path.iterdir()):
            # `ip netns add` bind-mounts /run/netns on itself; undo that once it is empty
            system.run(["umount", str(path)], check=False)
        if path.is_dir():
            _rmdir(path)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()  # only if empty: someone else may have put files there since
    except OSError:
        pass


def _require_root_and_tools(auth: bool) -> None:
    if os.geteuid() != 0:
        raise BedError("simfleet needs root (namespaces, iptables, mknod, dockerd)")
    missing = [t for t in REQUIRED_TOOLS + (("openssl",) if auth else ()) if not shutil.which(t)]
    if missing:
        raise BedError(f"missing tools: {', '.join(missing)} (Debian: iproute2 iptables util-linux docker.io "
                       "docker-registry openssh-server openssh-client openssl)")

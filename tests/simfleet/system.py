"""Process, cgroup and mount plumbing for the bed.

Every daemon the bed starts joins a cgroup under `simfleet/` in the cgroup2 hierarchy before
it execs, so its children (containerd, shims, ssh sessions) are found and stopped with it, and
a crashed run's leftovers are still found by `down`. Processes are otherwise identified by
(pid, start time) so a recycled pid is never signalled.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import config


class BedError(RuntimeError):
    """A failure with a message meant for the user."""


def run(argv: list, *, check: bool = True, input: str | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command, capturing output; on failure raise BedError quoting its stderr."""
    proc = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise BedError(f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{detail}")
    return proc


# ---------------------------------------------------------------------------------------------
# processes

def _stat(pid: int):
    """(state, start time) of a pid from /proc, or None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def start_time(pid: int) -> int | None:
    info = _stat(pid)
    return info[1] if info else None


@dataclass(frozen=True)
class Tracked:
    """A process the bed started, identified by pid and kernel start time."""

    pid: int
    start: int

    def alive(self) -> bool:
        info = _stat(self.pid)
        if info is None or info[1] != self.start:
            return False
        if info[0] == "Z":
            _reap(self.pid)
            return False
        return True

    def to_json(self) -> list:
        return [self.pid, self.start]

    @classmethod
    def from_json(cls, value) -> "Tracked":
        return cls(int(value[0]), int(value[1]))


def _reap(pid: int) -> None:
    # Only a process started by this very invocation is our child; others are reaped by init.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(procs: list, timeout: float) -> list:
    """SIGTERM the live processes, wait up to timeout, SIGKILL the rest. Returns the killed ones."""
    live = [p for p in procs if p.alive()]
    for proc in live:
        _signal(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [p for p in live if p.alive()]
    for proc in live:
        _signal(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(p.alive() for p in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    return live


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_pidfile(path: Path) -> Tracked | None:
    """A daemon's own pidfile, as a Tracked process if that pid is alive now."""
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    start = start_time(pid)
    return Tracked(pid, start) if start is not None else None


# ---------------------------------------------------------------------------------------------
# cgroups

def cgroup2_root() -> Path | None:
    """Where the cgroup2 hierarchy is mounted: / on unified systems, unified/ on hybrid ones."""
    for path in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (path / "cgroup.procs").exists() and (path / "cgroup.subtree_control").exists():
            return path
    return None


def cgroup_dir(*parts: str) -> Path | None:
    root = cgroup2_root()
    return root.joinpath(config.CGROUP_NAME, *parts) if root else None


def _cgroup_trees() -> list:
    """Every `simfleet` subtree in every mounted hierarchy (cgroup2 and the v1 controllers,
    where dockerd puts containers below its --cgroup-parent)."""
    base = Path("/sys/fs/cgroup")
    candidates = [base / config.CGROUP_NAME]
    if base.is_dir():
        candidates += [child / config.CGROUP_NAME for child in base.iterdir() if child.is_dir()]
    return [c for c in candidates if c.is_dir()]


def cgroup_pids() -> set:
    """Pids of every process still in a bed cgroup, in any hierarchy."""
    pids = set()
    for tree in _cgroup_trees():
        for procs in tree.rglob("cgroup.procs"):
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except OSError:
                pass
    return pids


def kill_cgroups(timeout: float = 10) -> int:
    """SIGKILL everything left in the bed's cgroups, then remove the cgroup directories.

    Returns how many processes had to be killed.
    """
    pids = cgroup_pids()
    tracked = [Tracked(pid, start) for pid in pids if (start := start_time(pid)) is not None]
    for tree in _cgroup_trees():
        kill_file = tree / "cgroup.kill"
        if kill_file.exists():       # cgroup2, kernel >= 5.14: atomic, catches forks in flight
            kill_file.write_text("1")
    for proc in tracked:
        _signal(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while cgroup_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    for tree in _cgroup_trees():
        # children first: a cgroup directory is removed with rmdir once it is empty
        for path in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir_quiet(path)
        _rmdir_quiet(tree)
    return len(tracked)


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def spawn(argv: list, *, log: Path, cgroup: Path | None) -> tuple:
    """Start a daemon detached from our session, inside `cgroup`, with output to `log`.

    The shell joins the cgroup and then execs the daemon, so the daemon and everything it
    forks are in the cgroup from their first instruction.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if cgroup is not None:
        cgroup.mkdir(parents=True, exist_ok=True)
        argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *argv]
    with open(log, "ab") as out:
        popen = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    start = start_time(popen.pid)
    return Tracked(popen.pid, start if start is not None else -1), popen


# ---------------------------------------------------------------------------------------------
# mounts and files

def mounts_under(*roots: Path) -> list:
    """Mount points below any of roots, deepest first (so they can be unmounted in order)."""
    found = []
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if any(point.startswith(p) or point + "/" == p for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def unmount_under(*roots: Path) -> list:
    points = mounts_under(*roots)
    for point in points:
        run(["umount", "-l", point], check=False)  # lazy: a busy leftover must not block down
    return points


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} missing)"


def wait_until(checks: dict, timeout: float, *, on_fail=None, interval: float = 0.1) -> None:
    """Poll named predicates until all are true; raise BedError naming the ones that are not.

    on_fail(name) may return extra text (a log tail) for the error. A predicate may raise
    BedError to fail at once (a daemon that died will never become ready).
    """
    pending = dict(checks)
    deadline = time.monotonic() + timeout
    while True:
        for name, check in list(pending.items()):
            if check():
                del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            details = [f"- {name}" + (f"\n{on_fail(name)}" if on_fail else "") for name in pending]
            raise BedError(f"not ready after {timeout:.0f}s:\n" + "\n".join(details))
        time.sleep(interval)

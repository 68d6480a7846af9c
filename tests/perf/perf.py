"""`make perf`: the collection's own rollout cost on the simulated fleet (issue 9).

For each N in PERF_HOSTS (default 1,4,16) on one bed of max(N) hosts (the N-host cases use
--limit gpu01..gpuN), measures:

  floor     the image pulled alone on all N hosts at once (docker -H ... pull per host) + L
  ours      site.yml stages preflight,container,packages,server from no container and no image
            (cold), then again on the converged fleet (warm, must be changed=0), with the
            repository's ansible.cfg; readiness latency from the stand-in's own ready_at_ms to
            the sglang_server result reaching the controller
  mitogen   the same cold and warm runs under strategy mitogen_linear (null + reason when the
            installed mitogen cannot run them)
  baseline  tests/perf/baseline_shell.yml (the recipe as shell tasks) with Ansible's defaults

and the cold start through the shaped upstream link (issue 17; docs/performance.md, "Cold start"),
with the link shaped to PERF_UPSTREAM_RATE while these run and unshaped for the others:

  cold-ours      site.yml stages preflight,container,model,packages,server from no image, no
                 model and no container on the hosts: the image and the model cross the link
                 once and spread host to host
  cold-floor     the local floor: every host docker-loads the image from an archive already on
                 the machine and copies the model from a local directory, all N at once
  cold-baseline  baseline_shell.yml with perf_baseline_download: every host pulls the image and
                 downloads the model for itself through the link

Each cold run records the bytes that crossed the upstream link (its veth's counters) against
one copy of the artifacts (the bytes the registry serves for one pull + the model's bytes).

Wall time is the ansible-playbook process's; controller CPU is its rusage including every
child it waited for (os.wait4): workers, modules' ssh clients. SSH ControlPersist masters are
closed before every run, so every run pays its own connection setup.

Writes perf/results.json (after every phase, so a failure keeps what was measured) and
perf/results.md; logs under perf/out/. Run as root from the repository root:

    PERF_HOSTS=1,4 PERF_LOAD_SECONDS=10 .venv/bin/python tests/perf/perf.py

Environment: PERF_HOSTS, PERF_LOAD_SECONDS (L, default 10), PERF_BASELINE_SLEEP (the
baseline's fixed sleep, default L + 5), PERF_SKIP (comma list of floor, ours, mitogen, baseline,
cold-ours, cold-floor, cold-baseline; `cold` stands for the last three), PERF_UPSTREAM_RATE (the
cold runs' link, tc units, default 64mbit), PERF_HUB_SIZE (the bed's model, default 512MiB),
PERF_KEEP_BED=1 (leave the bed up), PERF_BED_HOSTS (a bigger bed than max(N), to reuse one
that is up), SIMFLEET_INSTANCE (which bed; default the default bed).
"""

import concurrent.futures
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cold  # noqa: E402  (tests/perf/cold.py: the cold start's figures and targets)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERF_DIR = os.path.join(ROOT, "tests", "perf")
OUT = os.path.join(ROOT, "perf")
LOGS = os.path.join(OUT, "out")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
PY = os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
STAGES = ["preflight", "container", "packages", "server"]
COLUMNS = ("N", "floor s", "ours cold s", "ours warm s", "warm changed", "CPU/host cold s", "CPU/host warm s",
           "tasks/host", "ready median s", "ready max s", "mitogen cold s", "mitogen warm s", "mitogen CPU/host warm s",
           "baseline cold s", "baseline warm s", "baseline CPU/host cold s", "baseline CPU/host warm s")
CONTAINER = "Kimi-linear"
READY_RE = re.compile(r"\[standin\] ready_at_ms=(\d+)")
STARTED_RE = re.compile(r"\[standin\] started_at_ms=(\d+)")
# Rough seconds per phase on the 2-core development machine, for the first estimate only:
# a + b * N (pull and per-host overhead grow with N); replaced by measured figures as it runs.
# After each reset the disks must be idle (no sectors written or discarded) for SETTLE_IDLE_S
# before a timed run starts, polled every SETTLE_POLL_S, for at most SETTLE_MAX_S.
SETTLE_IDLE_S, SETTLE_POLL_S, SETTLE_MAX_S = 5.0, 1.0, 120.0
ESTIMATE = {"floor": (15, 15), "ours": (60, 25), "mitogen": (60, 25), "baseline": (75, 28), "reset": (5, 4),
            "cold-ours": (90, 20), "cold-floor": (40, 15), "cold-baseline": (30, 80)}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def base_env():
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.path.join(ROOT, "tests") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(ROOT, ".build")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(argv, check=True, capture=True, env=None, timeout=None):
    proc = subprocess.run(argv, cwd=ROOT, env=env or base_env(), text=True, timeout=timeout,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(argv[:4]), proc.returncode,
                                                        (proc.stderr or proc.stdout or "").strip()[-600:]))
    return proc


def simfleet(*args, capture=True):
    return run([PY, "-m", "simfleet"] + list(args), capture=capture)


class Bed:
    """The simulated fleet's hosts as the inventory describes them."""

    def __init__(self, inventory_path):
        self.inventory = inventory_path
        with open(inventory_path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        group = data["all"]["children"]["gpu_hosts"]
        self.hosts = group["hosts"]
        self.group_vars = group.get("vars", {})
        self.image = self.group_vars["sglang_image"]
        self.names = sorted(self.hosts)
        self.settle_s = []

    def sock(self, host):
        return self.hosts[host]["sglang_docker_host"]

    def docker(self, host, *args, check=True, timeout=600):
        return run(["docker", "-H", self.sock(host)] + list(args), check=check, timeout=timeout)

    def each(self, hosts, func):
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            return list(pool.map(func, hosts))

    def reset(self, hosts):
        """No container and no image on the hosts: a cold converge starts from nothing."""
        def one(host):
            self.docker(host, "rm", "-f", CONTAINER, check=False)
            self.docker(host, "rmi", "-f", self.image, check=False)
            if self.docker(host, "image", "inspect", self.image, check=False).returncode == 0:
                raise RuntimeError("%s: image %s still present after rmi" % (host, self.image))
        self.each(hosts, one)

    def reset_cold(self, hosts):
        """reset, and no staged model, no image archive: what a cold start through the link finds.
        The hosts' directories are the bed's own (one filesystem), so they are removed from here."""
        self.reset(hosts)
        for host in hosts:
            for path in (self.model_dir(host), self.hosts[host]["sglang_container_staging_dir"]):
                shutil.rmtree(path, ignore_errors=True)

    def model_dir(self, host):
        """sglang_model_dir's default on this host (the model role's, under sglang_cache_dir)."""
        return os.path.join(self.hosts[host]["sglang_cache_dir"], "models")

    def link(self, rate=None):
        """The upstream link's report (`simfleet upstream`); rate first sets its shaping."""
        return json.loads(simfleet("upstream", *(["--rate", rate] if rate else [])).stdout)

    def settle(self):
        """After a reset: flush, then wait until the disks have been idle for SETTLE_IDLE_S.

        Removing the image from N hosts deletes N x ~1.5 GB of layers; on a disk mounted with
        online discard the discards (and the writeback) go on after `docker rmi` returns, and a
        pull started at once competes with them. Measured on 4 hosts: a pull right after the
        reset took 78 s, the same pull after a flush and 25 s of waiting 45 s, whether by the
        docker CLI or by docker_image_pull. So every timed cold run starts on an idle disk, and
        the time waited is reported (settle_s), never counted.
        """
        start = time.monotonic()
        os.sync()
        last, idle_since = disk_activity(), time.monotonic()
        while time.monotonic() - start < SETTLE_MAX_S:
            time.sleep(SETTLE_POLL_S)
            now = disk_activity()
            if now != last:
                last, idle_since = now, time.monotonic()
            elif time.monotonic() - idle_since >= SETTLE_IDLE_S:
                break
        waited = time.monotonic() - start
        self.settle_s.append(round(waited, 1))
        return waited

    def close_ssh_masters(self, hosts):
        """Close these hosts' ControlPersist masters, so that every run pays its own connection
        setup. ssh computes each control path (%C) itself from the same options Ansible uses;
        masters of other hosts, which another run may be using, are left alone."""
        def one(host):
            hv = self.hosts[host]
            target = "%s@%s" % (hv.get("ansible_user", "root"), hv["ansible_host"])
            paths = {"%s/%%C" % directory for directory in (hv.get("ansible_control_path_dir"),
                                                            os.path.expanduser("~/.ansible/cp")) if directory}
            for path in paths:
                run(["ssh", "-o", "ControlPath=" + path, "-O", "exit", target], check=False, timeout=30)
        self.each(hosts, one)

    def pull(self, hosts):
        start = time.monotonic()
        self.each(hosts, lambda host: self.docker(host, "pull", "-q", self.image, timeout=1800))
        return time.monotonic() - start

    def ready_at(self, host, log_path):
        """The stand-in's own (started, ready) timestamps (epoch s) from the server log."""
        proc = self.docker(host, "exec", CONTAINER, "cat", log_path, check=False)
        ready, started = READY_RE.findall(proc.stdout or ""), STARTED_RE.findall(proc.stdout or "")
        return (int(started[-1]) / 1000.0 if started else None, int(ready[-1]) / 1000.0 if ready else None)


def disk_activity():
    """Sectors written and discarded so far on every block device (/proc/diskstats)."""
    total = 0
    with open("/proc/diskstats") as stats:
        for line in stats:
            fields = line.split()
            if len(fields) >= 10 and not fields[2].startswith(("loop", "ram")):
                total += int(fields[9]) + (int(fields[16]) if len(fields) >= 17 else 0)
    return total


def playbook(label, argv, env_extra, log_path):
    """Runs ansible-playbook as a child; returns wall, CPU (rusage of its tree), rc, stats."""
    env = base_env()
    env.update(env_extra)
    stats_file = log_path[:-4] + ".stats.json"
    env["PERF_STATS_FILE"] = stats_file
    env["ANSIBLE_CALLBACK_PLUGINS"] = os.path.join(PERF_DIR, "callback_plugins")
    if os.path.exists(stats_file):
        os.unlink(stats_file)
    with open(log_path, "w", encoding="utf-8") as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=env.pop("PERF_CWD", ROOT), env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        status, usage = os.wait4(proc.pid, 0)[1:]
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    stats, tasks = {}, []
    try:
        with open(stats_file, encoding="utf-8") as handle:
            data = json.load(handle)
        stats, tasks = data["hosts"], data.get("tasks", [])
    except (OSError, ValueError) as exc:
        log("  %s: no per-host figures from the perf_stats callback (%s); see the log" % (label, exc))
    cpu = usage.ru_utime + usage.ru_stime
    log("  %-16s %6.1fs wall, %6.1fs controller CPU, exit %d (%s)"
        % (label, wall, cpu, proc.returncode, os.path.relpath(log_path, ROOT)))
    return {"wall": wall, "cpu": cpu, "rc": proc.returncode, "stats": stats, "tasks": tasks}


def slowest(tasks, count=6):
    """The tasks that took longest (first start to last host result), for docs/performance.md."""
    return [[t["name"], t["seconds"]] for t in sorted(tasks, key=lambda t: -t["seconds"])[:count]]


def pull_seconds(tasks):
    """Seconds of the cold run's image pull task (ours: 'Pull the image (a few hosts at a time)',
    the baseline: 'Pull the image'); None when the run had no pull task."""
    pulls = [t["seconds"] for t in tasks if re.search(r"(^|: )Pull the image\b", t["name"])]
    return max(pulls) if pulls else None


def wall_and_cpu(cold, warm, n):
    """The figures every configuration reports: wall time, controller CPU per host, and the cold
    run's pull and the rest. The bed's pull time swings with what ran before it (docs/performance.md,
    "The pull"), so cold_without_pull_s is the comparison that run order does not bias."""
    pull = pull_seconds(cold.get("tasks") or [])
    return {"cold_s": round(cold["wall"], 2), "warm_s": round(warm["wall"], 2),
            "cpu_per_host_cold_s": round(cold["cpu"] / n, 3), "cpu_per_host_warm_s": round(warm["cpu"] / n, 3),
            "pull_s": None if pull is None else round(pull, 2),
            "cold_without_pull_s": None if pull is None else round(cold["wall"] - pull, 2)}


def changed_total(stats, hosts):
    return sum(stats.get(h, {}).get("recap", {}).get("changed", 0) for h in hosts)


def failed_hosts(stats, hosts):
    bad = []
    for host in hosts:
        recap = stats.get(host, {}).get("recap")
        if not recap or recap.get("failures") or recap.get("unreachable"):
            bad.append(host)
    return bad


class Perf:
    def __init__(self):
        self.sizes = [int(x) for x in os.environ.get("PERF_HOSTS", "1,4,16").split(",") if x.strip()]
        self.load = float(os.environ.get("PERF_LOAD_SECONDS", "10"))
        self.baseline_sleep = float(os.environ.get("PERF_BASELINE_SLEEP", str(self.load + 5)))
        self.skip = cold.skipped_phases(x.strip() for x in os.environ.get("PERF_SKIP", "").split(",") if x.strip())
        self.rate = os.environ.get("PERF_UPSTREAM_RATE", cold.DEFAULT_RATE)
        self.hub_size = os.environ.get("PERF_HUB_SIZE", cold.DEFAULT_HUB_SIZE)
        self.cold_phases = [phase for phase in cold.PHASES if phase not in self.skip]
        self.floor_dir = None
        self.results = {"machine": {}, "runs": [], "targets": [], "cold_copy": {}}
        self.engine_started = False
        self.bed_up = False
        self.bed = None
        self.mitogen = self.find_mitogen()
        self.results_dir = tempfile.mkdtemp(prefix="bench-results-")

    # ------------------------------------------------------------------ setup and teardown
    def find_mitogen(self):
        proc = run([PY, "-c", "import ansible_mitogen, mitogen, os; print(os.path.dirname(ansible_mitogen.__file__));"
                    "print('.'.join(map(str, mitogen.__version__)))"], check=False)
        if proc.returncode != 0:
            return {"available": False, "reason": "mitogen is not installed in the venv (pip install -r requirements.txt)"}
        path, version = proc.stdout.split()
        return {"available": True, "version": version, "strategy_plugins": os.path.join(path, "plugins", "strategy")}

    def machine(self):
        cpu_model = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpu_model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
        except OSError:
            pass
        ansible = run([os.path.join(VENV_BIN, "ansible"), "--version"], check=False).stdout.splitlines()[:1]
        return {"cpus": os.cpu_count(), "cpu_model": cpu_model, "kernel": platform.release(),
                "python": platform.python_version(), "ansible": ansible[0] if ansible else "",
                "mitogen": self.mitogen.get("version"), "load_average_at_start": list(os.getloadavg()),
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_seconds": self.load, "baseline_sleep_seconds": self.baseline_sleep,
                "bed_instance": os.environ.get("SIMFLEET_INSTANCE", "0"), "hosts": self.sizes,
                "upstream_rate": self.rate if self.cold_phases else None, "hub_size": self.hub_size,
                "image_size_mb": None}

    def setup(self):
        engine = os.path.join(ROOT, "tests", "scripts", "engine.sh")
        if run([engine, "status"], check=False).returncode != 0:
            log("starting the build engine (stopped again at the end)")
            run([engine, "start"])
            self.engine_started = True
        docker_host = run([engine, "host"]).stdout.strip()
        env = base_env()
        env["DOCKER_HOST"] = docker_host
        image = run([PY, os.path.join(ROOT, "tests", "standin", "build.py"), "--docker-host", docker_host],
                    env=env).stdout.strip().splitlines()[-1]
        hosts = max(self.sizes + [int(os.environ.get("PERF_BED_HOSTS", "0"))])
        log("bringing up a bed of %d hosts with %s (SIMFLEET_INSTANCE=%s)"
            % (hosts, image, os.environ.get("SIMFLEET_INSTANCE", "0")))
        start = time.monotonic()
        self.bed_up = True
        simfleet("up", "--hosts", str(hosts), "--profile", "mi300x-8gpu", "--image", image,
                 "--hub-size", self.hub_size, capture=False)
        log("bed up in %.0fs" % (time.monotonic() - start))
        self.bed = Bed(simfleet("inventory", "--path").stdout.strip())
        self.results["machine"]["bed_up_s"] = round(time.monotonic() - start, 1)
        if self.cold_phases:
            image_bytes = cold.registry_pull_bytes(self.bed.image)
            model_bytes = int(self.bed.group_vars["simfleet_hub_bytes"])
            copy = image_bytes + model_bytes
            self.results["cold_copy"] = {
                "rate": self.rate, "image_bytes": image_bytes, "model_bytes": model_bytes, "bytes": copy,
                "seconds_at_rate": round(copy * 8 / cold.rate_bits(self.rate), 1)}
            log("one copy of the artifacts: %.1f MB (image %.1f MB as served, model %.1f MB), %.0f s at %s"
                % (copy / 1e6, image_bytes / 1e6, model_bytes / 1e6, copy * 8 / cold.rate_bits(self.rate), self.rate))

    def teardown(self):
        if self.bed_up and os.environ.get("PERF_KEEP_BED") != "1":
            start = time.monotonic()
            log("tearing the bed down")
            proc = simfleet("down")
            if proc.returncode != 0:
                log("simfleet down failed: %s" % proc.stderr)
            log("bed down in %.0fs" % (time.monotonic() - start))
        if self.engine_started:
            run([os.path.join(ROOT, "tests", "scripts", "engine.sh"), "stop"], check=False)
        shutil.rmtree(self.results_dir, ignore_errors=True)
        if self.floor_dir:
            shutil.rmtree(self.floor_dir, ignore_errors=True)

    # ------------------------------------------------------------------ the runs
    def ours_argv(self, hosts, extra=None):
        return [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.bed.inventory,
                "-i", os.path.join(PERF_DIR, "inventory.yml"), os.path.join(ROOT, "playbooks", "site.yml"),
                "--limit", ",".join(hosts), "-e", json.dumps(extra or {"sglang_stages": STAGES}),
                "-e", "perf_load_seconds=%s" % self.load, "-e", "sglang_results_dir=%s" % self.results_dir]

    def baseline_argv(self, hosts, download=False):
        return [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.bed.inventory,
                os.path.join(PERF_DIR, "baseline_shell.yml"), "--limit", ",".join(hosts),
                "-e", "perf_load_seconds=%s" % self.load, "-e", "perf_baseline_sleep=%s" % self.baseline_sleep,
                "-e", json.dumps({"perf_baseline_download": download})]

    def ours_env(self):
        # the repository's ansible.cfg (fleet-scale settings), plus the counting callback
        return {"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.timer,ansible.posix.profile_tasks,perf_stats"}

    def mitogen_env(self):
        env = self.ours_env()
        env["ANSIBLE_STRATEGY_PLUGINS"] = self.mitogen["strategy_plugins"]
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
        # Mitogen decides on host keys from host_key_checking alone; it does not see the
        # bed inventory's `-o StrictHostKeyChecking=no` in ansible_ssh_common_args.
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
        return env

    def baseline_env(self):
        # Ansible's defaults: a config file with nothing in it, so the repository's is not read
        return {"ANSIBLE_CONFIG": os.path.join(PERF_DIR, "default.cfg"), "ANSIBLE_CALLBACKS_ENABLED": "perf_stats"}

    def cold_warm(self, n, hosts, label, argv, env):
        """Reset, cold run, warm run. Returns (cold, warm) playbook records."""
        self.bed.reset(hosts)
        self.bed.settle()
        self.bed.close_ssh_masters(hosts)
        cold = playbook("%s cold" % label, argv, env, os.path.join(LOGS, "n%d-%s-cold.log" % (n, label)))
        bad = failed_hosts(cold["stats"], hosts)
        if cold["rc"] != 0 or bad:
            raise RuntimeError("%s cold converge failed (exit %d, hosts %s); see perf/out/n%d-%s-cold.log"
                               % (label, cold["rc"], ",".join(bad) or "-", n, label))
        self.bed.close_ssh_masters(hosts)
        warm = playbook("%s warm" % label, argv, env, os.path.join(LOGS, "n%d-%s-warm.log" % (n, label)))
        bad = failed_hosts(warm["stats"], hosts)
        if warm["rc"] != 0 or bad:
            raise RuntimeError("%s warm re-run failed (exit %d, hosts %s); see perf/out/n%d-%s-warm.log"
                               % (label, warm["rc"], ",".join(bad) or "-", n, label))
        return cold, warm

    def readiness(self, hosts, stats):
        """Per host: ready -> module result on the controller, and the stand-in's own start -> ready."""
        latencies, starts = {}, {}
        for host in hosts:
            server = stats.get(host, {}).get("server")
            if not server or not server.get("log_path"):
                continue
            started, ready = self.bed.ready_at(host, server["log_path"])
            if ready is not None:
                latencies[host] = round(server["returned_at"] - ready, 3)
                if started is not None:
                    starts[host] = round(ready - started, 3)
        return latencies, starts

    def cold_run(self, n, hosts, label, argv, env):
        """One cold run through the shaped link: its wall time, the bytes that crossed the link, its
        slowest tasks. Raises when a host failed."""
        self.bed.reset_cold(hosts)
        self.bed.settle()
        self.bed.close_ssh_masters(hosts)
        before = self.bed.link()["tx_bytes"]
        load = os.getloadavg()[0]
        run_ = playbook(label, argv, env, os.path.join(LOGS, "n%d-%s.log" % (n, label)))
        sent = self.bed.link()["tx_bytes"] - before
        bad = failed_hosts(run_["stats"], hosts)
        if run_["rc"] != 0 or bad:
            raise RuntimeError("%s failed (exit %d, hosts %s); see perf/out/n%d-%s.log"
                               % (label, run_["rc"], ",".join(bad) or "-", n, label))
        copy = self.results["cold_copy"]["bytes"]
        log("  %-16s %.1f MB crossed the upstream link = %.2f copies" % (label, sent / 1e6, sent / copy))
        return {"s": round(run_["wall"], 2), "upstream_bytes": sent, "copies": round(sent / copy, 3),
                "cpu_per_host_s": round(run_["cpu"] / n, 3), "load_average_at_start": round(load, 2),
                "slowest_tasks": slowest(run_["tasks"], 8)}

    def floor_sources(self):
        """The local floor's files, made once and not timed: the image as a `docker save` archive
        (from gpu01, pulled there first if needed) and the model's files, in a directory of the
        machine's disk that every simulated host can read."""
        if self.floor_dir:
            return self.floor_dir
        directory = tempfile.mkdtemp(prefix="perf-cold-floor-", dir="/var/tmp")
        host = self.bed.names[0]
        if self.bed.docker(host, "image", "inspect", self.bed.image, check=False).returncode != 0:
            self.bed.docker(host, "pull", "-q", self.bed.image, timeout=1800)
        self.bed.docker(host, "save", "-o", os.path.join(directory, "image.tar"), self.bed.image, timeout=1800)
        hub_repo = run([PY, "-c", "from simfleet import config; print(config.Paths.from_env().hub_repo)"]).stdout.strip()
        shutil.copytree(hub_repo, os.path.join(directory, "model"), ignore=shutil.ignore_patterns(".simfleet-hub.json"))
        self.floor_dir = directory
        return directory

    def cold_floor(self, hosts):
        """Every host at once: docker load from the archive, then copy the model into its model
        directory. Returns the wall time and each step's slowest host."""
        sources = self.floor_sources()
        repo = self.bed.group_vars["simfleet_hub_repo"]
        self.bed.reset_cold(hosts)
        self.bed.settle()

        def one(host):
            start = time.monotonic()
            self.bed.docker(host, "load", "-q", "-i", os.path.join(sources, "image.tar"), timeout=1800)
            loaded = time.monotonic()
            target = os.path.join(self.bed.model_dir(host), repo)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            run(["cp", "-a", os.path.join(sources, "model"), target], timeout=1800)
            return loaded - start, time.monotonic() - loaded

        start = time.monotonic()
        steps = self.bed.each(hosts, one)
        wall = time.monotonic() - start
        log("  %-16s %6.1fs wall (slowest host: load %.1fs, model copy %.1fs)"
            % ("cold-floor", wall, max(s[0] for s in steps), max(s[1] for s in steps)))
        return {"s": round(wall, 2), "load_max_s": round(max(s[0] for s in steps), 2),
                "copy_max_s": round(max(s[1] for s in steps), 2), "load_average_at_start": round(os.getloadavg()[0], 2)}

    def measure_cold(self, n, hosts, entry):
        """The cold start at N through the link shaped to PERF_UPSTREAM_RATE (unshaped afterwards)."""
        figures = entry["cold"] = {}
        self.bed.link(self.rate)
        try:
            for phase in self.cold_phases:
                try:
                    if phase == "cold-ours":
                        extra = {"sglang_stages": cold.COLD_STAGES, "sglang_model_source": "hub",
                                 "sglang_model_hub_endpoint": "{{ simfleet_hub_endpoint }}"}
                        figures["ours"] = self.cold_run(n, hosts, phase, self.ours_argv(hosts, extra), self.ours_env())
                    elif phase == "cold-floor":
                        figures["floor"] = self.cold_floor(hosts)
                    else:
                        figures["baseline"] = self.cold_run(n, hosts, phase, self.baseline_argv(hosts, download=True),
                                                            self.baseline_env())
                except Exception as exc:  # pylint: disable=broad-except
                    entry["errors"][phase] = str(exc)
                    log("  %s FAILED: %s" % (phase, exc))
                self.save()
        finally:
            self.bed.link("off")

    def measure(self, n):
        hosts = self.bed.names[:n]
        entry = {"n": n, "ours": None, "mitogen": None, "baseline": None, "floor_s": None, "errors": {}}
        self.results["runs"].append(entry)
        if self.cold_phases:
            self.measure_cold(n, hosts, entry)

        if "floor" not in self.skip:
            try:
                self.bed.reset(hosts)
                self.bed.settle()
                pull = self.bed.pull(hosts)
                entry["pull_alone_s"] = round(pull, 2)
                if self.results["machine"].get("image_size_mb") is None:
                    size = self.bed.docker(hosts[0], "image", "inspect", "-f", "{{.Size}}", self.bed.image).stdout
                    self.results["machine"]["image_size_mb"] = round(int(size) / 1e6)
                entry["floor_s"] = round(self.load + pull, 2)
                log("  floor            %6.1fs = L %.0fs + pull alone on %d hosts %.1fs"
                    % (self.load + pull, self.load, n, pull))
            except Exception as exc:  # pylint: disable=broad-except
                entry["errors"]["floor"] = str(exc)
                log("  floor FAILED: %s" % exc)
            self.save()

        if "ours" not in self.skip:
            try:
                cold, warm = self.cold_warm(n, hosts, "ours", self.ours_argv(hosts), self.ours_env())
                latencies, starts = self.readiness(hosts, cold["stats"])
                values = sorted(latencies.values())
                entry["ours"] = {
                    **wall_and_cpu(cold, warm, n),
                    "tasks_per_host": round(statistics.mean(cold["stats"][h]["tasks"] for h in hosts), 1),
                    "tasks_per_host_warm": round(statistics.mean(warm["stats"][h]["tasks"] for h in hosts), 1),
                    "ready_latency_median_s": round(statistics.median(values), 3) if values else None,
                    "ready_latency_max_s": round(max(values), 3) if values else None,
                    "ready_latency_s": latencies,
                    # the stand-in's own start to ready (L plus its process start-up), per host
                    "server_start_to_ready_s": starts,
                    "slowest_tasks_cold": slowest(cold["tasks"]), "slowest_tasks_warm": slowest(warm["tasks"]),
                    "warm_changed": changed_total(warm["stats"], hosts),
                }
                if len(values) != n:
                    entry["errors"]["readiness"] = "ready timestamp found on %d of %d hosts" % (len(values), n)
                log("  ours: %s tasks/host, readiness median %s s max %s s, warm changed=%d"
                    % (entry["ours"]["tasks_per_host"], entry["ours"]["ready_latency_median_s"],
                       entry["ours"]["ready_latency_max_s"], entry["ours"]["warm_changed"]))
            except Exception as exc:  # pylint: disable=broad-except
                entry["errors"]["ours"] = str(exc)
                log("  ours FAILED: %s" % exc)
            self.save()

        if "mitogen" not in self.skip:
            if not self.mitogen["available"]:
                entry["mitogen"] = {"cold_s": None, "warm_s": None, "cpu_per_host_warm_s": None,
                                    "reason": self.mitogen["reason"]}
            else:
                try:
                    cold, warm = self.cold_warm(n, hosts, "mitogen", self.ours_argv(hosts), self.mitogen_env())
                    entry["mitogen"] = {**wall_and_cpu(cold, warm, n),
                                        "warm_changed": changed_total(warm["stats"], hosts),
                                        "version": self.mitogen["version"]}
                except Exception as exc:  # pylint: disable=broad-except
                    entry["mitogen"] = {"cold_s": None, "warm_s": None, "cpu_per_host_warm_s": None,
                                        "reason": "mitogen %s: %s" % (self.mitogen["version"], exc)}
                    entry["errors"]["mitogen"] = str(exc)
                    log("  MITOGEN FAILED: %s" % exc)
            self.save()

        if "baseline" not in self.skip:
            try:
                cold, warm = self.cold_warm(n, hosts, "baseline", self.baseline_argv(hosts), self.baseline_env())
                entry["baseline"] = {**wall_and_cpu(cold, warm, n),
                                     "tasks_per_host": round(statistics.mean(cold["stats"][h]["tasks"] for h in hosts), 1),
                                     "slowest_tasks_cold": slowest(cold["tasks"])}
            except Exception as exc:  # pylint: disable=broad-except
                entry["errors"]["baseline"] = str(exc)
                log("  baseline FAILED: %s" % exc)
            self.save()
        # seconds waited for an idle disk before the floor's pull and each cold run (not counted)
        entry["settle_s"] = list(self.bed.settle_s)
        self.bed.settle_s.clear()
        if not entry["errors"]:
            del entry["errors"]

    # ------------------------------------------------------------------ targets and output
    def targets(self):
        runs = {r["n"]: r for r in self.results["runs"]}
        big = runs.get(16) or (runs[max(runs)] if runs else None)
        out = []

        def add(name, ok, detail):
            out.append({"target": name, "status": "n/a" if ok is None else ("pass" if ok else "FAIL"), "detail": detail})

        def get(run_, side, key):
            return (run_ or {}).get(side) and run_[side].get(key)

        n_big = big["n"] if big else None
        cold, warm = get(big, "ours", "cold_s"), get(big, "ours", "warm_s")
        add("warm re-run at N=%s under 25%% of our cold converge" % n_big,
            None if not (cold and warm) else warm < 0.25 * cold,
            "warm %s s / cold %s s = %s" % (warm, cold, "%.0f%%" % (100 * warm / cold) if cold and warm else "?"))
        medians = [get(r, "ours", "ready_latency_median_s") for r in self.results["runs"]]
        medians = [m for m in medians if m is not None]
        add("readiness latency median under 0.5 s", None if not medians else max(medians) < 0.5,
            "medians per N: %s s" % ", ".join("%.3f" % m for m in medians))
        floor = big and big.get("floor_s")
        add("our cold converge at N=%s within 1.5x of the floor" % n_big, None if not (cold and floor) else cold <= 1.5 * floor,
            "cold %s s / floor %s s = %s" % (cold, floor, "%.2fx" % (cold / floor) if cold and floor else "?"))
        pairs = [(r["n"], get(r, "ours", "cold_s"), get(r, "baseline", "cold_s"), get(r, "ours", "warm_s"),
                  get(r, "baseline", "warm_s")) for r in self.results["runs"]]
        complete = [p for p in pairs if None not in p]
        add("ours faster than the baseline at every N (cold and warm)",
            None if not complete else (len(complete) == len(pairs)
                                       and all(oc < bc and ow < bw for _n, oc, bc, ow, bw in complete)),
            "; ".join("N=%s cold %s vs %s, warm %s vs %s" % p for p in pairs))
        ours_cpu, base_cpu = get(big, "ours", "cpu_per_host_warm_s"), get(big, "baseline", "cpu_per_host_warm_s")
        add("controller CPU per host, warm re-run at N=%s, at most 60%% of the baseline's" % n_big,
            None if not (ours_cpu and base_cpu) else ours_cpu <= 0.6 * base_cpu,
            "ours %s s vs baseline %s s = %s" % (ours_cpu, base_cpu,
                                                 "%.0f%%" % (100 * ours_cpu / base_cpu) if ours_cpu and base_cpu else "?"))
        if n_big != 16:
            for item in out:
                item["detail"] += " (N=16 was not measured in this run)"
        return out

    def markdown(self):
        def fmt(value, unit=""):
            return "–" if value is None else ("%s%s" % (value, unit))

        m = self.results["machine"]
        lines = ["# make perf results", "",
                 "%s, %s CPUs (%s), %s; L = %ss, baseline fixed sleep %ss; started %s, load average %s." % (
                     m.get("ansible"), m.get("cpus"), m.get("cpu_model"), "mitogen " + str(m.get("mitogen")),
                     m.get("load_seconds"), m.get("baseline_sleep_seconds"), m.get("started_utc"),
                     ", ".join("%.2f" % x for x in m.get("load_average_at_start", []))), "",
                 "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in self.results["runs"]:
            o, g, b = r.get("ours") or {}, r.get("mitogen") or {}, r.get("baseline") or {}
            lines.append("| %s |" % " | ".join(fmt(x) for x in (
                r["n"], r.get("floor_s"), o.get("cold_s"), o.get("warm_s"), o.get("warm_changed"),
                o.get("cpu_per_host_cold_s"), o.get("cpu_per_host_warm_s"), o.get("tasks_per_host"),
                o.get("ready_latency_median_s"), o.get("ready_latency_max_s"), g.get("cold_s"), g.get("warm_s"),
                g.get("cpu_per_host_warm_s"), b.get("cold_s"), b.get("warm_s"), b.get("cpu_per_host_cold_s"),
                b.get("cpu_per_host_warm_s"))))
        lines += ["", "The pull inside each cold run and the rest of it (the bed's pull time depends on what ran "
                  "before it, so the rest is the comparison run order does not bias):", "",
                  "| N | pull alone s | ours pull s | ours cold without pull s | mitogen pull s "
                  "| mitogen cold without pull s | baseline pull s | baseline cold without pull s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in self.results["runs"]:
            o, g, b = r.get("ours") or {}, r.get("mitogen") or {}, r.get("baseline") or {}
            lines.append("| %s |" % " | ".join(fmt(x) for x in (
                r["n"], r.get("pull_alone_s"), o.get("pull_s"), o.get("cold_without_pull_s"), g.get("pull_s"),
                g.get("cold_without_pull_s"), b.get("pull_s"), b.get("cold_without_pull_s"))))
        if self.cold_phases:
            lines += [""] + cold.markdown(self.results["runs"], self.results["cold_copy"])
        lines += ["", "| target | status | measured |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (t["target"], t["status"], t["detail"]) for t in self.results.get("targets", [])]
        errors = [(r["n"], k, v) for r in self.results["runs"] for k, v in (r.get("errors") or {}).items()]
        reasons = [(r["n"], r["mitogen"]["reason"]) for r in self.results["runs"]
                   if r.get("mitogen") and r["mitogen"].get("reason")]
        if errors or reasons:
            lines += ["", "Not measured:"]
            lines += ["- N=%s %s: %s" % e for e in errors]
            lines += ["- N=%s mitogen: %s" % e for e in reasons if not any(x[0] == e[0] and x[1] == "mitogen" for x in errors)]
        return "\n".join(lines) + "\n"

    def save(self):
        os.makedirs(OUT, exist_ok=True)
        self.results["targets"] = self.targets()
        if self.cold_phases:
            self.results["targets"] += cold.cold_targets(self.results["runs"], self.results["cold_copy"])
        tmp = os.path.join(OUT, ".results.json.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.results, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, os.path.join(OUT, "results.json"))
        with open(os.path.join(OUT, "results.md"), "w", encoding="utf-8") as handle:
            handle.write(self.markdown())

    def estimate(self, sizes):
        return sum(a + b * n for n in sizes for phase, (a, b) in ESTIMATE.items()
                   if phase == "reset" or phase not in self.skip)

    def main(self):
        if os.geteuid() != 0:
            sys.exit("bench: run as root (the simulated fleet needs network namespaces and dockerds)")
        os.makedirs(LOGS, exist_ok=True)
        started = time.monotonic()
        self.results["machine"] = self.machine()
        log("N = %s, L = %ss; mitogen: %s"
            % (",".join(map(str, self.sizes)), self.load, self.mitogen.get("version") or self.mitogen.get("reason")))
        log("estimated runtime on a quiet 2-core machine: about %.0f min, plus about %.0f min to bring the bed "
            "up and down" % (self.estimate(self.sizes) / 60, max(self.sizes) * 40 / 60))
        try:
            self.setup()
            for index, n in enumerate(self.sizes):
                phase_start = time.monotonic()
                log("N=%d (%d/%d): estimated %.0f min for this N" % (n, index + 1, len(self.sizes), self.estimate([n]) / 60))
                self.measure(n)
                took = time.monotonic() - phase_start
                rest = self.sizes[index + 1:]
                if rest:
                    scale = took / self.estimate([n])
                    log("N=%d took %.0fs; remaining about %.0f min" % (n, took, scale * self.estimate(rest) / 60))
        except Exception as exc:  # pylint: disable=broad-except
            self.results.setdefault("errors", []).append(str(exc))
            log("FAILED: %s" % exc)
        finally:
            self.results["machine"]["total_s"] = round(time.monotonic() - started, 1)
            self.save()
            self.teardown()
        print()
        print(self.markdown())
        log("wrote perf/results.json and perf/results.md in %.0f min" % ((time.monotonic() - started) / 60))
        failed = [r for r in self.results["runs"] if r.get("errors")] or self.results.get("errors")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(Perf().main())

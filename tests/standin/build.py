"""Build the test bed's stand-in SGLang image without Docker Hub (stdlib only, run as root).

    python3 tests/standin/build.py [--docker-host URL] [--cache DIR] [--force [--no-cache]]
                                   [--update-lock] [--tag REF]...

Three stages, the first two cached as tarballs under <cache>/standin/:
  1. base: `debootstrap --variant=minbase` Debian bookworm plus python3, python3-venv,
     ca-certificates and procps, with apt lists, docs and man pages removed;
  2. deps: a venv at /opt/venv holding the real `sglang.bench_serving` client
     (sglang 0.5.7 installed with --no-deps plus the client's own imports, pinned by
     requirements.lock), installed from PyPI in a chroot with the host CA bundle;
  3. image: the stand-in server, its tokenizer and ShareGPT data, and a
     `sglang/launch_server.py` shim so the production command starts the stand-in;
     then `docker import` with the image's ENV, WORKDIR and labels.

The tag is `sglang-standin:<hash>`, a hash of every build input (this file, the
server code, the asset generator, the lock file), so an unchanged build is a no-op.
Progress goes to stderr; stdout ends with the image ref as its last line.
"""

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.monotonic()
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVER_DIR = HERE / "server"
ASSETS_SCRIPT = HERE / "make_assets.py"
LOCK_FILE = HERE / "requirements.lock"
ENGINE_SCRIPT = HERE.parent / "scripts" / "engine.sh"

IMAGE_REPO = "sglang-standin"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
APT_PACKAGES = ["python3", "python3-venv", "ca-certificates", "procps"]
SGLANG_REQUIREMENT = "sglang==0.5.7"
# What `python3 -m sglang.bench_serving` imports (the wheel's own requirements pull
# in torch and CUDA; the client does not need them). pydantic comes from
# sglang/__init__.py, jinja2 from transformers' apply_chat_template.
CLIENT_REQUIREMENTS = ["aiohttp", "numpy", "pybase64", "requests", "datasets<4.4", "pillow", "tqdm",
                       "transformers==4.57.1", "ipython", "pydantic", "jinja2"]

VENV = "/opt/venv"
STANDIN = "/opt/standin"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = "/tmp/build-ca.crt"
# ENV of the real lmsysorg/sglang ROCm image ("Performance environment variable" block
# of docker/rocm.Dockerfile), so the collection's overrides are exercised for real.
IMAGE_ENV = {
    "PATH": PATH, "VIRTUAL_ENV": VENV, "LANG": "C.UTF-8",
    "HIP_FORCE_DEV_KERNARG": "1", "HSA_NO_SCRATCH_RECLAIM": "1",
    "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN": "1", "SGLANG_INT4_WEIGHT": "0",
    "SGLANG_MOE_PADDING": "1", "SGLANG_ROCM_DISABLE_LINEARQUANT": "0",
    "SGLANG_ROCM_FUSED_DECODE_MLA": "1", "SGLANG_SET_CPU_AFFINITY": "1", "SGLANG_USE_AITER": "1",
    "SGLANG_USE_ROCM700A": "1", "NCCL_MIN_NCHANNELS": "112", "TORCHINDUCTOR_MAX_AUTOTUNE": "1",
    "TORCHINDUCTOR_MAX_AUTOTUNE_POINTWISE": "1",
}
WORKDIR = "/sgl-workspace"
# Removed from every stage: package indexes, caches, documentation.
PRUNE = ["var/lib/apt/lists/*", "var/cache/apt/*", "var/cache/debconf/*-old", "var/log/*",
         "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
         "usr/share/lintian/*", "root/.cache", "tmp/*"]
LAUNCH_SHIM = f'''"""Stand-in image: `python3 -m sglang.launch_server` runs the test bed's server double.

The real module was replaced at build time (tests/standin/build.py); see {STANDIN}.
"""

import sys

sys.path.insert(0, "{STANDIN}")

from standin_server.launch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
'''

IMAGE_CHECK = f"""
import contextlib, io, runpy, sys
from sglang.bench_serving import get_tokenizer, sample_random_requests

tokenizer = get_tokenizer("{STANDIN}/tokenizer")
assert tokenizer.decode(tokenizer.encode("biku vebu")) == "biku vebu", "tokenizer round trip"
# The high tier's shape: 500 prompts drawn from the dataset without reuse.
rows = sample_random_requests(input_len=1000, output_len=1000, num_prompts=500, range_ratio=0.0,
                              tokenizer=tokenizer, dataset_path="{STANDIN}/sharegpt.json")
assert len(rows) == 500, len(rows)
# `python3 -m <module> --help` for the client and for the launch shim.
for module in ("sglang.bench_serving", "sglang.launch_server"):
    sys.argv = [module, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            assert exc.code == 0, (module, exc.code)
    assert "usage:" in out.getvalue(), module
sys.path.insert(0, "{STANDIN}")
import standin_server.api  # the server's own imports (aiohttp)
"""


def log(message):
    sys.stderr.write(f"[standin build {time.monotonic() - STARTED:5.0f}s] {message}\n")
    sys.stderr.flush()


def run(cmd, check=True, **kwargs):
    """Run a command; its output goes to stderr, stdout is kept for the image ref."""
    if not kwargs.get("capture_output"):
        kwargs.setdefault("stdout", sys.stderr)
    return subprocess.run([str(c) for c in cmd], check=check, **kwargs)


def digest(*parts):
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else str(part).encode())
        sha.update(b"\0")
    return sha.hexdigest()


def source_files():
    files = [Path(__file__).resolve(), ASSETS_SCRIPT, LOCK_FILE]
    files += sorted(p for p in SERVER_DIR.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return [f for f in files if f.exists()]


def image_hash():
    parts = []
    for path in source_files():
        parts += [path.relative_to(REPO), path.read_bytes()]
    return digest(*parts)[:16]


# -- rootfs helpers --------------------------------------------------------------------

def chroot(root, *cmd, env=None):
    """Run in the rootfs with a clean environment: no host PIP_* or proxy settings leak in."""
    clean = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
    run(["chroot", root, *cmd], env=clean)


def prune(root):
    for pattern in PRUNE:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def pack(root, tarball):
    tmp = tarball.with_suffix(".partial")
    run(["tar", "--numeric-owner", "--sort=name", "-C", root, "-cf", tmp, "."])
    tmp.rename(tarball)


def unpack(tarball, root):
    root.mkdir(parents=True)
    run(["tar", "--numeric-owner", "-C", root, "-xpf", tarball])


@contextlib.contextmanager
def network_access(root):
    """DNS and the host CA bundle (the TLS-inspecting proxy) for pip, removed afterwards."""
    shutil.copy(HOST_CA_BUNDLE, root / BUILD_CA.lstrip("/"))
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    shutil.copy("/etc/resolv.conf", resolv)
    try:
        yield {"PIP_CERT": BUILD_CA, "SSL_CERT_FILE": BUILD_CA, "REQUESTS_CA_BUNDLE": BUILD_CA,
               "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
               "PIP_DEFAULT_TIMEOUT": "120", "PIP_ROOT_USER_ACTION": "ignore"}
    finally:
        (root / BUILD_CA.lstrip("/")).unlink()
        resolv.write_text("")  # docker bind-mounts its own at run time


def recipe(build):
    """A stage's cache key covers its build steps, so editing them invalidates the cache."""
    return inspect.getsource(build) + inspect.getsource(prune) + repr(PRUNE)


def replace_stale(directory, prefix, keep):
    for old in directory.glob(prefix + "*.tar"):
        if old != keep:
            old.unlink()


# -- stages ------------------------------------------------------------------------------

def build_base(root):
    log(f"base: debootstrap {SUITE} minbase from {MIRROR} (about a minute)")
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(APT_PACKAGES), SUITE, root, MIRROR])
    prune(root)


def build_deps(root, lock):
    """Install the client into /opt/venv; returns `pip freeze` when there was no lock."""
    log("deps: venv and pip install (about a minute)")
    with network_access(root) as env:
        chroot(root, "python3", "-m", "venv", VENV, env=env)
        constraints = []
        if lock:
            (root / "tmp/requirements.lock").write_text(lock)
            constraints = ["-c", "/tmp/requirements.lock"]
        # --no-compile: the image stage byte-compiles only what the client and server import.
        pip = ["pip", "install", "--progress-bar", "off", "--no-compile"]
        chroot(root, *pip, *constraints, *CLIENT_REQUIREMENTS, env=env)
        # The wheel's own dependencies (torch, CUDA, ...) are what the client does not need.
        chroot(root, *pip, "--no-deps", SGLANG_REQUIREMENT, env=env)
        frozen = None if lock else subprocess.run(
            ["chroot", str(root), "pip", "freeze"], env={"PATH": PATH}, check=True,
            capture_output=True, text=True).stdout
    prune(root)
    # Test suites of numpy, pandas, pyarrow...: tens of MB that nothing imports.
    for tests in list((root / VENV.lstrip("/")).glob("lib/python3*/site-packages/**/tests")):
        if tests.is_dir() and not tests.is_symlink():
            shutil.rmtree(tests)
    return frozen


def base_stage(cache, work, reuse):
    key = digest(SUITE, MIRROR, *APT_PACKAGES, recipe(build_base))[:16]
    tarball = cache / f"base-{key}.tar"
    if reuse and tarball.exists():
        log(f"base: cached {tarball.name}")
        return tarball, key
    root = work / "base"
    build_base(root)
    pack(root, tarball)
    replace_stale(cache, "base-", tarball)
    shutil.rmtree(root)
    return tarball, key


def deps_key(base_key, lock):
    return digest(base_key, SGLANG_REQUIREMENT, *CLIENT_REQUIREMENTS, lock, recipe(build_deps))[:16]


def deps_stage(cache, work, base_tarball, base_key, reuse, update_lock):
    lock = LOCK_FILE.read_text() if LOCK_FILE.exists() and not update_lock else ""
    tarball = cache / f"deps-{deps_key(base_key, lock)}.tar"
    if reuse and tarball.exists():
        log(f"deps: cached {tarball.name}")
        return tarball
    root = work / "deps"
    unpack(base_tarball, root)
    frozen = build_deps(root, lock)
    if frozen is not None:
        lock = f"# Exact versions in the stand-in image; regenerate with `build.py --update-lock`.\n{frozen}"
        LOCK_FILE.write_text(lock)
        log(f"deps: wrote {LOCK_FILE}")
        tarball = cache / f"deps-{deps_key(base_key, lock)}.tar"  # named after what it now pins
    pack(root, tarball)
    replace_stale(cache, "deps-", tarball)
    shutil.rmtree(root)
    return tarball


def image_stage(work, deps_tarball):
    """The final rootfs: stand-in code, assets, the launch shim; checked offline."""
    root = work / "image"
    unpack(deps_tarball, root)
    standin = root / STANDIN.lstrip("/")
    standin.mkdir(parents=True)
    shutil.copytree(SERVER_DIR / "standin_server", standin / "standin_server",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ASSETS_SCRIPT, root / "tmp/make_assets.py")
    (root / WORKDIR.lstrip("/")).mkdir(parents=True, exist_ok=True)

    site = next((root / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    (site / "sglang/launch_server.py").write_text(LAUNCH_SHIM)
    for stale in (site / "sglang/__pycache__").glob("launch_server.*.pyc"):
        stale.unlink()

    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log("image: generating the tokenizer and the ShareGPT dataset")
    chroot(root, "python3", "/tmp/make_assets.py", "--server-dir", STANDIN, "--out", STANDIN,
           env={**offline, "PYTHONDONTWRITEBYTECODE": "1"})
    # Offline checks of what the bed relies on; they also byte-compile exactly the
    # modules the client and the server import (pip ran with --no-compile).
    log("image: checking the client, the tokenizer, the dataset and the shim offline")
    (root / "tmp/check.py").write_text(IMAGE_CHECK)
    chroot(root, "python3", "/tmp/check.py", env=offline)
    prune(root)
    for entry in (root / "dev").iterdir():  # docker provides /dev at run time
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    tarball = work / "image.tar"
    pack(root, tarball)
    shutil.rmtree(root)
    return tarball


# -- docker ----------------------------------------------------------------------------

def docker(*args, capture=False, check=True):
    return run(["docker", *args], capture_output=capture, text=True, check=check)


def image_exists(ref):
    return docker("image", "inspect", ref, capture=True, check=False).returncode == 0


def import_image(tarball, ref, hash_):
    changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    changes += [f"WORKDIR {WORKDIR}", 'CMD ["/bin/bash"]',
                "LABEL org.opencontainers.image.title=sglang-standin",
                "LABEL org.opencontainers.image.description=\"Test double of the SGLang 0.5.7 ROCm "
                "image: real bench_serving client, stand-in server\"",
                f"LABEL io.sglang-rocm-fleet.standin.hash={hash_}",
                "LABEL io.sglang-rocm-fleet.sglang-version=0.5.7"]
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    docker(*args, tarball, ref, capture=True)


def image_size(ref):
    return int(docker("image", "inspect", "-f", "{{.Size}}", ref, capture=True).stdout.strip())


def default_docker_host():
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if ENGINE_SCRIPT.exists():
        return subprocess.run([str(ENGINE_SCRIPT), "host"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return "unix:///var/run/docker.sock"


def preflight():
    if os.geteuid() != 0:
        sys.exit("build.py must run as root (debootstrap and chroot need it)")
    missing = [tool for tool in ("debootstrap", "docker", "chroot", "tar") if not shutil.which(tool)]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (apt-get install debootstrap docker.io)")
    if not HOST_CA_BUNDLE.exists():
        sys.exit(f"{HOST_CA_BUNDLE} not found: pip inside the chroot needs the host CA bundle")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker-host", default=None,
                        help="engine to import into (default: $DOCKER_HOST, else the bed's engine)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "SGLANG_FLEET_CACHE", "/var/cache/sglang-rocm-fleet")), help="cache directory")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the image even if it exists (reusing the cached stages)")
    parser.add_argument("--no-cache", action="store_true",
                        help="also redo debootstrap and pip install (implies --force)")
    parser.add_argument("--update-lock", action="store_true",
                        help="resolve the pip requirements afresh and rewrite requirements.lock")
    parser.add_argument("--tag", action="append", default=[], help="extra tag for the image")
    opts = parser.parse_args()

    os.environ["DOCKER_HOST"] = opts.docker_host or default_docker_host()
    hash_ = image_hash()
    ref = f"{IMAGE_REPO}:{hash_}"
    preflight()
    cache = opts.cache / "standin"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time per cache
        if image_exists(ref) and not (opts.force or opts.no_cache or opts.update_lock):
            log(f"{ref} already in {os.environ['DOCKER_HOST']}: nothing to do")
        else:
            with tempfile.TemporaryDirectory(prefix="work-", dir=cache) as tmp:
                work = Path(tmp)
                reuse = not opts.no_cache
                base, base_key = base_stage(cache, work, reuse)
                deps = deps_stage(cache, work, base, base_key, reuse, opts.update_lock)
                hash_ = image_hash()  # changed if the deps stage (re)wrote the lock file
                ref = f"{IMAGE_REPO}:{hash_}"
                tarball = image_stage(work, deps)
                log(f"image: docker import as {ref}")
                import_image(tarball, ref, hash_)
    for extra in opts.tag:
        docker("tag", ref, extra)
    size = image_size(ref)
    print(json.dumps({"image": ref, "size_mb": round(size / 1e6, 1),
                      "build_seconds": round(time.monotonic() - STARTED, 1)}))
    print(ref)


if __name__ == "__main__":
    main()

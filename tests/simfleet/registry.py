"""The bed's registry (Debian's docker-registry) and the images it serves.

A plain-HTTP instance on UPSTREAM:5000 (in the upstream namespace, upstream.py) that every
simulated dockerd lists as insecure, and with --registry-auth a second instance on
UPSTREAM:5443 over TLS (a generated CA, trusted via
/etc/docker/certs.d) with htpasswd auth. Both share one storage directory in the persistent
cache, so a rerun's push sends nothing new. Images are pushed from the controller's build
engine (tests/scripts/engine.sh).
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import ssl
import tempfile
import warnings
from pathlib import Path

import yaml

from . import config
from .system import BedError, run

SMALL_REPOSITORY = "simfleet/small"  # a few MB: bash and sleep with their libraries, for fan-out tests
SMALL_TAG = "v2"  # a new tag whenever its content changes: the registry's storage outlives the bed
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))


def write_config(path: Path, storage: Path, *, addr: str, tls: tuple | None = None,
                 htpasswd: Path | None = None, purge_uploads: bool = True) -> None:
    cfg = {
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "simfleet-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": addr, "secret": secrets.token_hex(16),
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if not purge_uploads:
        # two instances share the storage; one purging stale uploads is enough
        cfg["storage"]["maintenance"] = {"uploadpurging": {"enabled": False}}
    if tls:
        cfg["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    if htpasswd:
        cfg["auth"] = {"htpasswd": {"realm": "simfleet", "path": str(htpasswd)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def command(cfg: Path) -> list:
    return ["docker-registry", "serve", str(cfg)]


# ---------------------------------------------------------------------------------------------
# TLS and credentials for --registry-auth

def make_ca_and_cert(directory: Path) -> tuple:
    """A throwaway CA and a server certificate for the registry's IP. Returns (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # EC: instant keygen
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "30",
         "-subj", "/CN=simfleet test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={config.UPSTREAM}"])
    ext.write_text(f"subjectAltName=IP:{config.UPSTREAM}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "30", "-extfile", ext])
    for secret in (ca_key, key):
        secret.chmod(0o600)
    return ca_crt, crt, key


def bcrypt_hash(password: str) -> str:
    """bcrypt through libcrypt (stdlib `crypt`, Python <= 3.12), else apache2-utils' htpasswd."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # pylint: disable=import-outside-toplevel,deprecated-module
        # cost 8: the registry checks the hash on every request of a pull; this is a test secret
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** 8))
        if hashed and hashed.startswith("$2"):
            return hashed
    except (ImportError, ValueError):
        pass
    if shutil.which("htpasswd"):
        out = run(["htpasswd", "-nbBC", "8", config.REGISTRY_USER, password]).stdout
        return out.strip().split(":", 1)[1]
    raise BedError("no bcrypt available for the registry's htpasswd: use Python <= 3.12 (crypt module) "
                   "or install apache2-utils (htpasswd -B)")


def make_credentials(directory: Path) -> tuple:
    """htpasswd file and a 0600 password file. Returns (htpasswd, password_file)."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    password_file = directory / "password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)  # no newline: read back verbatim by lookup('file') and --password-stdin
    htpasswd = directory / "htpasswd"
    htpasswd.write_text(f"{config.REGISTRY_USER}:{bcrypt_hash(password)}\n")
    return htpasswd, password_file


def trust_ca(ca_crt: Path) -> Path:
    """Install the CA where every dockerd on the machine looks for UPSTREAM:5443's CA."""
    target = config.DOCKER_CERTS_DIR / config.REGISTRY_TLS / "ca.crt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_crt, target)
    return target


def untrust_ca() -> None:
    directory = config.DOCKER_CERTS_DIR / config.REGISTRY_TLS
    shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# probes

def _request(address: str, method: str, path: str, *, ca: Path | None = None, headers=None, timeout=2.0):
    host, port = address.rsplit(":", 1)
    if ca is not None:
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout,
                                           context=ssl.create_default_context(cafile=str(ca)))
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ready(address: str, *, ca: Path | None = None) -> bool:
    """/v2/ answers: 200 without auth, 401 (a challenge) with auth."""
    try:
        status = _request(address, "GET", "/v2/", ca=ca, timeout=0.5)[0]
    except (OSError, http.client.HTTPException):
        return False
    return status in (200, 401)


def has_image(repository: str = config.IMAGE_REPOSITORY, tag: str = config.IMAGE_TAG) -> bool:
    try:
        status = _request(config.REGISTRY, "HEAD", f"/v2/{repository}/manifests/{tag}",
                          headers={"Accept": MANIFEST_TYPES})[0]
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


# ---------------------------------------------------------------------------------------------
# publishing from the build engine

def engine(*args, check: bool = True, timeout: float = 1800):
    env = dict(os.environ, DOCKER_HOST=config.ENGINE_HOST)
    return run(["docker", *args], check=check, env=env, timeout=timeout)


def _require_engine() -> None:
    if engine("version", "--format", "{{.Server.Version}}", check=False, timeout=30).returncode != 0:
        raise BedError(f"the build engine at {config.ENGINE_HOST} is not running: "
                       "start it with tests/scripts/engine.sh start")


def push(source: str, target: str = config.IMAGE) -> str:
    """Tag an engine image as target and push it; returns the pushed digest."""
    _require_engine()
    if engine("image", "inspect", source, check=False).returncode != 0:
        raise BedError(f"image {source} is not in the build engine ({config.ENGINE_HOST}); "
                       "build it first (python3 tests/standin/build.py)")
    engine("tag", source, target)
    out = engine("push", target).stdout
    digest = next((w for w in out.split() if w.startswith("sha256:")), "")
    return digest


def publish_variant(new_tag: str, env: list, source: str = config.IMAGE) -> str:
    """Publish source as REPOSITORY:new_tag with ENV knobs baked in, for upgrade/crash tests.

    `docker commit` of a created, never started container: no process runs, and the new image
    is the source plus the changes. The container must be created with the source's own
    entrypoint and command, since commit records the container's config as the image's.
    """
    _require_engine()
    if engine("image", "inspect", source, check=False).returncode != 0:
        engine("pull", source)
    image_cfg = json.loads(engine("image", "inspect", "--format", "{{json .Config}}", source).stdout)
    target = f"{config.REGISTRY}/{config.IMAGE_REPOSITORY}:{new_tag}"
    create = ["create"]
    changes = [f"ENV {item}" for item in env]
    if not image_cfg.get("Cmd") and not image_cfg.get("Entrypoint"):
        # `docker create` needs some command; give one and reset it in the committed image
        create += [source, "/bin/true"]
        changes.append("CMD []")
    else:
        create.append(source)
    container = engine(*create).stdout.strip()
    try:
        commit = ["commit"]
        for change in changes:
            commit += ["--change", change]
        engine(*commit, container, target)
    finally:
        engine("rm", "-f", container, check=False)
    out = engine("push", target).stdout
    return next((w for w in out.split() if w.startswith("sha256:")), "")


def _small_rootfs_tar(directory: Path) -> Path:
    """A tarball of /bin/bash and /bin/sleep with the shared libraries they load (about 4 MB), and
    the passwd and group files a container of the collection's profiles needs."""
    files = {"/bin/bash", "/bin/sleep"}
    for binary in sorted(files):
        for word in run(["ldd", binary]).stdout.split():
            if word.startswith("/"):
                files.add(word)
    root = directory / "rootfs"
    for name in sorted(files):
        target = root / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(name), target)
    # the cookbook profile adds the group `video` by name: the container resolves it from /etc/group
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\nrender:x:993:\n")
    tar = directory / "small.tar"
    run(["tar", "-C", str(root), "-cf", str(tar), "."])
    return tar


def publish_small(tag: str = SMALL_TAG) -> str:
    """Publish a small image (bash, sleep) as REGISTRY/simfleet/small:TAG unless the registry has it;
    returns its reference. Built with `docker import`, so no base image is pulled."""
    target = f"{config.REGISTRY}/{SMALL_REPOSITORY}:{tag}"
    if has_image(SMALL_REPOSITORY, tag):
        return target
    _require_engine()
    with tempfile.TemporaryDirectory() as work:
        tar = _small_rootfs_tar(Path(work))
        engine("import", "--change", 'CMD ["/bin/bash"]', str(tar), target)
    engine("push", target)
    return target

# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Logic of the container role: image references, profiles, the docker_container spec, and
container_prepare's run on the host.

The pure part comes first and touches neither the host nor Docker. prepare() at the end is the
container_prepare module's work: it reads the daemon (through the Engine API seam), the device
nodes and the group ids, checks every input, then creates the host paths; the module turns
SpecError into a failure message.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import re
import stat
import tempfile

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_engine as D
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _model
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import is_secret_name
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._startup import phase

LABEL_PREFIX = "io.sglang-rocm.fleet."
MANAGED_LABEL = LABEL_PREFIX + "managed"
HASH_LABEL = LABEL_PREFIX + "config-hash"
PROFILE_LABEL = LABEL_PREFIX + "profile"

SECRETS_MOUNT = "/run/sglang-secrets"
HF_TOKEN_FILE = "hf_token"
# a secret-looking entry NAME of sglang_container_env is the secret file env.NAME, never environment
ENV_SECRET_PREFIX = "env."

# Kernel caches compiled at run time, kept per image and GPU architecture so that a recreated
# container finds them (docs/startup.md gives each source). Host directory
# <sglang_cache_dir>/jit/<image ID, 12 hex>/<gfx arch>/<name>, mounted at JIT_MOUNT/<name>, where
# the variable points the tool:
JIT_CACHES = (
    # Triton's compiled kernels; default ~/.triton/cache (triton/knobs.py cache_knobs.dir,
    # runtime/cache.py default_cache_dir before 3.4)
    ("triton", "TRITON_CACHE_DIR"),
    # AITER's operator modules (module_*.so) and their build trees; default the aiter package's
    # own jit/ directory, where the image keeps the modules it prebuilt (aiter/jit/core.py
    # get_user_jit_dir); the server's launch links those into the cache (_agent_server)
    ("aiter-jit", "AITER_JIT_DIR"),
    # AITER's C++ kernels built at run time under <dir>/build; default ~/.aiter
    # (csrc/cpp_itfs/utils.py)
    ("aiter", "AITER_ROOT_DIR"),
    # TorchInductor (torch.compile); default /tmp/torchinductor_<user>
    # (torch/_inductor/runtime/cache_dir_utils.py)
    ("inductor", "TORCHINDUCTOR_CACHE_DIR"),
)
JIT_MOUNT = "/var/cache/sglang-jit"
UNKNOWN_ARCH = "unknown"
_GFX_RE = re.compile(r"^gfx[0-9a-f]{3,4}$")

# The published recipe's `docker run` flags, and nothing else (DESIGN.md step 2):
#   docker run -d -it --ipc=host --network=host --privileged --cap-add=CAP_SYS_ADMIN
#     --device=/dev/kfd --device=/dev/dri --device=/dev/mem --group-add video
#     --cap-add=SYS_PTRACE --security-opt seccomp=unconfined -v /:/work -e SHELL=/bin/bash
#     --name Kimi-linear IMAGE /bin/bash
# `-d -it` plus /bin/bash is the keep-alive: an interactive shell on a tty never exits.
PROFILES = {
    "cookbook": {
        "privileged": True,
        "ipc_mode": "host",
        "network_mode": "host",
        "capabilities": ["SYS_ADMIN", "SYS_PTRACE"],
        "devices": ["/dev/kfd", "/dev/dri", "/dev/mem"],
        "groups": ["video"],
        "security_opts": ["seccomp=unconfined"],
        "volumes": ["/:/work"],
        "shm_size": None,
        "ulimits": [],
        "command": ["/bin/bash"],
        "env": {"SHELL": "/bin/bash"},
        # the recipe passes the name; names resolve against the image's /etc/group
        "numeric_groups": False,
    },
    # Least privilege that still runs SGLang on ROCm: no --privileged, no host root, no /dev/mem,
    # ptrace for profilers only, DRM groups by the host's numeric GIDs (the image's names differ).
    "hardened": {
        "privileged": False,
        "ipc_mode": "host",
        "network_mode": "host",
        "capabilities": ["SYS_PTRACE"],
        "devices": ["/dev/kfd", "/dev/dri"],
        "groups": ["video", "render"],
        "security_opts": ["seccomp=unconfined"],
        "volumes": [],
        "shm_size": "16G",
        "ulimits": ["memlock:-1:-1", "stack:67108864:67108864"],
        "command": ["/bin/bash"],
        "env": {"SHELL": "/bin/bash"},
        "numeric_groups": True,
    },
}

# Flags a variable may override (sglang_container_<flag>); None keeps the profile's value.
OVERRIDABLE = ("privileged", "ipc_mode", "network_mode", "capabilities", "devices", "groups",
               "security_opts", "volumes", "shm_size", "ulimits", "command")

# docker_container options that sglang_container_extra_options may set. Everything the role owns
# (name, image, state, comparisons, env, labels, and the flags above) is refused there so a value
# never has two sources. The role's docker_container task passes exactly these through.
EXTRA_OPTIONS = ("restart_policy", "restart_retries", "stop_timeout", "stop_signal", "init",
                 "user", "working_dir", "hostname", "log_driver", "log_options", "healthcheck",
                 "sysctls", "tmpfs", "memory", "memory_reservation", "cpus", "cpuset_cpus",
                 "cpuset_mems", "pid_mode", "device_cgroup_rules", "device_requests",
                 "entrypoint", "cap_drop", "oom_score_adj", "runtime", "labels", "etc_hosts",
                 "read_only", "pids_limit")

SHELL_BAD = set(" \t\r\n\v\f;&|<>$`\\\"'(){}[]*?!~#%^,=+")

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    r"^(?P<name>(?:" + _DOMAIN + r"/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(?P<tag>" + _TAG + r"))?(?:@(?P<digest>" + _DIGEST + r"))?$")
_MIRROR_RE = re.compile(r"^" + _DOMAIN + r"(?:/" + _PATH_COMPONENT + r")*$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_DOMAIN = "docker.io"


class SpecError(ValueError):
    """Bad input; the message says what was seen, what was expected and which variable fixes it."""


def _bad_chars(text):
    return sorted(set(ch for ch in text if ch in SHELL_BAD or not ch.isprintable()))


def parse_image_ref(ref, variable="sglang_image"):
    """Split an image reference into domain, path, tag and digest, as Docker's grammar does."""
    if not isinstance(ref, str) or not ref:
        raise SpecError("%s is empty; expected an image reference such as "
                        "lmsysorg/sglang:v0.5.7-rocm700-mi30x" % variable)
    bad = _bad_chars(ref)
    if bad:
        raise SpecError("%s=%r contains %s (whitespace or shell metacharacters); an image reference "
                        "is [registry[:port]/]repository[:tag][@sha256:digest]"
                        % (variable, ref, ", ".join(repr(c) for c in bad)))
    match = _REFERENCE_RE.match(ref)
    if not match or len(match.group("name")) > 255:
        raise SpecError("%s=%r is not a valid image reference; expected "
                        "[registry[:port]/]repository[:tag][@sha256:digest] with a lower-case "
                        "repository" % (variable, ref))
    name = match.group("name")
    first, sep, rest = name.partition("/")
    # Docker's rule: a first component with '.', ':' or upper case, or "localhost", is a registry
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    return {"domain": domain, "path": path, "tag": match.group("tag"),
            "digest": match.group("digest")}


def familiar_name(domain, path):
    """Repository name as Docker shows it in RepoTags (docker.io and library/ dropped)."""
    if domain == DEFAULT_DOMAIN:
        if path.startswith("library/") and path.count("/") == 1:
            return path[len("library/"):]
        return path
    return domain + "/" + path


def resolve_image(ref, mirror="", digest=""):
    """The reference the host pulls and runs, after the mirror rewrite and the digest pin.

    Returns a dict: ``reference`` (familiar form, what docker_container and docker_image_pull get),
    ``repository``, ``tag``, ``digest`` and ``registry`` (where the pull goes).
    A pinned digest drops the tag: Docker pulls by digest and records no tag for it.
    """
    parsed = parse_image_ref(ref)
    if digest:
        if not _SHA256_RE.match(digest):
            raise SpecError("sglang_container_image_digest=%r is not a sha256 digest; expected "
                            "sha256: followed by 64 lower-case hex digits" % (digest,))
        if parsed["digest"] and parsed["digest"] != digest:
            raise SpecError("sglang_image pins %s but sglang_container_image_digest is %s; set only "
                            "one of them" % (parsed["digest"], digest))
    digest = digest or parsed["digest"]
    domain, path = parsed["domain"], parsed["path"]
    if mirror:
        if _bad_chars(mirror) or not _MIRROR_RE.match(mirror.rstrip("/")):
            raise SpecError("sglang_container_registry_mirror=%r is not a registry prefix; expected "
                            "host[:port][/path], for example registry.example.com:5000"
                            % (mirror,))
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = "library/" + path
        mirror = mirror.rstrip("/")
        domain, _sep, prefix = mirror.partition("/")
        if prefix:
            path = prefix + "/" + path
    repository = familiar_name(domain, path)
    tag = None if digest else (parsed["tag"] or "latest")
    reference = repository + ("@" + digest if digest else ":" + tag)
    return {"reference": reference, "repository": repository, "tag": tag, "digest": digest,
            "registry": domain}


def archive_host_path(source, archive, sha256, remote_src, staging_dir):
    """Host path of the image tarball, after checking the archive inputs ('' for a registry)."""
    if source != "archive":
        return ""
    if not archive:
        raise SpecError("sglang_container_image_source is archive but sglang_container_image_archive "
                        "is empty; set it to the image tarball (docker save output)")
    text = (sha256 or "").strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if not re.match(r"^[0-9a-f]{64}$", text):
        raise SpecError("sglang_container_image_archive_sha256=%r is not a sha256 (64 hex digits); "
                        "the archive is loaded only after its checksum matched" % (sha256,))
    if remote_src:
        _check_path(archive, "sglang_container_image_archive")
        return archive
    _check_path(staging_dir, "sglang_container_staging_dir")
    return staging_dir.rstrip("/") + "/" + archive.rstrip("/").rsplit("/", 1)[-1]


def find_image(images, resolved):
    """The docker_host_info image entry that carries the resolved reference, or None."""
    for image in images or []:
        if resolved["digest"]:
            names = image.get("RepoDigests") or []
        else:
            names = image.get("RepoTags") or []
        if resolved["reference"] in names:
            return image
    return None


def image_facts(image, resolved, source, obtained=None, transfer=None):
    """Host facts recorded for the image: reference, ID, size and the registry digest when known,
    ``obtained`` (a _startup phase) when this run pulled or loaded it, and ``transfer`` (the
    fan-out's record of this host) when it was spread host to host."""
    digest = resolved.get("digest")
    repo_digests = list((image or {}).get("RepoDigests") or [])
    if not digest:
        for entry in repo_digests:
            repo, _sep, found = entry.partition("@")
            if repo == resolved["repository"]:
                digest = found
                break
    return {"reference": resolved["reference"], "source": source,
            "id": (image or {}).get("Id"), "digest": digest if image else resolved.get("digest"),
            "repo_digests": repo_digests, "size": (image or {}).get("Size"), "obtained": obtained,
            "transfer": transfer if isinstance(transfer, dict) else None}


def find_container(containers, name):
    """The docker_host_info container entry whose name is exactly NAME (the filter is a regex)."""
    for container in containers or []:
        if "/" + name in (container.get("Names") or []):
            return container
    return None


def existing_state(container):
    if container is None:
        return {"exists": False, "managed": False, "config_hash": None, "image": None,
                "state": None}
    labels = container.get("Labels") or {}
    return {"exists": True, "managed": labels.get(MANAGED_LABEL) == "true",
            "config_hash": labels.get(HASH_LABEL), "image": container.get("Image"),
            "state": container.get("State")}


def adoption_error(name, existing):
    """Message for a container of our name that we did not create (the recipe's, typically)."""
    return ("a container named %r already exists (image %s, %s) without the label %s=true, "
            "so this collection did not create it; it is typically the hand-run recipe's container "
            "and may be serving. It was left untouched. To put it under management set "
            "sglang_container_adopt: true: it is then removed and recreated from the configured "
            "image and profile (a server running in it stops; anything pip-installed in it by hand "
            "is lost; the host cache survives). Or set sglang_container_name to another name."
            % (name, existing["image"], existing["state"], MANAGED_LABEL))


def normalize_capability(cap):
    """CAP_SYS_ADMIN, sys_admin and SYS_ADMIN name one capability; Docker stores the string as
    given, so the spec always uses the docker CLI's canonical form (CAP_ prefix, upper case)."""
    text = str(cap).strip().upper()
    if text == "ALL":
        return text
    if not re.match(r"^(CAP_)?[A-Z_]+$", text):
        raise SpecError("capability %r is not a Linux capability name (for example SYS_PTRACE)"
                        % (cap,))
    return text if text.startswith("CAP_") else "CAP_" + text


def profile_flags(profile, overrides=None):
    """The profile's flags with every non-None override applied (pure; no host lookups)."""
    if profile not in PROFILES:
        raise SpecError("sglang_container_profile=%r is not a known profile; choose one of %s"
                        % (profile, ", ".join(sorted(PROFILES))))
    flags = dict(PROFILES[profile])
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise SpecError("unknown container flag override %r; overridable flags are %s"
                            % (key, ", ".join(OVERRIDABLE)))
        if value is not None:
            flags[key] = value
    return flags


def device_mappings(devices, dev_root="/dev"):
    """(host path, container path, permissions) for each device entry.

    An entry that is a container path under /dev (``/dev/kfd``) is read from the host under
    ``dev_root`` (``<dev_root>/kfd``), so a host tree mounted elsewhere, or the test bed's fake
    one, works; an explicit ``host:container[:perms]`` entry is taken literally.
    """
    root = (dev_root or "/dev").rstrip("/")
    if not root.startswith("/"):
        raise SpecError("sglang_container_dev_root=%r must be an absolute directory other than /, "
                        "the host's /dev or the tree that stands for it" % (dev_root,))
    out = []
    for entry in devices or []:
        if not isinstance(entry, str) or not entry or _bad_chars(entry):
            raise SpecError("device entry %r is not a path; expected /dev/NAME or "
                            "HOST:CONTAINER[:rwm]" % (entry,))
        parts = entry.split(":")
        if len(parts) == 1:
            target = parts[0]
            if target != "/dev" and not target.startswith("/dev/"):
                raise SpecError("device %r is not under /dev; give HOST:CONTAINER to pass a node "
                                "from elsewhere" % (entry,))
            source = root + target[len("/dev"):]
            out.append((source, target, "rwm"))
        elif len(parts) in (2, 3):
            perms = parts[2] if len(parts) == 3 else "rwm"
            if not parts[0].startswith("/") or not parts[1].startswith("/") or \
                    not re.match(r"^[rwm]{1,3}$", perms):
                raise SpecError("device entry %r is not HOST:CONTAINER[:rwm] with absolute paths"
                                % (entry,))
            out.append((parts[0], parts[1], perms))
        else:
            raise SpecError("device entry %r has too many ':' parts; expected HOST:CONTAINER[:rwm]"
                            % (entry,))
    return out


def resolve_groups(groups, numeric, lookup):
    """Group names to the host's GIDs when ``numeric``; ``lookup(name)`` returns a GID or None.

    Returns (groups, warnings). A name the host does not know is left out with a warning: the
    group that owns the device nodes is the one that matters, and older hosts have no ``render``.
    """
    out, warnings = [], []
    for group in groups or []:
        text = str(group).strip()
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", text):
            raise SpecError("group %r is not a group name or numeric GID" % (group,))
        if text.isdigit() or not numeric:
            value = text
        else:
            gid = lookup(text)
            if gid is None:
                warnings.append("group %r does not exist on this host, so it is not added to the "
                                "container; set sglang_container_groups if the GPU device nodes "
                                "belong to another group" % text)
                continue
            value = str(gid)
        if value not in out:
            out.append(value)
    return out, warnings


def _check_path(path, variable):
    if not isinstance(path, str) or not path.startswith("/") or ":" in path or _bad_chars(path):
        raise SpecError("%s=%r must be an absolute host path without ':', whitespace or shell "
                        "metacharacters" % (variable, path))


def _env_text(key, value):
    if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
        raise SpecError("container environment variable name %r is invalid" % (key,))
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise SpecError("container environment value of %s is %r; quote it so it is a string "
                        "(for example \"1\" or \"true\")" % (key, value))
    return str(value)


def model_mount(model_dir, model_repo):
    """(host directory, container path) of the staged model, or None when the model is not
    staged (sglang_model_source none): ``<model_dir>/<repo>`` at ``/models/<repo>``."""
    if not model_repo:
        return None
    problems = _model.input_problems({"sglang_model_source": "hub", "sglang_model_path": model_repo,
                                      "sglang_model_dir": model_dir})
    if problems:
        raise SpecError("; ".join("%s is %s, expected %s. Fix: %s" % problem for problem in problems))
    return _model.layout(model_dir, model_repo)["final"], _model.served_path(model_repo)


def jit_key(image_id, gpu_archs):
    """(image ID in 12 hex, GPU architecture) that name a host's JIT cache directory.

    The image ID is the digest of the image's config: the same for a pulled and a loaded copy,
    another one for any other content. The architecture is the host's gfx target from the
    preflight facts (several, sorted and joined with '+'), or 'unknown' without facts.
    """
    digest = str(image_id or "").split(":", 1)[-1]
    if not re.match(r"^[0-9a-f]{12,}$", digest):
        raise SpecError("image ID %r is not a sha256 digest; the JIT cache directory is named "
                        "after it" % (image_id,))
    archs = sorted(set(str(arch) for arch in gpu_archs or () if arch))
    bad = [arch for arch in archs if not _GFX_RE.match(arch)]
    if bad:
        raise SpecError("gpu_archs %s are not LLVM GPU targets such as gfx942; they come from "
                        "ansible_facts.rocm.gpus (the preflight role's rocm_facts)" % bad)
    return digest[:12], "+".join(archs) or UNKNOWN_ARCH


def jit_dirs(cache_dir, image_id, gpu_archs):
    """{cache name: host directory} of the image's JIT caches on this host."""
    image, arch = jit_key(image_id, gpu_archs)
    root = os.path.join(cache_dir, "jit", image, arch)
    return {name: os.path.join(root, name) for name, _env in JIT_CACHES}


def collection_mounts(cache_dir, cache_mount=True, cache_env=None, results_dir="",
                      secrets_dir="", secret_names=(), model=None, jit=None):
    """Mounts and environment the collection adds to every profile.

    The cache and results directories are mounted at the same path inside the container, so a
    path means the same thing on the host and in the container (the packages role stages its
    wheelhouse under the cache this way). Secrets are a read-only directory, never environment.
    The staged model (``model``, from model_mount) is read-only at /models/<repo>.
    ``jit`` (jit_dirs) are the image's kernel caches, each mounted where its variable points
    (JIT_CACHES); an entry of ``cache_env`` for the same variable wins.
    """
    volumes, env = [], {}
    if model:
        volumes.append("%s:%s:ro" % model)
    if cache_mount:
        _check_path(cache_dir, "sglang_cache_dir")
        volumes.append("%s:%s:rw" % (cache_dir, cache_dir))
        for name, variable in JIT_CACHES if jit else ():
            volumes.append("%s:%s/%s:rw" % (jit[name], JIT_MOUNT, name))
            env[variable] = "%s/%s" % (JIT_MOUNT, name)
        for key, value in (cache_env or {}).items():
            env[key] = _env_text(key, value)
    if results_dir:
        _check_path(results_dir, "sglang_container_results_dir")
        volumes.append("%s:%s:rw" % (results_dir, results_dir))
    if secret_names:
        _check_path(secrets_dir, "sglang_container_secrets_dir")
        volumes.append("%s:%s:ro" % (secrets_dir, SECRETS_MOUNT))
        if HF_TOKEN_FILE in secret_names:
            env["HF_TOKEN_PATH"] = SECRETS_MOUNT + "/" + HF_TOKEN_FILE
    return volumes, env


def split_env(env):
    """(plain, secret) halves of sglang_container_env by the _secrets rule (HF_TOKEN,
    WANDB_API_KEY, DB_PASSWORD are secret). The secret half becomes files, so docker inspect,
    the container's config hash and this module's results never hold a value of it."""
    plain, secret = {}, {}
    for key, value in (env or {}).items():
        text = _env_text(key, value)
        (secret if is_secret_name(key) else plain)[key] = text
    return plain, secret


def env_secret_files(secret_env):
    """Secret file name to content for the secret half of sglang_container_env."""
    return {ENV_SECRET_PREFIX + key: value for key, value in secret_env.items()}


def validate_secret_names(names):
    for name in names:
        if not _SECRET_NAME_RE.match(str(name)):
            raise SpecError("secret file name %r is invalid; use letters, digits, '.', '_' and '-'"
                            % (name,))


def _check_extra_options(extra):
    owned = set(OVERRIDABLE) | {"name", "image", "state", "env", "comparisons", "docker_host",
                                "pull", "recreate", "restart", "detach", "interactive", "tty"}
    for key in extra:
        if key in owned:
            hint = ("sglang_container_" + key) if key in OVERRIDABLE else "the role"
            raise SpecError("sglang_container_extra_options sets %r, which is owned by %s; set it "
                            "there instead" % (key, hint))
        if key not in EXTRA_OPTIONS:
            raise SpecError("sglang_container_extra_options has %r, which the role does not pass to "
                            "docker_container; supported keys: %s" % (key, ", ".join(EXTRA_OPTIONS)))
    labels = extra.get("labels") or {}
    for key in labels:
        if str(key).startswith(LABEL_PREFIX):
            raise SpecError("label %r is reserved for the collection's own labels" % (key,))


def config_hash(params):
    """sha256 of the canonical JSON of the docker_container parameters (hash label excluded)."""
    data = dict(params)
    labels = dict(data.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    data["labels"] = labels
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def container_params(name, image, flags, devices, groups, mounts=(), mount_env=None,
                     user_env=None, extra_options=None, profile=""):
    """docker_container parameters: profile flags, collection mounts, the user's env and extras.

    ``devices`` is the output of device_mappings and ``groups`` of resolve_groups. The container's
    environment is the profile's, then the collection's (cache, secret paths), then the user's
    sglang_container_env, which wins.
    """
    extra = dict(extra_options or {})
    _check_extra_options(extra)
    env = {}
    for source in (flags.get("env") or {}, mount_env or {}, user_env or {}):
        for key, value in source.items():
            env[key] = _env_text(key, value)
    command = flags["command"]
    if isinstance(command, str):
        command = [command]
    if not command or not all(isinstance(item, str) and item for item in command):
        raise SpecError("sglang_container_command must be a non-empty list of strings; the recipe "
                        "keeps the container alive with [\"/bin/bash\"] on a tty")
    volumes = []
    for volume in list(flags.get("volumes") or []) + list(mounts):
        if not isinstance(volume, str) or _bad_chars(volume) or ":" not in volume:
            raise SpecError("volume %r is not HOST:CONTAINER[:ro|rw]" % (volume,))
        if volume not in volumes:
            volumes.append(volume)
    params = {
        "name": name,
        "image": image,
        "command": list(command),
        "detach": True,
        "interactive": True,
        "tty": True,
        "privileged": bool(flags["privileged"]),
        "ipc_mode": flags["ipc_mode"],
        "network_mode": flags["network_mode"],
        "capabilities": sorted(set(normalize_capability(c) for c in flags.get("capabilities") or [])),
        "devices": ["%s:%s:%s" % device for device in devices],
        "groups": list(groups),
        "security_opts": list(flags.get("security_opts") or []),
        "volumes": volumes,
        "env": env,
    }
    if flags.get("shm_size"):
        params["shm_size"] = str(flags["shm_size"])
    if flags.get("ulimits"):
        params["ulimits"] = [str(item) for item in flags["ulimits"]]
    labels = {str(k): str(v) for k, v in (extra.pop("labels", None) or {}).items()}
    labels[MANAGED_LABEL] = "true"
    labels[PROFILE_LABEL] = profile
    params.update(extra)
    params["labels"] = labels
    params["labels"][HASH_LABEL] = config_hash(params)
    return params


# --------------------------------------------------------------------------- on the host


def check_devices(mappings):
    """Each device source must exist on the host as a character node or a directory of them."""
    for source, target, _perms in mappings:
        try:
            mode = os.stat(source).st_mode
        except OSError as exc:
            raise SpecError(
                "device %s (for %s in the container) is missing on this host: %s. The GPU driver "
                "may not be loaded or the node may not exist; run the preflight role "
                "(sglang_rocm.fleet.preflight) for a diagnosis, or set sglang_container_devices to "
                "the devices this host has (sglang_container_dev_root says where /dev is read)"
                % (source, target, exc.strerror or exc))
        if not (stat.S_ISCHR(mode) or stat.S_ISDIR(mode)):
            raise SpecError("device %s (for %s) exists but is not a character device or a "
                            "directory of them" % (source, target))


def gid_of(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


class HostPaths:
    """Directories and secret files, created only after every check passed."""

    def __init__(self, module):
        self.module = module
        self.changed_paths = []
        self.lines = []

    def _note(self, action, path):
        self.changed_paths.append(path)
        self.lines.append("%s %s\n" % (action, path))

    def directory(self, path, mode, enforce_mode=False):
        if os.path.isdir(path):
            if enforce_mode and stat.S_IMODE(os.stat(path).st_mode) != mode:
                self._note("chmod %o" % mode, path)
                if not self.module.check_mode:
                    os.chmod(path, mode)
            return
        if os.path.exists(path):
            self.module.fail_json(msg="%s exists on the host but is not a directory" % path)
        self._note("create directory", path)
        if not self.module.check_mode:
            os.makedirs(path, mode)
            os.chmod(path, mode)

    def remove(self, path):
        if os.path.lexists(path):
            self._note("remove", path)
            if not self.module.check_mode:
                os.unlink(path)

    def secret(self, directory, name, content):
        path = os.path.join(directory, name)
        data = content.encode("utf-8")
        try:
            with open(path, "rb") as handle:
                same = handle.read() == data
            same = same and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        except OSError:
            same = False
        if same:
            return
        self._note("write secret file (0600)", path)
        if self.module.check_mode:
            return
        # write-then-rename inside the mounted directory: the container sees the new file
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % name)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)


def stale_env_secrets(secrets_dir, secrets):
    """env.* files in SECRETS_DIR that no current sglang_container_env entry wrote."""
    try:
        names = os.listdir(secrets_dir) if secrets_dir else []
    except OSError:
        return []
    return sorted(name for name in names if name.startswith(ENV_SECRET_PREFIX) and name not in secrets)


def docker_state(module):
    """(containers, images): as given, or read from the daemon when either is omitted."""
    p = module.params
    if p["containers"] is not None and p["images"] is not None:
        return p["containers"], p["images"]
    try:
        containers, images = D.connect_and_read(module, p["name"])
    except D.DaemonError as exc:
        raise SpecError(D.unreachable_message(p["docker_host"], exc))
    given = (p["containers"], p["images"])
    return (containers if given[0] is None else given[0]), (images if given[1] is None else given[1])


def prepare(module, now=None):
    """container_prepare's result and warnings; SpecError before anything changed. ``now`` is the
    epoch at which the module began (RV checked_at)."""
    p = module.params
    warnings = []
    resolved = resolve_image(p["image"], p["registry_mirror"], p["image_digest"])
    containers, images = docker_state(module)
    image = find_image(images, resolved)
    existing = existing_state(find_container(containers, p["name"]))
    result = {
        "changed": False,
        "image": resolved,
        "image_present": image is not None,
        "need_pull": p["image_source"] == "registry" and (image is None or p["pull"] == "always"),
        "need_load": p["image_source"] == "archive" and image is None,
        # docker save/load cannot carry a registry digest, so a digest-pinned image is pulled
        "fanout": bool(p.get("fanout")) and p["state"] == "present" and p["image_source"] == "registry"
        and not resolved["digest"],
        "existing": existing,
        "remove": False,
        "paths": [],
        "checked_at": now,
        "jit": None,
    }
    result["archive_path"] = archive_host_path(
        p["image_source"], p["archive"], p["archive_sha256"], p["archive_remote_src"],
        p["staging_dir"]) if p["state"] == "present" else ""
    if image is not None:
        # asked again after the pull or load (image_requested_at): how long the image took
        obtained = phase(p["image_requested_at"], now) if p["image_requested_at"] else None
        result["ansible_facts"] = {
            "sglang_container_image_facts": image_facts(image, resolved, p["image_source"], obtained,
                                                        p.get("image_transfer"))}

    secrets = dict(p["secrets"] or {})
    if p["hf_token"]:
        secrets[HF_TOKEN_FILE] = p["hf_token"]
    plain_env, secret_env = split_env(p["env"])
    for name in secrets:
        if str(name).startswith(ENV_SECRET_PREFIX):
            raise SpecError("secret file name %r is reserved: files named %s* hold the secret-looking "
                            "entries of sglang_container_env" % (name, ENV_SECRET_PREFIX))
    secrets.update(env_secret_files(secret_env))
    validate_secret_names(secrets)
    for name, content in secrets.items():
        if not isinstance(content, str):
            raise SpecError("secret %r must be a string" % (name,))
    paths = HostPaths(module)

    if p["state"] == "absent":
        result["need_pull"] = result["need_load"] = result["fanout"] = False
        result["remove"] = existing["exists"] and existing["managed"]
        if existing["exists"] and not existing["managed"]:
            warnings.append("container %r exists but carries no %s=true label, so it was not "
                            "created by this collection and is left in place"
                            % (p["name"], MANAGED_LABEL))
        elif secrets:
            # the secrets served only our container; do not leave them on the host
            for name in sorted(secrets):
                paths.remove(os.path.join(p["secrets_dir"], name))
        return _finish(result, paths), warnings

    flags = profile_flags(p["profile"], p["overrides"])
    mappings = device_mappings(flags["devices"], p["dev_root"])
    groups, group_warnings = resolve_groups(flags["groups"], flags["numeric_groups"], gid_of)
    warnings.extend(group_warnings)
    model = model_mount(p["model_dir"], p["model_repo"])
    # the image's ID names its kernel caches: known once the image is on the host (the role asks
    # again after a pull or load)
    jit = jit_dirs(p["cache_dir"], image["Id"], p["gpu_archs"]) if p["cache_mount"] and image else None
    volumes, mount_env = collection_mounts(
        p["cache_dir"], p["cache_mount"], p["cache_env"], p["results_dir"], p["secrets_dir"],
        sorted(secrets), model, jit)
    params = container_params(
        p["name"], resolved["reference"], flags, mappings, groups, volumes, mount_env, plain_env,
        p["extra_options"], p["profile"])
    check_devices(mappings)
    if existing["exists"] and not existing["managed"] and not p["adopt"]:
        raise SpecError(adoption_error(p["name"], existing))

    if result["need_load"] and not p["archive_remote_src"]:
        paths.directory(p["staging_dir"], 0o700)
    if p["cache_mount"]:
        paths.directory(p["cache_dir"], 0o755)
        for name in sorted(jit or {}):
            paths.directory(jit[name], 0o755)
        if jit:
            result["jit"] = {"dir": os.path.dirname(jit[JIT_CACHES[0][0]]), "caches": jit,
                             "mounted_at": {name: "%s/%s" % (JIT_MOUNT, name) for name in jit}}
    if p["results_dir"]:
        paths.directory(p["results_dir"], 0o755)
    if model:
        # the model stage fills it after the container exists: the bind mount needs the directory
        paths.directory(model[0], 0o755)
    if secrets:
        paths.directory(p["secrets_dir"], 0o700, enforce_mode=True)
        for name in sorted(secrets):
            paths.secret(p["secrets_dir"], name, secrets[name])
    for name in stale_env_secrets(p["secrets_dir"], secrets):
        # an entry dropped from sglang_container_env must not reach the next server launch
        paths.remove(os.path.join(p["secrets_dir"], name))
    result.update({"container": params, "config_hash": params["labels"][HASH_LABEL]})
    return _finish(result, paths), warnings


def _finish(result, paths):
    result["paths"] = paths.changed_paths
    result["changed"] = bool(paths.changed_paths)
    if paths.changed_paths:
        result["diff"] = {"before": "", "after": "".join(paths.lines)}
    return result

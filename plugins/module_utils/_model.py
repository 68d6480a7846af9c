# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""The model stage: a pinned model revision staged into ``<sglang_model_dir>/<repo id>`` and
verified file by file (the sglang_model module's logic; the model role's seed choice).

Layout on a host, for ``model_dir`` and the repo id ``org/name``::

    <model_dir>/org/name/                 the verified copy, bind-mounted read-only into the
                                          SGLang container at /models/org/name
        .sglang-manifest.json             the manifest it was verified against (_manifest.py)
        .sglang-verified.json             the verified-state stamp (_manifest.STAMP)
    <model_dir>/.staging/org/name/        never served
        download/                         huggingface_hub's local_dir (resumable .incomplete
                                          files under download/.cache/huggingface/download)
        hf-home/                          HF_HOME of the transient container
        progress.json                     bytes done / total and the current file
        local-source.json                 for source local: stat and sha256 of each source file

A file reaches its final name only after its hash matched the manifest (sha256 for LFS files,
git blob sha1 for the others), by a rename within one filesystem; a file that does not match
is deleted and named. Files move one by one into the existing directory, never by replacing the
directory, because the running container's bind mount holds on to the directory itself.

The pure functions come first (inputs, layout, the seed choice); ModelManager is the module's
run, with the docker CLI (a DockerCli), the clock and the free-space probe injected.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import time

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_model, _manifest
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    AgentFailed,
    AgentTimedOut,
    ImageMissing,
    ModuleFailure,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._files import write_atomic
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import mask_text
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._server import Deadline

SOURCES = ("hub", "local", "none")
VERIFY = ("stat", "full")
MODEL_MOUNT = "/models"  # the container role mounts <model_dir>/<repo> at MODEL_MOUNT/<repo>
STAGING = ".staging"
STAGE_CONTAINER = "sglang-model-stage"  # and a hash of the staging directory (stage_container)
STAGE_LABELS = {"io.sglang-rocm.fleet.managed": "true", "io.sglang-rocm.fleet.stage": "model"}
TOKEN_MOUNT = "/run/sglang-model-secrets"
TOKEN_FILE = "hf_token"
CA_MOUNT = "/run/sglang-model-ca.pem"
PROGRESS_FILE = "progress.json"
LOCAL_STAMP = "local-source.json"
# directories of a local model copy that are tools' bookkeeping, not the model
LOCAL_SKIP_DIRS = (".cache", ".git", ".huggingface")
AGENT_MARGIN = 15  # seconds the agent stops before the docker CLI's limit, to answer
RESOLVE_LIMIT = 300  # seconds for asking the hub for the file list
HEX40 = _manifest.HEX40

_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_RE = re.compile(r"^(?:%s/)?%s$" % (_REPO_PART, _REPO_PART))
_REVISION_RE = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_ENDPOINT_RE = re.compile(r"^https?://[^/@\s]+(?::[0-9]+)?(?:/[^\s@]*)?$")


class ModelError(ModuleFailure):
    """A model stage failure: the message names the host, what happened and the fix."""


# --------------------------------------------------------------------------- inputs


def input_problems(values):
    """(variable, seen, expected, fix) for every bad model input; [] when the stage may run.

    ``values`` maps the role's variable names to their values (the validate action passes the
    play's, the module its options under those names). Checks only what is given.
    """
    problems = []
    source = values.get("sglang_model_source", "hub")
    if source not in SOURCES:
        return [("sglang_model_source", repr(source), "one of %s" % ", ".join(SOURCES),
                 "hub stages from the model hub, local from sglang_model_local_dir, none keeps the "
                 "recipe (the server downloads by itself)")]
    if source == "none":
        return problems
    repo = values.get("sglang_model_path")
    if "sglang_model_path" in values and not _repo_ok(repo):
        problems.append(("sglang_model_path", repr(repo),
                         "a model repo id (name or org/name: letters, digits, '.', '_', '-') "
                         "when sglang_model_source is %s" % source,
                         "give the hub's repo id (for example moonshotai/Kimi-Linear-48B-A3B-Instruct); "
                         "to serve a path that is already in the container, set sglang_model_source: none"))
    revision = values.get("sglang_model_revision")
    if source == "hub" and "sglang_model_revision" in values and not _revision_ok(revision):
        problems.append(("sglang_model_revision", repr(revision), "a branch, tag or 40-hex commit",
                         "set it to the commit to pin (recommended) or a branch such as main"))
    endpoint = values.get("sglang_model_hub_endpoint")
    if source == "hub" and "sglang_model_hub_endpoint" in values and not (
            isinstance(endpoint, str) and _ENDPOINT_RE.match(endpoint)):
        problems.append(("sglang_model_hub_endpoint",
                         "a value that is not an http(s) URL without credentials" if "@" in str(endpoint)
                         else repr(endpoint),
                         "an http(s) URL without user:password (it is visible in docker inspect)",
                         "set it to the hub's base URL, for example https://huggingface.co; "
                         "a credential goes in sglang_model_hub_token"))
    for name in ("sglang_model_dir",) + (("sglang_model_local_dir",) if source == "local" else ()):
        if name in values and not _abs_dir_ok(values.get(name)):
            problems.append((name, repr(values.get(name)),
                             "an absolute host directory other than / without ':' or whitespace",
                             "set %s to a directory on the host%s" % (
                                 name, " that holds the model's files" if name == "sglang_model_local_dir" else "")))
    verify = values.get("sglang_model_verify", "stat")
    if verify not in VERIFY:
        problems.append(("sglang_model_verify", repr(verify), "stat or full",
                         "stat re-hashes only files whose size, mtime or inode changed; full re-hashes every file"))
    tokenizer = values.get("sglang_tokenizer_path")
    if ("sglang_tokenizer_path" in values and tokenizer not in (None, "", repo)
            and not str(tokenizer).startswith("/")):
        problems.append(("sglang_tokenizer_path", repr(tokenizer),
                         "sglang_model_path or a path inside the container, because the server runs "
                         "offline (HF_HUB_OFFLINE=1) when sglang_model_source is %s" % source,
                         "leave it at its default (the model's own tokenizer), give a directory in "
                         "the container, or set sglang_model_source: none"))
    return problems


def _repo_ok(repo):
    return (isinstance(repo, str) and bool(_REPO_RE.match(repo)) and ".." not in repo
            and "--" not in repo and not repo.startswith(STAGING))


def _revision_ok(revision):
    return (isinstance(revision, str) and bool(_REVISION_RE.match(revision)) and ".." not in revision
            and not revision.startswith("/") and not revision.endswith("/"))


def _abs_dir_ok(path):
    return (isinstance(path, str) and path.startswith("/") and posixpath.normpath(path) != "/"
            and ":" not in path and not any(ch.isspace() for ch in path))


# --------------------------------------------------------------------------- layout


def layout(model_dir, repo):
    """Host paths of the stage for REPO under MODEL_DIR (see the module docstring)."""
    root = posixpath.normpath(model_dir)
    staging = posixpath.join(root, STAGING, repo)
    return {"final": posixpath.join(root, repo), "staging": staging,
            "download": posixpath.join(staging, "download"),
            "hf_home": posixpath.join(staging, "hf-home"),
            "progress": posixpath.join(staging, PROGRESS_FILE),
            "local_stamp": posixpath.join(staging, LOCAL_STAMP)}


def stage_container(staging):
    """The transient container's name: the same for every run on one staging directory (so a run
    can remove what a killed one left), another for another directory on the same daemon."""
    return "%s-%s" % (STAGE_CONTAINER, hashlib.sha256(staging.encode("utf-8")).hexdigest()[:12])


def served_path(repo):
    """The model's path inside the SGLang container."""
    return posixpath.join(MODEL_MOUNT, repo)


def read_manifest(root):
    """The manifest kept next to the tree at ROOT, or None (absent or unreadable)."""
    try:
        with open(os.path.join(root, _manifest.MANIFEST), encoding="utf-8") as handle:
            return _manifest.load(handle.read(), os.path.join(root, _manifest.MANIFEST))
    except (OSError, _manifest.ManifestError):
        return None


def manifest_text(manifest):
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def unstamped(root, manifest):
    """Paths of the manifest whose file is missing or changed since the stamp was written: the
    probe's cheap question (stat only, never a hash) of whether a host holds a verified copy."""
    stamp = _manifest.read_stamp(root)["files"]
    out = []
    for entry in manifest["files"]:
        path = os.path.join(root, entry["path"])
        remembered = stamp.get(entry["path"]) or {}
        try:
            same = (not os.path.islink(path) and os.path.isfile(path)
                    and remembered == _manifest.stamp_entry(path, entry))
        except OSError:
            same = False
        if not same:
            out.append(entry["path"])
    return out


def extra_files(root, manifest):
    """Paths under ROOT that the manifest does not list (a file of an older revision, a stray
    copy), except the stamp and the manifest file: what the stage removes from the copy."""
    listed = {entry["path"] for entry in manifest["files"]}
    own = {_manifest.STAMP, _manifest.MANIFEST}
    extra = []
    for top, dirs, names in os.walk(root):
        # another staged model nested here (repo "org" next to "org/name") is not ours to remove
        dirs[:] = [d for d in dirs if not os.path.exists(os.path.join(top, d, _manifest.MANIFEST))]
        rel_top = os.path.relpath(top, root)
        for name in sorted(names) + sorted(d for d in dirs if os.path.islink(os.path.join(top, d))):
            rel = name if rel_top == "." else posixpath.join(rel_top, name)
            if rel not in listed and not (rel_top == "." and name in own):
                extra.append(rel)
        dirs.sort()
    return extra


def choose_seed(hosts, probes, revision):
    """{seed, holders}: ``holders`` are the hosts (in play order) whose probe found a verified
    copy of ``revision`` (any revision when it is a branch or tag: the seed asks the hub whether
    it moved); the seed is the first holder, else the first host."""
    pinned = isinstance(revision, str) and bool(HEX40.match(revision))
    holders = []
    for host in hosts:
        probe = probes.get(host) or {}
        if probe.get("held") and (not pinned or probe.get("revision") == revision):
            holders.append(host)
    return {"seed": holders[0] if holders else (list(hosts)[0] if hosts else None), "holders": holders}


def local_files(local_dir):
    """[(relative path, absolute path)] of the regular files under LOCAL_DIR (symlinks to files
    followed, as in a hub cache snapshot), without tools' bookkeeping directories and the
    collection's own stamp and manifest."""
    found = []
    for top, dirs, names in os.walk(local_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not (top == local_dir and d in LOCAL_SKIP_DIRS))
        for name in sorted(names):
            path = os.path.join(top, name)
            rel = os.path.relpath(path, local_dir).replace(os.sep, "/")
            if rel in (_manifest.STAMP, _manifest.MANIFEST) or not os.path.isfile(path):
                continue
            found.append((rel, path))
    return found


def local_manifest(repo, local_dir, remembered, full=False):
    """(manifest, remember): the manifest of the files under LOCAL_DIR, sha256 of each; a file
    whose stat equals what ``remembered`` (the previous run's ``remember``) says is not hashed
    again unless ``full``. The revision is ``local:`` and the sha256 of the file list."""
    files, remember = [], {}
    for rel, path in local_files(local_dir):
        _manifest.safe_relpath(rel)
        key = _manifest.stamp_entry(path, {})["stat"]
        old = (remembered or {}).get(rel) or {}
        if not full and old.get("stat") == key and old.get("sha256"):
            digest = old["sha256"]
        else:
            _size, digest, _git = _manifest.hash_file(path)
        files.append({"path": rel, "size": key[0], "sha256": digest, "git_sha1": None})
        remember[rel] = {"stat": key, "sha256": digest}
    listing = json.dumps([[f["path"], f["size"], f["sha256"]] for f in files]).encode("utf-8")
    return _manifest.build(repo, "local:" + hashlib.sha256(listing).hexdigest(), files), remember


def gib(size):
    return "%.1f GiB" % (size / float(1 << 30)) if size >= 1 << 28 else "%d bytes" % size


def free_bytes(path):
    """Bytes an unprivileged writer may still use on the filesystem that holds PATH."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# --------------------------------------------------------------------------- the module's run


class ModelManager:
    """One sglang_model call: probe, stage (hub or local) or verify, on one host."""

    def __init__(self, params, docker=None, check_mode=False, warn=None, clock=time.monotonic,
                 free=None):
        self.p = params
        self.docker = docker
        self.check_mode = check_mode
        self.warn = warn or (lambda text: None)
        self.clock = clock
        self.free = free or free_bytes
        self.deadline = Deadline(params.get("timeout") or 3600, clock)
        self.paths = layout(params["model_dir"], params["repo"]) if _repo_ok(params.get("repo")) else None
        self.secrets = [params["hub_token"]] if params.get("hub_token") else []
        self.files = {}  # path -> per-file status
        self.stamp = {}
        self.downloaded = 0
        self._image = None

    # ---------------------------------------------------------------- messages

    def fail(self, text, **result):
        raise ModelError("Host %s: %s" % (self.p["host"], mask_text(text, self.secrets)), **result)

    def _values(self):
        p = self.p
        values = {"sglang_model_source": p.get("source") or "hub", "sglang_model_path": p.get("repo"),
                  "sglang_model_dir": p.get("model_dir"), "sglang_model_verify": p.get("verify")}
        if p.get("mode") == "stage" and p.get("source") == "hub":
            values.update(sglang_model_revision=p.get("revision"), sglang_model_hub_endpoint=p.get("hub_endpoint"))
        if p.get("mode") == "stage" and p.get("source") == "local":
            values["sglang_model_local_dir"] = p.get("local_dir")
        return values

    # ---------------------------------------------------------------- entry

    def run(self):
        problems = input_problems(self._values())
        if problems:
            self.fail("invalid model settings, nothing was changed: " + "; ".join(
                "%s is %s, expected %s (%s)" % problem for problem in problems))
        mode = self.p.get("mode") or "stage"
        return {"probe": self.probe, "stage": self.stage, "verify": self.verify}[mode]()

    def base(self, manifest):
        files = (manifest or {}).get("files") or []
        return {"changed": False, "repo": self.p["repo"], "path": self.paths["final"],
                "served_path": served_path(self.p["repo"]),
                "revision": (manifest or {}).get("revision"), "manifest": manifest,
                "files_total": len(files), "bytes_total": sum(e["size"] for e in files)}

    # ---------------------------------------------------------------- probe

    def probe(self):
        held = read_manifest(self.paths["final"])
        result = self.base(None)
        result.update(held=False, manifest=None, unverified=[])
        if held is None or held.get("repo") != self.p["repo"]:
            return result
        changed = unstamped(self.paths["final"], held)
        result.update(held=not changed, revision=held["revision"], unverified=changed[:20],
                      files_total=len(held["files"]), bytes_total=_manifest.total_bytes(held))
        return result

    # ---------------------------------------------------------------- verify (after the fan-out)

    def verify(self):
        try:
            manifest = _manifest.load(json.dumps(self.p.get("manifest")), "the manifest option")
        except (TypeError, _manifest.ManifestError) as exc:
            self.fail("cannot verify %s: %s (the model role passes the seed's manifest)" % (self.p["repo"], exc))
        started = self.clock()
        final = self.paths["final"]
        check = _manifest.check_tree(final, manifest, full=self.p.get("verify") == "full")
        extras = extra_files(final, manifest) if os.path.isdir(final) else []
        result = self.base(manifest)
        for path in check["ok"]:
            self.files[path] = {"path": path, "status": "ok"}
        for path in check["missing"]:
            self.files[path] = {"path": path, "status": "missing"}
        for bad in check["bad"]:
            self.files[bad["path"]] = {"path": bad["path"], "status": "bad", "reason": bad["reason"]}
        self.stamp = dict(check["stamp"])
        result.update(removed=extras, files=self.file_list(manifest))
        if self.check_mode:
            result["changed"] = bool(extras or check["missing"] or check["bad"]
                                     or self.manifest_changes(manifest))
            return result
        result["changed"] = self.remove_extras(extras) | self.write_bookkeeping(manifest)
        result["seconds"] = round(self.clock() - started, 3)
        if check["missing"] or check["bad"]:
            self.fail("%d file(s) of %s@%s are missing or do not match the manifest after the transfer: %s. "
                      "Re-run the model stage: the files are fetched again from a host that holds them"
                      % (len(check["missing"]) + len(check["bad"]), self.p["repo"], manifest["revision"],
                         self.summary(check["missing"], check["bad"])), **result)
        return result

    # ---------------------------------------------------------------- stage

    def stage(self):
        started = self.clock()
        source = self.p["source"]
        if source == "hub":
            manifest, resolved = self.hub_manifest()
            sources = None
        else:
            manifest, sources = self.local_source()
            resolved = False
        result = self.base(manifest)
        result.update(source=source, resolved=resolved, progress_file=self.paths["progress"],
                      bytes_downloaded=0, bytes_placed=0, removed=[])
        if manifest is None:  # check mode, and the image is not on the host yet
            result.update(changed=True, files=[], would_fetch=None)
            return result
        final = self.paths["final"]
        check = _manifest.check_tree(final, manifest, full=self.p.get("verify") == "full")
        extras = extra_files(final, manifest) if os.path.isdir(final) else []
        bad = {item["path"]: item["reason"] for item in check["bad"]}
        need = [e for e in manifest["files"] if e["path"] in bad or e["path"] in check["missing"]]
        for path in check["ok"]:
            self.files[path] = {"path": path, "status": "ok"}
        for entry in need:
            self.files[entry["path"]] = {"path": entry["path"], "status": "bad" if entry["path"] in bad else "missing",
                                         "reason": bad.get(entry["path"], "missing")}
        self.stamp = dict(check["stamp"])
        if self.check_mode:
            for entry in need:
                self.files[entry["path"]] = {"path": entry["path"], "status": "would_fetch",
                                             "reason": bad.get(entry["path"], "missing")}
            result.update(changed=bool(need or extras or self.manifest_changes(manifest)),
                          would_fetch=[e["path"] for e in need], would_fetch_bytes=sum(e["size"] for e in need),
                          removed=extras, files=self.file_list(manifest))
            return result
        error = None
        try:
            if need:
                self.prepare_staging()
                if source == "hub":
                    self.fetch_hub(need, manifest)
                else:
                    self.fetch_local(need, manifest, sources)
        except ModelError as exc:
            error = exc
        changed = self.remove_extras(extras) | self.write_bookkeeping(manifest)
        placed = [e for e in need if self.files.get(e["path"], {}).get("status") in ("fetched", "replaced")]
        failed = [self.files[e["path"]] for e in need if self.files[e["path"]]["status"] not in ("fetched", "replaced")]
        result.update(changed=changed or bool(placed), removed=extras, files=self.file_list(manifest),
                      bytes_downloaded=self.downloaded, bytes_placed=sum(e["size"] for e in placed),
                      seconds=round(self.clock() - started, 3))
        if error is not None:
            raise ModelError(error.msg, **dict(error.result, **result))
        if failed:
            self.fail("%d file(s) of %s@%s were not placed: %s. A file whose hash did not match was "
                      "deleted and is fetched again on the next run; if it keeps failing, the source "
                      "serves corrupt data" % (len(failed), self.p["repo"], manifest["revision"],
                                               "; ".join("%s (%s)" % (f["path"], f.get("reason", f["status"]))
                                                         for f in failed[:10])), **result)
        self.clean_staging()
        return result

    # ---------------------------------------------------------------- hub

    def hub_manifest(self):
        """(manifest, asked the hub): a pinned commit that the host already holds needs no hub."""
        held = read_manifest(self.paths["final"])
        revision = self.p["revision"]
        if held is not None and held["repo"] == self.p["repo"] and held["revision"] == revision and HEX40.match(revision):
            return held, False
        try:
            answer = self.agent({"op": "resolve", "repo": self.p["repo"], "revision": revision},
                                limit=min(RESOLVE_LIMIT, self.deadline.remaining()), writable=False)
        except ModelError as exc:
            if exc.result.get("kind") == "image_missing" and self.check_mode:
                self.warn("%s; check mode cannot ask the hub for %s@%s" % (exc.msg, self.p["repo"], revision))
                return None, False
            if exc.result.get("kind") == "unreachable" and held is not None and held["repo"] == self.p["repo"] \
                    and not HEX40.match(revision) and not unstamped(self.paths["final"], held):
                self.warn("%s; the verified copy of %s@%s already on the host is kept (whether %s moved "
                          "on the hub is unknown)" % (exc.msg, self.p["repo"], held["revision"], revision))
                return held, False
            raise
        try:
            return _manifest.from_hub_info(answer.get("info"), self.p["repo"]), True
        except _manifest.ManifestError as exc:
            self.fail("the hub at %s answered for %s@%s with a file list that cannot be verified: %s. "
                      "Check sglang_model_hub_endpoint (it must be a Hugging Face compatible hub)"
                      % (self.p["hub_endpoint"], self.p["repo"], revision, exc))

    def agent(self, payload, limit, writable=True):
        """Run the model agent in a transient container; ModelError with the fix on failure."""
        if limit < AGENT_MARGIN + 5:
            self.fail("sglang_model_timeout (%s s) is used up before %s could run: raise it"
                      % (self.p["timeout"], payload["op"]), kind="deadline")
        payload = dict(payload, deadline=int(limit - AGENT_MARGIN))
        mounts, env = [], {"HF_ENDPOINT": self.p["hub_endpoint"], "HF_HUB_DISABLE_TELEMETRY": "1",
                           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0"}
        if writable:
            mounts.append((self.paths["staging"], self.paths["staging"], "rw"))
            env["HF_HOME"] = self.paths["hf_home"]
        else:
            env["HF_HOME"] = "/tmp/sglang-model-hf-home"
        if self.p.get("ca_bundle"):
            mounts.append((self.p["ca_bundle"], CA_MOUNT, "ro"))
            env.update(REQUESTS_CA_BUNDLE=CA_MOUNT, SSL_CERT_FILE=CA_MOUNT)
        token_dir = None
        try:
            if self.p.get("hub_token"):
                token_dir = tempfile.mkdtemp(prefix="sglang-model-token.")
                fd = os.open(os.path.join(token_dir, TOKEN_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.p["hub_token"])
                mounts.append((token_dir, TOKEN_MOUNT, "ro"))
                env["HF_TOKEN_PATH"] = posixpath.join(TOKEN_MOUNT, TOKEN_FILE)
            self.remove_leftover()
            return self.docker.run_agent(
                self.image(), self.p["python"], _agent_model, payload, what="the model agent (%s)" % payload["op"],
                timeout=int(limit), name=stage_container(self.paths["staging"]), mounts=mounts, env=env, network="host",
                labels=STAGE_LABELS, python_name="the model role's python option", image_name="sglang_image",
                secrets=self.secrets, limit_name="sglang_model_timeout")
        except ImageMissing as exc:
            self.fail(exc.msg, kind="image_missing")
        except AgentFailed as exc:
            self.fail(self.agent_message(exc.result.get("kind"), exc.msg), **exc.result)
        except AgentTimedOut as exc:
            self.fail(self.agent_message("deadline", exc.msg), kind="deadline")
        except ModuleFailure as exc:
            self.fail(exc.msg, **exc.result)
        finally:
            if token_dir:
                shutil.rmtree(token_dir, ignore_errors=True)

    def image(self):
        """The image of the SGLang container when it exists (so a registry mirror or a pinned
        digest is honoured), else sglang_image."""
        if self._image:
            return self._image
        self._image = self.p["image"]
        if self.p.get("container"):
            done = self.docker.command(["inspect", "--type", "container", "--format", "{{.Image}}",
                                        self.p["container"]], timeout=60)
            image = (done.stdout or "").strip()
            if done.rc == 0 and image.startswith("sha256:"):
                self._image = image
        return self._image

    def remove_leftover(self):
        """A stage container left running by a killed run would write into the staging dir."""
        name = stage_container(self.paths["staging"])
        done = self.docker.command(["rm", "--force", name], timeout=60)
        if done.rc != 0 and "No such container" not in (done.stderr or ""):
            self.fail("cannot remove the leftover container %s of an earlier model stage: %s"
                      % (name, (done.stderr or done.stdout or "").strip()))

    def agent_message(self, kind, detail):
        repo, rev, endpoint = self.p["repo"], self.p.get("revision"), self.p.get("hub_endpoint")
        messages = {
            "revision_not_found": "the hub at %s has no revision %r of %s (sglang_model_revision). Set "
                                  "sglang_model_revision to a branch, tag or commit of the repo" % (endpoint, rev, repo),
            "repo_not_found": "the hub at %s has no model repo %s, or it is private or gated and %s "
                              "(sglang_model_path, sglang_model_hub_token). Fix the repo id, or set "
                              "sglang_model_hub_token to a token with read access"
                              % (endpoint, repo, "the token does not open it" if self.secrets else "no token was given"),
            "token_refused": "the hub at %s refused the token (sglang_model_hub_token): it is invalid, expired "
                             "or may not read %s. Set sglang_model_hub_token to a valid read token (from a "
                             "vault), or to '' for a public repo" % (endpoint, repo),
            "gated": "%s is gated on %s: accept its terms with the account of sglang_model_hub_token, or "
                     "use a token of an account that has" % (repo, endpoint),
            "entry_not_found": "the hub at %s lists a file of %s@%s that it does not serve; re-run, or pin "
                               "sglang_model_revision to another commit" % (endpoint, repo, rev),
            "unreachable": "the hub at %s (sglang_model_hub_endpoint) cannot be reached from this host (a "
                           "container of the image on the host network). Fix the endpoint or the network "
                           "(sglang_model_hub_ca_bundle for a TLS-inspecting proxy), or stage from a local "
                           "copy with sglang_model_source: local" % endpoint,
            "disk_full": "the disk holding %s is full. Free space there or set sglang_model_dir to a "
                         "directory on a larger disk; what was fetched is kept and the next run resumes"
                         % self.paths["staging"],
            "deadline": "the transfer of %s did not finish within sglang_model_timeout (%s s). What was "
                        "fetched is kept and the next run resumes it; raise sglang_model_timeout for a "
                        "slow link" % (repo, self.p.get("timeout")),
            "no_hub_library": "the image cannot stage from the hub: its Python (the python option) has no "
                              "huggingface_hub. Use an SGLang image, or stage with sglang_model_source: local",
        }
        text = messages.get(kind, "staging %s@%s from %s failed" % (repo, rev, endpoint))
        return "%s. Detail: %s" % (text, detail)

    def fetch_hub(self, need, manifest):
        """Take what an earlier run left complete, then download the rest and verify each file."""
        self.collect(need, "salvaged")
        todo = [e for e in need if e["path"] not in self.placed()]
        if not todo:
            return
        self.check_space(todo)
        files = [{"path": e["path"], "size": e["size"], "etag": e.get("sha256") or e.get("git_sha1")} for e in todo]
        error = None
        try:
            answer = self.agent({"op": "download", "repo": self.p["repo"], "commit": manifest["revision"],
                                 "files": files, "local_dir": self.paths["download"],
                                 "progress_path": self.paths["progress"]},
                                limit=self.deadline.remaining())
        except ModelError as exc:
            error, answer = exc, exc.result
        self.downloaded += int(answer.get("bytes_downloaded") or 0)
        for item in answer.get("files") or []:
            if item.get("status") == "failed":
                self.files[item["path"]] = {"path": item["path"], "status": "failed",
                                            "reason": mask_text(str(item.get("error")), self.secrets)}
        self.collect(todo, "fetched")
        if error is not None:
            raise error

    # ---------------------------------------------------------------- local

    def local_source(self):
        local_dir = self.p["local_dir"]
        if not os.path.isdir(local_dir):
            self.fail("sglang_model_local_dir %s is not a directory on this host; set it to the directory "
                      "that holds the model's files (config.json, *.safetensors, ...)" % local_dir)
        try:
            with open(self.paths["local_stamp"], encoding="utf-8") as handle:
                remembered = json.load(handle).get("files") or {}
        except (OSError, ValueError, AttributeError):
            remembered = {}
        try:
            manifest, remember = local_manifest(self.p["repo"], local_dir, remembered,
                                                full=self.p.get("verify") == "full")
        except (OSError, _manifest.ManifestError) as exc:
            self.fail("cannot read the model in sglang_model_local_dir %s: %s" % (local_dir, exc))
        if not manifest["files"]:
            self.fail("sglang_model_local_dir %s holds no files; set it to the directory that holds "
                      "the model's files" % local_dir)
        if not self.check_mode and remember != remembered:
            os.makedirs(self.paths["staging"], mode=0o755, exist_ok=True)
            write_atomic(self.paths["local_stamp"], json.dumps({"local_dir": local_dir, "files": remember},
                                                               sort_keys=True) + "\n")
        return manifest, dict(local_files(local_dir))

    def fetch_local(self, need, manifest, sources):
        """Hardlink (same filesystem) or copy each needed file into the download dir, then verify."""
        download = self.paths["download"]
        copy_bytes = sum(e["size"] for e in need if not _same_device(sources[e["path"]], download))
        if copy_bytes:
            self.check_space([e for e in need if not _same_device(sources[e["path"]], download)])
        progress = _agent_model.Progress(self.paths["progress"], need, download)
        for entry in need:
            progress.current = entry["path"]
            progress.write()
            target = os.path.join(download, entry["path"])
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    os.unlink(target)
                try:
                    os.link(os.path.realpath(sources[entry["path"]]), target)
                    how = "linked"
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                        raise
                    shutil.copyfile(sources[entry["path"]], target)
                    how = "copied"
            except OSError as exc:
                if os.path.lexists(target):
                    os.unlink(target)
                if exc.errno == errno.ENOSPC:
                    self.fail(self.agent_message("disk_full", str(exc)), kind="disk_full")
                self.fail("cannot copy %s from sglang_model_local_dir: %s" % (entry["path"], exc))
            self.collect([entry], how)
            progress.done += entry["size"]
        progress.current = None
        progress.write()

    # ---------------------------------------------------------------- shared steps

    def placed(self):
        return {path for path, item in self.files.items() if item["status"] in ("fetched", "replaced")}

    def prepare_staging(self):
        try:
            for key in ("final", "download"):
                os.makedirs(self.paths[key], mode=0o755, exist_ok=True)
        except OSError as exc:
            self.fail("cannot create %s under sglang_model_dir: %s" % (self.paths["download"], exc))

    def check_space(self, entries):
        """Refuse before fetching when the files cannot fit (what is on disk of them counts)."""
        partial = _agent_model.partial_bytes(self.paths["download"])
        need = max(sum(e["size"] for e in entries) - partial, 0)
        free = self.free(self.paths["download"])
        if need > free:
            self.fail("not enough free space for %s: %s to fetch into %s, %s free on that filesystem. Free "
                      "space there or set sglang_model_dir to a directory on a larger disk; nothing was fetched"
                      % (self.p["repo"], gib(need), self.paths["download"], gib(free)),
                      kind="disk_full", bytes_needed=need, bytes_free=free)

    def collect(self, entries, how):
        """Verify each entry's file in the download dir: a match moves to its final name, anything
        else is deleted (with huggingface_hub's record of it, so it is fetched again)."""
        for entry in entries:
            path = entry["path"]
            source = os.path.join(self.paths["download"], path)
            if not os.path.isfile(source) or os.path.islink(source):
                continue
            reason = _manifest.verify_file(source, entry)
            if reason:
                self.forget_download(path)
                self.files[path] = {"path": path, "status": "failed",
                                    "reason": "refused and deleted: %s" % reason}
                continue
            target = os.path.join(self.paths["final"], path)
            replaced = os.path.lexists(target)
            try:
                if how != "linked":
                    mode = os.stat(source).st_mode & 0o777
                    if mode & 0o444 != 0o444:
                        os.chmod(source, mode | 0o444)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                os.replace(source, target)
            except OSError as exc:
                self.fail("cannot move %s into %s: %s" % (path, self.paths["final"], exc))
            self.stamp[path] = _manifest.stamp_entry(target, entry)
            self.files[path] = {"path": path, "status": "replaced" if replaced else "fetched", "how": how}

    def forget_download(self, path):
        for victim in (os.path.join(self.paths["download"], path),
                       os.path.join(self.paths["download"], ".cache", "huggingface", "download", path + ".metadata")):
            if os.path.lexists(victim):
                os.unlink(victim)

    def remove_extras(self, extras):
        final = self.paths["final"]
        for rel in extras:
            path = os.path.join(final, rel)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
            parent = os.path.dirname(path)
            while parent != final and os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
                parent = os.path.dirname(parent)
        return bool(extras)

    def manifest_changes(self, manifest):
        try:
            with open(os.path.join(self.paths["final"], _manifest.MANIFEST), encoding="utf-8") as handle:
                return handle.read() != manifest_text(manifest)
        except OSError:
            return True

    def write_bookkeeping(self, manifest):
        """Write the stamp (the files verified now) and the manifest; True when the manifest is new."""
        final = self.paths["final"]
        os.makedirs(final, mode=0o755, exist_ok=True)
        _manifest.write_stamp(final, manifest, self.stamp)
        changed = self.manifest_changes(manifest)
        if changed:
            write_atomic(os.path.join(final, _manifest.MANIFEST), manifest_text(manifest))
        return changed

    def clean_staging(self):
        """After a complete stage: the download dir and the container's HF_HOME go; the progress
        file and the local source's stamp stay."""
        for key in ("download", "hf_home"):
            shutil.rmtree(self.paths[key], ignore_errors=True)

    def file_list(self, manifest):
        out = []
        for entry in manifest["files"]:
            item = dict(self.files.get(entry["path"]) or {"path": entry["path"], "status": "unknown"})
            item["size"] = entry["size"]
            out.append(item)
        return out

    @staticmethod
    def summary(missing, bad):
        items = ["%s (missing)" % path for path in missing] + ["%s (%s)" % (b["path"], b["reason"]) for b in bad]
        return "; ".join(items[:10]) + ("; and %d more" % (len(items) - 10) if len(items) > 10 else "")


def _same_device(path, directory):
    try:
        return os.stat(path).st_dev == os.stat(directory).st_dev
    except OSError:
        return False

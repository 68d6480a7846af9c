# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The manifest of one pinned model revision, and how a file is checked against it (stdlib only).

A manifest lists every file of the revision with its size and hash, as the hub's
``GET /api/models/{repo}/revision/{rev}?blobs=true`` describes it: LFS files carry the sha256
of their content (``lfs.sha256``), the others only their git blob id (``blobId``, the sha1 of
``b"blob <size>\\0" + content``). snapshot_download neither asks for nor checks these, so every
copy the collection makes (from the hub, from a local directory, from a peer) is checked here.

    {"schema_version": 1, "repo": "org/name", "revision": "<40-hex commit>",
     "files": [{"path": "model-00001-of-00002.safetensors", "size": 123,
                "sha256": "<64 hex>" or None, "git_sha1": "<40 hex>" or None}, ...]}

File names come from outside (the hub, a directory): ``safe_relpath`` refuses any that would
leave the model directory. A tree's verified state is kept next to it (``STAMP``: size, mtime
and inode of each file when it last matched its hash), so a re-run hashes only files that
changed since; ``full=True`` hashes everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re

SCHEMA_VERSION = 1
STAMP = ".sglang-verified.json"
MANIFEST = ".sglang-manifest.json"  # the manifest kept next to a verified tree
CHUNK = 4 * 1024 * 1024
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest, a hub answer or a file name that cannot be used, with the reason."""


def safe_relpath(name):
    """``name`` as a relative POSIX path inside the model directory, or ManifestError."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise ManifestError("file name %r is not a usable relative path" % (name,))
    norm = posixpath.normpath(name)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or norm == "." or norm != name:
        raise ManifestError("file name %r would leave the model directory (or is not normalised)" % (name,))
    if posixpath.basename(norm) in (STAMP, MANIFEST):
        raise ManifestError("file name %r is reserved for the collection's own bookkeeping" % (name,))
    return norm


def from_hub_info(info, repo):
    """A manifest from the hub's revision answer (``?blobs=true``)."""
    if not isinstance(info, dict):
        raise ManifestError("the hub's answer for %s is not a JSON object" % repo)
    commit = info.get("sha")
    if not isinstance(commit, str) or not HEX40.match(commit):
        raise ManifestError("the hub's answer for %s has no 40-hex commit sha (got %r)" % (repo, commit))
    siblings = info.get("siblings")
    if not isinstance(siblings, list) or not siblings:
        raise ManifestError("the hub lists no files for %s at %s" % (repo, commit))
    files = []
    for entry in siblings:
        if not isinstance(entry, dict):
            raise ManifestError("a file entry of %s is not an object: %r" % (repo, entry))
        path = safe_relpath(entry.get("rfilename"))
        lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else None
        size = (lfs or {}).get("size", entry.get("size"))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError("%s: no size for %s (ask the hub with ?blobs=true)" % (repo, path))
        sha256 = (lfs or {}).get("sha256")
        blob = entry.get("blobId")
        if sha256 is not None and not (isinstance(sha256, str) and HEX64.match(sha256)):
            raise ManifestError("%s: %s has a malformed lfs.sha256 %r" % (repo, path, sha256))
        if blob is not None and not (isinstance(blob, str) and HEX40.match(blob)):
            raise ManifestError("%s: %s has a malformed blobId %r" % (repo, path, blob))
        if sha256 is None and blob is None:
            raise ManifestError("%s: %s has neither lfs.sha256 nor blobId: it cannot be verified" % (repo, path))
        files.append({"path": path, "size": size, "sha256": sha256,
                      "git_sha1": None if sha256 else blob})
    return build(repo, commit, files)


def build(repo, revision, files):
    """A manifest; refuses duplicate paths."""
    seen = set()
    for entry in files:
        if entry["path"] in seen:
            raise ManifestError("%s lists %s twice" % (repo, entry["path"]))
        seen.add(entry["path"])
    return {"schema_version": SCHEMA_VERSION, "repo": repo, "revision": revision,
            "files": sorted(files, key=lambda e: e["path"])}


def load(text, where="<manifest>"):
    """A manifest from JSON text, checked."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError("%s does not parse as JSON: %s" % (where, exc))
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("files"), list):
        raise ManifestError("%s is not a manifest of schema_version %d" % (where, SCHEMA_VERSION))
    for entry in data["files"]:
        safe_relpath(entry.get("path"))
        if not (entry.get("sha256") or entry.get("git_sha1")):
            raise ManifestError("%s: %s has no hash" % (where, entry.get("path")))
    return data


def total_bytes(manifest):
    return sum(entry["size"] for entry in manifest["files"])


def hash_file(path, with_sha256=True, with_git_sha1=False):
    """(size, sha256 hex or None, git blob sha1 hex or None) of the file at path, read once."""
    size = os.path.getsize(path)
    sha = hashlib.sha256() if with_sha256 else None
    git = hashlib.sha1(b"blob %d\x00" % size) if with_git_sha1 else None  # nosec - git's object id, not security
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            if sha:
                sha.update(chunk)
            if git:
                git.update(chunk)
    return size, sha.hexdigest() if sha else None, git.hexdigest() if git else None


def verify_file(path, entry):
    """None when the file at path is the manifest entry's content, else the reason it is not."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return "missing (%s)" % (exc.strerror or exc)
    if size != entry["size"]:
        return "size %d, expected %d" % (size, entry["size"])
    _size, sha256, git_sha1 = hash_file(path, bool(entry.get("sha256")), not entry.get("sha256"))
    if entry.get("sha256") and sha256 != entry["sha256"]:
        return "sha256 %s, expected %s" % (sha256, entry["sha256"])
    if not entry.get("sha256") and git_sha1 != entry.get("git_sha1"):
        return "git blob sha1 %s, expected %s" % (git_sha1, entry.get("git_sha1"))
    return None


def _stat_key(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def read_stamp(root):
    try:
        with open(os.path.join(root, STAMP), encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {"files": {}}
    except (OSError, ValueError):
        return {"files": {}}


def check_tree(root, manifest, full=False):
    """Compare the tree at root with the manifest.

    Returns {ok: [paths], missing: [paths], bad: [{path, reason}], extra_bytes_ok: int, stamp: {...}}:
    a file is ok when its stat matches the stamp written the last time it verified (unless
    ``full``), else when its hash matches now. ``stamp`` is the state to write back with
    ``write_stamp`` (only files that are ok).
    """
    stamp = {} if full else read_stamp(root)["files"]
    result = {"ok": [], "missing": [], "bad": [], "ok_bytes": 0, "stamp": {}}
    for entry in manifest["files"]:
        path = os.path.join(root, entry["path"])
        if not os.path.lexists(path):
            result["missing"].append(entry["path"])
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            result["bad"].append({"path": entry["path"], "reason": "not a regular file"})
            continue
        record = stamp_entry(path, entry)
        remembered = stamp.get(entry["path"])
        if remembered and remembered.get("stat") == record["stat"] and remembered.get("hash") == record["hash"]:
            reason = None
        else:
            reason = verify_file(path, entry)
        if reason:
            result["bad"].append({"path": entry["path"], "reason": reason})
        else:
            result["ok"].append(entry["path"])
            result["ok_bytes"] += entry["size"]
            result["stamp"][entry["path"]] = record
    return result


def stamp_entry(path, entry):
    """The stamp's record of the file at path, to be kept only once it matched ``entry``."""
    return {"stat": _stat_key(path), "hash": entry.get("sha256") or entry.get("git_sha1")}


def write_stamp(root, manifest, files):
    """Write the verified-state stamp of root atomically (a reader never sees half of it).

    Returns False when the stamp on disk already says exactly that (nothing written)."""
    text = stamp_text(manifest, files)
    path = os.path.join(root, STAMP)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


def stamp_text(manifest, files):
    return json.dumps({"schema_version": SCHEMA_VERSION, "repo": manifest["repo"], "revision": manifest["revision"],
                       "files": files}, indent=1, sort_keys=True) + "\n"

# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Logic of the image_archive module: an image tarball on the host checked against its sha256
and the image reference it must carry, before anything loads it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile


class ArchiveError(Exception):
    """The archive must not be loaded: ``msg`` plus result fields (sha256, repo_tags)."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def file_sha256(path, chunk=4 * 1024 * 1024):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def archive_repo_tags(path):
    """RepoTags from manifest.json (docker save) or ref annotations from index.json (OCI)."""
    tags = []
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.name.lstrip("./") == "manifest.json":
                for entry in json.load(archive.extractfile(member)) or []:
                    tags.extend(entry.get("RepoTags") or [])
            elif member.name.lstrip("./") == "index.json":
                index = json.load(archive.extractfile(member)) or {}
                for manifest in index.get("manifests") or []:
                    name = (manifest.get("annotations") or {}).get("io.containerd.image.name")
                    if name:
                        tags.append(name)
    return sorted(set(familiar(tag) for tag in tags))


def familiar(ref):
    """docker.io/library/ubuntu:22.04 -> ubuntu:22.04, as Docker shows references."""
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/"):]
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[len("library/"):]
    return ref


def verify(path, sha256, image, host):
    """The module's result for a good archive; ArchiveError, naming the host, for any other."""
    expected = sha256.strip().lower()
    if expected.startswith("sha256:"):
        expected = expected[len("sha256:"):]
    if not re.match(r"^[0-9a-f]{64}$", expected):
        raise ArchiveError("Host %s: sglang_container_image_archive_sha256=%r is not a sha256 (64 "
                           "hex digits)" % (host, sha256))
    if not os.path.isfile(path):
        raise ArchiveError("Host %s: image archive %s does not exist on the host" % (host, path))
    actual = file_sha256(path)
    if actual != expected:
        raise ArchiveError(
            "Host %s: image archive %s has sha256 %s but sglang_container_image_archive_sha256 "
            "is %s; the archive is corrupt or not the intended one. Nothing was loaded and the "
            "image already on the host, if any, is untouched." % (host, path, actual, expected),
            sha256=actual)
    try:
        tags = archive_repo_tags(path)
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ArchiveError("Host %s: image archive %s matches its sha256 but is not a readable "
                           "image tarball (docker save output): %s" % (host, path, exc), sha256=actual)
    if image and familiar(image) not in tags:
        raise ArchiveError(
            "Host %s: image archive %s carries %s, not %s; set sglang_image to the reference "
            "the archive was saved with (or re-save it with that tag). Nothing was loaded."
            % (host, path, ", ".join(tags) or "no image reference", image),
            sha256=actual, repo_tags=tags)
    return {"changed": False, "sha256": actual, "repo_tags": tags, "size": os.path.getsize(path)}

# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own plugins only; it is not a
# public API and may change without notice.
"""What playbooks/teardown.yml removes, decided from what the host's Docker daemon reported and
where the cache paths really are on the host."""

from __future__ import annotations

import posixpath
import re


def repository(reference):
    """The repository of an image reference: no digest, no tag (a registry port is kept)."""
    name = str(reference).split("@", 1)[0]
    return re.sub(r":[^:/]*$", "", name)


def owned_images(containers, images, image):
    """Every tag of the repositories that the collection's containers and ``image`` use (never
    another repository's): the tags a teardown with images removes."""
    repositories = {repository(c.get("Image", "")) for c in containers or []}
    repositories.add(repository(image))
    repositories.discard("")
    tags = []
    for entry in images or []:
        for tag in entry.get("RepoTags") or []:
            if repository(tag) in repositories and tag not in tags and "<none>" not in tag:
                tags.append(tag)
    return tags


def _under(path, root):
    """Whether PATH lies strictly below ROOT (both normalised absolute paths)."""
    return root != "/" and path != root and path.startswith(root.rstrip("/") + "/")


def cache_plan(paths, cache_dir, resolved=None):
    """Which of PATHS (the cache directories a teardown would remove) are the collection's.

    Only an absolute path strictly below ``cache_dir`` (sglang_cache_dir) is removed: not a
    relative path, not one with ``..``, not ``cache_dir`` itself (it holds bench-results), not a
    path elsewhere (a shared NFS HF_HOME), and not one that leaves ``cache_dir`` through a
    symlink. ``resolved`` maps each path and ``cache_dir`` to its real path on the host
    (``realpath -m``); a path missing from it is kept. Returns ``{"remove": [paths],
    "kept": [{"path", "reason", "message"}]}``, each path once, in the order given.
    """
    resolved = resolved or {}
    plan = {"remove": [], "kept": []}
    root = posixpath.normpath(cache_dir) if isinstance(cache_dir, str) and cache_dir.startswith("/") else None
    real_root = resolved.get(cache_dir)
    seen = set()
    for path in paths or []:
        key = str(path)
        if key in seen:
            continue
        seen.add(key)
        reason = None
        if not isinstance(path, str) or not path.strip():
            reason = "not a path"
        elif root is None or root == "/":
            reason = "sglang_cache_dir (%r) is not an absolute directory below /, so nothing is the collection's" % (cache_dir,)
        elif not path.startswith("/"):
            reason = "a relative path; only absolute paths under sglang_cache_dir (%s) are removed" % root
        elif ".." in path.split("/"):
            reason = "contains '..'; only plain paths under sglang_cache_dir (%s) are removed" % root
        elif posixpath.normpath(path) == root:
            reason = "is sglang_cache_dir itself, which also holds what is kept (bench-results)"
        elif not _under(posixpath.normpath(path), root):
            reason = ("outside sglang_cache_dir (%s): not the collection's to delete (a shared HF_HOME "
                      "or NFS cache, for example)" % root)
        elif path not in resolved or real_root is None:
            reason = "its real path on the host is unknown"
        elif not _under(resolved[path], real_root):
            reason = "resolves to %s through a symlink, outside sglang_cache_dir (%s)" % (resolved[path], real_root)
        if reason:
            plan["kept"].append({"path": key, "reason": reason,
                                 "message": "kept %s (not removed): %s" % (key, reason)})
        else:
            plan["remove"].append(path)
    return plan


def weights_note(plan, model_dir, remove_model=True):
    """One sentence for the run's output: whether the teardown removes the staged model weights
    (``model_dir``, sglang_model_dir), given the cache_plan that listed it."""
    if not remove_model:
        return "staged model weights in %s are kept (sglang_teardown_remove_model is false)" % model_dir
    if model_dir in plan["remove"]:
        return "staged model weights in %s are removed (under sglang_cache_dir)" % model_dir
    for item in plan["kept"]:
        if item["path"] == model_dir:
            return "staged model weights in %s are kept: %s" % (model_dir, item["reason"])
    return "staged model weights in %s are kept: not a cache path of this teardown" % model_dir

"""teardown_cache / _teardown.cache_plan: a teardown removes only what is under sglang_cache_dir."""
import os
import subprocess

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.filter.teardown_cache import teardown_cache
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._teardown import cache_plan

CACHE = "/var/cache/sglang"


def resolved_as_is(*paths):
    return {path: os.path.normpath(path) for path in (CACHE,) + paths}


def kept(plan):
    return {item["path"]: item["reason"] for item in plan["kept"]}


def test_paths_under_the_cache_are_removed():
    paths = [CACHE + "/huggingface", CACHE + "/triton/", CACHE + "/wheelhouse"]
    assert cache_plan(paths, CACHE, resolved_as_is(*paths)) == {"remove": paths, "kept": []}


@pytest.mark.parametrize("path, reason", [
    ("/mnt/nfs/hf", "outside sglang_cache_dir (/var/cache/sglang): not the collection's to delete"),
    ("huggingface", "a relative path"),
    ("./var/cache/sglang/hf", "a relative path"),
    (CACHE + "/../../../etc", "contains '..'"),
    (CACHE, "is sglang_cache_dir itself"),
    (CACHE + "/", "is sglang_cache_dir itself"),
    ("/var/cache/sglang-other/hf", "outside sglang_cache_dir"),
    ("", "not a path"),
])
def test_anything_else_is_kept_with_its_reason(path, reason):
    plan = cache_plan([path], CACHE, resolved_as_is(path) if path else {CACHE: CACHE})
    assert plan["remove"] == [] and reason in kept(plan)[path]


def test_a_symlink_that_leaves_the_cache_is_kept():
    paths = [CACHE + "/huggingface", CACHE + "/triton"]
    resolved = {CACHE: CACHE, paths[0]: "/mnt/nfs/shared-hf", paths[1]: CACHE + "/triton"}
    plan = cache_plan(paths, CACHE, resolved)
    assert plan["remove"] == [CACHE + "/triton"]
    assert kept(plan) == {paths[0]: "resolves to /mnt/nfs/shared-hf through a symlink, outside "
                                    "sglang_cache_dir (/var/cache/sglang)"}


def test_unknown_real_paths_and_a_root_cache_dir_remove_nothing():
    assert cache_plan([CACHE + "/hf"], CACHE, {})["remove"] == []
    assert cache_plan(["/hf"], "/", {"/": "/", "/hf": "/hf"})["remove"] == []
    assert cache_plan([CACHE + "/hf"], "relative", {})["remove"] == []


def test_the_filter_reads_realpath_output_on_a_real_tree(tmp_path):
    cache = tmp_path / "cache"
    (cache / "triton").mkdir(parents=True)
    shared = tmp_path / "nfs-hf"
    shared.mkdir()
    (cache / "huggingface").symlink_to(shared)
    paths = [str(cache / "huggingface" / "hub"), str(cache / "triton"), str(tmp_path / "elsewhere"),
             str(cache / "triton")]
    lines = subprocess.run(["realpath", "-m", "--", str(cache)] + paths, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    plan = teardown_cache(paths, str(cache), lines)
    assert plan["remove"] == [str(cache / "triton")]
    assert "through a symlink" in kept(plan)[paths[0]] and "outside" in kept(plan)[paths[2]]
    # realpath output that does not match the paths removes nothing
    assert teardown_cache(paths, str(cache), lines[:1])["remove"] == []


def test_the_run_says_whether_the_staged_weights_go():
    models = CACHE + "/models"
    paths = [CACHE + "/huggingface", models]
    lines = [CACHE] + paths
    assert teardown_cache(paths, CACHE, lines, models)["model"] == (
        "staged model weights in %s are removed (under sglang_cache_dir)" % models)
    assert teardown_cache(paths[:1], CACHE, lines[:2], models, False)["model"] == (
        "staged model weights in %s are kept (sglang_teardown_remove_model is false)" % models)
    elsewhere = ["/data/models"]
    kept = teardown_cache(elsewhere, CACHE, [CACHE, "/data/models"], "/data/models")
    assert kept["remove"] == [] and kept["model"].startswith("staged model weights in /data/models are kept: outside")
    assert "model" not in teardown_cache(paths, CACHE, lines)

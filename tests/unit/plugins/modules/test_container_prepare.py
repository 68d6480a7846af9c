"""container_prepare: the real main() against a temporary host tree (device nodes, directories)."""

import json
import os
import stat

import pytest
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _container as C
from ansible_collections.sglang_rocm.fleet.plugins.modules import container_prepare

IMAGE = "lmsysorg/sglang:v0.5.7-rocm700-mi30x"
IMAGE_ID = "sha256:5d1e5c3b0d4a" + "0" * 52


def char_node(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating character device nodes needs root")


@pytest.fixture
def host(tmp_path):
    dev = tmp_path / "dev"
    (dev / "dri").mkdir(parents=True)
    for name in ("kfd", "mem", "dri/renderD128"):
        char_node(str(dev / name))
    return tmp_path


def args(host, **extra):
    base = {"name": "Kimi-linear", "image": IMAGE, "host": "gpu-1", "dev_root": str(host / "dev"),
            "cache_dir": str(host / "cache"), "results_dir": str(host / "results"),
            "secrets_dir": str(host / "secrets"), "staging_dir": str(host / "staging"),
            "cache_env": {"HF_HOME": str(host / "cache" / "hf")},
            # Docker state handed over, as before the module read the daemon itself
            "containers": [], "images": []}
    base.update(extra)
    return base


def warnings(result):
    return result["_warnings"]


def run(module_args, check_mode=False):
    """Run main(); warnings are recorded at AnsibleModule.warn (how ansible-core serialises them
    into the result depends on whether controller code is loaded in the same process)."""
    if check_mode:
        module_args = dict(module_args, _ansible_check_mode=True)
    recorded = []
    with patch_module_args(module_args), mock.patch("sys.stdout.write") as out, \
            mock.patch.object(basic.AnsibleModule, "warn", lambda self, msg: recorded.append(msg)), \
            pytest.raises(SystemExit) as exc:
        container_prepare.main()
    result = json.loads("".join(call.args[0] for call in out.call_args_list))
    result["_rc"] = exc.value.code
    result["_warnings"] = recorded
    return result


def test_fresh_host_plans_a_pull_and_creates_the_directories_once(host):
    first = run(args(host))
    assert first["_rc"] == 0 and first["changed"] is True
    assert first["need_pull"] is True and first["need_load"] is False and first["image_present"] is False
    spec = first["container"]
    assert spec["image"] == IMAGE and spec["privileged"] is True
    assert spec["devices"][0] == "%s/dev/kfd:/dev/kfd:rwm" % host
    assert "%s/cache:%s/cache:rw" % (host, host) in spec["volumes"]
    assert spec["labels"][C.HASH_LABEL] == first["config_hash"]
    assert (host / "cache").is_dir() and (host / "results").is_dir()
    assert "create directory %s/cache" % host in first["diff"]["after"]
    second = run(args(host))
    assert second["changed"] is False and second["paths"] == []
    assert second["config_hash"] == first["config_hash"]


def test_the_staged_models_directory_exists_before_the_container_mounts_it(host):
    result = run(args(host, model_dir=str(host / "cache" / "models"), model_repo="org/tiny"))
    assert result["_rc"] == 0
    assert "%s/cache/models/org/tiny:/models/org/tiny:ro" % host in result["container"]["volumes"]
    assert (host / "cache" / "models" / "org" / "tiny").is_dir()
    without = run(args(host))
    assert not any("/models/" in volume for volume in without["container"]["volumes"])
    assert without["config_hash"] != result["config_hash"]


def test_check_mode_reports_but_creates_nothing(host):
    result = run(args(host), check_mode=True)
    assert result["changed"] is True and not (host / "cache").exists()


def test_missing_device_fails_before_anything_changes(host):
    os.unlink(str(host / "dev" / "mem"))
    result = run(args(host))
    assert result["_rc"] == 1
    assert "Host gpu-1: device %s/dev/mem (for /dev/mem in the container) is missing" % host in result["msg"]
    assert "preflight" in result["msg"]
    assert not (host / "cache").exists()


def test_a_regular_file_is_not_a_device(host):
    os.unlink(str(host / "dev" / "kfd"))
    (host / "dev" / "kfd").write_text("")
    assert "is not a character device" in run(args(host))["msg"]


def test_unlabelled_container_is_refused_unless_adopted(host):
    containers = [{"Names": ["/Kimi-linear"], "Labels": {}, "Image": IMAGE, "State": "running"}]
    refused = run(args(host, containers=containers))
    assert refused["_rc"] == 1 and "sglang_container_adopt: true" in refused["msg"]
    assert not (host / "cache").exists()
    adopted = run(args(host, containers=containers, adopt=True))
    assert adopted["_rc"] == 0 and adopted["existing"]["managed"] is False


def test_present_image_is_not_pulled_unless_always_and_facts_are_recorded(host):
    images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": ["lmsysorg/sglang@sha256:" + "f" * 64]}]
    result = run(args(host, images=images))
    assert result["need_pull"] is False and result["image_present"] is True
    facts = result["ansible_facts"]["sglang_container_image_facts"]
    assert facts["id"] == IMAGE_ID and facts["digest"] == "sha256:" + "f" * 64
    assert facts["obtained"] is None  # on the host before this run
    assert run(args(host, images=images, pull="always"))["need_pull"] is True


def test_jit_caches_per_image_and_arch_are_created_and_mounted_where_the_tools_look(host):
    images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": []}]
    result = run(args(host, images=images, gpu_archs=["gfx942"] * 8))
    root = "%s/cache/jit/5d1e5c3b0d4a/gfx942" % host
    assert result["jit"] == {
        "dir": root,
        "caches": {name: root + "/" + name for name in ("triton", "aiter-jit", "aiter", "inductor")},
        "mounted_at": {name: "/var/cache/sglang-jit/" + name for name in ("triton", "aiter-jit", "aiter", "inductor")}}
    spec = result["container"]
    for name in ("triton", "aiter-jit", "aiter", "inductor"):
        assert (host / "cache" / "jit" / "5d1e5c3b0d4a" / "gfx942" / name).is_dir()
        assert "%s/%s:/var/cache/sglang-jit/%s:rw" % (root, name, name) in spec["volumes"]
    assert {k: spec["env"][k] for k in ("TRITON_CACHE_DIR", "AITER_JIT_DIR", "AITER_ROOT_DIR",
                                        "TORCHINDUCTOR_CACHE_DIR")} == {
        "TRITON_CACHE_DIR": "/var/cache/sglang-jit/triton", "AITER_JIT_DIR": "/var/cache/sglang-jit/aiter-jit",
        "AITER_ROOT_DIR": "/var/cache/sglang-jit/aiter", "TORCHINDUCTOR_CACHE_DIR": "/var/cache/sglang-jit/inductor"}
    assert run(args(host, images=images, gpu_archs=["gfx942"]))["changed"] is False
    # another image: its own caches; no facts: "unknown"
    other = [{"Id": "sha256:" + "9" * 64, "RepoTags": [IMAGE], "RepoDigests": []}]
    assert run(args(host, images=other))["jit"]["dir"] == "%s/cache/jit/999999999999/unknown" % host
    # before the image is on the host its ID is not known: no JIT mount yet
    absent = run(args(host, images=[]))
    assert absent["jit"] is None and not any("sglang-jit" in v for v in absent["container"]["volumes"])
    # no cache mount, no caches
    assert run(args(host, images=images, cache_mount=False))["jit"] is None


def test_a_rerun_after_the_pull_records_how_long_the_image_took(host):
    images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": []}]
    with mock.patch.object(container_prepare.time, "time", return_value=1767225660.0):
        result = run(args(host, images=images, image_requested_at=1767225600.0))
    assert result["checked_at"] == 1767225660.0
    assert result["ansible_facts"]["sglang_container_image_facts"]["obtained"] == {
        "seconds": 60.0, "at": "2026-01-01T00:01:00.000+00:00"}


def test_the_image_facts_keep_its_size_and_how_it_came_from_the_peers(host):
    images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": [], "Size": 671088640}]
    transfer = {"name": "image", "status": "received", "sources": ["gpu01"], "bytes": 671100000,
                "seconds": 9.5, "error": None}
    facts = run(args(host, images=images, image_requested_at=1767225600.0,
                     image_transfer=transfer))["ansible_facts"]["sglang_container_image_facts"]
    assert facts["size"] == 671088640 and facts["transfer"] == transfer
    assert run(args(host, images=images))["ansible_facts"]["sglang_container_image_facts"]["transfer"] is None


def test_a_gpu_arch_that_is_not_a_target_is_refused_before_anything_changes(host):
    images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": []}]
    result = run(args(host, images=images, gpu_archs=["gfx942/../.."]))
    assert result["_rc"] == 1 and "gpu_archs ['gfx942/../..'] are not LLVM GPU targets" in result["msg"]
    assert not (host / "cache").exists()


def test_secrets_are_0600_files_in_a_0700_dir_and_never_returned(host):
    token = "hf_topsecret_value"
    result = run(args(host, hf_token=token, secrets={"registry.pw": "pw-123"}))
    assert result["_rc"] == 0
    secret_dir = host / "secrets"
    assert stat.S_IMODE(secret_dir.stat().st_mode) == 0o700
    assert (secret_dir / "hf_token").read_text() == token
    assert stat.S_IMODE((secret_dir / "hf_token").stat().st_mode) == 0o600
    spec = result["container"]
    assert spec["env"]["HF_TOKEN_PATH"] == "/run/sglang-secrets/hf_token"
    assert "%s:/run/sglang-secrets:ro" % secret_dir in spec["volumes"]
    text = json.dumps(result)
    assert token not in text and "pw-123" not in text
    assert run(args(host, hf_token=token, secrets={"registry.pw": "pw-123"}))["changed"] is False
    rotated = run(args(host, hf_token="hf_new", secrets={"registry.pw": "pw-123"}))
    assert rotated["paths"] == [str(secret_dir / "hf_token")]
    assert (secret_dir / "hf_token").read_text() == "hf_new"


def test_secret_looking_container_env_is_a_secret_file_never_environment_or_result(host):
    env = {"WANDB_API_KEY": "SENTINEL-wandb-4f1c", "HF_TOKEN": "SENTINEL-hf-77aa", "NCCL_DEBUG": "INFO",
           "MAX_TOTAL_TOKENS": "9"}
    result = run(args(host, env=env), check_mode=True)
    assert result["_rc"] == 0 and not (host / "secrets").exists()
    assert "SENTINEL" not in json.dumps(result)
    result = run(args(host, env=env))
    assert result["_rc"] == 0
    secret_dir = host / "secrets"
    assert (secret_dir / "env.WANDB_API_KEY").read_text() == "SENTINEL-wandb-4f1c"
    assert stat.S_IMODE((secret_dir / "env.HF_TOKEN").stat().st_mode) == 0o600
    spec = result["container"]
    assert spec["env"]["NCCL_DEBUG"] == "INFO" and spec["env"]["MAX_TOTAL_TOKENS"] == "9"
    assert "WANDB_API_KEY" not in spec["env"] and "HF_TOKEN" not in spec["env"]
    assert "%s:/run/sglang-secrets:ro" % secret_dir in spec["volumes"]
    assert "SENTINEL" not in json.dumps(result)  # invocation, container spec, diff
    # a rotated secret rewrites the file and leaves the container (its config hash) alone
    rotated = run(args(host, env=dict(env, WANDB_API_KEY="SENTINEL-wandb-new")))
    assert rotated["paths"] == [str(secret_dir / "env.WANDB_API_KEY")]
    assert rotated["config_hash"] == result["config_hash"]
    # an entry dropped from sglang_container_env leaves no file behind for the next launch
    dropped = run(args(host, env={"HF_TOKEN": "SENTINEL-hf-77aa"}))
    assert dropped["paths"] == [str(secret_dir / "env.WANDB_API_KEY")]
    assert not (secret_dir / "env.WANDB_API_KEY").exists() and (secret_dir / "env.HF_TOKEN").exists()
    refused = run(args(host, secrets={"env.X": "y"}))
    assert refused["_rc"] == 1 and "reserved" in refused["msg"]


def test_absent_removes_only_our_container_and_the_secret_files(host):
    ours = [{"Names": ["/Kimi-linear"], "Labels": {C.MANAGED_LABEL: "true"}, "Image": IMAGE}]
    run(args(host, hf_token="t"))
    result = run(args(host, state="absent", hf_token="t", containers=ours))
    assert result["remove"] is True and not (host / "secrets" / "hf_token").exists()
    theirs = [{"Names": ["/Kimi-linear"], "Labels": {}, "Image": IMAGE}]
    result = run(args(host, state="absent", containers=theirs))
    assert result["remove"] is False
    assert any("left in place" in w for w in warnings(result))
    assert run(args(host, state="absent"))["remove"] is False


def test_archive_source_plans_a_load_into_the_staging_dir(host):
    result = run(args(host, image_source="archive", archive="/ctl/sglang.tar", archive_sha256="a" * 64))
    assert result["need_load"] is True and result["need_pull"] is False
    assert result["archive_path"] == "%s/staging/sglang.tar" % host
    assert stat.S_IMODE((host / "staging").stat().st_mode) == 0o700
    missing = run(args(host, image_source="archive"))
    assert missing["_rc"] == 1 and "sglang_container_image_archive is empty" in missing["msg"]


def test_bad_image_reference_fails_with_the_variable_name(host):
    result = run(args(host, image="lmsysorg/sglang:v1 && reboot"))
    assert result["_rc"] == 1 and "sglang_image=" in result["msg"] and "shell metacharacters" in result["msg"]


def test_hardened_groups_use_host_gids(host):
    with mock.patch.object(C, "gid_of", {"video": 44, "render": 110}.get):
        result = run(args(host, profile="hardened"))
    assert result["container"]["groups"] == ["44", "110"]
    with mock.patch.object(C, "gid_of", {"video": 44}.get):
        result = run(args(host, profile="hardened"))
    assert result["container"]["groups"] == ["44"]
    assert any("'render' does not exist" in w for w in warnings(result))


def test_omitted_docker_state_is_read_from_the_daemon_first(host, fake_engine):
    fake_engine.containers = [{"Names": ["/Kimi-linear"], "Labels": {C.MANAGED_LABEL: "true"},
                               "Image": IMAGE, "State": "running"}]
    fake_engine.images = [{"Id": IMAGE_ID, "RepoTags": [IMAGE], "RepoDigests": []}]
    module_args = args(host, docker_host=fake_engine.url)
    del module_args["containers"], module_args["images"]
    checked = run(module_args, check_mode=True)
    assert checked["_rc"] == 0 and not (host / "cache").exists()
    assert checked["image_present"] is True and checked["need_pull"] is False
    assert checked["existing"]["exists"] is True and checked["existing"]["managed"] is True
    result = run(module_args)
    assert result["_rc"] == 0 and result["existing"]["state"] == "running"
    assert result["ansible_facts"]["sglang_container_image_facts"]["id"] == IMAGE_ID
    # one version probe and the two lists per run
    assert [path for path, _q in fake_engine.requests].count("/v1.41/containers/json") == 2


def test_given_docker_state_contacts_no_daemon(host, fake_engine):
    result = run(args(host, docker_host=fake_engine.url))
    assert result["_rc"] == 0 and fake_engine.requests == []


def test_unreachable_daemon_fails_before_anything_changes(host):
    socket = "unix://%s/run/docker.sock" % host
    module_args = args(host, docker_host=socket, hf_token="hf_0123456789")
    del module_args["containers"], module_args["images"]
    result = run(module_args)
    assert result["_rc"] == 1
    assert result["msg"].startswith("Host gpu-1: cannot read the container and the images from "
                                    "the Docker daemon at %s (sglang_docker_host): " % socket)
    assert "Error connecting" in result["msg"] and "systemctl start docker" in result["msg"]
    assert not (host / "cache").exists() and not (host / "secrets").exists()


def test_the_plan_says_whether_the_host_takes_part_in_the_image_fanout(host):
    assert run(args(host, fanout=True))["fanout"] is True
    assert run(args(host))["fanout"] is False  # not asked for
    digest = "sha256:" + "0" * 64
    # docker save/load cannot carry a registry digest: a pinned image is pulled
    assert run(args(host, fanout=True, image_digest=digest))["fanout"] is False
    assert run(args(host, fanout=True, state="absent"))["fanout"] is False

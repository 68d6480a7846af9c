"""Unit tests of plugins/module_utils/_container.py: references, profiles, the container spec."""

import shlex

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _container as C

# Step 2 of the published recipe, verbatim (DESIGN.md).
RECIPE = ("docker run -d -it --ipc=host --network=host --privileged --cap-add=CAP_SYS_ADMIN "
          "--device=/dev/kfd --device=/dev/dri --device=/dev/mem --group-add video "
          "--cap-add=SYS_PTRACE --security-opt seccomp=unconfined -v /:/work -e SHELL=/bin/bash "
          "--name Kimi-linear lmsysorg/sglang:v0.5.7-rocm700-mi30x /bin/bash")


def parse_recipe(text):
    """The recipe's docker run line as the docker CLI reads it, in docker_container terms."""
    argv = shlex.split(text)
    assert argv[:2] == ["docker", "run"]
    spec = {"capabilities": set(), "devices": set(), "groups": [], "security_opts": [],
            "volumes": [], "env": {}, "privileged": False}
    i = 2
    while argv[i].startswith("-"):
        flag, _eq, value = argv[i].partition("=")
        takes_value = flag in ("--ipc", "--network", "--cap-add", "--device", "--group-add",
                               "--security-opt", "-v", "-e", "--name")
        if takes_value and not _eq:
            i += 1
            value = argv[i]
        if flag == "-d":
            spec["detach"] = True
        elif flag == "-it":
            spec["interactive"] = spec["tty"] = True
        elif flag == "--ipc":
            spec["ipc_mode"] = value
        elif flag == "--network":
            spec["network_mode"] = value
        elif flag == "--privileged":
            spec["privileged"] = True
        elif flag == "--cap-add":
            spec["capabilities"].add(C.normalize_capability(value))
        elif flag == "--device":
            spec["devices"].add("%s:%s:rwm" % (value, value))
        elif flag == "--group-add":
            spec["groups"].append(value)
        elif flag == "--security-opt":
            spec["security_opts"].append(value)
        elif flag == "-v":
            spec["volumes"].append(value)
        elif flag == "-e":
            key, _sep, val = value.partition("=")
            spec["env"][key] = val
        elif flag == "--name":
            spec["name"] = value
        else:
            raise AssertionError("flag %s not understood by the test" % flag)
        i += 1
    spec["image"] = argv[i]
    spec["command"] = argv[i + 1:]
    return spec


def build(profile="cookbook", overrides=None, dev_root="/dev", mounts=(), mount_env=None,
          user_env=None, extra=None, gids=None, name="Kimi-linear",
          image="lmsysorg/sglang:v0.5.7-rocm700-mi30x"):
    flags = C.profile_flags(profile, overrides)
    devices = C.device_mappings(flags["devices"], dev_root)
    lookup = (gids or {}).get
    groups, _warnings = C.resolve_groups(flags["groups"], flags["numeric_groups"], lookup)
    return C.container_params(name, image, flags, devices, groups, mounts, mount_env, user_env,
                              extra, profile)


# ---- the two profiles ----

def test_cookbook_spec_is_exactly_the_recipe():
    recipe = parse_recipe(RECIPE)
    params = build()
    labels = params.pop("labels")
    assert set(labels) == {C.MANAGED_LABEL, C.PROFILE_LABEL, C.HASH_LABEL}
    assert params == {
        "name": recipe["name"],
        "image": recipe["image"],
        "command": recipe["command"],
        "detach": recipe["detach"],
        "interactive": recipe["interactive"],
        "tty": recipe["tty"],
        "privileged": recipe["privileged"],
        "ipc_mode": recipe["ipc_mode"],
        "network_mode": recipe["network_mode"],
        "capabilities": sorted(recipe["capabilities"]),
        "devices": sorted(recipe["devices"], key=["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm",
                                                  "/dev/mem:/dev/mem:rwm"].index),
        "groups": recipe["groups"],
        "security_opts": recipe["security_opts"],
        "volumes": recipe["volumes"],
        "env": recipe["env"],
    }
    # and the values the issue names, spelled out
    assert params["privileged"] is True and params["ipc_mode"] == params["network_mode"] == "host"
    assert params["capabilities"] == ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
    assert params["groups"] == ["video"] and params["volumes"] == ["/:/work"]
    assert params["command"] == ["/bin/bash"] and params["tty"] and params["interactive"]


def test_cookbook_with_privileged_off_changes_only_privileged():
    on, off = build(), build(overrides={"privileged": False})
    assert off["privileged"] is False
    for key in on:
        if key not in ("privileged", "labels"):
            assert on[key] == off[key], key
    assert on["labels"][C.HASH_LABEL] != off["labels"][C.HASH_LABEL]


def test_hardened_profile():
    mounts, env = C.collection_mounts("/var/cache/sglang", True, {"HF_HOME": "/var/cache/sglang/hf"},
                                      "/var/lib/sglang-rocm/results")
    params = build("hardened", mounts=mounts, mount_env=env, gids={"video": 44, "render": 992})
    assert params["privileged"] is False
    assert params["capabilities"] == ["CAP_SYS_PTRACE"]
    assert params["devices"] == ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"]
    assert not any("/dev/mem" in d for d in params["devices"])
    assert params["groups"] == ["44", "992"]
    assert params["security_opts"] == ["seccomp=unconfined"]
    assert params["ipc_mode"] == params["network_mode"] == "host"
    assert params["shm_size"] == "16G"
    assert params["ulimits"] == ["memlock:-1:-1", "stack:67108864:67108864"]
    # only the cache and the results directory, never the host root
    assert params["volumes"] == ["/var/cache/sglang:/var/cache/sglang:rw",
                                 "/var/lib/sglang-rocm/results:/var/lib/sglang-rocm/results:rw"]
    assert params["env"] == {"SHELL": "/bin/bash", "HF_HOME": "/var/cache/sglang/hf"}


def test_unknown_profile_and_override():
    with pytest.raises(C.SpecError, match="not a known profile; choose one of cookbook, hardened"):
        C.profile_flags("yolo")
    with pytest.raises(C.SpecError, match="unknown container flag override 'pid'"):
        C.profile_flags("cookbook", {"pid": "host"})


def test_none_override_keeps_profile_and_every_flag_is_overridable():
    assert C.profile_flags("hardened", {k: None for k in C.OVERRIDABLE}) == C.PROFILES["hardened"]
    params = build(overrides={"capabilities": ["sys_ptrace"], "devices": ["/dev/kfd"],
                              "groups": ["render"], "security_opts": [], "volumes": [],
                              "ipc_mode": "private", "network_mode": "bridge", "shm_size": "1G",
                              "ulimits": ["nofile:1024:1024"], "command": ["sleep", "infinity"],
                              "privileged": False})
    assert params["capabilities"] == ["CAP_SYS_PTRACE"]
    assert params["devices"] == ["/dev/kfd:/dev/kfd:rwm"]
    assert params["groups"] == ["render"]
    assert params["security_opts"] == [] and params["volumes"] == []
    assert (params["ipc_mode"], params["network_mode"]) == ("private", "bridge")
    assert params["shm_size"] == "1G" and params["ulimits"] == ["nofile:1024:1024"]
    assert params["command"] == ["sleep", "infinity"]


# ---- devices and groups ----

def test_devices_are_read_under_the_dev_root():
    assert C.device_mappings(["/dev/kfd", "/dev/dri/renderD128"], "/srv/h1/dev/") == [
        ("/srv/h1/dev/kfd", "/dev/kfd", "rwm"), ("/srv/h1/dev/dri/renderD128", "/dev/dri/renderD128", "rwm")]
    assert C.device_mappings(["/opt/x/kfd:/dev/kfd:rw"], "/srv/h1/dev") == [("/opt/x/kfd", "/dev/kfd", "rw")]


@pytest.mark.parametrize("entry, message", [
    ("/tmp/kfd", "is not under /dev"),
    ("/dev/kfd;reboot", "is not a path"),
    ("kfd:/dev/kfd", "absolute paths"),
    ("/a:/b:/c:/d", "too many"),
    ("/a:/b:rwx", "absolute paths"),
])
def test_bad_devices(entry, message):
    with pytest.raises(C.SpecError, match=message):
        C.device_mappings([entry])


def test_dev_root_must_be_absolute():
    with pytest.raises(C.SpecError, match="sglang_container_dev_root"):
        C.device_mappings(["/dev/kfd"], "/")


def test_groups_numeric_resolution_and_missing_group_warning():
    groups, warnings = C.resolve_groups(["video", "render", "44", "video"], True, {"video": 44}.get)
    assert groups == ["44"]
    assert len(warnings) == 1 and "'render' does not exist" in warnings[0]
    assert C.resolve_groups(["video"], False, {}.get) == (["video"], [])
    with pytest.raises(C.SpecError, match="not a group name"):
        C.resolve_groups(["video;id"], True, {}.get)


# ---- image references ----

@pytest.mark.parametrize("ref, expected", [
    ("lmsysorg/sglang:v0.5.7-rocm700-mi30x", ("docker.io", "lmsysorg/sglang", "v0.5.7-rocm700-mi30x", None)),
    ("ubuntu", ("docker.io", "ubuntu", None, None)),
    ("10.213.77.1:5000/lmsysorg/sglang:tag", ("10.213.77.1:5000", "lmsysorg/sglang", "tag", None)),
    ("localhost/x/y@sha256:" + "a" * 64, ("localhost", "x/y", None, "sha256:" + "a" * 64)),
    ("registry.example.com/a/b/c:1.0", ("registry.example.com", "a/b/c", "1.0", None)),
    ("Registry/sglang:1", ("Registry", "sglang", "1", None)),
])
def test_parse_image_ref(ref, expected):
    parsed = C.parse_image_ref(ref)
    assert (parsed["domain"], parsed["path"], parsed["tag"], parsed["digest"]) == expected


@pytest.mark.parametrize("ref, message", [
    ("lmsysorg/sglang:v1;rm -rf /", r"contains ' ', ';' \(whitespace or shell metacharacters\)"),
    ("lmsysorg/sglang:$(id)", "shell metacharacters"),
    ("lmsysorg/sglang:v1\n", "shell metacharacters"),
    ("lmsysorg/sglang :v1", "' '"),
    ("lmsysorg/SGLang:v1", "lower-case repository"),
    ("lmsysorg/sglang:", "not a valid image reference"),
    ("", "is empty"),
])
def test_bad_image_refs(ref, message):
    with pytest.raises(C.SpecError, match=message):
        C.parse_image_ref(ref)


def test_resolve_image_plain_and_latest():
    assert C.resolve_image("lmsysorg/sglang:v1") == {
        "reference": "lmsysorg/sglang:v1", "repository": "lmsysorg/sglang", "tag": "v1",
        "digest": None, "registry": "docker.io"}
    assert C.resolve_image("docker.io/library/ubuntu")["reference"] == "ubuntu:latest"


@pytest.mark.parametrize("ref, mirror, reference", [
    ("lmsysorg/sglang:v1", "10.213.77.1:5000", "10.213.77.1:5000/lmsysorg/sglang:v1"),
    ("ubuntu:22.04", "mirror.example.com", "mirror.example.com/library/ubuntu:22.04"),
    ("quay.io/org/img:2", "harbor.example.com/proxy/", "harbor.example.com/proxy/org/img:2"),
    ("10.0.0.1:5000/a/b:c", "reg.example.com:443", "reg.example.com:443/a/b:c"),
])
def test_mirror_rewrite(ref, mirror, reference):
    resolved = C.resolve_image(ref, mirror)
    assert resolved["reference"] == reference
    assert resolved["registry"] == mirror.split("/")[0]


def test_digest_pin_drops_the_tag_and_conflicts_fail():
    digest = "sha256:" + "b" * 64
    resolved = C.resolve_image("lmsysorg/sglang:v1", "10.0.0.1:5000", digest)
    assert resolved["reference"] == "10.0.0.1:5000/lmsysorg/sglang@" + digest
    assert resolved["tag"] is None and resolved["digest"] == digest
    with pytest.raises(C.SpecError, match="not a sha256 digest"):
        C.resolve_image("a/b:c", "", "sha256:xyz")
    with pytest.raises(C.SpecError, match="set only one of them"):
        C.resolve_image("a/b@sha256:" + "c" * 64, "", digest)
    with pytest.raises(C.SpecError, match="sglang_container_registry_mirror"):
        C.resolve_image("a/b:c", "mirror with space")


def test_find_image_by_tag_or_digest_and_facts():
    digest = "sha256:" + "d" * 64
    images = [{"Id": "sha256:1", "RepoTags": ["other:1"], "RepoDigests": None},
              {"Id": "sha256:2", "RepoTags": ["10.0.0.1:5000/lmsysorg/sglang:v1"],
               "RepoDigests": ["10.0.0.1:5000/lmsysorg/sglang@" + digest]}]
    by_tag = C.resolve_image("lmsysorg/sglang:v1", "10.0.0.1:5000")
    assert C.find_image(images, by_tag)["Id"] == "sha256:2"
    by_digest = C.resolve_image("lmsysorg/sglang", "10.0.0.1:5000", digest)
    assert C.find_image(images, by_digest)["Id"] == "sha256:2"
    assert C.find_image(images, C.resolve_image("lmsysorg/sglang:v2")) is None
    facts = C.image_facts(images[1], by_tag, "registry")
    assert facts == {"reference": by_tag["reference"], "source": "registry", "id": "sha256:2",
                     "digest": digest, "repo_digests": images[1]["RepoDigests"], "size": None,
                     "obtained": None, "transfer": None}
    assert C.image_facts(images[0], C.resolve_image("other:1"), "archive")["digest"] is None


# ---- existing container and adoption ----

def test_find_container_is_exact_and_reads_labels():
    containers = [{"Names": ["/Kimi-linear-old"], "Labels": {}},
                  {"Names": ["/Kimi-linear"], "Labels": {C.MANAGED_LABEL: "true", C.HASH_LABEL: "h"},
                   "Image": "img", "State": "running"}]
    assert C.find_container(containers, "Kimi-linear")["Names"] == ["/Kimi-linear"]
    assert C.find_container(containers[:1], "Kimi-linear") is None
    state = C.existing_state(containers[1])
    assert state == {"exists": True, "managed": True, "config_hash": "h", "image": "img", "state": "running"}
    assert C.existing_state(None)["exists"] is False
    message = C.adoption_error("Kimi-linear", C.existing_state({"Names": ["/Kimi-linear"], "Image": "x",
                                                                "State": "running"}))
    assert "sglang_container_adopt: true" in message and "left untouched" in message


# ---- mounts, env, extras, hash ----

def test_collection_mounts_and_secrets():
    volumes, env = C.collection_mounts("/c", True, {"HF_HOME": "/c/hf"}, "/r", "/s", ["hf_token", "x"])
    assert volumes == ["/c:/c:rw", "/r:/r:rw", "/s:/run/sglang-secrets:ro"]
    assert env == {"HF_HOME": "/c/hf", "HF_TOKEN_PATH": "/run/sglang-secrets/hf_token"}
    assert C.collection_mounts("/c", False, {"HF_HOME": "/c/hf"}) == ([], {})
    with pytest.raises(C.SpecError, match="sglang_cache_dir"):
        C.collection_mounts("relative/dir")
    with pytest.raises(C.SpecError, match="sglang_container_results_dir"):
        C.collection_mounts("/c", True, {}, "/r:/x")
    with pytest.raises(C.SpecError, match="secret file name"):
        C.validate_secret_names(["../etc/passwd"])


def test_the_staged_model_is_mounted_read_only_under_models():
    model = C.model_mount("/c/models", "org/name")
    assert model == ("/c/models/org/name", "/models/org/name")
    volumes, _env = C.collection_mounts("/c", True, {}, model=model)
    assert volumes == ["/c/models/org/name:/models/org/name:ro", "/c:/c:rw"]
    assert C.model_mount("/c/models", "") is None
    with pytest.raises(C.SpecError, match="sglang_model_path"):
        C.model_mount("/c/models", "../etc")
    with pytest.raises(C.SpecError, match="sglang_model_dir"):
        C.model_mount("models", "org/name")


def test_jit_caches_are_named_by_image_and_arch_and_mounted_where_each_variable_points():
    jit = C.jit_dirs("/c", "sha256:" + "ab" * 32, ["gfx942", "gfx942"])
    assert jit == {name: "/c/jit/abababababab/gfx942/" + name for name in ("triton", "aiter-jit", "aiter", "inductor")}
    volumes, env = C.collection_mounts("/c", True, {"HF_HOME": "/c/hf", "TRITON_CACHE_DIR": "/mine"}, jit=jit)
    assert volumes == ["/c:/c:rw"] + ["/c/jit/abababababab/gfx942/%s:/var/cache/sglang-jit/%s:rw" % (n, n)
                                      for n in ("triton", "aiter-jit", "aiter", "inductor")]
    # the user's cache_env wins over the per-image cache
    assert env == {"TRITON_CACHE_DIR": "/mine", "AITER_JIT_DIR": "/var/cache/sglang-jit/aiter-jit",
                   "AITER_ROOT_DIR": "/var/cache/sglang-jit/aiter",
                   "TORCHINDUCTOR_CACHE_DIR": "/var/cache/sglang-jit/inductor", "HF_HOME": "/c/hf"}
    assert C.collection_mounts("/c", False, {}, jit=jit) == ([], {})


@pytest.mark.parametrize("archs, key", [
    ([], ("0123456789ab", "unknown")),
    (None, ("0123456789ab", "unknown")),
    (["gfx942", None, ""], ("0123456789ab", "gfx942")),
    (["gfx950", "gfx942"], ("0123456789ab", "gfx942+gfx950")),
    (["gfx90a"], ("0123456789ab", "gfx90a")),
])
def test_jit_key(archs, key):
    assert C.jit_key("sha256:0123456789abcdef", archs) == key


@pytest.mark.parametrize("image_id, archs, message", [
    ("sha256:abc", [], "image ID 'sha256:abc' is not a sha256 digest"),
    (None, [], "image ID None is not"),
    ("sha256:" + "a" * 64, ["../x"], r"gpu_archs \['../x'\] are not LLVM GPU targets"),
    ("sha256:" + "a" * 64, ["GFX942"], "are not LLVM GPU targets"),
])
def test_jit_key_refuses_what_cannot_name_a_directory(image_id, archs, message):
    with pytest.raises(C.SpecError, match=message):
        C.jit_key(image_id, archs)


def test_env_precedence_and_types():
    params = build(mount_env={"HF_HOME": "/c/hf", "SHELL": "/bin/sh"},
                   user_env={"HF_HOME": "/elsewhere", "N": 4})
    assert params["env"] == {"SHELL": "/bin/sh", "HF_HOME": "/elsewhere", "N": "4"}
    with pytest.raises(C.SpecError, match="quote it"):
        build(user_env={"FLAG": True})
    with pytest.raises(C.SpecError, match="name 'BAD-NAME' is invalid"):
        build(user_env={"BAD-NAME": "1"})


def test_extra_options():
    params = build(extra={"restart_policy": "unless-stopped", "labels": {"team": "ml"}})
    assert params["restart_policy"] == "unless-stopped"
    assert params["labels"]["team"] == "ml" and params["labels"][C.MANAGED_LABEL] == "true"
    with pytest.raises(C.SpecError, match="owned by sglang_container_devices"):
        build(extra={"devices": []})
    with pytest.raises(C.SpecError, match="owned by the role"):
        build(extra={"env": {}})
    with pytest.raises(C.SpecError, match="does not pass to docker_container"):
        build(extra={"published_ports": ["80:80"]})
    with pytest.raises(C.SpecError, match="reserved"):
        build(extra={"labels": {C.MANAGED_LABEL: "false"}})


def test_capability_names_are_canonical():
    assert C.normalize_capability("sys_admin") == "CAP_SYS_ADMIN"
    assert C.normalize_capability("CAP_SYS_PTRACE") == "CAP_SYS_PTRACE"
    assert C.normalize_capability("all") == "ALL"
    with pytest.raises(C.SpecError, match="not a Linux capability"):
        C.normalize_capability("SYS-ADMIN")


def test_config_hash_tracks_every_change_and_ignores_order():
    base = build()
    assert base["labels"][C.HASH_LABEL] == C.config_hash(base)
    same = build()
    assert same["labels"][C.HASH_LABEL] == base["labels"][C.HASH_LABEL]
    reordered = dict(reversed(list(base.items())))
    assert C.config_hash(reordered) == C.config_hash(base)
    variants = [
        build(overrides={"devices": ["/dev/kfd", "/dev/dri"]}),           # a device removed
        build(user_env={"X": "1"}),                                         # an env var added
        build(overrides={"shm_size": "1G"}),                                # an option that was absent
        build(image="lmsysorg/sglang:v0.5.8-rocm700-mi30x"),
        build(extra={"restart_policy": "always"}),
    ]
    hashes = {v["labels"][C.HASH_LABEL] for v in variants}
    assert len(hashes) == len(variants) and base["labels"][C.HASH_LABEL] not in hashes


def test_archive_host_path():
    sha = "e" * 64
    assert C.archive_host_path("registry", "", "", False, "/s") == ""
    assert C.archive_host_path("archive", "files/img.tar", sha, False, "/s/") == "/s/img.tar"
    assert C.archive_host_path("archive", "/nfs/img.tar", "sha256:" + sha, True, "/s") == "/nfs/img.tar"
    with pytest.raises(C.SpecError, match="sglang_container_image_archive is empty"):
        C.archive_host_path("archive", "", sha, False, "/s")
    with pytest.raises(C.SpecError, match="is not a sha256"):
        C.archive_host_path("archive", "img.tar", "abc", False, "/s")


def test_command_must_be_a_list_of_strings():
    assert build(overrides={"command": "/bin/sh"})["command"] == ["/bin/sh"]
    with pytest.raises(C.SpecError, match="non-empty list"):
        build(overrides={"command": []})


def test_extra_options_allow_list_matches_the_roles_docker_container_task():
    """The role's community.docker.docker_container task passes every key of the spec
    container_params() can build, each from the spec key of the same name, and nothing else; a
    new EXTRA_OPTIONS entry without its task line (or the reverse) fails here."""
    import os
    import re
    import yaml
    tasks_file = os.path.join(os.path.dirname(C.__file__), "..", "..", "roles", "container", "tasks", "main.yml")
    with open(tasks_file, encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    [task] = [t for t in tasks if "community.docker.docker_container" in t]
    passed = {}
    for key, value in task["community.docker.docker_container"].items():
        match = re.match(r"^\{\{ _sglang_container_spec\.(\w+)( \| default\(omit\))? \}\}$", str(value))
        if match:
            assert match.group(1) == key, "%s reads _sglang_container_spec.%s" % (key, match.group(1))
            passed[key] = bool(match.group(2))
    optional = {key for key, omittable in passed.items() if omittable}
    # labels are always passed (the collection adds its own), the rest of the allow-list only when set
    assert optional - {"shm_size", "ulimits"} == set(C.EXTRA_OPTIONS) - {"labels"}
    assert "labels" in passed and not passed["labels"]
    extra = {key: "x" for key in C.EXTRA_OPTIONS if key != "labels"}
    flags = C.profile_flags("hardened")  # the profile that sets shm_size and ulimits
    params = C.container_params("n", "img:1", flags, [], [], extra_options=extra, profile="hardened")
    assert set(params) == set(passed)

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_prepare
short_description: Check the SGLang container inputs against the host and build its docker_container spec
version_added: 0.1.0
description:
  - Runs on the GPU host before the image or the container is touched. It validates every input
    of the C(sglang_rocm.fleet.container) role (profile, image reference, mirror, digest, devices,
    groups, extra options), reads the host (device nodes under O(dev_root), numeric group ids) and
    the Docker daemon at O(docker_host) (the container named O(name) and the images), and fails
    with one clear message before anything changes.
  - The daemon is read with community.docker's own API client, with the same two requests as
    M(community.docker.docker_host_info) (O(containers) and O(images) below), so O(docker_host)
    (V(unix://), V(tcp://) with TLS, V(ssh://)) and the other connection options work as in the
    community.docker modules. The read comes first and is read-only; an unreachable daemon fails
    naming the host and O(docker_host), and nothing is changed.
  - It resolves the image reference (mirror rewrite, digest pin), decides whether the image must
    be pulled or loaded, refuses to replace a container of the same name that the collection did
    not create unless O(adopt=true), and returns the exact parameters for
    M(community.docker.docker_container), including a C(io.sglang-rocm.fleet.config-hash) label.
  - With O(state=present) it then creates the cache, results and secrets directories and writes
    the secret files (mode 0600, in a 0700 directory mounted read-only into the container).
    Secret values never reach the container's environment or a command line.
  - With O(cache_mount) and the image on the host, it also creates the image's kernel (JIT) caches
    C(<cache_dir>/jit/<image ID, 12 hex>/<gfx arch>/{triton,aiter-jit,aiter,inductor}) and mounts
    each where C(TRITON_CACHE_DIR), C(AITER_JIT_DIR), C(AITER_ROOT_DIR) and
    C(TORCHINDUCTOR_CACHE_DIR) point (C(/var/cache/sglang-jit/<name>)), so a recreated container
    of the same image on the same GPUs compiles nothing again (docs/startup.md). Before a pull or a
    load the image ID is not known yet; the role then runs the module again afterwards.
  - The logic lives in C(plugins/module_utils/_container.py).
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sglang_rocm.fleet.docker_engine
attributes:
  check_mode:
    support: full
    description:
      - The Docker daemon is read and validation and the spec are computed for real; directories
        and secret files are only reported.
  diff_mode:
    support: full
    description: The diff lists the host paths that are created, rewritten or removed (never secret contents).
  idempotent:
    support: full
    description: A second run with the same inputs changes nothing.
options:
  state:
    description: V(present) plans a running container, V(absent) plans the removal of ours.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Container name.
    type: str
    required: true
  image:
    description: Image reference as configured (C(sglang_image)).
    type: str
    required: true
  image_source:
    description: Where the image comes from.
    type: str
    choices: [registry, archive]
    default: registry
  registry_mirror:
    description: Registry prefix (V(host[:port][/path])) that replaces the image's registry.
    type: str
    default: ""
  image_digest:
    description: V(sha256:...) digest the image is pinned to; the tag is then not used.
    type: str
    default: ""
  fanout:
    description:
      - The image may come from a peer instead of the registry (C(sglang_container_fanout)); the
        plan's C(fanout) then says whether this host takes part. Never for an image pinned by
        digest, which C(docker save) and C(docker load) cannot carry.
    type: bool
    default: false
  pull:
    description: V(missing) pulls only when the image is absent, V(always) on every run.
    type: str
    choices: [missing, always]
    default: missing
  profile:
    description: Flag profile, V(cookbook) (the recipe's flags) or V(hardened).
    type: str
    default: cookbook
  overrides:
    description:
      - Per-flag overrides of the profile; keys C(privileged), C(ipc_mode), C(network_mode),
        C(capabilities), C(devices), C(groups), C(security_opts), C(volumes), C(shm_size),
        C(ulimits), C(command). A V(null) value keeps the profile's.
    type: dict
    default: {}
  extra_options:
    description: Further M(community.docker.docker_container) options from an allow-list.
    type: dict
    default: {}
  env:
    description:
      - The container's environment (C(sglang_container_env)); it wins over the profile's.
      - An entry whose name looks secret (C(HF_TOKEN), C(WANDB_API_KEY), C(*_PASSWORD), C(*_SECRET),
        the rule of the collection's secret masking) is not environment. It is written like
        O(secrets) as the file C(env.NAME) in O(secrets_dir) (0600), which the container sees
        read-only under C(/run/sglang-secrets), and the sglang_server module exports it into
        the server's environment at launch. So its value is never in C(docker inspect), the
        container's config hash or this module's results (Ansible masks it there too). Other
        programs in the container read the file.
    type: dict
    default: {}
  archive:
    description: With O(image_source=archive), the tarball path (controller path, or host path with O(archive_remote_src)).
    type: str
    default: ""
  archive_sha256:
    description: Expected sha256 of the tarball; required with O(image_source=archive).
    type: str
    default: ""
  archive_remote_src:
    description: O(archive) is a path on the host already.
    type: bool
    default: false
  staging_dir:
    description: Host directory (0700) that receives the copied tarball; created only when a load is needed.
    type: path
    default: /var/lib/sglang-rocm/images
  dev_root:
    description: Where the host's /dev is read (a fake tree in the test bed).
    type: path
    default: /dev
  cache_dir:
    description: Host cache directory, mounted at the same path inside the container.
    type: path
    required: true
  cache_mount:
    description: Mount O(cache_dir) and set O(cache_env).
    type: bool
    default: true
  cache_env:
    description:
      - Environment pointing caches (Hugging Face) into O(cache_dir).
      - An entry for one of the JIT cache variables (C(TRITON_CACHE_DIR), C(AITER_JIT_DIR),
        C(AITER_ROOT_DIR), C(TORCHINDUCTOR_CACHE_DIR)) wins over the per-image cache.
    type: dict
    default: {}
  gpu_archs:
    description:
      - The host's GPU targets (for example V([gfx942]), from C(ansible_facts.rocm.gpus)), which
        name the JIT cache directory with the image ID; empty gives V(unknown).
    type: list
    elements: str
    default: []
  image_requested_at:
    description:
      - Epoch seconds at which the image was asked for (RV(checked_at) of the run before the pull
        or load). With it, the image facts record how long the image took to be on the host
        (C(sglang_container_image_facts.obtained)).
    type: float
  image_transfer:
    description:
      - This host's record of the image's fan-out (the common role's C(sglang_fanout_result)) when
        the image was spread host to host in this run; kept in the image facts
        (C(sglang_container_image_facts.transfer)), which say whether the host pulled the image or
        received it from its peers.
    type: dict
  results_dir:
    description: Host results directory mounted at the same path; empty for none.
    type: str
    default: ""
  model_dir:
    description: Host directory of the staged models (C(sglang_model_dir)).
    type: str
    default: ""
  model_repo:
    description:
      - Repo id of the staged model (C(sglang_model_path)); empty when the model is not staged
        (C(sglang_model_source=none)). C(<model_dir>/<model_repo>) is created and mounted
        read-only at C(/models/<model_repo>).
    type: str
    default: ""
  secrets_dir:
    description: Host directory (mode 0700) for the secret files, mounted read-only at /run/sglang-secrets.
    type: str
    default: ""
  secrets:
    description: Secret files, name to content, written 0600 into O(secrets_dir).
    type: dict
    default: {}
  hf_token:
    description: Hugging Face token; written as the secret file C(hf_token) and announced by C(HF_TOKEN_PATH).
    type: str
    default: ""
  host:
    description: Host name used in messages (the inventory name); defaults to the node name.
    type: str
    default: ""
  adopt:
    description: Take over an existing container of the same name that lacks the collection's label.
    type: bool
    default: false
  containers:
    description:
      - The containers as the C(containers) list of M(community.docker.docker_host_info) returns
        them with C(containers_all=true), C(verbose_output=true) and the O(name) as C(name) filter.
      - When omitted, the module lists them from the daemon at O(docker_host) itself
        (C(GET /containers/json)).
      - Pass V([]) (with O(images)) to plan without any daemon, for example on the controller.
    type: list
    elements: dict
  images:
    description:
      - The images as the C(images) list of M(community.docker.docker_host_info) returns them
        (C(verbose_output=true)).
      - When omitted, the module lists them from the daemon at O(docker_host) itself
        (C(GET /images/json)).
    type: list
    elements: dict
requirements:
  - Docker API >= 1.25.
notes:
  - The daemon is read only when O(containers) or O(images) is omitted, once, and before any
    path is created.
  - Group names of the V(hardened) profile are resolved to this host's numeric GIDs; a name the host
    does not know is skipped with a warning.
"""

EXAMPLES = r"""
- name: Plan the container; the module reads the host's Docker daemon itself
  sglang_rocm.fleet.container_prepare:
    name: Kimi-linear
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    profile: hardened
    cache_dir: /var/cache/sglang
    docker_host: unix:///var/run/docker.sock
  register: plan

- name: Plan against a remote daemon over TLS
  sglang_rocm.fleet.container_prepare:
    name: Kimi-linear
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    cache_dir: /var/cache/sglang
    docker_host: tcp://gpu-01.example.com:2376
    validate_certs: true
    ca_path: /etc/docker/certs/ca.pem
    client_cert: /etc/docker/certs/cert.pem
    client_key: /etc/docker/certs/key.pem
  register: plan

- name: Plan with Docker state read elsewhere (no daemon is contacted)
  sglang_rocm.fleet.container_prepare:
    name: Kimi-linear
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    cache_dir: /var/cache/sglang
    containers: "{{ docker_state.containers }}"
    images: "{{ docker_state.images }}"
  register: plan
"""

RETURN = r"""
image:
  description: The resolved image.
  returned: always
  type: dict
  sample: {"reference": "lmsysorg/sglang:v0.5.7-rocm700-mi30x", "repository": "lmsysorg/sglang",
           "tag": "v0.5.7-rocm700-mi30x", "digest": null, "registry": "docker.io"}
image_present:
  description: Whether the resolved image is already on the host.
  returned: always
  type: bool
need_pull:
  description: Whether the role must pull (registry source, image absent or pull=always).
  returned: always
  type: bool
need_load:
  description: Whether the role must load the archive (archive source, image absent).
  returned: always
  type: bool
fanout:
  description: Whether the host takes part in the image fan-out (O(fanout), registry source, state present, no digest pin).
  returned: always
  type: bool
archive_path:
  description: Host path of the tarball to verify and load (archive source only).
  returned: always
  type: str
existing:
  description: The container of that name as found on the daemon (exists, managed, config_hash, image, state).
  returned: always
  type: dict
remove:
  description: With state=absent, whether the container is ours and must be removed.
  returned: always
  type: bool
container:
  description: Parameters for community.docker.docker_container (state=present).
  returned: when state is present
  type: dict
config_hash:
  description: The config-hash label value of the planned container.
  returned: when state is present
  type: str
paths:
  description: Host paths created or rewritten (or that would be in check mode).
  returned: always
  type: list
  elements: str
checked_at:
  description: Epoch seconds (host clock) at which the module began, for O(image_requested_at).
  returned: always
  type: float
jit:
  description:
    - The image's kernel caches on this host, V(null) while the image is not on the host or
      without O(cache_mount).
    - C(dir) is C(<cache_dir>/jit/<image ID, 12 hex>/<gfx arch>), C(caches) each cache's host
      directory by name, C(mounted_at) where the container sees it.
  returned: when state is present
  type: dict
  sample: {"dir": "/var/cache/sglang/jit/5d1e5c3b0d4a/gfx942",
           "caches": {"triton": "/var/cache/sglang/jit/5d1e5c3b0d4a/gfx942/triton"},
           "mounted_at": {"triton": "/var/cache/sglang-jit/triton"}}
ansible_facts:
  description: Facts about the image when it is on the host.
  returned: when the image is on the host
  type: dict
  contains:
    sglang_container_image_facts:
      description:
        - C(reference), C(source), C(id), C(digest), C(repo_digests), C(size) (bytes, as the
          daemon counts the image), C(obtained), how long the image took to be on the host
          (V({seconds, at}), from O(image_requested_at)) or V(null) when this run did not pull or
          load it, and C(transfer), O(image_transfer) or V(null).
      type: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _container as C
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_engine as D


def main():
    module = AnsibleModule(
        **D.module_kwargs(dict(
            state=dict(type="str", default="present", choices=["present", "absent"]),
            name=dict(type="str", required=True),
            image=dict(type="str", required=True),
            image_source=dict(type="str", default="registry", choices=["registry", "archive"]),
            registry_mirror=dict(type="str", default=""),
            image_digest=dict(type="str", default=""),
            fanout=dict(type="bool", default=False),
            pull=dict(type="str", default="missing", choices=["missing", "always"]),
            profile=dict(type="str", default="cookbook"),
            overrides=dict(type="dict", default={}),
            extra_options=dict(type="dict", default={}),
            env=dict(type="dict", default={}),
            archive=dict(type="str", default=""),
            archive_sha256=dict(type="str", default=""),
            archive_remote_src=dict(type="bool", default=False),
            staging_dir=dict(type="path", default="/var/lib/sglang-rocm/images"),
            dev_root=dict(type="path", default="/dev"),
            cache_dir=dict(type="path", required=True),
            cache_mount=dict(type="bool", default=True),
            cache_env=dict(type="dict", default={}),
            gpu_archs=dict(type="list", elements="str", default=[]),
            image_requested_at=dict(type="float"),
            image_transfer=dict(type="dict"),
            results_dir=dict(type="str", default=""),
            model_dir=dict(type="str", default=""),
            model_repo=dict(type="str", default=""),
            secrets_dir=dict(type="str", default="", no_log=False),
            secrets=dict(type="dict", default={}, no_log=True),
            hf_token=dict(type="str", default="", no_log=True),
            host=dict(type="str", default=""),
            adopt=dict(type="bool", default=False),
            containers=dict(type="list", elements="dict"),
            images=dict(type="list", elements="dict"),
        )),
        supports_check_mode=True,
    )
    try:
        # masked by Ansible in the invocation and everywhere else in the result
        module.no_log_values.update(v for v in C.split_env(module.params["env"])[1].values() if v)
        result, warnings = C.prepare(module, now=time.time())
    except C.SpecError as exc:
        module.fail_json(msg="Host %s: %s" % (module.params["host"] or os.uname()[1], exc))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

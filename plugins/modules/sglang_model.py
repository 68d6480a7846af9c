#!/usr/bin/python
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_model
short_description: Stage a pinned model revision on a host and verify every file of it
version_added: 0.1.0
description:
  - Runs on a GPU host. Keeps C(<model_dir>/<repo>) a verified copy of one revision of the
    model O(repo); the container role mounts that directory read-only at C(/models/<repo>) in
    the SGLang container, and the server role serves it from there with C(HF_HUB_OFFLINE=1).
  - O(mode=stage) with O(source=hub) asks the model hub, through huggingface_hub in a transient
    container of the SGLang image (C(docker run --rm --network host), the image of O(container)
    when it exists, else O(image)), for the revision's commit and file list with sizes and
    hashes, then downloads the files that are missing or do not match into a staging directory
    (C(<model_dir>/.staging/<repo>/download)). huggingface_hub resumes a file an interrupted run
    left behind with an HTTP Range request. A pinned commit that the host already holds needs no
    hub at all.
  - O(mode=stage) with O(source=local) takes the files from O(local_dir) on the host (an
    air-gapped site's copy). The manifest is the sha256 of every file, and each file is
    hardlinked into place when it is on the same filesystem, else copied.
  - Either way the module hashes every fetched file on the host (sha256 for LFS files, the git
    blob sha1 for the others) and moves only matching files to their final names; a file that
    does not match is deleted, named, and fetched again on the next run. Files that the manifest
    does not list are removed from the copy. It then writes the manifest
    (C(.sglang-manifest.json)) and the verified-state stamp (C(.sglang-verified.json)) next to
    the files.
  - A file already in place is checked against the stamp (size, mtime, inode) and hashed only
    when it changed, or always with O(verify=full); a corrupted or missing file is replaced.
  - A progress file on the host (C(<model_dir>/.staging/<repo>/progress.json), bytes done and
    total, the current file) is rewritten every two seconds while files are fetched.
  - O(mode=verify) checks the copy against O(manifest) (the seed host's, after the fan-out),
    removes files the manifest does not list, writes the stamp and the manifest, and fails
    naming every missing or bad file. O(mode=probe) only reads whether the host holds a verified
    copy, and of which revision (stat only, no hashing).
  - The hub token is written to a 0600 file in a private temporary directory, mounted read-only
    into the transient container and named by C(HF_TOKEN_PATH); it is never on a command line,
    in the container's environment or in the result, and the directory is removed afterwards.
  - Error messages name the host (O(host)), what happened and the variable of the
    P(sglang_rocm.fleet.model#role) role that fixes it.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
requirements:
  - The docker CLI and coreutils C(timeout) on the host, and the SGLang image on the host with
    huggingface_hub in its Python (for O(source=hub)).
options:
  mode:
    description:
      - V(stage) stages the model from O(source); V(verify) checks the copy against O(manifest);
        V(probe) reads what the host holds and changes nothing.
    type: str
    choices: [stage, verify, probe]
    default: stage
  source:
    description: Where O(mode=stage) takes the model from.
    type: str
    choices: [hub, local]
    default: hub
  repo:
    description: The model's repo id on the hub (C(org/name)); also its directory under O(model_dir).
    type: str
    required: true
  revision:
    description: Branch, tag or 40-hex commit to stage; a branch or tag is resolved to its commit once.
    type: str
    default: main
  model_dir:
    description: Host directory that holds the staged models, one directory per repo id.
    type: path
    required: true
  local_dir:
    description: For O(source=local), the host directory that holds the model's files.
    type: path
  manifest:
    description: For O(mode=verify), the manifest to check against (the RV(manifest) of the stage).
    type: dict
  verify:
    description:
      - V(stat) hashes only files whose size, mtime or inode changed since they last matched;
        V(full) hashes every file.
    type: str
    choices: [stat, full]
    default: stat
  hub_endpoint:
    description: The hub's base URL, C(HF_ENDPOINT) of the transient container.
    type: str
    default: https://huggingface.co
  hub_token:
    description: Token for private or gated repos; empty for none. Never logged or returned.
    type: str
    default: ""
  ca_bundle:
    description:
      - CA bundle (PEM file on the host) the transient container trusts, for a TLS-inspecting
        proxy; mounted read-only and named by C(REQUESTS_CA_BUNDLE) and C(SSL_CERT_FILE).
    type: path
  image:
    description: The SGLang image, used when O(container) does not exist.
    type: str
  container:
    description: The SGLang container, whose image the transient container uses when it exists.
    type: str
  python:
    description: Python interpreter of the image (the transient container's entrypoint).
    type: str
    default: python3
  docker_host:
    description: Docker daemon to use, passed to the docker CLI as C(--host).
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description:
      - Seconds the whole call may take. The transfer stops itself before that, keeps what it
        fetched and says so; the next run resumes.
    type: int
    default: 14400
  host:
    description: Name of the host in messages (the role passes C(inventory_hostname)).
    type: str
attributes:
  check_mode:
    support: full
    details:
      - Check mode resolves the revision (a transient container that mounts nothing writable)
        and reports what would be fetched and removed (RV(would_fetch)); it writes nothing but
        the token's temporary file, which it removes. Without the image on the host it warns and
        reports a change.
  diff_mode:
    support: none
  idempotent:
    description: A verified copy downloads nothing and reports no change.
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - The transient container is named C(sglang-model-stage-) and a hash of the staging directory,
    and labelled C(io.sglang-rocm.fleet.managed=true); one left behind by a killed run is
    removed first.
seealso:
  - module: sglang_rocm.fleet.sglang_server
"""

EXAMPLES = r"""
- name: Stage a pinned commit from the hub
  sglang_rocm.fleet.sglang_model:
    repo: moonshotai/Kimi-Linear-48B-A3B-Instruct
    revision: 0123456789abcdef0123456789abcdef01234567
    model_dir: /var/cache/sglang/models
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    container: Kimi-linear
    hub_token: "{{ vault_hf_token }}"
    host: "{{ inventory_hostname }}"
  register: staged

- name: Air-gapped, from a copy on the host
  sglang_rocm.fleet.sglang_model:
    source: local
    local_dir: /mnt/models/Kimi-Linear-48B-A3B-Instruct
    repo: moonshotai/Kimi-Linear-48B-A3B-Instruct
    model_dir: /var/cache/sglang/models

- name: Check another host's copy against the seed's manifest
  sglang_rocm.fleet.sglang_model:
    mode: verify
    repo: moonshotai/Kimi-Linear-48B-A3B-Instruct
    model_dir: /var/cache/sglang/models
    manifest: "{{ staged.manifest }}"
"""

RETURN = r"""
repo:
  description: The repo id.
  returned: always
  type: str
  sample: moonshotai/Kimi-Linear-48B-A3B-Instruct
revision:
  description:
    - The commit staged or verified (C(local:) and a sha256 for O(source=local)); in probe mode
      the revision the host holds, null when none.
  returned: always
  type: str
  sample: 0123456789abcdef0123456789abcdef01234567
manifest:
  description: The manifest (repo, revision, files with path, size, sha256 or git_sha1).
  returned: always (null in probe mode, and in check mode when the revision could not be resolved)
  type: dict
path:
  description: The copy's directory on the host.
  returned: always
  type: str
  sample: /var/cache/sglang/models/moonshotai/Kimi-Linear-48B-A3B-Instruct
served_path:
  description: The copy's path inside the SGLang container.
  returned: always
  type: str
  sample: /models/moonshotai/Kimi-Linear-48B-A3B-Instruct
files_total:
  description: Number of files of the revision.
  returned: always
  type: int
bytes_total:
  description: Bytes of the revision.
  returned: always
  type: int
files:
  description:
    - Per file, its status - V(ok) (already verified), V(fetched) or V(replaced) (placed by this
      run; C(how) is salvaged, fetched, linked or copied), V(would_fetch) (check mode),
      V(missing), V(bad) or V(failed) with the reason.
  returned: in stage and verify mode
  type: list
  elements: dict
  sample: [{"path": "config.json", "status": "ok", "size": 1234}]
held:
  description: Whether the host holds a copy whose every file still matches its stamp.
  returned: in probe mode
  type: bool
unverified:
  description: Up to 20 files of the held copy that are missing or changed since they last matched.
  returned: in probe mode
  type: list
  elements: str
source:
  description: Where the stage took the model from.
  returned: in stage mode
  type: str
resolved:
  description: Whether the hub was asked for the revision (not when the pinned commit was held).
  returned: in stage mode
  type: bool
would_fetch:
  description: Files check mode would fetch (null when the revision could not be resolved).
  returned: in check mode
  type: list
  elements: str
would_fetch_bytes:
  description: Their bytes.
  returned: in check mode, when the revision was resolved
  type: int
removed:
  description: Files of the copy that the manifest does not list, removed (would be, in check mode).
  returned: in stage and verify mode
  type: list
  elements: str
bytes_downloaded:
  description: Bytes that came over the network in this run (resumed bytes are not counted).
  returned: in stage mode
  type: int
bytes_placed:
  description: Bytes of the files moved into place in this run.
  returned: in stage mode
  type: int
seconds:
  description: Time the stage or verification took.
  returned: in stage and verify mode, outside check mode
  type: float
progress_file:
  description: The progress file on the host.
  returned: in stage mode
  type: str
  sample: /var/cache/sglang/models/.staging/moonshotai/Kimi-Linear-48B-A3B-Instruct/progress.json
kind:
  description:
    - On failure, what failed - revision_not_found, repo_not_found, token_refused, gated,
      entry_not_found, unreachable, disk_full, deadline, image_missing, no_hub_library, hub_error.
  returned: failed, when known
  type: str
"""

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import DockerCli, run_and_exit
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._model import ModelManager
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import url_credentials


def argument_spec():
    return dict(
        mode=dict(type="str", choices=["stage", "verify", "probe"], default="stage"),
        source=dict(type="str", choices=["hub", "local"], default="hub"),
        repo=dict(type="str", required=True),
        revision=dict(type="str", default="main"),
        model_dir=dict(type="path", required=True),
        local_dir=dict(type="path"),
        manifest=dict(type="dict"),
        verify=dict(type="str", choices=["stat", "full"], default="stat"),
        hub_endpoint=dict(type="str", default="https://huggingface.co"),
        hub_token=dict(type="str", default="", no_log=True),
        ca_bundle=dict(type="path"),
        image=dict(type="str"),
        container=dict(type="str"),
        python=dict(type="str", default="python3"),
        docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        timeout=dict(type="int", default=14400),
        host=dict(type="str"),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(), supports_check_mode=True,
        required_if=[("source", "local", ("local_dir",)), ("mode", "verify", ("manifest",))])
    params = dict(module.params)
    params["host"] = params["host"] or platform.node()
    # an endpoint with user:password is refused, and its credentials masked wherever they appear
    module.no_log_values.update(url_credentials(params["hub_endpoint"]))
    uses_docker = params["mode"] == "stage" and params["source"] == "hub"
    if uses_docker and not params["image"]:
        module.fail_json(msg="Host %s: image (sglang_image) is required to stage from the hub" % params["host"])
    docker = DockerCli(module, params["docker_host"], params["timeout"]) if uses_docker else None
    run_and_exit(module, ModelManager(params, docker, check_mode=module.check_mode, warn=module.warn))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_packages
short_description: pip install the missing packages inside a running container, keeping the image's pins
version_added: 0.1.0
description:
  - Runs on the GPU host and drives the container through the docker CLI. Step 3 of the published
    recipe (C(pip install sentencepiece tiktoken) inside the SGLang container), idempotently.
  - One C(docker exec) reads which of O(requirements) the container already satisfies. When all
    are, the module reports no change and runs nothing else.
  - Otherwise a second C(docker exec) installs the missing requirements only, with a constraint
    file made from the container's own installed versions (minus the packages being installed),
    so nothing the image pins is upgraded or downgraded; a request that would need that fails
    and says so. Before pip runs, it checks that the package index answers through the CA bundle
    and proxies given, and names the index and the settings to change when it does not.
  - The program that runs in the container is the collection's pip helper (standard library
    only). Its source and the request travel on the stdin of C(docker exec -i), never on a
    command line. The CA bundle O(ca_bundle) is read on the host and its content travels the
    same way; the helper writes it to a private temporary file for pip's C(--cert) and removes
    it afterwards.
  - Error messages name the host (O(host)) and the variables of the P(sglang_rocm.fleet.packages#role)
    role that set each option (for example C(sglang_packages_pip) for O(requirements)).
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
requirements:
  - Python 3.8 or later with pip inside the container (O(python), whose C(python -m pip) is
    used); C(pip install --dry-run) (pip 22.2 or later) for check mode to list versions.
options:
  requirements:
    description:
      - Requirements, names with optional version specifiers (C(tiktoken==0.14.0),
        C(sentencepiece>=0.2)). URLs, paths, options and markers are refused.
      - An empty list does nothing and runs nothing.
    type: list
    elements: str
    required: true
  install:
    description:
      - V(false) only reads what is missing (returned in RV(missing)) and changes nothing. The
        packages role uses it to copy an offline wheelhouse to the host only when needed.
    type: bool
    default: true
  index_url:
    description:
      - Package index (pip's C(index-url)); empty keeps the image's pip configuration or PyPI.
      - It is treated as a secret, since it may carry credentials (C(https://user:token@host/simple)).
        pip gets it in its environment (C(PIP_INDEX_URL)), never on a command line, and the
        module's output masks it.
    type: str
    default: ""
  extra_index_urls:
    description:
      - Additional indexes (pip's C(extra-index-url)), treated as secrets like O(index_url).
        pip gets them in C(PIP_EXTRA_INDEX_URL), space-separated.
    type: list
    elements: str
    default: []
  ca_bundle:
    description:
      - CA bundle file (PEM) on the host that pip trusts (C(--cert)), needed behind a
        TLS-inspecting proxy, for example C(/etc/ssl/certs/ca-certificates.crt).
      - Read only when something is to be installed and O(wheelhouse) is empty. Its content is
        never returned or logged.
    type: path
  http_proxy:
    description: C(http_proxy) for pip. It is treated as a secret, since it may carry credentials.
    type: str
    default: ""
  https_proxy:
    description: C(https_proxy) for pip. It is treated as a secret, since it may carry credentials.
    type: str
    default: ""
  no_proxy:
    description: C(no_proxy) for pip.
    type: str
    default: ""
  wheelhouse:
    description:
      - Directory of wheels as seen inside the container. When set, installation is offline
        (C(--no-index --find-links)) and the index, CA bundle and proxies are not used.
    type: path
  extra_args:
    description:
      - Extra pip options (for example C(--pre) or C(--break-system-packages)). Options the
        module owns (index, constraints, upgrade, target) are refused.
    type: list
    elements: str
    default: []
  timeout:
    description: pip's network timeout in seconds (C(--timeout)).
    type: int
    default: 60
  retries:
    description: pip's retries per request (C(--retries)).
    type: int
    default: 3
  host:
    description:
      - Name of the host in error messages (the packages role passes C(inventory_hostname));
        defaults to the host name.
    type: str
attributes:
  check_mode:
    support: full
    details:
      - Check mode runs C(pip install --dry-run) (pip 22.2 or later) and reports what would be
        installed, with versions. With an older pip, or an offline wheelhouse that is not on the
        host yet, it reports the missing requirements.
      - A container that does not exist yet (the container role only predicted it) counts as
        "everything would be installed" and produces a warning.
  diff_mode:
    support: full
    details:
      - The diff lists the distributions that change, C(name==version) before and after.
  idempotent:
    description: When run twice with the same parameters, the second run changes nothing.
    support: full
    details:
      - A container that satisfies every requirement reports no change and runs no pip.
  platform:
    platforms: posix
extends_documentation_fragment:
  - sglang_rocm.fleet.docker_exec
  - ansible.builtin.action_common_attributes
notes:
  - The in-container pip helper writes temporary files (constraints, CA bundle) in the
    container's temporary directory and removes them.
seealso:
  - module: sglang_rocm.fleet.sglang_server
"""

EXAMPLES = r"""
- name: The recipe's packages, behind a TLS-inspecting proxy
  sglang_rocm.fleet.sglang_packages:
    container: Kimi-linear
    requirements: [sentencepiece, tiktoken]
    ca_bundle: /etc/ssl/certs/ca-certificates.crt
    https_proxy: "{{ vault_proxy_url }}"
    host: "{{ inventory_hostname }}"
  register: packages

- name: Show what was installed
  ansible.builtin.debug:
    msg: "{{ packages.changes }}"

- name: Offline, from wheels under a directory the container mounts at the same path
  sglang_rocm.fleet.sglang_packages:
    container: Kimi-linear
    requirements: [tiktoken==0.14.0]
    wheelhouse: /var/cache/sglang/wheelhouse
"""

RETURN = r"""
requirements:
  description: Per requirement, what the container has (after the install, when one ran).
  returned: when O(requirements) is not empty and the container exists
  type: list
  elements: dict
  contains:
    requirement:
      description: The requirement as normalised text.
      type: str
      sample: tiktoken==0.14.0
    name:
      description: Project name as given.
      type: str
      sample: tiktoken
    key:
      description: Normalised project name (PEP 503).
      type: str
      sample: tiktoken
    installed:
      description: Installed version, or null.
      type: str
      sample: 0.12.0
    satisfied:
      description: Whether the installed version meets the requirement.
      type: bool
  sample: [{"requirement": "tiktoken", "name": "tiktoken", "key": "tiktoken", "installed": "0.12.0", "satisfied": true}]
missing:
  description: Requirements the container did not satisfy before this run.
  returned: always
  type: list
  elements: str
  sample: [sentencepiece]
changes:
  description:
    - Distributions that changed, each name mapped to its old and new version (null for none).
      In check mode, what pip would change.
  returned: always
  type: dict
  sample: {"sentencepiece": [null, "0.2.1"]}
would_install:
  description: In check mode, the distributions (C(name-version)) or requirements that would be installed.
  returned: in check mode when something is missing
  type: list
  elements: str
  sample: [sentencepiece-0.2.1]
container_absent:
  description: In check mode, whether the container did not exist yet.
  returned: always
  type: bool
python:
  description: Version of the container's Python.
  returned: when the container exists and O(requirements) is not empty
  type: str
  sample: 3.12.3
pip_output_tail:
  description: Last 3000 characters of pip's output, with proxy and index credentials masked.
  returned: when pip ran
  type: str
"""

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    DockerCli,
    exec_argument_spec,
    run_and_exit,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._packages import PackagesManager, url_secrets


def argument_spec():
    return dict(
        exec_argument_spec(),
        requirements=dict(type="list", elements="str", required=True),
        install=dict(type="bool", default=True),
        index_url=dict(type="str", default="", no_log=True),
        extra_index_urls=dict(type="list", elements="str", default=[], no_log=True),
        ca_bundle=dict(type="path"),
        http_proxy=dict(type="str", default="", no_log=True),
        https_proxy=dict(type="str", default="", no_log=True),
        no_proxy=dict(type="str", default=""),
        wheelhouse=dict(type="path"),
        extra_args=dict(type="list", elements="str", default=[]),
        timeout=dict(type="int", default=60),
        retries=dict(type="int", default=3),
        host=dict(type="str"),
    )


def read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    params["host"] = params["host"] or platform.node()
    # the user:password parts too, masked by Ansible wherever they appear in the result
    module.no_log_values.update(url_secrets(params))
    docker = DockerCli(module, params["docker_host"], params["exec_timeout"])
    manager = PackagesManager(params, docker, read_text, check_mode=module.check_mode,
                              want_diff=module._diff, warn=module.warn)
    run_and_exit(module, manager)


if __name__ == "__main__":
    main()

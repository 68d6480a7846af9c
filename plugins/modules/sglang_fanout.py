#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_fanout
short_description: One host's side of a host-to-host fan-out of a directory of verified files
version_added: 0.1.0
description:
  - Spreads the files of a manifest (the C(_manifest.py) format, a size and a sha256 or git blob
    sha1 per file) across the fleet so that they cross the slow upstream link once. The fleet
    plan (who fetches from whom) comes from the M(sglang_rocm.fleet.fanout_plan) action; the
    common role's C(fanout) entry point runs the whole transfer. This module runs on one host.
  - V(checked) tells whether the host holds a verified copy (the stamp makes a re-check cheap)
    and that O(address) is one of its own addresses. It changes nothing but the stamp.
  - V(serving) starts a detached HTTP server (Python standard library only) bound to O(address)
    on O(port). It answers only requests that carry O(token) (anything else gets 403 and an empty
    body), offers only the manifest's files that this host holds verified, supports C(Range),
    serves at most O(degree) transfers at once (503 beyond that), and lists what it holds at
    C(/status). It exits by itself after O(timeout) seconds. The token reaches it through a 0600
    file that it deletes on start, never an argv or an environment.
  - V(fetched) fetches every missing or bad file from O(sources), in order. Each file comes
    from the first source that holds it verified and has a free slot; it waits for a source
    that is still receiving the file, moves on from one that stops answering (no byte for
    O(stall_timeout) seconds), resumes a partial file with C(Range), and verifies the hash before
    the file gets its final name. A source that failed O(retries) + 1 times is not asked again.
    All of it ends at O(timeout) seconds.
  - V(stopped) stops the server recorded for O(dir), only when the recorded process id still
    belongs to that server (same start time), and removes its files.
  - Files of a transfer live in C(<dir>/.sglang-fanout/) (0700) while it runs.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description:
      - V(checked) reads only; V(fetched) reports the files it would fetch and fetches nothing;
        V(serving) and V(stopped) start or stop nothing.
  diff_mode:
    support: none
    description: Files are compared by hash, not shown.
  idempotent:
    support: full
    description: A host that holds a verified copy fetches nothing (C(status=held), changed=false).
options:
  state:
    description: What to do on this host.
    type: str
    choices: [checked, serving, fetched, stopped]
    default: checked
  name:
    description: Name of the transfer, in messages and the result.
    type: str
    default: transfer
  dir:
    description: The directory that holds (or receives) the files; manifest paths are relative to it.
    type: path
    required: true
  manifest:
    description:
      - The manifest, C({files - [{path, size, sha256, git_sha1}, ...]}) as C(_manifest.py) builds it.
      - Required except with O(state=stopped).
    type: dict
  host:
    description: This host's name in messages (the inventory name); defaults to the node name.
    type: str
    default: ""
  address:
    description:
      - The address the other hosts reach this one at; the server binds it.
      - Required with O(state=checked) and O(state=serving).
    type: str
    default: ""
  port:
    description: The server's TCP port.
    type: int
    default: 30080
  token:
    description:
      - The transfer's secret; the server refuses every request without it, the fetcher sends it.
      - Never logged, never on a command line.
    type: str
    default: ""
  sources:
    description: With O(state=fetched), the hosts to fetch from, in the order to try them.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: The source's inventory name.
        type: str
        required: true
      address:
        description: The address of its server.
        type: str
        required: true
      port:
        description: The port of its server.
        type: int
        required: true
  degree:
    description: With O(state=serving), how many transfers the server serves at once.
    type: int
    default: 2
  retries:
    description: How many times a source may fail (no answer, a cut transfer, a bad hash) before it is not asked again.
    type: int
    default: 3
  timeout:
    description: Seconds the whole fetch may take; with O(state=serving), the server's lifetime.
    type: int
    default: 3600
  stall_timeout:
    description: Seconds a source may stay silent (no status, no byte) before the fetcher moves on.
    type: int
    default: 30
  private:
    description: Create directories 0700 and files 0600 (else 0755 and 0644).
    type: bool
    default: false
notes:
  - Holding a verified copy is what the stamp C(<dir>/.sglang-verified.json) says (C(_manifest.py)); a
    received file is added to it at once, which is what lets a receiver serve it to others while
    it still receives the rest.
  - The transfer is plain HTTP between hosts of the datacenter network; the token stops other
    clients, the hashes stop altered bytes, and the files are readable on the wire.
seealso:
  - module: sglang_rocm.fleet.fanout_plan
"""

EXAMPLES = r"""
- name: Does this host hold the model?
  sglang_rocm.fleet.sglang_fanout:
    state: checked
    name: model
    dir: /var/cache/sglang/models/org/name
    manifest: "{{ model_manifest }}"
    address: "{{ ansible_host }}"

- name: Fetch it from the peers
  sglang_rocm.fleet.sglang_fanout:
    state: fetched
    name: model
    dir: /var/cache/sglang/models/org/name
    manifest: "{{ model_manifest }}"
    token: "{{ plan.token }}"
    sources:
      - {host: gpu01, address: 10.0.0.11, port: 30080}
"""

RETURN = r"""
result:
  description:
    - The host's record of the transfer (the common role's fact C(sglang_fanout_result)).
      C(status) is V(held) (it had a verified copy), V(received) (it fetched what it lacked; in
      check mode, what it would fetch) or V(failed) (C(error) says why, naming the host).
      C(sources) lists the hosts it fetched from, C(bytes) what it received, C(seconds) the time taken.
    - With O(state=checked), V(failed) is what the host's record stays if it is sent nothing.
  returned: with state checked or fetched
  type: dict
  sample: {"name": "model", "status": "received", "sources": ["gpu01"], "bytes": 104857600,
           "seconds": 12.3, "error": null}
holds:
  description: Whether the host holds a verified copy.
  returned: with state checked
  type: bool
missing:
  description: Manifest paths the host lacks.
  returned: with state checked
  type: list
  elements: str
bad:
  description: Files whose size or hash is wrong, with the reason.
  returned: with state checked
  type: list
  elements: dict
need_bytes:
  description: Bytes the host lacks.
  returned: with state checked
  type: int
address:
  description: The address given, checked to be one of this host's.
  returned: with state checked
  type: str
port:
  description: The port given.
  returned: with state checked
  type: int
url:
  description: The server's URL.
  returned: with state serving
  type: str
pid:
  description: The server's process id (recorded with its start time), or the one stopped.
  returned: with state serving or stopped
  type: int
stale:
  description: With state stopped, why a recorded process was not signalled (its pid is gone or reused).
  returned: with state stopped
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout_host as F
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._manifest import ManifestError


def bad_number(params):
    """The first number option out of range, as a message naming the variable; None if all fit."""
    rules = (("port", "sglang_fanout_port", 1, 65535), ("degree", "sglang_fanout_degree", 1, None),
             ("retries", "sglang_fanout_retries", 0, None), ("timeout", "sglang_fanout_timeout", 1, None),
             ("stall_timeout", "stall_timeout", 1, None))
    for option, variable, low, high in rules:
        value = params[option]
        if value < low or (high is not None and value > high):
            return "%s must be %s, got %d" % (
                variable, "between %d and %d" % (low, high) if high else "at least %d" % low, value)
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="checked", choices=["checked", "serving", "fetched", "stopped"]),
            name=dict(type="str", default="transfer"),
            dir=dict(type="path", required=True),
            manifest=dict(type="dict"),
            host=dict(type="str", default=""),
            address=dict(type="str", default=""),
            port=dict(type="int", default=30080),
            token=dict(type="str", default="", no_log=True),
            sources=dict(type="list", elements="dict", default=[], options=dict(
                host=dict(type="str", required=True),
                address=dict(type="str", required=True),
                port=dict(type="int", required=True),
            )),
            degree=dict(type="int", default=2),
            retries=dict(type="int", default=3),
            timeout=dict(type="int", default=3600),
            stall_timeout=dict(type="int", default=30),
            private=dict(type="bool", default=False),
        ),
        required_if=[("state", "checked", ("manifest", "address")), ("state", "serving", ("manifest", "address")),
                     ("state", "fetched", ("manifest",))],
        supports_check_mode=True,
    )
    p = module.params
    host = p["host"] or os.uname()[1]
    problem = bad_number(p)
    if problem:
        module.fail_json(msg="Host %s: %s" % (host, problem))
    state = p["state"]
    try:
        if state == "checked":
            module.exit_json(**F.check(p["dir"], p["manifest"], p["name"], host, p["address"], p["port"],
                                       module.check_mode))
        if state == "serving":
            module.exit_json(**F.start_server(p["dir"], p["manifest"], p["token"], p["address"], p["port"],
                                              p["degree"], p["timeout"], p["name"], host, module.check_mode))
        if state == "stopped":
            if module.check_mode:
                module.exit_json(changed=False, pid=None, stale=None)
            stopped = F.stop_server(p["dir"])
            module.exit_json(changed=stopped["stopped"], pid=stopped["pid"], stale=stopped["stale"])
        fetcher = F.Fetcher(p["dir"], p["manifest"], p["sources"], p["token"], name=p["name"], host=host,
                            retries=p["retries"], timeout=p["timeout"], stall_timeout=p["stall_timeout"],
                            private=p["private"])
        record, changed = fetcher.run(module.check_mode)
    except (F.FanoutError, ManifestError) as exc:
        module.fail_json(msg=str(exc) if str(exc).startswith("Host ") else "Host %s: %s" % (host, exc))
    if record["status"] == "failed":
        module.fail_json(msg=record["error"], changed=changed, result=record)
    module.exit_json(changed=changed, result=record)


if __name__ == "__main__":
    main()

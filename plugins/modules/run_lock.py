#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_lock
short_description: Take or release the run lock of a GPU host (one converge at a time)
version_added: 0.1.0
description:
  - The lock is a small JSON file on the host naming the run that holds it (run id, controller,
    start time, TTL, and where that run writes its host-side summary).
  - O(state=present) takes it with an exclusive create (a complete temporary file hard-linked to
    O(path), which fails when the lock exists), so two runs cannot both hold it. It fails, naming
    the holder's run id, controller and start time, when another run holds the lock.
  - A lock past its TTL, or whose run wrote its summary, is reported as stale; a stale, corrupt or
    held lock is broken only with O(break_lock=true).
  - O(state=absent) removes the lock only when this run holds it.
  - In check mode nothing is created or removed; a lock held by another run is a warning.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  path:
    description: The lock file on the host.
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description: This run's id (C(sglang_run_id)).
    type: str
    required: true
  controller:
    description: The controller's host name, recorded in the lock for whoever finds it.
    type: str
    default: ''
  ttl:
    description: Seconds after which the lock is stale.
    type: int
    default: 21600
  summary_path:
    description:
      - The file on the host this run writes when it has finished; once it exists, a lock left
        behind by this run is stale.
    type: path
  break_lock:
    description: Break a lock held by another run (stale, corrupt or not) and take it.
    type: bool
    default: false
  host_name:
    description: The host's name in messages (its inventory name); the host's own name when empty.
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Take the run lock
  sglang_rocm.fleet.run_lock:
    path: /var/cache/sglang/run.lock
    run_id: "{{ sglang_run_id }}"
    controller: "{{ lookup('ansible.builtin.pipe', 'uname -n') }}"
    ttl: 21600

- name: Release it
  sglang_rocm.fleet.run_lock:
    path: /var/cache/sglang/run.lock
    run_id: "{{ sglang_run_id }}"
    state: absent
"""

RETURN = r"""
action:
  description: What was done, V(take), V(keep) (this run already held it), V(break), V(release) or V(none).
  returned: always
  type: str
  sample: take
msg:
  description: What was done, or, when a lock was broken or (in check mode) is held, why.
  returned: always
  type: str
holder:
  description: The lock found on the host (its run id, controller, start time, TTL), if any.
  returned: always
  type: dict
  sample: {run_id: 20250101T000000Z-1a2b3c, controller: ctl01, started: 1735689600, ttl: 21600}
"""

import os
import socket
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _run_lock


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _create(path, text):
    """Create ``path`` holding ``text``, failing with FileExistsError when it exists."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".run.lock.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.link(tmp, path)  # atomic and exclusive: EEXIST when another run got there first
    finally:
        os.unlink(tmp)


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        run_id=dict(type="str", required=True),
        controller=dict(type="str", default=""),
        ttl=dict(type="int", default=21600),
        summary_path=dict(type="path"),
        break_lock=dict(type="bool", default=False),
        host_name=dict(type="str", default=""),
    ), supports_check_mode=True)
    p = module.params
    host = p["host_name"] or socket.gethostname()
    path = p["path"]
    try:
        text = _read(path)
        if p["state"] == "absent":
            remove, warning = _run_lock.release_decision(text, p["run_id"])
            if warning:
                module.warn(warning)
            if remove and not module.check_mode:
                os.unlink(path)
            module.exit_json(changed=remove, action="release" if remove else "none",
                             holder=_holder(text), msg=warning or (
                                 "released the run lock %s" % path if remove else "no lock to release"))
        if p["ttl"] < 1:
            module.fail_json(msg="ttl must be a number of seconds >= 1 (sglang_run_lock_ttl), got %d"
                             % p["ttl"])
        mine = _run_lock.lock_text(p["run_id"], p["controller"], time.time(), p["ttl"],
                                   p["summary_path"])
        for attempt in (1, 2):
            assessment = _run_lock.assess(text, p["run_id"], time.time(), os.path.exists)
            action, message = _run_lock.decide(assessment, host, path, p["break_lock"])
            result = dict(action=action, holder=assessment["holder"])
            if action == "keep":
                module.exit_json(changed=False, msg="this run holds the run lock %s" % path, **result)
            if action == "fail":
                if module.check_mode:
                    module.warn(message)
                    module.exit_json(changed=False, msg=message, **result)
                module.fail_json(msg=message, **result)
            if module.check_mode:
                module.exit_json(changed=True, msg=message or "", **result)
            if action == "break":
                module.warn(message)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            try:
                _create(path, mine)
            except FileExistsError:
                if attempt == 2:
                    raise
                text = _read(path)  # another run took it between our read and our create
                continue
            module.exit_json(changed=True, msg=message or "took the run lock %s" % path, **result)
    except OSError as exc:
        module.fail_json(msg="%s: could not %s the run lock %s: %s" % (
            host, "release" if p["state"] == "absent" else "take", path, exc))


def _holder(text):
    try:
        return _run_lock.parse(text) if text else None
    except _run_lock.LockCorrupt:
        return None


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/fanout_plan.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fanout_plan
short_description: Plan a host-to-host fan-out, once per play, on the controller
version_added: 0.1.0
description:
  - Reads each host's check of the transfer (the result of M(sglang_rocm.fleet.sglang_fanout)
    with C(state=checked), registered under the name O(checks)) and plans who fetches from whom.
    A host takes part when it registered a check of this O(name); the hosts that hold a verified
    copy are the roots of a tree in which every host feeds at most O(degree) others, so the depth
    grows with the logarithm of the number of hosts.
  - Each receiver gets its sources in the order to try them, its parent first, then its other
    ancestors, the other holders and the remaining hosts, so that a lost source is replaced by
    the next one holding the file.
  - Draws a fresh random token for the transfer (32 random bytes, URL-safe). The successful
    result carries it and is therefore hidden from every log and callback (as with no_log); a
    failure carries no token and is shown.
  - The hosts named in O(sources) but not holding a verified copy receive like the others, with a
    warning; with no holder at all nobody can receive.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  name:
    description: Name of the transfer (C(sglang_fanout_name)); a check counts only when it names the same transfer.
    type: str
    default: transfer
  hosts:
    description: The hosts of the play, in order (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  sources:
    description: The hosts said to hold a verified copy (C(sglang_fanout_sources)); their check decides.
    type: list
    elements: str
    default: []
  degree:
    description: How many hosts one source feeds at once (C(sglang_fanout_degree)), at least 1.
    type: int
    default: 2
  checks:
    description: The variable each host registered its check in.
    type: str
    default: __sglang_fanout_check
notes:
  - An action plugin; it runs on the controller and needs no connection. Run it with C(run_once).
seealso:
  - module: sglang_rocm.fleet.sglang_fanout
"""

EXAMPLES = r"""
- name: Plan the model fan-out
  sglang_rocm.fleet.fanout_plan:
    name: model
    hosts: "{{ ansible_play_hosts }}"
    sources: [gpu01]
    degree: 2
  run_once: true
  register: plan
"""

RETURN = r"""
token:
  description: The transfer's token (hidden from logs, as the result is marked no_log).
  returned: success
  type: str
members:
  description: The hosts that take part, in play order.
  returned: success
  type: list
  elements: str
holders:
  description: The members that hold a verified copy (the roots).
  returned: success
  type: list
  elements: str
receivers:
  description: The members that must fetch.
  returned: success
  type: list
  elements: str
servers:
  description: The members that must serve (every member when someone receives and someone holds, else none).
  returned: success
  type: list
  elements: str
depth:
  description: The depth of the tree (0 when nobody receives).
  returned: success
  type: int
hosts:
  description: Per member, C(role) (holder or receiver), C(depth), C(parent), C(children) and C(sources) (C(host), C(address), C(port)) in the order to try.
  returned: success
  type: dict
"""

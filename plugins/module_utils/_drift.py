# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Drift by majority: find the odd host out by comparing the fleet with itself (pure, stdlib only).

versioned_facts() runs on each GPU host (inside rocm_preflight) and reduces its facts to the
versions worth comparing; drift() runs on the controller (the preflight_summary action) over the
hosts of this run that share a GPU device id. A host whose value differs from the strict majority
(more than half of the hosts that report the fact) is named with its value and the majority's;
without a strict majority (two hosts that disagree, or a three-way split) the fact is reported as
having no majority and no host is picked. Under --limit only the hosts that ran are compared, and
every finding says how many hosts the majority came from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DEVICE_NONE = "no amdgpu GPU"


def _one(values):
    """A per-GPU value as one host value: the value when all GPUs agree, else 'a/b' (itself a drift)."""
    values = sorted(set(str(v) for v in values if v is not None))
    return "/".join(values) if values else None


def versioned_facts(facts, docker=None):
    """{device, facts: {name: value}}: the versions of one host (unknown ones left out)."""
    gpus = facts.get("gpus") or []
    ids = sorted(set(g.get("device_id") for g in gpus if g.get("device_id")))
    if not ids:
        ids = sorted(set(p.get("device_id") for p in facts.get("pci_gpus") or [] if p.get("device_id")))
    device = ",".join("0x%04x" % i for i in ids) if ids else DEVICE_NONE
    values = {
        "driver": facts.get("driver_version") or (
            "inbox %s" % facts.get("driver_srcversion") if facts.get("amdgpu_loaded") else None),
        "vbios": _one(g.get("vbios_version") for g in gpus),
        "kernel": facts.get("kernel_release"),
        "kernel_args": " ".join(facts["kernel_args"]) if facts.get("kernel_args") is not None else None,
        "rocm": facts.get("rocm_version"),
        "docker": (docker or {}).get("version"),
        # the ID of the image the hosts will serve, where a host already holds it
        "image": ((docker or {}).get("image") or {}).get("id"),
    }
    blocks = sorted(set(block for g in gpus for block in (g.get("firmware") or {})))
    for block in blocks:
        values["fw." + block] = _one((g.get("firmware") or {}).get(block) for g in gpus)
    if "fw.mec" not in values and any(g.get("kfd_fw_version") is not None for g in gpus):
        values["fw.mec"] = _one(g.get("kfd_fw_version") for g in gpus)
    return {"device": device, "facts": dict((k, v) for k, v in values.items() if v is not None)}


def drift(entries, fail_facts=()):
    """Compare each host's versions with its device group's majority.

    entries: [(host, versions or None)] for the hosts of this run (versions from versioned_facts).
    Returns {groups: [{device, hosts, findings, no_majority, alone}], findings, no_majority,
    failed_hosts}: a finding is {host, device, fact, value, majority, majority_hosts, hosts,
    status (warn, or fail for a fact in fail_facts)}; no_majority is {device, fact, values: {value: [hosts]}, hosts}.
    """
    fail_facts = set(fail_facts or ())
    groups = {}
    for host, versions in entries:
        if versions:
            groups.setdefault(versions.get("device") or DEVICE_NONE, []).append((host, versions.get("facts") or {}))
    result = {"groups": [], "findings": [], "no_majority": [], "failed_hosts": []}
    for device in sorted(groups):
        members = groups[device]
        group = {"device": device, "hosts": [h for h, _f in members], "findings": [], "no_majority": [],
                 "alone": len(members) < 2}
        names = sorted(set(name for _h, found in members for name in found))
        for name in names if len(members) > 1 else ():
            by_value = {}
            for host, found in members:
                if name in found:
                    by_value.setdefault(found[name], []).append(host)
            reporting = sum(len(hosts) for hosts in by_value.values())
            if len(by_value) < 2:
                continue
            top_value, top_hosts = max(by_value.items(), key=lambda kv: (len(kv[1]), kv[0]))
            if len(top_hosts) * 2 <= reporting:
                group["no_majority"].append({"device": device, "fact": name, "hosts": reporting,
                                             "values": dict((v, sorted(h)) for v, h in by_value.items())})
                continue
            for value, hosts in sorted(by_value.items()):
                if value == top_value:
                    continue
                for host in hosts:
                    group["findings"].append({
                        "host": host, "device": device, "fact": name, "value": value, "majority": top_value,
                        "majority_hosts": len(top_hosts), "hosts": reporting,
                        "status": "fail" if name in fail_facts else "warn"})
        result["groups"].append(group)
        result["findings"] += group["findings"]
        result["no_majority"] += group["no_majority"]
    result["failed_hosts"] = sorted(set(f["host"] for f in result["findings"] if f["status"] == "fail"))
    return result


def finding_text(finding):
    """'fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1)'."""
    return "%s %s, majority %s (%d of %d hosts with device %s)" % (
        finding["fact"], finding["value"], finding["majority"], finding["majority_hosts"], finding["hosts"],
        finding["device"])


def no_majority_text(entry):
    """'fw.mec: no majority among 2 hosts with device 0x74a1 (166 on gpu01; 177 on gpu02)'."""
    values = "; ".join("%s on %s" % (value, ", ".join(hosts)) for value, hosts in sorted(entry["values"].items()))
    return "%s: no majority among %d hosts with device %s, none picked (%s)" % (
        entry["fact"], entry["hosts"], entry["device"], values)

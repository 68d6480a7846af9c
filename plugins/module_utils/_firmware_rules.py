# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Firmware rules: the one table of settings that a known GPU firmware condition requires.

Each rule names the GPU targets it concerns, the per-GPU fact it reads (a key of a gathered GPU,
see _rocm_health), the condition, the environment it requires on that host and why, with its
sources. The preflight applies the rules to each host's facts (rocm_preflight returns the
result as the ``sglang_firmware_env`` fact); the server role merges that fact under the user's
``sglang_env``, so a value the user set always wins. docs/preflight.md lists the rules.

Add a rule here, with sources; nothing else names them.
"""

from __future__ import absolute_import, division, print_function

from collections import namedtuple

__metaclass__ = type


class Rule(namedtuple("Rule", ("name", "gfx", "fact", "label", "below", "env", "why", "sources"))):
    """One firmware rule: on GPUs of a target in ``gfx`` whose ``fact`` is below ``below``, set ``env``."""

    __slots__ = ()


RULES = (
    Rule(
        name="mec_scratch_reclaim",
        gfx=("gfx942",),
        fact="mec_firmware",
        label="MEC firmware",
        below=177,
        env={"HSA_NO_SCRATCH_RECLAIM": "1"},
        why=("with MEC firmware below 177 the runtime cannot reclaim scratch memory safely and RCCL crashes; "
             "HSA_NO_SCRATCH_RECLAIM=1 turns the reclaim off (the driver change that needs the newer "
             "firmware is in the ROCm 6.4.3 release notes)"),
        sources=(
            "ROCm 6.4.3 release notes (known issues: RCCL and MEC firmware below 177)",
            "AMD MI300X vLLM benchmark recipe: HSA_NO_SCRATCH_RECLAIM=1 when `rocm-smi --showfw` reports MEC < 177",
            "InferenceMAX benchmark scripts (SemiAnalysis): the same MEC < 177 test",
        ),
    ),
)


def evaluate(facts, rules=RULES):
    """The rules that apply to a host: [{rule, label, gpus, values, below, env, why, sources}].

    A GPU whose fact is unknown (None) matches no rule: the rule cannot say it applies.
    """
    applied = []
    for rule in rules:
        hits = [gpu for gpu in facts.get("gpus") or []
                if gpu.get("gfx") in rule.gfx and isinstance(gpu.get(rule.fact), int) and gpu[rule.fact] < rule.below]
        if hits:
            applied.append({
                "rule": rule.name, "label": rule.label, "fact": rule.fact, "below": rule.below,
                "gpus": [gpu["node"] for gpu in hits], "values": sorted(set(gpu[rule.fact] for gpu in hits)),
                "env": dict(rule.env), "why": rule.why, "sources": list(rule.sources),
            })
    return applied


def env_defaults(applied):
    """The environment the applied rules require (later rules never override earlier ones)."""
    env = {}
    for entry in applied:
        for key, value in entry["env"].items():
            env.setdefault(key, value)
    return env

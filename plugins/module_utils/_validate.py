# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The checks the ``validate`` action runs on the controller before any host is changed.

Pure: every function takes the variables' values and returns a list of Problem, each naming the
variable, what was seen, what was expected and the fix (the action adds the host). Nothing here
reads a host; the baseline file is read on the controller, where the report reads it. The tier
and baseline checks are the ones the benchmark stage itself applies (``_bench.validate_tiers``,
``_report_bench.load_baseline``/``check_tolerances``), run an hour earlier.
"""

from __future__ import annotations

import collections
import math
import os

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._address import is_loopback, key_problem
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._bench import BenchSpecError, validate_tiers
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._model import input_problems as model_input_problems
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._report_bench import (
    ReportError,
    check_tolerances,
    load_baseline,
)

STAGES = ("preflight", "container", "model", "packages", "server", "benchmark")

# Waits, deadlines and polls that must be > 0, by the stage that uses them. 0 is never "no
# limit": a zero poll turns the benchmark's async task into fire-and-forget, a zero timeout
# fails every call at once, a zero sleep spins the controller.
POSITIVE = (
    ("preflight", "sglang_preflight_docker_timeout", "seconds to wait for the Docker daemon"),
    ("model", "sglang_model_timeout", "seconds the model stage may take per host"),
    ("model", "sglang_model_poll", "seconds between polls of the model stage's async task"),
    ("packages", "sglang_packages_timeout", "pip's network timeout in seconds"),
    ("server", "sglang_server_timeout", "seconds to wait for the server to load and answer"),
    ("server", "sglang_server_connect_timeout", "seconds per readiness probe"),
    ("server", "sglang_server_sleep", "seconds between readiness probes"),
    ("server", "sglang_server_stop_timeout", "seconds to wait for the server to stop"),
    ("benchmark", "sglang_benchmark_timeout", "seconds per benchmark tier"),
    ("benchmark", "sglang_benchmark_poll", "seconds between polls of the async benchmark task"),
    ("container", "sglang_fanout_timeout", "seconds one host's fan-out fetch may take"),
)
NON_NEGATIVE_INT = (
    ("packages", "sglang_packages_retries", "pip's retries per request"),
    ("container", "sglang_fanout_retries", "failures of one fan-out source before it is left"),
)
# at least 1: a fan-out where no source may feed any host receives nothing
POSITIVE_INT = (
    ("container", "sglang_fanout_degree", "hosts one fan-out source feeds at once"),
)
FRACTIONS = ("sglang_benchmark_token_tolerance", "sglang_benchmark_outlier_tolerance")
# The model inputs, by the stages that read them: where the copy is and what it serves (container,
# model, server), how the model stage gets it (model), the offline server's tokenizer (server).
MODEL_SHARED = ("sglang_model_source", "sglang_model_path", "sglang_model_dir")
MODEL_STAGE = ("sglang_model_revision", "sglang_model_hub_endpoint", "sglang_model_local_dir", "sglang_model_verify")
# Every variable the checks read: the action resolves these (inventory value, else the role
# default) and passes them in.
VARIABLES = tuple(sorted(
    {name for _stage, name, _what in POSITIVE + NON_NEGATIVE_INT + POSITIVE_INT} | set(FRACTIONS) | {
        "sglang_server_host", "sglang_api_key", "sglang_server_allow_unauthenticated",
        "sglang_benchmark_tiers", "sglang_benchmark_tier_catalog", "sglang_benchmark_dataset_name",
        "sglang_benchmark_dataset_path", "sglang_benchmark_offline", "sglang_benchmark_tokenizer",
        "sglang_benchmark_extra_args", "sglang_benchmark_baseline", "sglang_benchmark_tolerances",
        "sglang_tokenizer_path",
    } | set(MODEL_SHARED) | set(MODEL_STAGE)))


class Problem(collections.namedtuple("Problem", "variable seen expected fix")):
    """One bad input. ``seen`` must never quote a secret."""

    def describe(self, host):
        return "%s: %s: got %s; expected %s. Fix: %s" % (host, self.variable, self.seen, self.expected, self.fix)


class TierError(ValueError):
    """A tier selection that does not resolve against the catalog."""


# --------------------------------------------------------------------------- tiers


def resolve_tiers(selection, catalog, defaults=None):
    """List of tier dicts for sglang_bench (the ``bench_tiers`` filter).

    A string names a catalog tier; a dict whose name is in the catalog overrides that tier's
    fields; any other dict is a new tier. ``defaults`` fill fields no tier sets (dataset).
    """
    if isinstance(selection, (str, bytes, dict)) or not hasattr(selection, "__iter__"):
        raise TierError("sglang_benchmark_tiers must be a list of tier names or dicts, got %s"
                        % type(selection).__name__)
    catalog = dict(catalog or {})
    defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    resolved, seen = [], set()
    for position, entry in enumerate(selection, start=1):
        if isinstance(entry, str):
            if entry not in catalog:
                raise TierError(
                    "sglang_benchmark_tiers item %d names tier %r, which sglang_benchmark_tier_catalog does not define; "
                    "known tiers: %s. Fix: use one of them or give a dict with name, num_prompts and max_concurrency."
                    % (position, entry, ", ".join(sorted(catalog)) or "none"))
            tier = dict(catalog[entry], name=entry)
        elif isinstance(entry, dict):
            if not entry.get("name"):
                raise TierError("sglang_benchmark_tiers item %d has no name: %r" % (position, entry))
            tier = dict(catalog.get(entry["name"], {}), **entry)
        else:
            raise TierError("sglang_benchmark_tiers item %d must be a tier name or a dict, got %r" % (position, entry))
        if tier["name"] in seen:
            raise TierError("sglang_benchmark_tiers names tier %r twice; tier names must be unique" % tier["name"])
        seen.add(tier["name"])
        resolved.append(dict(defaults, **tier))
    return resolved


# --------------------------------------------------------------------------- rules


def _number(value, integer=False):
    """The value as a finite number, or None (booleans and non-numeric strings are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number) or (integer and not number.is_integer()):
        return None
    return number


def _flag(value):
    try:
        return boolean(value, strict=True)
    except TypeError:
        return None


def check_key(api_key):
    """The key must be one the server can read from its --config file."""
    reason = key_problem(api_key)
    if not reason:
        return []
    return [Problem("sglang_api_key", "a key that starts with '-' (the key is not shown)",
                    "a key that does not start with '-', because %s" % reason,
                    "use a key without a leading '-' (for example the output of `openssl rand -hex 32`), "
                    "kept in a vault")]


def check_bind(host, api_key, allow_unauthenticated=False):
    """A server reachable from the network must demand a key, unless the operator says the
    network is trusted."""
    allow = _flag(allow_unauthenticated)
    if allow is None:
        return [Problem("sglang_server_allow_unauthenticated", repr(allow_unauthenticated), "a boolean",
                        "set it to true or false")]
    if is_loopback(host) or api_key or allow:
        return []
    return [Problem(
        "sglang_server_host", "%r, a non-loopback address, with sglang_api_key empty" % (host,),
        "a loopback bind (127.0.0.1, ::1 or localhost) or a non-empty sglang_api_key: the server "
        "runs in a privileged, host-network container and its admin API (/metrics, "
        "/start_profile, ...) would be open to the network",
        "set sglang_api_key (from a vault), or keep sglang_server_host at 127.0.0.1, or on a "
        "trusted network set sglang_server_allow_unauthenticated: true")]


def check_waits(values, stages):
    """Every poll, timeout and retry count of the given stages is a usable number."""
    problems = []
    for stage, name, what in POSITIVE:
        if stage in stages and name in values:
            number = _number(values[name])
            if number is None or number <= 0:
                problems.append(Problem(name, repr(values[name]), "a number > 0 (%s)" % what,
                                        "set %s to a positive number, or remove it to use the role default" % name))
    for stage, name, what in NON_NEGATIVE_INT:
        if stage in stages and name in values:
            number = _number(values[name], integer=True)
            if number is None or number < 0:
                problems.append(Problem(name, repr(values[name]), "an integer >= 0 (%s)" % what,
                                        "set %s to 0 or more, or remove it to use the role default" % name))
    for stage, name, what in POSITIVE_INT:
        if stage in stages and name in values:
            number = _number(values[name], integer=True)
            if number is None or number < 1:
                problems.append(Problem(name, repr(values[name]), "an integer >= 1 (%s)" % what,
                                        "set %s to 1 or more, or remove it to use the role default" % name))
    return problems


def check_benchmark(values):
    """Tiers, the benchmark settings they use, the baseline file and the tolerances."""
    problems = []
    try:
        tiers = resolve_tiers(values.get("sglang_benchmark_tiers"), values.get("sglang_benchmark_tier_catalog"),
                              {"dataset_name": values.get("sglang_benchmark_dataset_name"),
                               "dataset_path": values.get("sglang_benchmark_dataset_path")})
    except TierError as exc:
        problems.append(Problem("sglang_benchmark_tiers", str(exc), "a list of catalog tier names or tier dicts",
                                "see roles/benchmark/README.md for the tier fields"))
        tiers = None
    timeout = _number(values.get("sglang_benchmark_timeout"), integer=True)
    if tiers is not None:
        try:
            validate_tiers(tiers, offline=bool(_flag(values.get("sglang_benchmark_offline", False))),
                           tokenizer=values.get("sglang_benchmark_tokenizer"),
                           default_timeout=int(timeout) if timeout and timeout > 0 else 3600,
                           extra_args=values.get("sglang_benchmark_extra_args"))
        except BenchSpecError as exc:
            problems.append(Problem(
                "sglang_benchmark_tiers", str(exc), "tiers sglang.bench_serving can run",
                "fix the field the message names: in the tier (sglang_benchmark_tiers or "
                "sglang_benchmark_tier_catalog), or for 'tokenizer' sglang_benchmark_tokenizer, for "
                "'extra_args' sglang_benchmark_extra_args"))
    baseline = values.get("sglang_benchmark_baseline")
    if baseline:
        try:
            load_baseline(os.path.expanduser(str(baseline)))
        except ReportError as exc:
            problems.append(Problem("sglang_benchmark_baseline", str(exc),
                                    "a readable baseline JSON file, as sglang_benchmark_store_baseline writes one",
                                    "fix the file, point sglang_benchmark_baseline at another one, or set it "
                                    "to '' to run without a baseline"))
    try:
        check_tolerances(values.get("sglang_benchmark_tolerances"))
    except (ReportError, AttributeError) as exc:
        problems.append(Problem("sglang_benchmark_tolerances", str(exc) if isinstance(exc, ReportError) else
                                repr(values.get("sglang_benchmark_tolerances")),
                                "a dict of metric name to a fraction in [0, 1), or null to switch a gate off",
                                "fix the entry the message names"))
    for name in FRACTIONS:
        if name in values:
            number = _number(values[name])
            if number is None or not 0.0 <= number < 1.0:
                problems.append(Problem(name, repr(values[name]), "a fraction in [0, 1), such as 0.1 for 10%",
                                        "set %s to a fraction, or remove it to use the role default" % name))
    return problems


def check_model(values, stages):
    """The model inputs the given stages read (the rules of the sglang_model module, _model.py)."""
    names = set()
    if {"container", "model", "server"} & set(stages):
        names.update(MODEL_SHARED)
    if "model" in stages:
        names.update(MODEL_STAGE)
    if "server" in stages:
        names.add("sglang_tokenizer_path")
    given = {name: values[name] for name in names if name in values}
    if "sglang_tokenizer_path" in given and "sglang_model_path" not in given:
        given["sglang_model_path"] = values.get("sglang_model_path")
    return [Problem(variable, seen, expected, fix) for variable, seen, expected, fix in model_input_problems(given)]


def check_inputs(values, stages):
    """Every problem of the variables the given stages read; [] when the run may start."""
    stages = [stage for stage in stages or () if stage in STAGES]
    problems = []
    if "server" in stages or "benchmark" in stages:
        problems.extend(check_key(values.get("sglang_api_key")))
    if "server" in stages:
        problems.extend(check_bind(values.get("sglang_server_host"), values.get("sglang_api_key"),
                                   values.get("sglang_server_allow_unauthenticated", False)))
    problems.extend(check_waits(values, stages))
    problems.extend(check_model(values, stages))
    if "benchmark" in stages:
        problems.extend(check_benchmark(values))
    return problems

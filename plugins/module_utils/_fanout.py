# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Who fetches an artifact from whom: the fan-out plan (pure, stdlib only).

The hosts that already hold a verified copy (the holders) are the roots of a k-ary forest laid
out like a heap: in the order holders + receivers, the receiver at position p takes the host at
position (p - len(holders)) // k as its parent. So every host is the parent of at most k others,
and the depth grows with log_k of the number of hosts, not with it.

Each receiver gets an ordered list of sources: its parent first, then its other ancestors up to
its root, then the other holders, then every other host in tree order. The fetcher takes each
file from the first source that holds it verified and has a free slot (a source serves at most k
transfers at once and answers "busy" beyond that), so a lost source is replaced by the next one
that has the file: a parent that is gone, the seed lost mid-transfer, a receiver that failed.
A host serves a file as soon as it verified it, so the levels of the tree overlap (pipelined).
"""

from __future__ import annotations


class PlanError(ValueError):
    """The fan-out cannot be planned as asked; the message names the variable."""


def check_degree(degree):
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise PlanError("sglang_fanout_degree must be a whole number of at least 1 (children per "
                        "source), got %r" % (degree,))
    return degree


def plan(hosts, holders, degree):
    """The fan-out of one artifact.

    ``hosts``: every host that takes part, in play order; ``holders``: those of them that hold a
    verified copy. Returns {"holders", "receivers", "parent": {host: parent}, "depth": {host: d},
    "children": {host: [children]}, "sources": {receiver: [hosts in the order to try]}}.
    With no holder nobody can receive: every receiver gets an empty source list.
    """
    check_degree(degree)
    hosts = list(dict.fromkeys(hosts))
    held = set(holders)
    roots = [host for host in hosts if host in held]
    receivers = [host for host in hosts if host not in held]
    order = roots + receivers
    parent, depth = {}, {root: 0 for root in roots}
    children = {host: [] for host in order}
    if roots:
        for index, host in enumerate(receivers):
            up = order[index // degree]
            parent[host] = up
            depth[host] = depth[up] + 1
            children[up].append(host)
    sources = {}
    for host in receivers:
        chain = []
        up = parent.get(host)
        while up is not None:
            chain.append(up)
            up = parent.get(up)
        rest = [other for other in order if other != host and other not in chain]
        sources[host] = chain + rest if roots else []
    return {"holders": roots, "receivers": receivers, "parent": parent, "depth": depth,
            "children": children, "sources": sources}


def choose_seeds(members):
    """The host that provides each artifact to the others.

    ``members``: [(host, key, holds, needs)] in play order, ``key`` naming the artifact (an
    image reference). Per key, the first host that holds it, else the first that needs it.
    Returns {key: {"seed": host, "receivers": [hosts that need it, the seed excepted]}}; a key
    nobody needs is left out.
    """
    groups = {}
    for host, key, holds, needs in members:
        group = groups.setdefault(key, {"holders": [], "needers": []})
        if holds:
            group["holders"].append(host)
        if needs:
            group["needers"].append(host)
    seeds = {}
    for key, group in groups.items():
        if not group["needers"]:
            continue
        seed = (group["holders"] + group["needers"])[0]
        seeds[key] = {"seed": seed, "receivers": [host for host in group["needers"] if host != seed]}
    return seeds

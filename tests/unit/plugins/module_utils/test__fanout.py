"""module_utils/_fanout.py: the fan-out plan's shape (depth, per-source bound, fallbacks) and the seeds."""
import math

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout


def hosts(count):
    return ["gpu%02d" % (i + 1) for i in range(count)]


def heap_depth(count, degree, roots=1):
    """The smallest depth d at which a forest of `roots` k-ary trees holds `count` hosts."""
    depth, level, total = 0, roots, roots
    while total < count:
        depth += 1
        level *= degree
        total += level
    return depth


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 17, 64, 200])
def test_depth_grows_with_log_k_and_no_source_feeds_more_than_k(count, degree):
    names = hosts(count)
    plan = _fanout.plan(names, names[:1], degree)
    depth = max(plan["depth"].values())
    assert depth == heap_depth(count, degree)
    if degree > 1:
        assert depth <= math.ceil(math.log(count * (degree - 1) + 1, degree))
    assert max(len(children) for children in plan["children"].values()) <= degree
    assert sorted(plan["parent"]) == sorted(names[1:])
    for host, parent in plan["parent"].items():
        assert plan["depth"][host] == plan["depth"][parent] + 1
        assert host in plan["children"][parent]


def test_sixteen_hosts_in_four_rounds_not_fifteen():
    plan = _fanout.plan(hosts(16), ["gpu01"], 2)
    assert max(plan["depth"].values()) == 4
    assert plan["parent"]["gpu02"] == plan["parent"]["gpu03"] == "gpu01"
    assert plan["parent"]["gpu04"] == plan["parent"]["gpu05"] == "gpu02"


def test_every_receiver_tries_its_parent_then_its_ancestors_then_the_other_holders_then_everyone():
    names = hosts(10)
    plan = _fanout.plan(names, ["gpu01", "gpu02"], 2)
    assert plan["holders"] == ["gpu01", "gpu02"] and plan["receivers"] == names[2:]
    # gpu10's parent is gpu04, whose parent is the holder gpu01; then the other holder, then the rest
    assert plan["sources"]["gpu10"] == ["gpu04", "gpu01", "gpu02", "gpu03", "gpu05", "gpu06", "gpu07",
                                        "gpu08", "gpu09"]
    for host, order in plan["sources"].items():
        assert host not in order and order[0] == plan["parent"][host]


def test_more_holders_make_a_shallower_forest():
    names = hosts(16)
    plan = _fanout.plan(names, names[:4], 2)
    assert max(plan["depth"].values()) == heap_depth(16, 2, roots=4) == 2
    assert all(len(c) <= 2 for c in plan["children"].values())


def test_holders_anywhere_in_the_play_are_the_roots():
    plan = _fanout.plan(["a", "b", "c"], ["c"], 2)
    assert plan["holders"] == ["c"] and plan["parent"] == {"a": "c", "b": "c"}


def test_without_a_holder_nobody_has_a_source():
    plan = _fanout.plan(hosts(3), [], 2)
    assert plan["sources"] == {"gpu01": [], "gpu02": [], "gpu03": []}


def test_everyone_holds_nobody_receives():
    plan = _fanout.plan(hosts(3), hosts(3), 2)
    assert plan["receivers"] == [] and plan["sources"] == {}


@pytest.mark.parametrize("degree", [0, -1, True, "2", None, 1.5])
def test_a_degree_that_is_not_a_positive_whole_number_is_refused_naming_the_variable(degree):
    with pytest.raises(_fanout.PlanError, match="sglang_fanout_degree must be a whole number of at least 1"):
        _fanout.plan(hosts(3), ["gpu01"], degree)


def simulate(plan, degree, lost_at=None):
    """Rounds of a per-file transfer as the fetcher does it: each round, every receiver without the
    file asks its sources in order and takes it from the first that has it, is not lost and has a
    free slot (a source serves `degree` at once). `lost_at`: {host: round from which it is gone}.
    Returns (rounds, {receiver: source}) or raises when no progress is possible."""
    lost_at = lost_at or {}
    have = set(plan["holders"])
    got = {}
    rounds = 0
    while set(plan["receivers"]) - set(got) - set(lost_at):
        rounds += 1
        slots = {}
        new = {}
        for host in plan["receivers"]:
            if host in got or host in lost_at:
                continue
            for source in plan["sources"][host]:
                if source in have and lost_at.get(source, 10 ** 6) > rounds and slots.get(source, 0) < degree:
                    slots[source] = slots.get(source, 0) + 1
                    new[host] = source
                    break
        if not new:
            raise AssertionError("no progress in round %d: %s never receive" % (rounds, sorted(set(plan["receivers"]) - set(got))))
        got.update(new)
        have.update(new)
    return rounds, got


@pytest.mark.parametrize("count,degree", [(4, 2), (16, 2), (16, 3), (64, 2), (100, 4)])
def test_pipelined_rounds_never_exceed_the_tree_depth(count, degree):
    plan = _fanout.plan(hosts(count), ["gpu01"], degree)
    rounds, _got = simulate(plan, degree)
    assert rounds <= max(plan["depth"].values())


def test_a_seed_lost_mid_fanout_is_replaced_by_a_receiver_that_already_has_the_file():
    names = hosts(8)
    plan = _fanout.plan(names, ["gpu01"], 2)
    rounds, got = simulate(plan, 2, lost_at={"gpu01": 2})
    assert got["gpu02"] == got["gpu03"] == "gpu01"  # before the loss
    assert set(got) == set(names[1:]) and "gpu01" not in [got[h] for h in names[3:]]


def test_a_lost_holder_is_replaced_by_the_other_holder():
    names = hosts(9)
    plan = _fanout.plan(names, ["gpu01", "gpu02"], 2)
    _rounds, got = simulate(plan, 2, lost_at={"gpu01": 1})
    assert set(got) == set(names[2:]) and "gpu01" not in got.values()


def test_a_receiver_lost_before_it_got_anything_does_not_strand_its_subtree():
    names = hosts(15)
    plan = _fanout.plan(names, ["gpu01"], 2)
    subtree = plan["children"]["gpu02"]
    _rounds, got = simulate(plan, 2, lost_at={"gpu02": 1})
    assert all(host in got for host in subtree) and "gpu02" not in got.values()


def test_seeds_are_a_holder_first_else_the_first_host_that_needs_the_image():
    members = [("gpu01", "img:1", False, True), ("gpu02", "img:1", True, False), ("gpu03", "img:1", False, True),
               ("gpu04", "img:2", False, True), ("gpu05", "img:2", False, True), ("gpu06", "img:3", True, False)]
    assert _fanout.choose_seeds(members) == {
        "img:1": {"seed": "gpu02", "receivers": ["gpu01", "gpu03"]},
        "img:2": {"seed": "gpu04", "receivers": ["gpu05"]},
    }

"""image_fanout filter: which host pulls each image and which hosts receive it."""
from ansible_collections.sglang_rocm.fleet.plugins.filter.image_fanout import image_fanout


def plan(reference="reg/img:1", present=False, need_pull=True, fanout=True):
    return {"__sglang_container_plan": {"fanout": fanout, "image": {"reference": reference},
                                        "image_present": present, "need_pull": need_pull}}


def test_the_first_host_that_needs_the_image_pulls_and_the_others_receive():
    hv = {"gpu01": plan(), "gpu02": plan(), "gpu03": plan()}
    assert image_fanout(["gpu01", "gpu02", "gpu03"], hv) == {
        "gpu01": {"role": "seed", "seed": "gpu01"},
        "gpu02": {"role": "receiver", "seed": "gpu01"},
        "gpu03": {"role": "receiver", "seed": "gpu01"}}


def test_a_host_that_holds_the_image_is_the_seed_and_nothing_is_pulled():
    hv = {"gpu01": plan(), "gpu02": plan(present=True, need_pull=False), "gpu03": plan()}
    out = image_fanout(["gpu01", "gpu02", "gpu03"], hv)
    assert out["gpu02"] == {"role": "seed", "seed": "gpu02"}
    assert out["gpu01"]["role"] == out["gpu03"]["role"] == "receiver"


def test_a_lone_host_pulls_as_before_and_hosts_without_fanout_are_left_out():
    hv = {"gpu01": plan(), "gpu02": plan(present=True, need_pull=False), "gpu03": plan(fanout=False),
          "gpu04": plan(reference="reg/other:2"), "gpu05": plan(present=True, need_pull=False)}
    hv["gpu06"] = {}
    out = image_fanout(["gpu01", "gpu02", "gpu03", "gpu04", "gpu05", "gpu06", "gpu07"], hv)
    assert out == {"gpu02": {"role": "seed", "seed": "gpu02"}, "gpu01": {"role": "receiver", "seed": "gpu02"}}


def test_converged_hosts_take_no_part():
    hv = {h: plan(present=True, need_pull=False) for h in ("gpu01", "gpu02")}
    assert image_fanout(["gpu01", "gpu02"], hv) == {}


def test_each_image_has_its_own_seed():
    hv = {"a": plan("r/x:1"), "b": plan("r/y:1"), "c": plan("r/x:1"), "d": plan("r/y:1")}
    out = image_fanout(["a", "b", "c", "d"], hv)
    assert out == {"a": {"role": "seed", "seed": "a"}, "c": {"role": "receiver", "seed": "a"},
                   "b": {"role": "seed", "seed": "b"}, "d": {"role": "receiver", "seed": "b"}}

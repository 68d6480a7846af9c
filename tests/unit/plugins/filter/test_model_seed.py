"""model_seed: the seed host and the holders, read from each host's probe in hostvars."""

from ansible_collections.sglang_rocm.fleet.plugins.filter.model_seed import model_seed

COMMIT = "c" * 40


def test_the_seed_is_a_host_that_holds_the_copy_and_unprobed_hosts_hold_nothing():
    hostvars = {
        "gpu01": {"__sglang_model_probe": {"held": False}},
        "gpu02": {"__sglang_model_probe": {"held": True, "revision": COMMIT}},
        "gpu03": {},  # failed or skipped before the probe
    }
    assert model_seed(hostvars, ["gpu01", "gpu02", "gpu03"], "main") == {"seed": "gpu02", "holders": ["gpu02"]}
    assert model_seed(hostvars, ["gpu01", "gpu03"], "main") == {"seed": "gpu01", "holders": []}
    assert model_seed(hostvars, ["gpu03", "gpu02"], "d" * 40) == {"seed": "gpu03", "holders": []}

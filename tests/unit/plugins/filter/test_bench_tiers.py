"""bench_tiers: catalog names, overrides, new tiers, defaults, and each bad input."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sglang_rocm.fleet.plugins.filter.bench_tiers import bench_tiers

CATALOG = {
    "smoke": {"num_prompts": 8, "max_concurrency": 4},
    "low": {"num_prompts": 10, "max_concurrency": 1, "random_output_len": 1000},
}


def test_names_overrides_new_tiers_and_defaults():
    tiers = bench_tiers(["smoke", {"name": "low", "num_prompts": 20}, {"name": "soak", "num_prompts": 5, "max_concurrency": 2}],
                        CATALOG, {"dataset_path": "/d.json", "dataset_name": ""})
    assert tiers == [
        {"dataset_path": "/d.json", "name": "smoke", "num_prompts": 8, "max_concurrency": 4},
        {"dataset_path": "/d.json", "name": "low", "num_prompts": 20, "max_concurrency": 1, "random_output_len": 1000},
        {"dataset_path": "/d.json", "name": "soak", "num_prompts": 5, "max_concurrency": 2},
    ]


def test_a_tier_value_beats_the_default():
    assert bench_tiers([{"name": "x", "dataset_path": "/own.json"}], {}, {"dataset_path": "/d.json"})[0]["dataset_path"] == "/own.json"


@pytest.mark.parametrize("selection, message", [
    (["huge"], "names tier 'huge', which sglang_benchmark_tier_catalog does not define; known tiers: low, smoke"),
    ([{"num_prompts": 3}], "item 1 has no name"),
    (["low", {"name": "low"}], "names tier 'low' twice"),
    ([3], "item 1 must be a tier name or a dict"),
    ("low", "must be a list"),
])
def test_bad_selection_is_named(selection, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(")):
        bench_tiers(selection, CATALOG)

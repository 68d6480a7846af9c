"""make perf's cold start figures (tests/perf/cold.py): one copy's bytes and the targets."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "perf"))
import cold  # noqa: E402

COPY = {"rate": "80mbit", "bytes": 1000, "seconds_at_rate": 70.0}


def run(n, ours_s, ours_b, base_s, base_b, floor_s):
    return {"n": n, "cold": {"ours": {"s": ours_s, "upstream_bytes": ours_b},
                             "baseline": {"s": base_s, "upstream_bytes": base_b}, "floor": {"s": floor_s}}}


def statuses(targets):
    return [t["status"] for t in targets]


def test_pull_bytes_counts_manifest_config_and_layers():
    manifest = {"config": {"size": 1696}, "layers": [{"size": 100}, {"size": 23}]}
    assert cold.pull_bytes(manifest, 527) == 527 + 1696 + 123


def test_pull_bytes_refuses_an_index():
    with pytest.raises(ValueError, match="single-platform"):
        cold.pull_bytes({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}, 300)


def test_split_image_and_rate():
    assert cold.split_image("10.0.0.2:5000/lmsysorg/sglang:v0.5.7") == ("10.0.0.2:5000", "lmsysorg/sglang", "v0.5.7")
    with pytest.raises(ValueError):
        cold.split_image("sglang")
    assert cold.rate_bits("80mbit") == 80e6 and cold.rate_bits("1.5gbit") == 1.5e9
    with pytest.raises(ValueError):
        cold.rate_bits("80mb")


def test_skip_cold_stands_for_the_three_phases():
    assert cold.skipped_phases({"cold", "ours"}) == {"cold", "ours", *cold.PHASES}
    assert cold.skipped_phases({"cold-floor"}) == {"cold-floor"}


def test_targets_met():
    runs = [run(1, 100, 1050, 110, 1040, 30), run(4, 130, 1060, 300, 4100, 50), run(16, 200, 1090, 1200, 16300, 90)]
    targets = cold.cold_targets(runs, COPY)
    assert statuses(targets) == ["pass"] * 5
    assert "N=16" in targets[3]["target"] and "not measured" not in targets[3]["detail"]


def test_targets_missed_each_by_its_own_figure():
    runs = [run(1, 100, 1050, 110, 1040, 40), run(4, 130, 1200, 300, 1040, 50), run(16, 250, 1090, 400, 16300, 60)]
    targets = cold.cold_targets(runs, COPY)
    # 70 s < 2 x 40 s; 1200 > 1.1 x 1000 at N=4; baseline flat from 1 to 4; 250 > 1.5 x (100 + 60);
    # 400 < 2 x 250
    assert statuses(targets) == ["FAIL"] * 5
    assert "N=4 1200 bytes = 1.2x" in targets[1]["detail"]


def test_targets_not_measured_are_na_and_say_which_n_stands_for_16():
    runs = [run(1, 100, None, None, None, None), run(4, 130, 1000, None, None, None)]
    targets = cold.cold_targets(runs, COPY)
    assert statuses(targets) == ["n/a", "FAIL", "n/a", "n/a", "n/a"]
    assert "N=4" in targets[3]["target"] and "N=16 was not measured" in targets[3]["detail"]


def test_markdown_has_a_row_per_cold_run():
    lines = cold.markdown([run(1, 100, 1050, 110, 1040, 30), {"n": 4}], COPY)
    rows = [line for line in lines if line.startswith("| 1 |")]
    assert len(rows) == 1 and "| 1.05 |" in rows[0]
    assert not any(line.startswith("| 4 |") for line in lines)

"""teardown_images: every tag of our repositories, never another repository's."""
from ansible_collections.sglang_rocm.fleet.plugins.filter.teardown_images import teardown_images
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._teardown import repository


def test_repository_drops_tag_and_digest_and_keeps_a_registry_port():
    assert repository("reg:5000/lmsysorg/sglang:v0.5.7") == "reg:5000/lmsysorg/sglang"
    assert repository("reg:5000/lmsysorg/sglang@sha256:abc") == "reg:5000/lmsysorg/sglang"
    assert repository("lmsysorg/sglang") == "lmsysorg/sglang"


def test_the_tags_of_our_containers_and_the_configured_image_only():
    info = {"containers": [{"Image": "reg:5000/sglang:upgrade-new"}, {"Image": "mine/other@sha256:1"}],
            "images": [{"RepoTags": ["reg:5000/sglang:upgrade-new", "reg:5000/sglang:base"]},
                       {"RepoTags": ["reg:5000/sglang-extra:1", "mine/other:2"]},
                       {"RepoTags": None}, {"RepoTags": ["<none>:<none>"]},
                       {"RepoTags": ["lmsysorg/sglang:v0.5.7-rocm700-mi30x", "debian:12"]}]}
    assert teardown_images(info, "lmsysorg/sglang:v0.5.7-rocm700-mi30x") == [
        "reg:5000/sglang:upgrade-new", "reg:5000/sglang:base", "mine/other:2", "lmsysorg/sglang:v0.5.7-rocm700-mi30x"]


def test_nothing_reported_nothing_removed():
    assert teardown_images({}, "lmsysorg/sglang:x") == []
    assert teardown_images(None, "lmsysorg/sglang:x") == []

"""_docker_engine: community.docker's real API client against a fake Engine API on a unix socket."""

import json
import types

import pytest

from ansible_collections.community.docker.plugins.module_utils.util import DOCKER_COMMON_ARGS
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_engine as D


def module_for(docker_host, **options):
    params = {key: spec.get("default") for key, spec in DOCKER_COMMON_ARGS.items()}
    params.update(docker_host=docker_host, **options)
    return types.SimpleNamespace(params=params, deprecate=lambda *a, **k: None)


def test_reads_what_docker_host_info_reads(fake_engine):
    fake_engine.containers = [{"Id": "c1", "Names": ["/Kimi-linear"], "Labels": {}, "State": "running"}]
    fake_engine.images = [{"Id": "sha256:abc", "RepoTags": ["img:1"], "RepoDigests": []}]
    containers, images = D.connect_and_read(module_for(fake_engine.url), "Kimi-linear")
    assert containers == fake_engine.containers and images == fake_engine.images
    paths = [path for path, _query in fake_engine.requests]
    assert paths == ["/version", "/v1.41/containers/json", "/v1.41/images/json"]
    listed = fake_engine.requests[1][1]
    assert {k: v for k, v in listed.items() if k != "filters"} == {
        "limit": ["-1"], "all": ["1"], "size": ["0"], "trunc_cmd": ["0"]}
    assert json.loads(listed["filters"][0]) == {"name": ["Kimi-linear"]}
    assert fake_engine.requests[2][1] == {"only_ids": ["0"], "all": ["0"]}


def test_a_missing_socket_is_a_daemon_error(tmp_path):
    with pytest.raises(D.DaemonError, match="Error connecting"):
        D.connect_and_read(module_for("unix://%s/docker.sock" % tmp_path), "x")


def test_an_error_answer_is_a_daemon_error(fake_engine):
    fake_engine.fail_with = (500, "layer store is corrupt")
    with pytest.raises(D.DaemonError, match="layer store is corrupt"):
        D.connect_and_read(module_for(fake_engine.url), "x")


def test_an_old_api_is_refused(fake_engine):
    fake_engine.api_version = "1.24"
    with pytest.raises(D.DaemonError, match="Minimum version required is 1.25"):
        D.connect_and_read(module_for(fake_engine.url), "x")
    assert [path for path, _query in fake_engine.requests] == ["/version"]


def test_connection_options_are_community_dockers():
    kwargs = D.module_kwargs({"name": {"type": "str"}})
    spec = kwargs["argument_spec"]
    assert {"docker_host", "tls", "validate_certs", "ca_path", "use_ssh_client", "name"} <= set(spec)
    assert ["client_cert", "client_key"] in kwargs["required_together"]


def test_unreachable_message_says_where_what_and_the_fix():
    text = D.unreachable_message("tcp://10.0.0.5:2376", "Error connecting: connection refused")
    assert "tcp://10.0.0.5:2376 (sglang_docker_host)" in text
    assert "connection refused" in text and "Nothing was changed" in text
    assert "systemctl start docker" in text and "ssh://" in text

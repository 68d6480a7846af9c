"""_docker_engine: community.docker's real API client against a fake Engine API on a unix socket."""

import base64
import importlib.util
import json
import os
import sys
import types
from unittest import mock

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_engine as D


def module_for(docker_host, **options):
    params = {key: spec.get("default") for key, spec in D.DOCKER_COMMON_ARGS.items()}
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


# ---------------------------------------------------------------- community.docker 5.x and 4.x

CD = "ansible_collections.community.docker.plugins.module_utils."
LINE_5 = (CD + "_common_api", CD + "_util")
LINE_4 = (CD + "common_api", CD + "util")


def fake_line(names, tag):
    """Stand-ins for one line's two modules, with objects that say where they came from."""
    common, util = (types.ModuleType(name) for name in names)
    common.AnsibleDockerClientBase = type("Client" + tag, (), {})
    common.RequestException = type("RequestException" + tag, (Exception,), {})
    util.DOCKER_COMMON_ARGS = {"docker_host": {"type": "str", "tag": tag}}
    util.DOCKER_MUTUALLY_EXCLUSIVE = []
    util.DOCKER_REQUIRED_TOGETHER = [["client_cert", "client_key"]]
    return {names[0]: common, names[1]: util}


def load_seam(modules):
    """A fresh copy of _docker_engine imported with ``modules`` in sys.modules (None makes that
    import fail); the copy the collection uses is left alone."""
    spec = importlib.util.spec_from_file_location("engine_seam_probe", D.__file__)
    seam = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, modules):
        spec.loader.exec_module(seam)
    return seam


def test_the_5x_private_names_come_first():
    fakes = fake_line(LINE_5, "5")
    seam = load_seam(dict(fakes, **dict.fromkeys(LINE_4)))
    assert seam.COMMUNITY_DOCKER_LINE == 5
    assert seam.AnsibleDockerClientBase is fakes[LINE_5[0]].AnsibleDockerClientBase
    assert seam.DOCKER_COMMON_ARGS["docker_host"]["tag"] == "5"
    assert seam.DaemonClient.__mro__[1] is fakes[LINE_5[0]].AnsibleDockerClientBase


def test_the_4x_names_when_the_5x_ones_are_missing():
    fakes = fake_line(LINE_4, "4")
    seam = load_seam(dict(fakes, **dict.fromkeys(LINE_5)))
    assert seam.COMMUNITY_DOCKER_LINE == 4
    assert seam.RequestException is fakes[LINE_4[0]].RequestException
    assert seam.DOCKER_COMMON_ARGS["docker_host"]["tag"] == "4"


def test_the_5x_names_win_when_both_lines_answer():
    seam = load_seam(dict(fake_line(LINE_5, "5"), **fake_line(LINE_4, "4")))
    assert seam.COMMUNITY_DOCKER_LINE == 5


def test_neither_line_is_an_import_error():
    with pytest.raises(ImportError):
        load_seam(dict.fromkeys(LINE_5 + LINE_4))


def test_the_installed_line_is_the_one_used():
    """The real import: the line found matches the community.docker on the collections path
    (4.x from the venv's ansible package, 5.x in `make compat`)."""
    path = sys.modules[D.AnsibleDockerClientBase.__module__].__file__
    root = path[:path.index(os.sep + "plugins" + os.sep)]
    with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
        version = json.load(handle)["collection_info"]["version"]
    assert int(version.split(".")[0]) == D.COMMUNITY_DOCKER_LINE


def test_nothing_else_imports_community_docker():
    plugins = os.path.join(os.path.dirname(D.__file__), "..")
    importers = []
    for folder, _dirs, files in os.walk(plugins):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    if "ansible_collections.community.docker" in handle.read():
                        importers.append(name)
    assert importers == ["_docker_engine.py"]


# ---------------------------------------------------------------- GET /distribution/<ref>/json

DIGEST = "sha256:" + "ab" * 32


def test_manifests_ask_the_daemon_once_per_reference(fake_engine):
    fake_engine.manifests = {"reg.local:5000/sglang:v1": (200, {"Descriptor": {"digest": DIGEST}})}
    images = D.manifests(module_for(fake_engine.url), ["reg.local:5000/sglang:v1", "reg.local:5000/sglang:v9"])
    assert images == [
        {"reference": "reg.local:5000/sglang:v1", "found": True, "status": 200, "message": "", "digest": DIGEST},
        {"reference": "reg.local:5000/sglang:v9", "found": False, "status": 404,
         "message": "manifest unknown", "digest": None}]
    paths = [path for path, _query in fake_engine.requests]
    assert paths == ["/version", "/v1.41/distribution/reg.local:5000/sglang:v1/json",
                     "/v1.41/distribution/reg.local:5000/sglang:v9/json"]
    assert not any("X-Registry-Auth" in headers for headers in fake_engine.headers)


def test_a_digest_reference_reaches_the_daemon_whole(fake_engine):
    ref = "lmsysorg/sglang@" + DIGEST
    fake_engine.manifests = {ref: (200, {"Descriptor": {"digest": DIGEST}})}
    assert D.manifests(module_for(fake_engine.url), [ref])[0]["found"] is True


def test_credentials_travel_only_in_the_registry_auth_header(fake_engine):
    fake_engine.manifests = {"reg.local:5000/sglang:v1": (401, {"message": "unauthorized: bad credentials"})}
    images = D.manifests(module_for(fake_engine.url), ["reg.local:5000/sglang:v1"], "bob", "s3cret")
    assert images[0]["status"] == 401 and images[0]["message"] == "unauthorized: bad credentials"
    sent = fake_engine.headers[-1]["X-Registry-Auth"]
    assert json.loads(base64.urlsafe_b64decode(sent)) == {
        "username": "bob", "password": "s3cret", "serveraddress": "reg.local:5000"}
    assert all("s3cret" not in path for path, _query in fake_engine.requests)


def test_docker_hub_references_name_the_hub_as_the_docker_cli_does():
    assert D.registry_of("lmsysorg/sglang:v1") == "https://index.docker.io/v1/"
    assert D.registry_of("ubuntu") == "https://index.docker.io/v1/"
    assert D.registry_of("localhost/x:1") == "localhost"
    assert D.registry_of("ghcr.io/a/b@" + DIGEST) == "ghcr.io"


class _PlainTcpClient:
    base_url = "http://10.0.0.5:2375"

    def __init__(self, module):
        self.calls = []

    def get_json(self, *args, **kwargs):
        raise AssertionError("nothing may be sent")


def test_credentials_are_never_sent_to_a_tcp_daemon_without_tls():
    module = module_for("tcp://10.0.0.5:2375")
    with pytest.raises(D.PlainHttpRefused, match="tcp://10.0.0.5:2375 is reached over plain HTTP"):
        D.manifests(module, ["reg.local:5000/x:1"], "bob", "s3cret", client_class=_PlainTcpClient)


def test_without_credentials_a_plain_tcp_daemon_is_asked():
    class Client(_PlainTcpClient):
        def get_json(self, pathfmt, *args, **kwargs):
            return {"Descriptor": {"digest": DIGEST}}
    images = D.manifests(module_for("tcp://10.0.0.5:2375"), ["x:1"], client_class=Client)
    assert images[0]["found"] is True and images[0]["digest"] == DIGEST


def test_no_answer_is_an_entry_not_an_exception():
    class Client(_PlainTcpClient):
        def get_json(self, pathfmt, *args, **kwargs):
            raise D.RequestException("Read timed out. (read timeout=60)")
    entry = D.manifests(module_for("unix:///x"), ["x:1"], client_class=Client)[0]
    assert (entry["found"], entry["status"]) == (False, None)
    assert entry["message"] == "no answer from the Docker daemon: Read timed out. (read timeout=60)"


def test_an_unreachable_daemon_is_a_daemon_error(tmp_path):
    with pytest.raises(D.DaemonError, match="Error connecting"):
        D.manifests(module_for("unix://%s/docker.sock" % tmp_path), ["x:1"])

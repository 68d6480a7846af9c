# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""The Docker Engine API seam: the only file of the collection that imports community.docker.

The client is community.docker's (``AnsibleDockerClientBase``), so ``docker_host`` (unix://,
tcp:// with TLS, ssh://) and the usual connection options behave exactly as in the
community.docker modules. community.docker has no public Python API: 5.x (ansible 13 and later)
made its module_utils private (underscore names), 4.x has the old names. The imports below take
the 5.x names first and the 4.x names second; ``COMMUNITY_DOCKER_LINE`` says which were found.

Reads:
- container and images: the requests ``community.docker.docker_host_info`` makes with
  ``containers: true, containers_all: true, containers_filters: {name: NAME}, images: true,
  verbose_output: true``, so the objects are the same;
- image manifests: ``GET /distribution/<ref>/json``, the daemon asking the registry with its
  own settings (mirrors, insecure registries, proxy), optionally with registry credentials in
  the X-Registry-Auth header, sent over the client's own transport.
"""

from __future__ import annotations

import base64
import json

try:  # community.docker 5.x: private module_utils
    from ansible_collections.community.docker.plugins.module_utils._common_api import (
        AnsibleDockerClientBase,
        RequestException,
    )
    from ansible_collections.community.docker.plugins.module_utils._util import (
        DOCKER_COMMON_ARGS,
        DOCKER_MUTUALLY_EXCLUSIVE,
        DOCKER_REQUIRED_TOGETHER,
    )
    COMMUNITY_DOCKER_LINE = 5
except ImportError:  # community.docker 4.x
    from ansible_collections.community.docker.plugins.module_utils.common_api import (
        AnsibleDockerClientBase,
        RequestException,
    )
    from ansible_collections.community.docker.plugins.module_utils.util import (
        DOCKER_COMMON_ARGS,
        DOCKER_MUTUALLY_EXCLUSIVE,
        DOCKER_REQUIRED_TOGETHER,
    )
    COMMUNITY_DOCKER_LINE = 4
# the same path in both lines
from ansible_collections.community.docker.plugins.module_utils._api.errors import APIError, DockerException
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import convert_filters

MIN_API_VERSION = "1.25"


class DaemonError(Exception):
    """The daemon could not be reached or answered with an error; nothing was changed."""


class DaemonClient(AnsibleDockerClientBase):
    """community.docker's API client on an existing AnsibleModule's parameters.

    Built only when the daemon must be read (AnsibleDockerClient connects in its constructor and
    exits the module on failure); failures raise DaemonError so the caller words the message.
    """

    def __init__(self, module):
        self.module = module
        super().__init__(min_docker_api_version=MIN_API_VERSION)

    def fail(self, msg, **kwargs):
        raise DaemonError(msg)

    def deprecate(self, msg, version=None, date=None, collection_name=None):
        self.module.deprecate(msg, version=version, date=date, collection_name=collection_name)

    def _get_params(self):
        return self.module.params


def module_kwargs(argument_spec):
    """AnsibleModule keyword arguments: the module's options plus community.docker's connection
    options (docker_host, tls, validate_certs, ...), with their constraints."""
    merged = dict(DOCKER_COMMON_ARGS)
    merged.update(argument_spec)
    return {"argument_spec": merged, "mutually_exclusive": list(DOCKER_MUTUALLY_EXCLUSIVE),
            "required_together": list(DOCKER_REQUIRED_TOGETHER)}


def containers_params(name):
    """GET /containers/json parameters of docker_host_info (all, filtered by name)."""
    # the name filter is a substring/regex match; the caller picks the exact name
    return {"limit": -1, "all": 1, "size": 0, "trunc_cmd": 0,
            "filters": convert_filters({"name": [str(name)]})}


def images_params():
    """GET /images/json parameters of docker_host_info (no filter)."""
    return {"only_ids": 0, "all": 0, "filters": None}


def read_state(client, name):
    """(containers, images) as docker_host_info returns them with verbose_output."""
    try:
        containers = client.get_json("/containers/json", params=containers_params(name))
        images = client.get_json("/images/json", params=images_params())
    except (DockerException, RequestException) as exc:
        raise DaemonError("the daemon answered with an error: %s" % exc)
    return containers, images


def connect(module, client_class=DaemonClient):
    """community.docker's client on the module's connection options; DaemonError when the daemon
    cannot be reached or is too old."""
    try:
        return client_class(module)
    except DaemonError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        # the client's constructor words its own failures; anything else is still "unreachable"
        raise DaemonError("Error connecting: %s" % exc)


def connect_and_read(module, name, client_class=DaemonClient):
    return read_state(connect(module, client_class), name)


# The docker CLI sends this serveraddress for Docker Hub; other registries go by host[:port].
DOCKER_HUB_AUTH_ADDRESS = "https://index.docker.io/v1/"


def registry_of(reference):
    """The registry a reference names (its first component when that is a host), as the
    X-Registry-Auth serveraddress."""
    first, slash, _rest = reference.split("@", 1)[0].partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB_AUTH_ADDRESS


def registry_auth(reference, username, password):
    """X-Registry-Auth header value: base64url of the JSON the docker CLI sends."""
    doc = {"username": username, "password": password or "", "serveraddress": registry_of(reference)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode("utf-8")).decode("ascii")


def is_plain_tcp(client):
    """Whether the client talks to a tcp:// daemon without TLS (community.docker keeps http://
    for that, https:// with TLS, and its own schemes for unix:// and ssh://)."""
    return str(getattr(client, "base_url", "")).startswith("http://")


def distribution(client, reference, auth=None):
    """GET /distribution/<ref>/json: the image's manifest descriptor as the daemon's registry
    settings see it. A missing image or a registry error is an answer, not an exception."""
    entry = {"reference": reference, "found": False, "status": None, "message": "", "digest": None}
    headers = {"X-Registry-Auth": auth} if auth else {}
    try:
        answer = client.get_json("/distribution/{0}/json", reference, headers=headers)
    except APIError as exc:
        entry.update(status=exc.status_code, message=str(exc.explanation or exc))
        return entry
    except (DockerException, RequestException) as exc:
        entry["message"] = "no answer from the Docker daemon: %s" % exc
        return entry
    descriptor = (answer or {}).get("Descriptor") or {}
    entry.update(found=True, status=200, digest=descriptor.get("digest"))
    return entry


class PlainHttpRefused(Exception):
    """Registry credentials would cross the network unencrypted; nothing was sent."""


def manifests(module, references, username="", password="", client_class=DaemonClient):
    """One distribution() answer per reference, asked through one client. Credentials, when
    given, travel only in the X-Registry-Auth header, and never to a tcp:// daemon without TLS."""
    client = connect(module, client_class)
    if username and is_plain_tcp(client):
        raise PlainHttpRefused(
            "the registry credentials were not sent: the Docker daemon at %s is reached over "
            "plain HTTP (tcp:// without TLS), where anyone on the path could read them. Connect "
            "with TLS (tls: true, or DOCKER_TLS=1, and the client certificate options), through "
            "ssh:// or a unix:// socket, or leave registry_username empty"
            % module.params.get("docker_host"))
    return [distribution(client, ref, registry_auth(ref, username, password) if username else None)
            for ref in references]


def unreachable_message(docker_host, seen, what="the container and the images"):
    """Why the module stopped: the daemon, what was seen, and the fix."""
    return ("cannot read %s from the Docker daemon at %s "
            "(sglang_docker_host): %s. Nothing was changed on the host. Start Docker there "
            "(for example systemctl start docker) and make sure the connecting user may use it, "
            "or set sglang_docker_host to the address the daemon listens on (unix:///path, "
            "tcp://host:2376 with TLS, or ssh://user@host)" % (what, docker_host, seen))

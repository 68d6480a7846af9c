# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Read-only Docker Engine API reads through community.docker's own API client.

The client is community.docker's (``AnsibleDockerClientBase``), so ``docker_host`` (unix://,
tcp:// with TLS, ssh://) and the usual connection options behave exactly as in the
community.docker modules. The requests are the ones ``community.docker.docker_host_info``
makes with ``containers: true, containers_all: true, containers_filters: {name: NAME},
images: true, verbose_output: true``, so the objects are the same.
"""

from __future__ import annotations

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClientBase,
    RequestException,
)
from ansible_collections.community.docker.plugins.module_utils.util import (
    DOCKER_COMMON_ARGS,
    DOCKER_MUTUALLY_EXCLUSIVE,
    DOCKER_REQUIRED_TOGETHER,
)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
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


def connect_and_read(module, name, client_class=DaemonClient):
    try:
        client = client_class(module)
    except DaemonError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        # the client's constructor words its own failures; anything else is still "unreachable"
        raise DaemonError("Error connecting: %s" % exc)
    return read_state(client, name)


def unreachable_message(docker_host, seen):
    """Why the plan stopped: the daemon, what was seen, and the fix."""
    return ("cannot read the container and the images from the Docker daemon at %s "
            "(sglang_docker_host): %s. Nothing was changed on the host. Start Docker there "
            "(for example systemctl start docker) and make sure the connecting user may use it, "
            "or set sglang_docker_host to the address the daemon listens on (unix:///path, "
            "tcp://host:2376 with TLS, or ssh://user@host)" % (docker_host, seen))

# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    # The connection options of modules that talk to the Docker Engine API through
    # community.docker's client (module_utils/_docker_engine.py adds community.docker's own
    # argument spec, DOCKER_COMMON_ARGS). Written here rather than borrowed from community.docker,
    # whose doc fragments are private from 5.x on (community.docker.docker in 4.x,
    # community.docker._docker in 5.x), so one fragment serves both lines.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, as community.docker understands it, V(unix:///path/to/socket),
        V(tcp://host:port) (with TLS when O(tls) or O(validate_certs) is set) or V(ssh://user@host).
      - Without a value in the task, the environment variable E(DOCKER_HOST), then the default.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls_hostname:
    description:
      - Host name the daemon's TLS certificate must carry when O(validate_certs) is set. Defaults
        to the host of O(docker_host). Environment variable E(DOCKER_TLS_HOSTNAME).
    type: str
  api_version:
    description:
      - Engine API version to use; V(auto) takes the daemon's. Environment variable
        E(DOCKER_API_VERSION).
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for each answer of the Engine API. Environment variable E(DOCKER_TIMEOUT).
    type: int
    default: 60
  ca_path:
    description:
      - CA certificate that signed the daemon's TLS certificate, checked when O(validate_certs)
        is set. Environment variable E(DOCKER_CERT_PATH) (its C(ca.pem)).
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - Client TLS certificate. Environment variable E(DOCKER_CERT_PATH) (its C(cert.pem)).
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Key of O(client_cert). Environment variable E(DOCKER_CERT_PATH) (its C(key.pem)).
    type: path
    aliases: [tls_client_key, key_path]
  tls:
    description:
      - Talk TLS to a V(tcp://) daemon without checking its certificate (O(validate_certs) checks
        it). Environment variable E(DOCKER_TLS).
    type: bool
    default: false
  use_ssh_client:
    description:
      - For V(ssh://) daemons, use the C(ssh) command instead of the paramiko library.
    type: bool
    default: false
  validate_certs:
    description:
      - Talk TLS to a V(tcp://) daemon and check its certificate against O(ca_path). Environment
        variable E(DOCKER_TLS_VERIFY).
    type: bool
    default: false
    aliases: [tls_verify]
  debug:
    description: Debug mode of community.docker's client.
    type: bool
    default: false
requirements:
  - community.docker 4.x or 5.x on the controller (its API client is sent with the module).
  - Python C(requests) on the host the module runs on; C(paramiko) for V(ssh://) without O(use_ssh_client).
"""

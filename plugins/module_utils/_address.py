# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The server's bind address and API key: what is loopback, where a client on the same host
connects, and which keys the server can take (stdlib only; shipped with host modules).
"""

from __future__ import annotations

import ipaddress

# Addresses that bind every interface of their family, and the loopback address a client on the
# same host reaches them through.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
LOOPBACK_NAMES = ("localhost",)


def _address(host):
    try:
        return ipaddress.ip_address(str(host).strip())
    except ValueError:
        return None


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and ``localhost``: a bind no other machine can reach."""
    text = str(host or "").strip()
    if text.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    address = _address(text)
    return address is not None and address.is_loopback


def connect_host(bind):
    """Where a client on the server's own host (host networking) reaches a server bound to
    ``bind``: a wildcard through the loopback address of the same family, else ``bind`` itself."""
    text = str(bind or "").strip()
    return WILDCARDS.get(text, text)


def url_host(bind):
    """``connect_host`` as a URL's host part: an IPv6 address in brackets."""
    host = connect_host(bind)
    return "[%s]" % host if ":" in host and not host.startswith("[") else host


def key_problem(api_key):
    """Why the server cannot take ``api_key``, or None. The text never quotes the key."""
    if api_key and str(api_key).startswith("-"):
        return ("it starts with '-': the server reads its arguments with argparse, which takes a "
                "value that starts with '-' (from --config or the command line) for an option, "
                "so the server would not start")
    return None

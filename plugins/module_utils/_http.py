# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Stdlib-only HTTP for probing services on the managed host itself.

Every call returns an HttpResult and never raises: a probe loop wants "not yet, because ..."
rather than an exception, whatever went wrong on the wire.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request


class HttpResult:
    """Outcome of one request: ``status`` is None when no HTTP answer arrived. ``connected`` says
    whether the TCP connection was made (an answer came, or the request was sent and the reply
    failed), so "the port accepts" is known even when no answer came."""

    __slots__ = ("url", "status", "body", "error", "sent")

    def __init__(self, url, status=None, body=b"", error=None, sent=False):
        self.url = url
        self.status = status
        self.body = body
        self.error = error
        self.sent = sent

    @property
    def connected(self):
        return self.status is not None or self.sent

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    def __repr__(self):
        return "HttpResult(%r, status=%r, error=%r)" % (self.url, self.status, self.error)


def build_opener():
    """An opener that ignores http_proxy/https_proxy: probes target this host, never a proxy."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def describe_error(exc, timeout):
    """Short, stable wording for transport errors (used in 'last error' messages)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (port closed)"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer within %gs" % timeout
    if isinstance(reason, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "server closed the connection without answering"
    return "%s: %s" % (type(reason).__name__, reason)


def request(url, method="GET", timeout=10.0, headers=None, data=None, opener=None, max_body=1 << 20):
    """Send one request; return an HttpResult with the status and at most ``max_body`` bytes."""
    opener = opener or build_opener()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpResult(url, status=resp.status, body=resp.read(max_body))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(max_body)
        except (OSError, http.client.HTTPException):
            body = b""
        return HttpResult(url, status=exc.code, body=body or b"")
    except urllib.error.URLError as exc:
        # urllib wraps what fails while connecting and sending in URLError
        return HttpResult(url, error=describe_error(exc, timeout))
    except (OSError, http.client.HTTPException) as exc:
        # ... and lets what fails while reading the reply through: the port did accept
        return HttpResult(url, error=describe_error(exc, timeout), sent=True)

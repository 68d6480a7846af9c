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

    __slots__ = ("url", "status", "body", "error", "sent", "headers")

    def __init__(self, url, status=None, body=b"", error=None, sent=False, headers=None):
        self.url = url
        self.status = status
        self.body = body
        self.error = error
        self.sent = sent
        self.headers = headers or {}

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


def stream(url, sink, timeout=10.0, headers=None, opener=None, chunk=1 << 20, start=None):
    """GET ``url`` and hand its body to ``sink(bytes)`` block by block, never holding it whole.

    Returns (HttpResult, bytes handed to sink). ``start(result)``, when given, sees the status
    and headers first; the body is read only when it returns true. ``timeout`` bounds every wait
    for the server (connecting, the headers, each block), so a source that stops sending ends the
    call. A transfer cut short is an HttpResult with the status and an ``error``; what arrived
    before was handed over. An error status hands nothing. The sink's own exceptions (a full
    disk) are not transport errors: they propagate.
    """
    opener = opener or build_opener()
    req = urllib.request.Request(url, method="GET", headers=dict(headers or {}))
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(1 << 16)
        except (OSError, http.client.HTTPException):
            body = b""
        return HttpResult(url, status=exc.code, body=body or b"", headers=dict(exc.headers or {})), 0
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return HttpResult(url, error=describe_error(exc, timeout)), 0
    received = 0
    with resp:
        result = HttpResult(url, status=resp.status, headers=dict(resp.headers.items()))
        if start is not None and not start(result):
            return result, 0
        while True:
            try:
                block = resp.read(chunk)
            except (OSError, http.client.HTTPException) as exc:
                result.error = describe_error(exc, timeout)
                break
            if not block:
                break
            sink(block)
            received += len(block)
    return result, received

"""One light HTTP GET with the standard library, its failure named: DNS, refused, TLS, timeout."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field

BODY_CAP = 32 * 1024


@dataclass(frozen=True)
class Probe:
    """An answer (`status`, headers, body head) or the transport failure (`error`)."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # dns | refused | tls | timeout | network
    detail: str = ""


# The daemon's clients ignore proxy variables (aiohttp's trust_env=False): so does the probe.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(
    url: str,
    headers: dict[str, str],
    timeout_s: float,
    method: str = "GET",
    body: bytes | None = None,
) -> Probe:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout_s) as resp:
            return Probe(resp.status, dict(resp.headers.items()), resp.read(BODY_CAP))
    except urllib.error.HTTPError as exc:
        with exc:
            return Probe(exc.code, dict(exc.headers.items()), exc.read(BODY_CAP))
    except urllib.error.URLError as exc:
        return transport_failure(exc.reason)
    except (TimeoutError, OSError) as exc:
        return transport_failure(exc)


def transport_failure(reason: object) -> Probe:
    if isinstance(reason, socket.gaierror):
        return Probe(error="dns", detail="the host name does not resolve")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return Probe(error="tls", detail=f"TLS certificate rejected: {reason.verify_message}")
    if isinstance(reason, ssl.SSLError):
        return Probe(error="tls", detail=f"TLS handshake failed: {reason.reason or reason}")
    if isinstance(reason, TimeoutError):
        return Probe(error="timeout", detail="no answer in time")
    if isinstance(reason, ConnectionRefusedError):
        return Probe(error="refused", detail="connection refused (nothing listens there)")
    if isinstance(reason, ConnectionResetError):
        return Probe(error="network", detail="the connection was reset")
    return Probe(error="network", detail=str(reason))

"""Talk to a running daemon over its control socket, with the standard library only (fast)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from memproxy_cli.paths import Paths


class DaemonUnavailable(Exception):
    """No daemon answers on the control socket."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def call(
    paths: Paths, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, Any]:
    """(status, decoded JSON) of one control request."""
    sock = paths.control_socket
    if not sock.exists():
        raise DaemonUnavailable("the daemon is not running (no control socket)")
    conn = _UnixConnection(str(sock), timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        raise DaemonUnavailable(
            f"the daemon does not answer on its control socket: {exc}"
        ) from None
    except OSError as exc:
        raise DaemonUnavailable(f"control socket error: {exc}") from None
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data) if data else None
    except ValueError:
        return resp.status, {"error": data.decode("utf-8", "replace")}

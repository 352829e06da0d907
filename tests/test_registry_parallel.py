"""Twenty processes assigning at once never share a port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from memproxy_cli.paths import get_paths
from memproxy_cli.registry import PortRegistry

ASSIGN = """
import sys
from memproxy_cli.paths import get_paths
from memproxy_cli.registry import PortRegistry
low, high = int(sys.argv[2]), int(sys.argv[3])
print(PortRegistry(get_paths(), (low, high), lock_timeout_s=60).assign(sys.argv[1]).port)
"""


def test_twenty_parallel_assigns_get_twenty_distinct_ports() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1] + 1
    high = low + 200
    assert high <= 65535
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASSIGN, f"proj-{i}", str(low), str(high)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(20)
    ]
    ports = {}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        ports[f"proj-{i}"] = int(out)
    assert len(set(ports.values())) == 20
    assert all(low <= p <= high for p in ports.values())
    registry = PortRegistry(get_paths(), (low, high))
    assert {e.project: e.port for e in registry.entries()} == ports

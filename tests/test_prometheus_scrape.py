"""A real Prometheus scrapes a real daemon, and PromQL counts the requests that were sent."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.daemon import ThreadedFake, free_port, running_daemon, wait_for, write_config
from tests.fixtures.prometheus import running_prometheus

pytestmark = pytest.mark.serial
N = 7


def _chat(url: str, project: str) -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-memproxy-project": project},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return int(resp.status)


def test_promql_counts_the_requests_sent(memproxy_home: Path, tmp_path: Path) -> None:
    with ThreadedFake() as fake:
        config = write_config(memproxy_home, upstream=fake.base, memory={"backend": "none"})
        port = free_port()
        with running_daemon(memproxy_home, port, config) as status:
            url = status["url"]
            with running_prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}") as prom:
                assert [_chat(url, "scraped") for _ in range(N)] == [200] * N
                query = 'sum(memproxy_requests_total{project="scraped",status="ok"})'
                assert wait_for(lambda: prom.value(query) == N, 60, f"{query} == {N}")
                buckets = 'sum(memproxy_request_duration_seconds_count{project="scraped"})'
                assert prom.value(buckets) == N
                assert prom.value("memproxy_requests_in_flight") == 0

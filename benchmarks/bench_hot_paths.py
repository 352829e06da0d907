"""CPU time of a few steps on the request path, each as an interleaved in-process A/B.

Usage: python benchmarks/bench_hot_paths.py [--n 20000]
- secret scan: `may_hold_secret` (one compiled pattern) against one substring test per
  fragment (the scan it replaced), on a request log line's strings;
- log line: `daemon/logs.log_fields` writing the request line to a real log file;
- stream: one 22-event stream of benchmarks/fake_upstream.py through `SSEBuffer.feed` and the
  relay's `_observe`, reading every event (memory on) against only those that count (off);
- stream runs: the same stream, memory off, `feed` + `_observe` against the relay's `_run`
  (events before the first that may count go on unread), in 22 chunks and in one.
CPU is time.thread_time, summed over alternating calls of A and B.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fake_upstream

from memproxy_cli.api.openai_chat import OpenAIChat
from memproxy_cli.daemon import logs
from memproxy_cli.gateway import relay
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.resources import Resources
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.memory import redact
from memproxy_cli.store.rows import RequestRow

FIELDS: dict[str, str | int | float | None] = {
    "request_id": "req_0193a8f1c2d4e5f6a7b8c9d0",
    "project": "bench",
    "model": "gpt-4o-mini",
    "status": "ok",
    "http_status": 200,
    "latency_ms": 1.234,
    "overhead_ms": 0.321,
    "trace_id": "00f3a9c1d2e3f4a5b6c7d8e9f0a1b2c3",
    "client": "openai-python",
}


def substring_scan(text: str) -> bool:
    """The secret scan as it was before one compiled pattern."""
    lowered = text.lower()
    return any(fragment in lowered for fragment in redact._FRAGMENTS)


def ab(name: str, a: Callable[[], object], b: Callable[[], object], n: int) -> None:
    spent = [0.0, 0.0]
    clock = time.thread_time
    for i in range(n):
        which = i % 2
        f = b if which else a
        started = clock()
        f()
        spent[which] += clock() - started
    half = n / 2
    print(
        f"{name}: A {spent[0] / half * 1e6:.2f} us, B {spent[1] / half * 1e6:.2f} us,"
        f" B/A {spent[1] / spent[0]:.3f}"
    )


STREAM = [*fake_upstream._STREAM, fake_upstream._USAGE_CHUNK, fake_upstream._DONE]
# What the gateway gets: it asks for include_usage, so every chunk has `"usage":null`.
CHUNKS = [*fake_upstream._STREAM_NULL_USAGE, fake_upstream._USAGE_CHUNK, fake_upstream._DONE]


def _exchange(read_every: bool) -> Exchange:
    ex = Exchange(
        request=None,  # type: ignore[arg-type]  # _observe never reads the request
        family=OpenAIChat(),
        endpoint="/v1/chat/completions",
        row=RequestRow(request_id="r", started_at=0.0, endpoint="/v1/chat/completions"),
        resources=Resources(),
    )
    ex.client_wants_usage = False
    ex.recall = object() if read_every else None  # type: ignore[assignment]  # only its presence
    return ex


def stream_once(read_every: bool) -> None:
    ex, buffer = _exchange(read_every), SSEBuffer()
    for chunk in STREAM:
        relay._observe(ex, buffer.feed(chunk))


def stream_runs(chunks: list[bytes], runs: bool) -> None:
    ex, buffer = _exchange(False), SSEBuffer()
    for chunk in chunks:
        if runs:
            relay._run(ex, buffer, chunk)
        else:
            relay._observe(ex, buffer.feed(chunk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    probe = "\n".join(["request", *(v for v in FIELDS.values() if isinstance(v, str))])
    ab(
        "secret scan of a log line (A substring tests, B one pattern)",
        lambda: substring_scan(probe),
        lambda: redact.may_hold_secret(probe),
        args.n,
    )
    with tempfile.TemporaryDirectory() as tmp:
        logs.setup_logging(Path(tmp) / "daemon.log")
        log = logging.getLogger("memproxy.request")
        line = lambda: logs.log_fields(log, "request", FIELDS)  # noqa: E731
        ab("request log line (A and B the same: the noise floor)", line, line, args.n)
        logging.getLogger().handlers.clear()
    ab(
        "22-event stream, feed + _observe (A every event, B events that count)",
        lambda: stream_once(True),
        lambda: stream_once(False),
        max(args.n // 10, 2),
    )
    whole = [b"".join(CHUNKS)]
    for label, chunks in (("22 chunks", CHUNKS), ("one chunk", whole)):
        ab(
            f"22-event stream in {label}, memory off (A feed + _observe, B _run)",
            lambda chunks=chunks: stream_runs(chunks, False),
            lambda chunks=chunks: stream_runs(chunks, True),
            max(args.n // 10, 2),
        )


if __name__ == "__main__":
    main()

"""Print the benchmark figures as plain side-by-side tables, one section at a time."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "added_p50": 1.0,
    "added_p50_memory_100k": 2.0,
    "c16_share": 0.60,
    "cli_ms": 250.0,
    "up_s": 2.0,
    "idle_rss_mb": 120.0,
}


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def header(machine: dict[str, Any], quick: bool) -> None:
    mode = " (quick smoke run: counts too small to trust)" if quick else ""
    print(f"memproxy benchmark{mode}")
    print(f"machine: {machine['nproc']} cores, {machine['cpu']}, Python {machine['python']}")


def latency(figures: dict[str, Any], title: str = "1. Added latency, memory off") -> None:
    print(f"\n== {title} (sequential, keep-alive; stream = time to first chunk) ==")
    rows = []
    for label, f in figures.items():
        d, g = f["direct"], f["gateway"]
        rows.append(
            [
                label,
                _ms(d["p50_ms"]),
                _ms(g["p50_ms"]),
                _ms(f["added_p50_ms"]),
                _ms(d["p99_ms"]),
                _ms(g["p99_ms"]),
                _ms(f["added_p99_ms"]),
                _ms(g["reported_overhead_p50_ms"]),
                _ms(f.get("bare_added_p50_ms")),
                _ms(f.get("bare_added_p99_ms")),
                str(g["n"]),
            ]
        )
    _table(
        [
            "request",
            "direct p50",
            "gateway p50",
            "added p50",
            "direct p99",
            "gateway p99",
            "added p99",
            "x-overhead p50",
            "bare added p50",
            "bare added p99",
            "n",
        ],
        rows,
    )


def throughput(figures: dict[str, Any], title: str = "2. Throughput") -> None:
    print(f"\n== {title} (requests/s, non-streaming unless marked) ==")
    print("bare relay = benchmarks/bare_relay.py, the least an aiohttp relay does per call")
    rows = [
        [
            key,
            f"{f['direct_rps']:.0f}",
            f"{f['bare_rps']:.0f}",
            f"{f['gateway_rps']:.0f}",
            f"{f['bare_share'] * 100:.0f}%",
            f"{f['share'] * 100:.0f}%",
            f"{f['share_of_bare'] * 100:.0f}%",
            _ms(f["bare_cpu_ms"]),
            _ms(f["gateway_cpu_ms"]),
        ]
        for key, f in figures.items()
    ]
    _table(
        [
            "concurrency",
            "direct",
            "bare relay",
            "gateway",
            "bare/direct",
            "gateway/direct",
            "gateway/bare",
            "bare CPU ms/call",
            "gateway CPU ms/call",
        ],
        rows,
    )


def memory(runs: list[dict[str, Any]]) -> None:
    print("\n== 3. Local memory on (project store pre-filled; recall + store every turn) ==")
    rows = []
    for run in runs:
        lat, tput = run["latency"], run["throughput"]["c16"]
        rows.append(
            [
                f"{run['size']:,}",
                str(run["injected"]),
                _ms(lat["non_stream"]["gateway"]["p50_ms"]),
                _ms(lat["non_stream"]["added_p50_ms"]),
                _ms(lat["non_stream"]["added_p99_ms"]),
                _ms(lat["stream_ttft"]["added_p50_ms"]),
                f"{tput['gateway_rps']:.0f}",
                f"{tput['share'] * 100:.0f}%",
            ]
        )
    _table(
        [
            "memories",
            "injected",
            "gateway p50",
            "added p50",
            "added p99",
            "added TTFT p50",
            "c16 rps",
            "c16 share",
        ],
        rows,
    )


def daemon(figures: dict[str, Any], up: dict[str, float]) -> None:
    print("\n== 4. Daemon: RSS and start ==")
    idle = figures["idle_rss_mb"]
    print(f"RSS when `memproxy up` returned: {figures['ready_rss_mb']:.1f} MB")
    print(
        f"idle RSS once start-up work settled ({figures['settle_s']:.1f} s later): {idle:.1f} MB"
        f" ({_mark(idle <= TARGETS['idle_rss_mb'])})"
    )
    print(f"RSS after latency and throughput runs: {figures['rss_after_warmup_mb']:.1f} MB")
    soak = figures["soak"]
    print(
        f"soak at concurrency {soak['concurrency']}: {soak['rps']:.0f} req/s, "
        f"daemon CPU {soak['daemon_cpu_ms_per_request']:.3f} ms/request"
    )
    _table(
        ["requests", "RSS MB"],
        [[f"{s['requests']:,}", f"{s['rss_mb']:.1f}"] for s in soak["samples"]],
    )
    sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in figures["log_bytes"].items())
    print(f"log files after the soak: {sizes}")
    ok = up["median_s"] <= TARGETS["up_s"]
    print(
        f"memproxy up -> ready: best {up['best_s']:.3f} s, median {up['median_s']:.3f} s"
        f" ({_mark(ok)})"
    )


def cli(figures: list[dict[str, Any]]) -> None:
    print("\n== 5. CLI start (fresh process each) ==")
    rows = [
        [
            f["command"],
            f"{f['median_ms']:.0f}",
            f"{f['best_ms']:.0f}",
            str(f["exit_code"]),
            str(f["modules"]),
            ",".join(f["heavy_imports"]) or "none",
            "YES" if f["litellm_imported"] else "no",
        ]
        for f in figures
    ]
    _table(["command", "median ms", "best ms", "exit", "modules", "heavy", "litellm"], rows)
    if any(f["litellm_imported"] for f in figures):
        print("FAIL: a CLI command imported litellm")
    else:
        print("no CLI command imported litellm")


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def peer(results: dict[str, Any]) -> None:
    """Section 6: the bare relay, memproxy and the peer gateway side by side, with ratios."""
    p = results["peer"]
    print(f"\n== 6. Against {p['name']} {p['version']} ({p['workers']} worker, no database) ==")
    print("same fake upstream and client; the peer's added latency is against direct in its own")
    print("alternating blocks; ratios: memproxy / bare relay, and peer / memproxy")
    lat, tput = results.get("latency", {}), results.get("throughput", {})
    daemon, up, bare = results.get("daemon", {}), results.get("up", {}), results.get("bare", {})

    def latency_row(key: str, what: str) -> list[float | None]:
        f = lat.get(key, {})
        peer_value = p["latency"][key][f"added_{what}_ms"]
        return [f.get(f"bare_added_{what}_ms"), f.get(f"added_{what}_ms"), peer_value]

    def tput_row(key: str, field: str) -> list[float | None]:
        f = tput.get(key, {})
        return [
            f.get(f"bare_{field}"),
            f.get(f"gateway_{field}"),
            p["throughput"][key][f"peer_{field}"],
        ]

    rows: list[tuple[str, list[float | None], str]] = [
        ("added p50 ms, non-streaming", latency_row("non_stream", "p50"), ".3f"),
        ("added p99 ms, non-streaming", latency_row("non_stream", "p99"), ".3f"),
        ("added time to first chunk p50 ms", latency_row("stream_ttft", "p50"), ".3f"),
        ("added time to first chunk p99 ms", latency_row("stream_ttft", "p99"), ".3f"),
        ("CPU ms per call, c16", tput_row("c16", "cpu_ms"), ".3f"),
        ("CPU ms per call, c16 streaming", tput_row("c16_stream", "cpu_ms"), ".3f"),
        ("req/s, c16", tput_row("c16", "rps"), ".0f"),
        ("req/s, c16 streaming", tput_row("c16_stream", "rps"), ".0f"),
        (
            "RSS MB idle",
            [bare.get("idle_rss_mb"), daemon.get("idle_rss_mb"), p["idle_rss_mb"]],
            ".1f",
        ),
        (
            "RSS MB after load",
            [
                bare.get("rss_after_load_mb"),
                daemon.get("rss_after_warmup_mb"),
                p["rss_after_load_mb"],
            ],
            ".1f",
        ),
        (
            "start to first 200, s (median)",
            [bare.get("start_s"), up.get("median_s"), p["start_median_s"]],
            ".2f",
        ),
    ]
    _table(
        ["figure", "bare relay", "memproxy", p["name"], "memproxy/bare", "peer/memproxy"],
        [
            [
                name,
                *(_num(v, fmt) for v in values),
                _ratio(values[1], values[0]),
                _ratio(values[2], values[1]),
            ]
            for name, values, fmt in rows
        ],
    )
    shares = ", ".join(
        f"{key} {f['share'] * 100:.1f}% of direct {f['direct_rps']:.0f}"
        for key, f in p["throughput"].items()
    )
    print(f"{p['name']} throughput: {shares}")

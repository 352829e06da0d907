"""Work the request path does once instead of per request gives the same answers.

Identities per header values, header-name verdicts per spelling, the resources snapshot, the
transport's deps per config, and the guard in front of every route without a middleware.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from memproxy_cli.config import parse_config
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway import identity as identity_mod
from memproxy_cli.gateway.app import apply_config, build_app
from memproxy_cli.gateway.identity import CompiledMappings, resolve_identity
from memproxy_cli.gateway.resources import collect, upstream_deps
from memproxy_cli.gateway.state import STATE
from memproxy_cli.upstream import headers as headers_mod
from memproxy_cli.upstream.headers import end_to_end, relay_headers
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

MAPPINGS = """
user_id_mappings:
  default_user_id: someone
  header_patterns:
    - {header: User-Agent, pattern: "claude-cli/.*", user_id: claude-user}
    - {header: X-Team, pattern: "^infra$", user_id: infra-user}
"""


def _proxy(pairs: list[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.fixture
def mappings() -> CompiledMappings:
    return CompiledMappings.from_config(parse_config(MAPPINGS).user_id_mappings)


def test_identity_is_found_again_for_the_same_values(mappings: CompiledMappings) -> None:
    first = resolve_identity(_proxy([("User-Agent", "claude-cli/2.0.1")]), None, mappings)
    again = resolve_identity(_proxy([("user-agent", "claude-cli/2.0.1")]), None, mappings)
    assert again is first and first.user_id == "claude-user"
    # Any header the identity reads makes another identity, a rule's header included.
    team = resolve_identity(_proxy([("User-Agent", "curl/8"), ("X-Team", "infra")]), None, mappings)
    assert team.user_id == "infra-user"
    other = resolve_identity(_proxy([("User-Agent", "curl/8")]), None, mappings)
    assert other.user_id == "someone"
    session = resolve_identity(
        _proxy([("User-Agent", "curl/8"), ("session-id", "s-1")]), None, mappings
    )
    assert session.client_session == "s-1" and other.client_session is None
    # The listener's project is part of the key.
    listener = resolve_identity(_proxy([("User-Agent", "curl/8")]), "shop", mappings)
    assert listener.project == "shop" and other.project is None


def test_cached_identity_equals_one_resolved_from_scratch(mappings: CompiledMappings) -> None:
    values = {
        "User-Agent": ["claude-cli/2.0.1 (external, cli)", "curl/8", "PyCharm 2025.1"],
        "x-memproxy-project": ["alpha", " beta "],
        "x-memory-user-id": ["dev1"],
        "X-Team": ["infra", "web"],
        "x-claude-code-session-id": ["abc"],
        "x-pycharm-instance": ["pc-1"],
    }
    rng = random.Random(7)
    for _ in range(300):
        pairs = [(name, rng.choice(vs)) for name, vs in values.items() if rng.random() < 0.5]
        listener = rng.choice([None, "alpha"])
        headers = _proxy(pairs)
        fresh = CompiledMappings.from_config(parse_config(MAPPINGS).user_id_mappings)
        try:
            expected = resolve_identity(dict(pairs), listener, fresh)  # a dict: never cached
        except GatewayError as err:
            with pytest.raises(GatewayError) as raised:
                resolve_identity(headers, listener, mappings)
            assert raised.value.status == err.status
            continue
        assert resolve_identity(headers, listener, mappings) == expected
        assert resolve_identity(headers, listener, mappings) == expected


def test_a_refused_identity_is_never_kept(mappings: CompiledMappings) -> None:
    bad = _proxy([("x-memproxy-project", "no spaces allowed")])
    for _ in range(2):
        with pytest.raises(GatewayError):
            resolve_identity(bad, None, mappings)
    assert mappings.known == {}


def test_identities_kept_are_bounded(
    mappings: CompiledMappings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity_mod, "_KNOWN_KEPT", 8)
    for n in range(50):
        resolve_identity(_proxy([("session-id", f"s-{n}")]), None, mappings)
        assert len(mappings.known) <= 8


def _end_to_end_reference(incoming: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    """The rule, spelled out per request (what the cached verdicts must match)."""
    listed = {t.strip().lower() for v in incoming.getall("connection", ()) for t in v.split(",")}
    out = []
    for name, value in incoming.items():
        lower = name.lower()
        if (
            lower in headers_mod._HOP_BY_HOP
            or lower in headers_mod._CREDENTIALS
            or lower in headers_mod._IDENTITY
            or lower in listed
            or lower.startswith("x-memproxy-")
            or lower == "via"
        ):
            continue
        out.append((name, value))
    return [*out, ("Via", ", ".join([*incoming.getall("via", ()), headers_mod.VIA]))]


def _spellings(name: str) -> list[str]:
    return [name, name.upper(), name.title(), name.swapcase()]


def test_header_verdicts_per_spelling_match_the_rule() -> None:
    names = [
        "Content-Type",
        "Authorization",
        "x-api-key",
        "X-Memproxy-Token",
        "x-memproxy-anything",
        "Via",
        "Host",
        "Connection",
        "x-hop",
        "anthropic-beta",
        "x-stainless-lang",
        "traceparent",
        "Cookie",
    ]
    rng = random.Random(3)
    for _ in range(200):
        pairs = [(rng.choice(_spellings(n)), f"v{i}") for i, n in enumerate(names)]
        if rng.random() < 0.5:
            pairs.append(("Connection", "keep-alive, X-Hop"))
        if rng.random() < 0.5:
            pairs.append(("Via", "1.1 corp-proxy"))
        rng.shuffle(pairs)
        incoming = _proxy(pairs)
        for _ in range(2):  # the first call fills the cache, the second reads it
            assert list(end_to_end(incoming).items()) == _end_to_end_reference(incoming)


def test_relay_verdicts_per_spelling_match_the_rule() -> None:
    names = ["Content-Type", "retry-after", "X-RateLimit-Remaining", "openai-version", "Server"]
    for spelled in itertools.product(*(_spellings(n)[:2] for n in names)):
        upstream = _proxy([(n, "1") for n in spelled])
        for _ in range(2):
            kept = relay_headers(upstream)
            assert [n.lower() for n in kept] == [
                "content-type",
                "retry-after",
                "x-ratelimit-remaining",
                "openai-version",
            ]


def test_header_verdicts_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers_mod, "_NAMES_KEPT", 16)
    for n in range(100):
        end_to_end(_proxy([(f"x-custom-{n}", "1")]))
        relay_headers(_proxy([(f"x-custom-{n}", "1")]))
        assert len(headers_mod._forwards) <= 16 and len(headers_mod._relays) <= 16


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


async def test_resources_snapshot_is_what_the_app_holds(gw: RunningGateway) -> None:
    app = gw.server.app
    assert app[STATE].resources == collect(app)
    assert app[STATE].resources.recorder is not None  # type: ignore[union-attr]


async def test_upstream_deps_follow_a_reload(gw: RunningGateway, fake: FakeProvider) -> None:
    app = gw.server.app
    deps = upstream_deps(app)
    assert upstream_deps(app) is deps
    apply_config(app, config_for(fake.base))
    after = upstream_deps(app)
    assert after is not deps and after.config is app[STATE].config


def test_the_app_runs_no_middleware(fake: FakeProvider) -> None:
    app = build_app(config_for(fake.base), litellm=False, store=False)
    assert list(app.middlewares) == []


async def test_every_route_is_guarded(gw: RunningGateway) -> None:
    """A foreign Host name is refused on every route the app has, each without a middleware."""
    paths = set()
    for resource in gw.server.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        paths.add(re.sub(r"\{[^}]*\}", "gpt-4o-mini", path))
    assert "/v1/chat/completions" in paths and "/health" in paths
    async with aiohttp.ClientSession() as http:
        for path in sorted(paths):
            for method in ("GET", "POST"):
                async with http.request(
                    method, gw.url + path, headers={"Host": "evil.example"}, data=b"{}"
                ) as resp:
                    assert resp.status == 403, (method, path, resp.status)
                    assert "evil.example" in await resp.text()

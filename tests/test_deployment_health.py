"""The deployment picker and cooldowns on their own: weights, least-busy, rpm/tpm, scopes."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import yaml

from memproxy_cli.config import RouterSettings, parse_config
from memproxy_cli.upstream.deployments import (
    Deployment,
    ModelGroup,
    ModelGroups,
    deployment_for,
    key_tag,
)
from memproxy_cli.upstream.health import (
    MAX_COOLDOWN_S,
    DeploymentHealth,
    Failure,
    error_failure,
    is_context_error,
    response_failure,
    with_cooldowns,
)
from memproxy_cli.upstream.routing import Route, Router


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dep(i: int, **kw: Any) -> Deployment:
    route = Route(kind="passthrough", model="m", provider="openai", base_url=f"http://h{i}")
    return deployment_for(route, f"m#{i}", **kw)


def group(*deployments: Deployment, fallbacks: tuple[str, ...] = ()) -> ModelGroup:
    return ModelGroup("m", deployments, fallbacks=fallbacks)


def health(clock: Clock | None = None, seed: int = 7, **settings: Any) -> DeploymentHealth:
    return DeploymentHealth(
        RouterSettings(**settings), rng=random.Random(seed), clock=clock or Clock()
    )


def no_key(_d: Deployment) -> str:
    return ""


def picks(h: DeploymentHealth, g: ModelGroup, n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        chosen = h.pick(g, no_key)
        assert chosen is not None
        counts[chosen.id] += 1
    return counts


RATE_LIMITED = Failure(429, "429")
SERVER_ERROR = Failure(500, "500")


def test_simple_shuffle_follows_weights() -> None:
    counts = picks(health(), group(dep(0, weight=3), dep(1, weight=1)), 4000)
    assert 2800 <= counts["m#0"] <= 3200  # 3:1 (seeded; 7 standard deviations either way)
    assert counts["m#0"] + counts["m#1"] == 4000


def test_shuffle_uses_rpm_then_tpm_as_weights_like_litellm() -> None:
    by_rpm = picks(health(), group(dep(0, rpm=900), dep(1, rpm=100)), 2000)
    assert 1700 <= by_rpm["m#0"] <= 1900
    by_tpm = picks(health(), group(dep(0, tpm=10), dep(1, tpm=30)), 2000)
    assert 1400 <= by_tpm["m#1"] <= 1600


def test_a_deployment_without_weight_is_a_standby_while_a_weighted_one_is_healthy() -> None:
    primary, standby = dep(0, weight=1), dep(1)
    h, g = health(), group(primary, standby)
    assert picks(h, g, 200) == Counter({"m#0": 200})
    h.failed(g, primary, "", Failure(429, "429", retry_after=30))
    assert picks(h, g, 10) == Counter({"m#1": 10})


def test_unweighted_deployments_share_evenly() -> None:
    counts = picks(health(), group(dep(0), dep(1), dep(2)), 3000)
    assert all(800 <= counts[f"m#{i}"] <= 1200 for i in range(3))


def test_seeded_picks_repeat() -> None:
    g = group(dep(0, weight=2), dep(1, weight=1))
    assert picks(health(seed=3), g, 50) == picks(health(seed=3), g, 50)


def test_least_busy_picks_the_deployment_with_fewest_calls_in_flight() -> None:
    h = health(routing_strategy="least-busy")
    a, b, c = dep(0), dep(1), dep(2)
    g = group(a, b, c)
    h.started(a)
    h.started(a)
    h.started(b)
    assert picks(h, g, 20) == Counter({"m#2": 20})
    h.started(c)
    h.started(c)
    assert picks(h, g, 20) == Counter({"m#1": 20})
    h.finished(a)
    h.finished(a)
    assert picks(h, g, 20) == Counter({"m#0": 20})


def test_rpm_limit_moves_traffic_until_the_next_minute() -> None:
    clock = Clock(60 * 1000.0)
    h = health(clock)
    limited, other = dep(0, rpm=2, weight=1), dep(1)
    g = group(limited, other)
    for _ in range(2):
        chosen = h.pick(g, no_key)
        assert chosen is limited
        h.started(chosen)
        h.finished(chosen)
    assert h.pick(g, no_key) is other
    assert h.pick(group(limited), no_key) is None
    assert h.wait_s(group(limited), no_key) == pytest.approx(60.0)
    clock.now += 60
    assert h.pick(g, no_key) is limited


def test_tpm_counts_the_tokens_of_finished_calls() -> None:
    h = health()
    limited, other = dep(0, tpm=100, weight=1), dep(1)
    g = group(limited, other)
    h.started(limited)
    assert h.pick(g, no_key) is limited  # tokens are counted when a call ends
    h.finished(limited, tokens=100)
    assert h.pick(g, no_key) is other


def test_retry_after_cools_only_that_callers_key() -> None:
    clock = Clock()
    h = health(clock)
    only = dep(0)
    g = group(only)
    h.failed(g, only, key_tag("sk-alice"), Failure(429, "429", retry_after=30))
    assert h.pick(g, lambda _d: key_tag("sk-alice")) is None
    assert h.pick(g, lambda _d: key_tag("sk-bob")) is only
    assert h.wait_s(g, lambda _d: key_tag("sk-alice")) == pytest.approx(30)
    clock.now += 30
    assert h.pick(g, lambda _d: key_tag("sk-alice")) is only
    assert h.cooldowns() == []


def test_a_lone_deployment_is_not_left_out_on_a_guess() -> None:
    h = health(allowed_fails=0)
    only = dep(0)
    for failure in (RATE_LIMITED, SERVER_ERROR, SERVER_ERROR):
        h.failed(group(only), only, "", failure)
    assert h.pick(group(only), no_key) is only


def test_429_cools_at_once_where_there_is_an_alternative() -> None:
    h = health()
    a, b = dep(0), dep(1)
    h.failed(group(a, b), a, "", RATE_LIMITED)
    assert picks(h, group(a, b), 20) == Counter({"m#1": 20})
    [cooldown] = h.cooldowns()
    assert cooldown["deployment"] == "m#0" and cooldown["reason"] == "429"
    assert cooldown["seconds_left"] == pytest.approx(5.0)  # cooldown_time's default


def test_a_fallback_is_an_alternative_too() -> None:
    h = health()
    only = dep(0)
    h.failed(group(only, fallbacks=("other",)), only, "", RATE_LIMITED)
    assert h.pick(group(only), no_key) is None


def test_allowed_fails_per_minute_then_cooldown_time() -> None:
    clock = Clock()
    h = health(clock, allowed_fails=2, cooldown_time=10)
    a, b = dep(0), dep(1)
    g = group(a, b)
    h.failed(g, a, "", SERVER_ERROR)
    h.failed(g, a, "", SERVER_ERROR)
    assert h.cooldown_left(a, "") == 0
    clock.now += 61  # a new minute: the count starts again
    h.failed(g, a, "", SERVER_ERROR)
    h.failed(g, a, "", SERVER_ERROR)
    assert h.cooldown_left(a, "") == 0
    h.failed(g, a, "", SERVER_ERROR)
    assert h.cooldown_left(a, "") == pytest.approx(10)
    clock.now += 10
    assert h.cooldown_left(a, "") == 0


def test_cooldown_time_zero_leaves_only_retry_after() -> None:
    h = health(cooldown_time=0, allowed_fails=0)
    a, b = dep(0), dep(1)
    h.failed(group(a, b), a, "", RATE_LIMITED)
    h.failed(group(a, b), a, "", SERVER_ERROR)
    assert h.cooldown_left(a, "") == 0
    h.failed(group(a, b), a, "", Failure(429, "429", retry_after=7))
    assert h.cooldown_left(a, "") == pytest.approx(7)


def test_cooldowns_are_never_shortened_and_retry_after_is_capped() -> None:
    h = health()
    a = dep(0)
    h.failed(group(a), a, "", Failure(429, "429", retry_after=30))
    h.failed(group(a), a, "", Failure(429, "429", retry_after=1))
    assert h.cooldown_left(a, "") == pytest.approx(30)
    h.failed(group(a), a, "", Failure(429, "429", retry_after=10**9))
    assert h.cooldown_left(a, "") == pytest.approx(MAX_COOLDOWN_S)


def test_failures_that_are_ours_cool_nothing() -> None:
    h = health(allowed_fails=0)
    a, b = dep(0), dep(1)
    busy = error_failure(503, "upstream_busy", "too many requests in flight", 1.0)
    assert busy is not None and not busy.cools
    h.failed(group(a, b), a, "", busy)
    assert h.cooldown_left(a, "") == 0


def test_the_tables_stay_bounded() -> None:
    h = health()
    a = dep(0)
    for i in range(10_050):
        h.failed(group(a), a, f"k{i}", Failure(429, "429", retry_after=30))
    assert len(h.cooldowns()) == 10_000
    for i in range(100):  # model names chosen by clients leave nothing behind once answered
        d = deployment_for(Route(kind="passthrough", model=f"gpt-{i}", provider="openai"))
        h.started(d)
        h.finished(d)
    assert h._usage == {}


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"message": "This model\'s maximum context length is 128000 tokens. '
        b'However, your messages resulted in 130000 tokens.", "code": "context_length_exceeded"}}',
        b'{"type": "error", "error": {"type": "invalid_request_error", '
        b'"message": "prompt is too long: 210000 tokens > 200000 maximum"}}',
        b'{"error": {"message": "Input is too long for requested model."}}',
    ],
)
def test_context_window_errors_are_recognised(body: bytes) -> None:
    assert is_context_error(body)
    failure = response_failure(400, body, None, False)
    assert failure is not None and failure.context and not failure.cools


def test_what_is_retried_and_what_is_final() -> None:
    assert response_failure(400, b'{"error": {"message": "bad tool schema"}}', None, False) is None
    assert response_failure(401, b"{}", None, False) is None
    assert response_failure(404, b"{}", None, False) is None
    transient = response_failure(503, b"{}", None, False)
    assert transient is not None and transient.same_again
    server = response_failure(500, b"{}", None, False)
    assert server is not None and not server.same_again and server.cools
    long_wait = response_failure(429, b"{}", 60.0, False)
    assert long_wait is not None and not long_wait.same_again and long_wait.retry_after == 60
    assert response_failure(503, b"{}", None, True).same_again is False  # type: ignore[union-attr]
    connect = error_failure(502, "upstream_unreachable", "cannot reach", None)
    assert connect is not None and connect.same_again
    timeout = error_failure(504, "upstream_timeout", "timed out", None)
    assert timeout is not None and not timeout.same_again and timeout.cools
    assert error_failure(403, "cloudflare_challenge", "challenge", None) is None
    translated = error_failure(400, "context_length_exceeded", "too long", None)
    assert translated is not None and translated.context


def test_key_tags_are_short_one_way_and_stable() -> None:
    tag = key_tag("sk-live-secret-0001")
    assert tag == key_tag("sk-live-secret-0001") != key_tag("sk-live-secret-0002")
    assert len(tag) == 12 and "secret" not in tag
    assert key_tag(None) == key_tag("") == ""


def test_groups_from_config_keep_every_entry_and_the_fallbacks() -> None:
    raw = {
        "model_list": [
            {
                "model_name": "gpt-4o",
                "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://a", "weight": 2},
            },
            {
                "model_name": "gpt-4o",
                "litellm_params": {"model": "openai/gpt-4o-2024", "api_base": "http://b:81/v1"},
            },
        ],
        "router_settings": {
            "fallbacks": [{"gpt-4o": ["claude-sonnet-4-5"]}, {"gpt-4o": ["gpt-4o", "o3"]}],
            "context_window_fallbacks": [{"gpt-4o": ["gpt-4.1"]}],
        },
    }
    config = parse_config(yaml.safe_dump(raw))
    groups = ModelGroups(config, Router(config))
    g = groups.group("gpt-4o", "openai")
    assert g is not None
    assert [d.id for d in g.deployments] == ["gpt-4o#0", "gpt-4o#1"]
    assert [d.upstream for d in g.deployments] == ["openai/gpt-4o@a", "openai/gpt-4o-2024@b:81"]
    assert g.deployments[0].weight == 2 and g.deployments[1].weight is None
    assert g.fallbacks == ("claude-sonnet-4-5", "o3")  # in order, never itself
    assert g.context_fallbacks == ("gpt-4.1",)
    assert "weight" not in g.deployments[0].route.litellm_extra  # never sent to a provider
    implicit = groups.group("claude-haiku-4-5", "anthropic")
    assert implicit is not None and [d.id for d in implicit.deployments] == ["claude-haiku-4-5"]
    assert groups.group("mystery", "openai") is None


def test_sessions_get_their_origins_cooldowns() -> None:
    h = health()
    a = dep(0)
    h.failed(group(a), a, "abc", Failure(429, "429", retry_after=30))
    session = {"origin": "http://h1", "requests": 3, "backed_off_until": None, "cooldowns": []}
    merged = with_cooldowns([session], h.cooldowns())
    assert merged[0] == {**session, "backed_off_until": None, "cooldowns": []}
    [extra] = merged[1:]
    assert extra["origin"] == "http://h0" and extra["requests"] == 0
    [cooldown] = extra["cooldowns"]
    assert cooldown["key_hash"] == "abc" and extra["backed_off_until"] == cooldown["until"]

"""Identity rules (headers, patterns, default, project ports) and User-Agent parsing."""

from __future__ import annotations

import re

import pytest

from memproxy_cli.config import parse_config
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.client_ua import parse_client
from memproxy_cli.gateway.identity import CompiledMappings, Identity, resolve_identity

CONFIG = """
user_id_mappings:
  default_user_id: someone
  header_patterns:
    - {header: User-Agent, pattern: "claude-cli/.*", user_id: claude-user}
    - {header: user-agent, pattern: ".*PyCharm.*", user_id: pycharm-user}
    - {header: X-Team, pattern: "^infra$", user_id: infra-user}
"""


@pytest.fixture(scope="module")
def mappings() -> CompiledMappings:
    return CompiledMappings.from_config(parse_config(CONFIG).user_id_mappings)


def main_port(headers: dict[str, str], mappings: CompiledMappings) -> Identity:
    return resolve_identity(headers, None, mappings)


def test_patterns_are_compiled_at_load(mappings: CompiledMappings) -> None:
    assert all(isinstance(rule.pattern, re.Pattern) for rule in mappings.rules)
    assert [r.header for r in mappings.rules] == ["user-agent", "user-agent", "x-team"]


def test_explicit_header_beats_patterns(mappings: CompiledMappings) -> None:
    who = main_port({"X-Memory-User-Id": "alice", "User-Agent": "claude-cli/2.0.14"}, mappings)
    assert (who.user_id, who.project, who.scope) == ("alice", None, "user:alice")


@pytest.mark.parametrize(
    ("headers", "user"),
    [
        ({"User-Agent": "claude-cli/2.0.14 (external, cli)"}, "claude-user"),
        ({"user-agent": "Mozilla/5.0 PyCharm/2024.3"}, "pycharm-user"),
        ({"x-team": "infra"}, "infra-user"),
        ({"x-team": "infra-2"}, "someone"),
        ({"User-Agent": "curl/8.5.0"}, "someone"),
        ({}, "someone"),
        ({"x-memory-user-id": "   ", "User-Agent": "claude-cli/2"}, "claude-user"),
    ],
)
def test_main_port_user_precedence(
    headers: dict[str, str], user: str, mappings: CompiledMappings
) -> None:
    who = main_port(headers, mappings)
    assert (who.user_id, who.scope) == (user, f"user:{user}")


@pytest.mark.parametrize("bad", ["bad\x00id", "../../v3/admin#", "a/b", "..", "-rf", "x" * 129])
@pytest.mark.parametrize("project", [None, "shop"])
def test_an_unsafe_explicit_user_id_is_refused(
    bad: str, project: str | None, mappings: CompiledMappings
) -> None:
    with pytest.raises(GatewayError) as caught:
        resolve_identity({"x-memory-user-id": bad}, project, mappings)
    assert (caught.value.status, caught.value.code) == (400, "invalid_user_id")


def test_first_matching_rule_wins(mappings: CompiledMappings) -> None:
    who = main_port({"User-Agent": "claude-cli/2.0 via PyCharm"}, mappings)
    assert who.user_id == "claude-user"


def test_no_rules_uses_the_default() -> None:
    assert main_port({"User-Agent": "claude-cli/2"}, CompiledMappings()).user_id == "default"


def test_project_header_on_main_port(mappings: CompiledMappings) -> None:
    who = main_port({"x-memproxy-project": "shop", "x-memory-user-id": "bob"}, mappings)
    assert (who.project, who.user_id, who.scope) == ("shop", "bob", "shop")


@pytest.mark.parametrize("bad", ["../etc", "a b", "x" * 65, ".", "..", "-rf"])
def test_invalid_project_header_is_refused(bad: str, mappings: CompiledMappings) -> None:
    """Dropping it would file the request, its memories and spend under no project."""
    with pytest.raises(GatewayError) as refused:
        main_port({"x-memproxy-project": bad}, mappings)
    assert (refused.value.status, refused.value.code) == (400, "invalid_project")


def test_empty_project_header_means_no_project(mappings: CompiledMappings) -> None:
    who = main_port({"x-memproxy-project": " "}, mappings)
    assert (who.project, who.scope) == (None, "user:someone")


def test_project_port_identity_is_the_project(mappings: CompiledMappings) -> None:
    headers = {"User-Agent": "claude-cli/2.0.14", "x-memproxy-project": "shop"}
    who = resolve_identity(headers, "shop", mappings)
    assert (who.project, who.user_id, who.scope) == ("shop", "shop", "shop")
    who = resolve_identity({"User-Agent": "claude-cli/2.0.14"}, "shop", mappings)
    assert (who.project, who.user_id, who.scope) == ("shop", "shop", "shop")


def test_project_port_refuses_another_project(mappings: CompiledMappings) -> None:
    headers = {"User-Agent": "claude-cli/2.0.14", "x-memproxy-project": "other"}
    with pytest.raises(GatewayError) as err:
        resolve_identity(headers, "shop", mappings)
    assert err.value.status == 403 and err.value.code == "project_mismatch"


def test_project_port_keeps_an_explicit_user(mappings: CompiledMappings) -> None:
    who = resolve_identity({"X-MEMORY-USER-ID": "carol"}, "shop", mappings)
    assert (who.project, who.user_id, who.scope) == ("shop", "carol", "shop")


def test_client_fields_are_recorded(mappings: CompiledMappings) -> None:
    headers = {
        "User-Agent": "claude-cli/2.0.14 (external, cli)",
        "X-Claude-Code-Session-Id": "sess-1",
        "X-PyCharm-Instance": "inst-9",
    }
    who = resolve_identity(headers, "shop", mappings)
    assert (who.client, who.client_version) == ("claude-cli", "2.0.14")
    assert (who.client_session, who.client_instance) == ("sess-1", "inst-9")


@pytest.mark.parametrize(
    ("header", "value"),
    [("session-id", "codex-1"), ("x-opencode-session", "oc-7"), ("X-Claude-Code-Session-Id", "cc")],
)
def test_each_clients_session_header_is_recorded(
    mappings: CompiledMappings, header: str, value: str
) -> None:
    assert resolve_identity({header: value}, "shop", mappings).client_session == value


def test_missing_client_fields_are_none(mappings: CompiledMappings) -> None:
    who = main_port({}, mappings)
    assert (who.client, who.client_version, who.client_instance, who.client_session) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("claude-cli/2.0.14 (external, cli)", ("claude-cli", "2.0.14")),
        ("OpenAI/Python 1.54.3", ("openai-python", "1.54.3")),
        ("AsyncOpenAI/Python 2.1.0", ("openai-python", "2.1.0")),
        ("Anthropic/Python 0.70.1", ("anthropic-python", "0.70.1")),
        ("AsyncAnthropic/Python 0.70.1", ("anthropic-python", "0.70.1")),
        ("OpenAI/JS 4.77.0", ("openai-node", "4.77.0")),
        ("Anthropic/JS 0.32.1", ("anthropic-node", "0.32.1")),
        ("PyCharm/2024.3.1 (JetBrains AI Assistant)", ("pycharm", "2024.3.1")),
        ("JetBrains AI Assistant/243.1", ("jetbrains", "243.1")),
        ("IntelliJ IDEA/2024.2", ("intellij", "2024.2")),
        ("curl/8.5.0", ("curl", "8.5.0")),
        ("python-requests/2.32.3", ("python-requests", "2.32.3")),
        ("Python/3.11 aiohttp/3.14.5", ("aiohttp", "3.14.5")),
        ("python-httpx/0.28.1", ("httpx", "0.28.1")),
        ("litellm/1.106.2", ("litellm", "1.106.2")),
        ("Cursor/0.45.1", ("cursor", "0.45.1")),
        ("Continue/1.0.0", ("continue", "1.0.0")),
        ("aider/0.70.0 OpenAI/Python 1.54.3", ("aider", "0.70.0")),
        ("Mozilla/5.0 (X11; Linux x86_64)", ("Mozilla", "5.0")),
        ("Ktor client", ("Ktor", None)),
        ("", (None, None)),
        ("   ", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_client(agent: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_client(agent) == expected

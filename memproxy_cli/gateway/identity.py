"""Who is calling: project, user id, memory scope and client, from headers and the listener."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.client_ua import parse_client
from memproxy_cli.names import PROJECT_RULE, USER_ID_RULE, is_project_name, is_user_id

if TYPE_CHECKING:
    from memproxy_cli.config import UserIdMappings

USER_ID_HEADER = "x-memory-user-id"
PROJECT_HEADER = "x-memproxy-project"
INSTANCE_HEADER = "x-pycharm-instance"
# The session headers coding clients send, first match wins: Claude Code, Codex CLI, opencode.
SESSION_HEADERS = ("x-claude-code-session-id", "session-id", "x-opencode-session")

_READ_HEADERS = (USER_ID_HEADER, PROJECT_HEADER, "user-agent", INSTANCE_HEADER, *SESSION_HEADERS)

# Header values end up in log rows: printable, bounded.
_RECORDABLE = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


@dataclass(frozen=True)
class Identity:
    project: str | None
    user_id: str
    scope: str
    client: str | None
    client_version: str | None
    client_instance: str | None
    client_session: str | None


@dataclass(frozen=True)
class HeaderRule:
    header: str
    pattern: re.Pattern[str]
    user_id: str


@dataclass(frozen=True)
class CompiledMappings:
    """`user_id_mappings` with every pattern compiled once, at config load."""

    rules: tuple[HeaderRule, ...] = ()
    default_user_id: str = "default"
    # Every header an identity is derived from, and the identities found for the values seen
    # (callers send the same few combinations on every request; see `resolve_identity`).
    read_headers: tuple[str, ...] = field(init=False, compare=False, repr=False)
    known: dict[tuple[str | None, ...], Identity] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        names = (*_READ_HEADERS, *(rule.header for rule in self.rules))
        object.__setattr__(self, "read_headers", names)

    @classmethod
    def from_config(cls, mappings: UserIdMappings) -> CompiledMappings:
        rules = tuple(
            HeaderRule(p.header.lower(), re.compile(p.pattern), p.user_id)
            for p in mappings.header_patterns
        )
        return cls(rules, mappings.default_user_id)

    def user_for(self, headers: Mapping[str, str]) -> str:
        """The user id of the first rule whose regex is found in its header, else the default."""
        for rule in self.rules:
            value = headers.get(rule.header)
            if value is not None and rule.pattern.search(value):
                return rule.user_id
        return self.default_user_id


_KNOWN_KEPT = 256  # identities kept per mappings; all are dropped when it is full


def resolve_identity(
    headers: Mapping[str, str], listener_project: str | None, mappings: CompiledMappings
) -> Identity:
    """Identity of one request; `listener_project` is set when it arrived on a project port.

    An identity depends only on the listener and the values of `mappings.read_headers`, so
    one found for the same values is used again (a request refused is never kept)."""
    if not isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return _resolve(headers, listener_project, mappings)
    key = (listener_project, *map(headers.get, mappings.read_headers))
    known = mappings.known
    identity = known.get(key)
    if identity is None:
        identity = _resolve(headers, listener_project, mappings)
        if len(known) >= _KNOWN_KEPT:
            known.clear()
        known[key] = identity
    return identity


def _resolve(
    headers: Mapping[str, str], listener_project: str | None, mappings: CompiledMappings
) -> Identity:
    lowered = _lower(headers)
    explicit_user = _user_id(lowered.get(USER_ID_HEADER))
    if listener_project is not None:
        _only_own_project(lowered.get(PROJECT_HEADER), listener_project)
        project: str | None = listener_project
        user_id = explicit_user or listener_project
    else:
        project = _project(lowered.get(PROJECT_HEADER))
        user_id = explicit_user or mappings.user_for(lowered)
    client, version = parse_client(lowered.get("user-agent"))
    return Identity(
        project=project,
        user_id=user_id,
        scope=project if project else f"user:{user_id}",
        client=client,
        client_version=version,
        client_instance=_recordable(lowered.get(INSTANCE_HEADER)),
        client_session=_session(lowered),
    )


def _only_own_project(claimed: str | None, listener_project: str) -> None:
    """A project port answers for its own project only: naming another is refused, not obeyed."""
    if claimed is None or claimed.strip() == listener_project:
        return
    raise GatewayError(
        403,
        f"this listener serves project {listener_project!r} only; "
        f"{PROJECT_HEADER} names another project",
        "project_mismatch",
        row_status="rejected",
    )


def _session(headers: Mapping[str, str]) -> str | None:
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return _recordable(value)
    return None


def _lower(headers: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return headers  # aiohttp's request headers already ignore case
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered.setdefault(key.lower(), value)
    return lowered


def _recordable(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if _RECORDABLE.fullmatch(value) else None


def _user_id(value: str | None) -> str | None:
    """The explicit user id; one outside the allowlist is refused, never mapped to another user."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not is_user_id(value):
        raise GatewayError(
            400, f"invalid {USER_ID_HEADER} header: use {USER_ID_RULE}", "invalid_user_id"
        )
    return value


def _project(value: str | None) -> str | None:
    """The project a request names; a malformed name is refused rather than dropped (dropping
    it would file the request, its memories and its spend under no project at all)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not is_project_name(value):
        raise GatewayError(
            400, f"invalid {PROJECT_HEADER} header: use {PROJECT_RULE}", "invalid_project"
        )
    return value

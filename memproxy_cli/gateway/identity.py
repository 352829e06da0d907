"""Who is calling: project, user id and client (placeholder until the full rules land)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from memproxy_cli.config import UserIdMappings


@dataclass(frozen=True, slots=True)
class Identity:
    project: str | None
    user_id: str
    scope: str
    client: str | None = None
    client_version: str | None = None
    client_instance: str | None = None
    client_session: str | None = None


class CompiledMappings:
    def __init__(self, mappings: UserIdMappings) -> None:
        self.mappings = mappings


def resolve_identity(
    headers: Mapping[str, str],
    listener_project: str | None,
    mappings: UserIdMappings,
    compiled: CompiledMappings,
) -> Identity:
    project = listener_project or headers.get("x-memproxy-project")
    user_id = headers.get("x-memory-user-id") or project or mappings.default_user_id
    return Identity(project=project, user_id=user_id, scope=project or f"user:{user_id}")

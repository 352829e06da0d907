"""Config of memory: `memory` and a project's `memory` overrides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from memproxy_cli.config_base import _Model


class LocalMemoryConfig(_Model):
    path: str | None = Field(
        None, description="Local backend SQLite file (default: memory.sqlite3 in the data dir)."
    )
    recency_half_life_days: float = Field(
        30.0, gt=0, description="Age at which a memory's recency boost halves in ranking."
    )
    embeddings: bool = Field(
        True,
        description=(
            "Recall by meaning as well as by words, with the packaged all-MiniLM-L6-v2 model "
            "(the daemon loads it in the background; about 120 MB of memory). false: words only."
        ),
    )


class SupermemoryConfig(_Model):
    api_key: str | None = Field(
        "os.environ/SUPERMEMORY_API_KEY",
        description="Supermemory API key (an os.environ/NAME reference).",
    )
    base_url: str = Field("https://api.supermemory.ai", description="Supermemory API base URL.")


QueryStrategy = Literal["last_user", "first_user", "all_user", "last_n"]
InjectionStrategy = Literal["system", "user_prefix", "user_suffix"]


class MemoryConfig(_Model):
    backend: Literal["local", "supermemory", "none"] = Field(
        "local",
        description="Where memories live: local (SQLite FTS5 and embeddings; in PostgreSQL, "
        "shared by every instance, when database_url is PostgreSQL), supermemory, or none (off).",
    )
    query_strategy: QueryStrategy = Field(
        "last_user",
        description="What recall searches for: last_user, first_user, all_user or last_n.",
    )
    n: int = Field(3, ge=1, description="How many recent user messages last_n uses.")
    injection_strategy: InjectionStrategy | None = Field(
        None,
        description="Where memories go: system, user_prefix, user_suffix (unset: user_suffix).",
    )
    top_k: int = Field(
        5, ge=0, le=100, description="Most memories injected per request (0 turns recall off)."
    )
    max_chars: int = Field(
        2000, ge=0, description="Most characters of memories injected per request."
    )
    recall_timeout_ms: int = Field(
        300,
        ge=1,
        description="Time budget for recall; past it the request goes on without memories.",
    )
    store: bool = Field(
        True, description="Save each turn as a memory after the response (in the background)."
    )
    recall_into_subagents: bool = Field(
        False,
        description="Inject memories into subagent conversations (started by another "
        "conversation's tool call); their prompts are never stored either way.",
    )
    extract_model: str | None = Field(
        None,
        description="A model (a model_list name or a pass-through model) that distils each "
        "stored turn into short facts in the background; the facts are recalled instead of "
        "the turn, and the call is the project's spend. Unset: turns are stored as they are.",
    )
    local: LocalMemoryConfig = Field(
        default_factory=LocalMemoryConfig, description="Settings of the local backend."
    )
    supermemory: SupermemoryConfig = Field(
        default_factory=SupermemoryConfig, description="Settings of the Supermemory backend."
    )


class MemoryOverride(_Model):
    """Per-project memory settings; unset fields inherit the global ones."""

    backend: Literal["local", "supermemory", "none"] | None = Field(
        None, description="Memory backend for this project."
    )
    query_strategy: QueryStrategy | None = Field(
        None, description="Query strategy for this project."
    )
    n: int | None = Field(None, ge=1, description="last_n count for this project.")
    injection_strategy: InjectionStrategy | None = Field(
        None, description="Injection strategy for this project."
    )
    top_k: int | None = Field(
        None, ge=0, le=100, description="Most memories injected for this project."
    )
    max_chars: int | None = Field(
        None, ge=0, description="Most characters of memories for this project."
    )
    recall_timeout_ms: int | None = Field(
        None, ge=1, description="Recall time budget for this project."
    )
    store: bool | None = Field(None, description="Whether this project's turns are stored.")
    recall_into_subagents: bool | None = Field(
        None, description="Whether this project's subagent conversations get memories."
    )
    extract_model: str | Literal[False] | None = Field(
        None,
        description="The model that distils this project's turns into facts; false: none "
        "for this project (where memory.extract_model sets one for every project).",
    )

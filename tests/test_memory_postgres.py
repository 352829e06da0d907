"""Team memory: two gateway instances on one PostgreSQL recall, forget and keep scopes alike.

Each test runs against a database where pgvector cannot be had (the gateway ranks the
vectors) and one where it can (the server ranks them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import psycopg
import pytest

from memproxy_cli.config import Config
from memproxy_cli.memory.cached_backend import CachedBackend
from memproxy_cli.memory.postgres import PostgresMemoryBackend, libpq_url
from memproxy_cli.memory.postgres_schema import enable_pgvector, migrate, migration_names
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

FACT = "Our orders service stores everything in PostgreSQL 16, database orders_db."
QUESTION = "Which database does the orders service use?"
PET = "My dog is called Biscuit, she is a beagle."
PET_QUESTION = "What is the name of my pet?"


@pytest.fixture(params=["fallback", "pgvector"])
def team_db(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """A fresh database, and whether its server has pgvector."""
    if request.param == "pgvector":
        return str(request.getfixturevalue("pgvector_url")), True
    return str(request.getfixturevalue("plain_role_url")), False


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    provider.behaviour.reply = "Noted."
    yield provider
    await provider.close()


@asynccontextmanager
async def two_instances(config: Config) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    async with (
        running_gateway(config, litellm=False) as a,
        running_gateway(config, litellm=False) as b,
    ):
        yield a, b


def backend_of(gw: RunningGateway) -> PostgresMemoryBackend:
    assert gw.memory is not None
    backend = gw.memory.backend_for(gw.state.config.memory)
    if isinstance(backend, CachedBackend):
        backend = backend._backend
    assert isinstance(backend, PostgresMemoryBackend)
    return backend


def client(gw: RunningGateway, project: str | None, user: str | None = None) -> openai.AsyncOpenAI:
    headers = {"x-memproxy-project": project} if project else {}
    if user:
        headers["x-memory-user-id"] = user
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1", api_key="k", max_retries=0, default_headers=headers
    )


async def tell(gw: RunningGateway, text: str, project: str | None, user: str | None = None) -> None:
    async with client(gw, project, user) as c:
        await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    assert gw.memory is not None
    await gw.memory.drain(10)
    assert gw.memory.pending == 0


async def ask(
    gw: RunningGateway, text: str, project: str | None, user: str | None = None
) -> tuple[int, str]:
    """How many memories were injected, and what the upstream received."""
    async with client(gw, project, user) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="memproxy/echo", messages=[{"role": "user", "content": text}]
        )
    reply = raw.parse()
    view = json.loads(reply.choices[0].message.content or "{}")
    return int(raw.headers["x-memproxy-memories"]), json.dumps(view["messages"])


async def ready(*gateways: RunningGateway) -> None:
    """Every instance has its model loaded and every memory its vector."""
    for gw in gateways:
        assert await asyncio.to_thread(backend_of(gw).wait_embedded_sync)


async def test_a_turn_stored_through_one_instance_is_recalled_through_the_other(
    fake: FakeProvider, team_db: tuple[str, bool]
) -> None:
    url, has_pgvector = team_db
    config = config_for(fake.base, database_url=url, memory={"backend": "local"})
    async with two_instances(config) as (a, b):
        assert await asyncio.to_thread(lambda: backend_of(b).uses_pgvector) is has_pgvector
        await tell(a, FACT, "alpha")
        count, seen = await ask(b, QUESTION, "alpha")
        assert count == 1 and "orders_db" in seen
        # Other scopes never see it: another project, a user without a project.
        assert (await ask(b, QUESTION, "beta"))[0] == 0
        assert (await ask(b, QUESTION, None, user="ann"))[0] == 0
        # Forget through B: A no longer recalls it.
        memories = await backend_of(b).list("alpha")
        assert len(memories) == 1 and "orders_db" in memories[0].text
        assert await backend_of(b).forget("alpha", memories[0].id)
        count, seen = await ask(a, QUESTION, "alpha")
        assert count == 0 and "orders_db" not in seen
        assert await backend_of(a).list("alpha") == []


async def test_user_scopes_never_leak_between_people(
    fake: FakeProvider, team_db: tuple[str, bool]
) -> None:
    config = config_for(fake.base, database_url=team_db[0], memory={"backend": "local"})
    async with two_instances(config) as (a, b):
        await tell(a, FACT, None, user="ann")
        count, seen = await ask(b, QUESTION, None, user="ann")
        assert count == 1 and "orders_db" in seen
        count, seen = await ask(b, QUESTION, None, user="bob")
        assert count == 0 and "orders_db" not in seen
        assert (await ask(b, QUESTION, "alpha", user="ann"))[0] == 0


async def test_recall_by_meaning_sees_the_other_instances_new_and_forgotten_memories(
    fake: FakeProvider, team_db: tuple[str, bool]
) -> None:
    config = config_for(fake.base, database_url=team_db[0], memory={"backend": "local"})
    async with two_instances(config) as (a, b):
        await tell(a, PET, "alpha")
        await tell(a, "The CI pipeline runs on every push to main.", "alpha")
        await ready(a, b)
        count, seen = await ask(b, PET_QUESTION, "alpha")  # no word in common with the fact
        assert count >= 1 and "Biscuit" in seen
        # A memory A stores after B has searched the scope is found by meaning through B.
        await tell(a, "My sister lives in Lisbon with her two cats.", "alpha")
        await ready(a, b)
        count, seen = await ask(b, "Which city is my sibling based in?", "alpha")
        assert count >= 1 and "Lisbon" in seen
        # Forgotten through A: B's recall by meaning no longer finds it.
        pet = [m for m in await backend_of(a).list("alpha") if "Biscuit" in m.text]
        assert len(pet) == 1 and await backend_of(a).forget("alpha", pet[0].id)
        count, seen = await ask(b, PET_QUESTION, "alpha")
        assert "Biscuit" not in seen
        assert (await ask(b, PET_QUESTION, "beta"))[0] == 0


async def test_the_newest_value_wins_across_instances(
    fake: FakeProvider, team_db: tuple[str, bool]
) -> None:
    config = config_for(fake.base, database_url=team_db[0], memory={"backend": "local"})
    async with two_instances(config) as (a, b):
        await tell(a, "Our staging database listens on port 5433.", "alpha")
        await tell(b, "We moved the staging database to port 6543 this week.", "alpha")
        await tell(a, "We moved the staging database to port 6543 this week.", "alpha")  # again
        await ready(a, b)
        count, seen = await ask(a, "What port is staging on now?", "alpha")
        assert count >= 1 and "6543" in seen and "5433" not in seen
        memories = await backend_of(a).list("alpha")
        assert len(memories) == 2, "the repeated turn is one memory, refreshed"
        repeated = next(m for m in memories if "6543" in m.text)
        assert repeated.metadata.get("repeats") == 1


EXTRACT_MARKER = "extract durable facts"  # in memproxy's extraction prompt only
TOLD = "Please note for later: the orders service keeps its data in PostgreSQL 16, orders_db."
FACTS = [
    "The orders service stores its data in PostgreSQL 16.",
    "The orders service's database is named orders_db.",
]


async def test_facts_one_instance_extracts_are_recalled_and_forgotten_through_the_other(
    fake: FakeProvider, team_db: tuple[str, bool]
) -> None:
    fake.behaviour.marked = [(EXTRACT_MARKER, 200, json.dumps({"facts": FACTS}))]
    config = config_for(
        fake.base,
        database_url=team_db[0],
        memory={"backend": "local", "extract_model": "gpt-4o-mini"},
    )
    async with two_instances(config) as (a, b):
        await tell(a, TOLD, "alpha")
        assert [s for s in fake.seen if EXTRACT_MARKER.encode() in s.raw], "one extraction call"
        memories = await backend_of(b).export("alpha")
        [turn] = [m for m in memories if m.metadata.get("kind") != "fact"]
        facts = [m for m in memories if m.metadata.get("kind") == "fact"]
        assert turn.metadata["facts"] == 2 and TOLD in turn.text
        assert sorted(m.text for m in facts) == sorted(FACTS)
        assert {m.metadata["fact_of"] for m in facts} == {turn.id}
        await ready(a, b)
        count, seen = await ask(b, QUESTION, "alpha")
        assert count == 2 and FACTS[0] in seen and FACTS[1] in seen
        assert "Please note for later" not in seen  # the distilled turn is not injected
        assert (await ask(b, QUESTION, "beta"))[0] == 0
        # Forgetting the turn through B forgets its facts for A too.
        assert await backend_of(b).forget("alpha", turn.id)
        assert await backend_of(a).export("alpha") == []
        count, seen = await ask(a, QUESTION, "alpha")
        assert count == 0 and "orders_db" not in seen


async def test_forgetting_one_fact_keeps_the_turn_and_its_other_facts(
    fake: FakeProvider, postgres_url: str
) -> None:
    fake.behaviour.marked = [(EXTRACT_MARKER, 200, json.dumps({"facts": FACTS}))]
    config = config_for(
        fake.base,
        database_url=postgres_url,
        memory={"backend": "local", "extract_model": "gpt-4o-mini"},
    )
    async with running_gateway(config, litellm=False) as gw:
        await tell(gw, TOLD, "alpha")
        await tell(gw, TOLD, "beta")  # the same turn in another project: its own facts
        backend = backend_of(gw)
        alpha = await backend.export("alpha")
        fact = next(m for m in alpha if m.metadata.get("kind") == "fact")
        assert await backend.forget("alpha", fact.id)
        left = await backend.export("alpha")
        assert len(left) == 2 and fact.id not in {m.id for m in left}
        beta = await backend.export("beta")
        [beta_turn] = [m for m in beta if m.metadata.get("kind") != "fact"]
        assert await backend.forget("beta", beta_turn.id)
        assert await backend.export("beta") == []
        assert len(await backend.export("alpha")) == 2, "another scope's facts are kept"


async def asked_until_cached(gw: RunningGateway, cache: Any) -> None:
    """Ask QUESTION until its answer is in Redis (a fill runs after the recall, within a short
    timeout that a loaded machine can miss)."""
    from memproxy_cli.budget.recall_cache import scope_key

    key = scope_key(f"{backend_of(gw).cache_namespace}:alpha")
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        await ask(gw, QUESTION, "alpha")
        if await cache.exists(key):
            return
        assert asyncio.get_running_loop().time() < deadline, "the shared store's recalls are cached"
        await asyncio.sleep(0.05)


async def test_forget_is_seen_through_the_shared_recall_cache(
    fake: FakeProvider, postgres_url: str, redis_url: str
) -> None:
    import redis.asyncio

    config = config_for(
        fake.base, database_url=postgres_url, redis_url=redis_url, memory={"backend": "local"}
    )
    cache = redis.asyncio.Redis.from_url(redis_url)
    async with two_instances(config) as (a, b):
        # A cached empty answer is dropped by a new turn of the scope, whoever stores it.
        await asked_until_cached(b, cache)
        await tell(a, FACT, "alpha")
        assert (await ask(b, QUESTION, "alpha"))[0] == 1
        await asked_until_cached(b, cache)
        assert (await ask(b, QUESTION, "alpha"))[0] == 1  # from the cache now
        assert a.memory is not None
        shared = a.memory.backend_for(config.memory)
        assert isinstance(shared, CachedBackend), "the shared store is behind the cache"
        memories = await shared.list("alpha")
        assert await shared.forget("alpha", memories[0].id)
        count, seen = await ask(b, QUESTION, "alpha")
        assert count == 0 and "orders_db" not in seen
    await cache.aclose()


def test_migrations_are_numbered_and_run_once(postgres_url: str) -> None:
    results: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
            results.append(migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=len) == [[], [], migration_names()]
    assert migration_names()[:4] == [
        "m001_memories",
        "m002_scope_seq",
        "m003_fact_of",
        "m004_scope_vector_counts",
    ]
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        rows = conn.execute("SELECT name FROM _memproxy_memory_migrations").fetchall()
        assert [r[0] for r in rows] == migration_names()


def test_a_store_of_the_previous_release_gains_the_facts_index(postgres_url: str) -> None:
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        assert migrate(conn, upto="m002_scope_seq") == ["m001_memories", "m002_scope_seq"]
        conn.execute(
            "INSERT INTO memproxy_memories (id, scope, text, user_text, assistant_text, "
            "created_at, metadata) VALUES ('t1', 'alpha', 'x', 'x', '', 1, '{}')"
        )
        assert migrate(conn, upto="m003_fact_of") == ["m003_fact_of"]
        [(definition,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'memproxy_memories_fact_of'"
        ).fetchall()
        assert "fact_of" in definition
        assert conn.execute("SELECT count(*) FROM memproxy_memories").fetchone() == (1,)


def _vector_counts(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Each scope's vectors as the trigger counted them, and as counted in the table."""
    kept = dict(conn.execute("SELECT scope, vectors FROM memproxy_scope_vectors").fetchall())
    real = dict(
        conn.execute(
            "SELECT scope, count(*) FROM memproxy_memories WHERE embedded_seq IS NOT NULL "
            "GROUP BY scope"
        ).fetchall()
    )
    return {k: v for k, v in kept.items() if v}, real


def test_each_scopes_count_of_vectors_follows_every_write(postgres_url: str) -> None:
    insert = (
        "INSERT INTO memproxy_memories (id, scope, text, user_text, assistant_text, created_at, "
        "dedup, embedded_seq) VALUES (%s, %s, 'x', 'x', '', 1, %s, "
        "CASE WHEN %s THEN nextval('memproxy_memories_embedded_seq') END) "
        "ON CONFLICT (scope, dedup) WHERE dedup IS NOT NULL DO UPDATE SET created_at = 2"
    )
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        assert migrate(conn, upto="m003_fact_of")[-1] == "m003_fact_of"
        # A store of the previous release: its vectors are counted by the migration.
        conn.execute(insert, ("old1", "alpha", "d-old1", True))
        conn.execute(insert, ("old2", "alpha", None, False))
        assert migrate(conn) == ["m004_scope_vector_counts"]
        kept, real = _vector_counts(conn)
        assert kept == real == {"alpha": 1}
        conn.execute(insert, ("a1", "alpha", "d-a1", True))
        conn.execute(insert, ("a1-again", "alpha", "d-a1", True))  # a repeat: an update
        conn.execute(insert, ("b1", "beta", None, True))
        conn.execute(insert, ("b2", "beta", None, False))
        conn.execute(
            "UPDATE memproxy_memories SET embedded_seq = "
            "nextval('memproxy_memories_embedded_seq') WHERE id IN ('b2', 'old2')"
        )
        kept, real = _vector_counts(conn)
        assert kept == real == {"alpha": 3, "beta": 2}
        with conn.transaction():  # a write that rolls back leaves no count behind
            conn.execute(insert, ("b3", "beta", None, True))
            conn.execute("DELETE FROM memproxy_memories WHERE id = 'a1'")
            assert _vector_counts(conn)[0] == {"alpha": 2, "beta": 3}
            raise psycopg.Rollback()
        conn.execute("DELETE FROM memproxy_memories WHERE id IN ('old1', 'b1')")
        kept, real = _vector_counts(conn)
        assert kept == real == {"alpha": 2, "beta": 1}


def test_pgvector_is_used_only_where_it_can_be_had(plain_role_url: str, pgvector_url: str) -> None:
    for url, expected in ((plain_role_url, False), (pgvector_url, True)):
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            migrate(conn)
            assert enable_pgvector(conn) is expected
            column = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE column_name = 'embedding_v'"
            ).fetchone()
            assert (column is not None) is expected


def test_a_role_that_may_not_create_the_extension_falls_back(pgvector_server: Any) -> None:
    from memproxy_cli.memory.backend import Turn

    with psycopg.connect(libpq_url(pgvector_server.url()), autocommit=True) as conn:
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute("CREATE ROLE plain LOGIN")
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn.execute(f"CREATE DATABASE {name} OWNER plain".encode())
    store = PostgresMemoryBackend(pgvector_server.url(name).replace("postgres@", "plain@", 1))
    try:
        assert store.uses_pgvector is False
        store.add_sync("p", Turn(user=FACT, assistant="Noted."))
        found = store.search_sync("p", QUESTION, 5)
        assert [m.scope for m in found] == ["p"] and "orders_db" in found[0].text
    finally:
        store.close_sync()


async def test_an_answer_read_before_another_instances_forget_is_never_cached(
    redis_url: str,
) -> None:
    from memproxy_cli.budget.recall_cache import RecallCache

    one, two = RecallCache(redis_url, timeout_s=0.5), RecallCache(redis_url, timeout_s=0.5)
    try:
        hit, generation = await one.lookup("postgres:db:alpha", QUESTION, 5)
        assert hit is None and generation is not None
        assert await two.invalidate("postgres:db:alpha")  # the other instance forgets
        stale = [{"id": "m1", "text": "forgotten"}]
        assert not await one.set("postgres:db:alpha", QUESTION, 5, stale, 30, generation)
        assert await one.get("postgres:db:alpha", QUESTION, 5) is None
        hit, generation = await one.lookup("postgres:db:alpha", QUESTION, 5)
        assert await one.set("postgres:db:alpha", QUESTION, 5, [], 30, generation)
        assert await two.get("postgres:db:alpha", QUESTION, 5) == []
    finally:
        await one.close()
        await two.close()


def test_the_memory_commands_read_and_forget_team_memories(postgres_url: str) -> None:
    import typer
    import yaml
    from typer.testing import CliRunner

    from memproxy_cli.cli import memory_cmds
    from memproxy_cli.memory.backend import Turn
    from memproxy_cli.paths import get_paths

    paths = get_paths().ensure()
    paths.default_config.write_text(yaml.safe_dump({"database_url": postgres_url}))
    store = PostgresMemoryBackend(postgres_url)
    try:
        kept = store.add_sync("alpha", Turn(FACT, "Noted.", client="claude-cli"))
        store.add_sync("beta", Turn("beta uses MySQL", "ok"))
    finally:
        store.close_sync()
    root = typer.Typer()
    root.callback()(lambda: None)
    memory_cmds.register(root)

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(root, ["memory", *args])
        return result.exit_code, result.stdout

    code, out = invoke("list", "-p", "alpha", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [kept]
    code, out = invoke("search", "orders database", "-p", "alpha", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [kept]
    code, out = invoke("stats", "-p", "alpha", "--json")
    assert code == 0 and json.loads(out)["memories"] == 1
    assert set(json.loads(out)["by_client"]) == {"claude-cli"}
    assert invoke("forget", kept, "-p", "beta")[0] == 5  # another project's memory: not found
    code, out = invoke("forget", kept, "-p", "alpha", "--json")
    assert code == 0 and json.loads(out) == {"id": kept, "forgotten": True}
    assert json.loads(invoke("list", "-p", "alpha", "--json")[1]) == []
    assert not paths.local_memory(None).exists(), "no local file is made for team memory"


def test_recall_of_a_large_scope_ranks_each_terms_newest_matches_and_every_rare_match(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the window of newest memories, a common word contributes only its newest matches,
    and a word found only in an old memory is still found (through the GIN index)."""
    from memproxy_cli.memory import postgres_text
    from memproxy_cli.memory.backend import Turn

    monkeypatch.setattr(postgres_text, "WINDOW", 20)
    monkeypatch.setattr(postgres_text, "PER_TERM", 5)
    store = PostgresMemoryBackend(postgres_url)
    try:
        old = store.add_sync("alpha", Turn("The zebra cluster listens on port 7000.", "ok"))
        deploys = [
            store.add_sync("alpha", Turn(f"We deploy release {i} on Fridays.", "ok"))
            for i in range(40)
        ]
        store.add_sync("beta", Turn("beta deploys zebra builds too", "ok"))
        conn = psycopg.connect(libpq_url(postgres_url))
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id, seq FROM memproxy_memories WHERE scope = 'alpha'")
            seq_of: dict[str, int] = dict(cur.fetchall())
            found = postgres_text.lexical_candidates(cur, "alpha", ["zebra", "deploy"], 50)
        newest = {seq_of[i] for i in deploys[-5:]}
        assert set(found) == newest | {seq_of[old]}, "the newest 5 deploys and the one zebra"
        recalled = store.search_sync("alpha", "zebra deploy", 10)
        assert old in [m.id for m in recalled]
        assert all(m.scope == "alpha" for m in recalled)
        assert {m.id for m in store.search_sync("alpha", "deploy releases", 3)} <= set(deploys[-5:])
    finally:
        store.close_sync()

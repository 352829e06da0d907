"""Query and injection strategies on OpenAI chat and Anthropic Messages bodies."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.openai_chat import OPENAI_CHAT
from memproxy_cli.memory.backend import Memory
from memproxy_cli.memory.conversation import Conversation
from memproxy_cli.memory.conversation import new_user_text as _new_user_text
from memproxy_cli.memory.strategies import BLOCK_CLOSE, BLOCK_OPEN, render_block
from memproxy_cli.memory.strategies import build_query as _build_query
from memproxy_cli.memory.strategies import drop_present as _drop_present
from memproxy_cli.memory.strategies import is_background_call as _is_background_call

FAMILIES = {"anthropic": ANTHROPIC_MESSAGES, "openai": OPENAI_CHAT}


def conversation(body: dict[str, Any], api: str = "anthropic") -> Conversation:
    return FAMILIES[api].conversation(body)


def new_user_text(body: dict[str, Any]) -> str | None:
    return _new_user_text(conversation(body))


def is_background_call(api: str, body: dict[str, Any]) -> bool:
    return _is_background_call(conversation(body, api))


def build_query(body: dict[str, Any], strategy: Any, n: int = 3) -> str:
    return _build_query(conversation(body), strategy, n)


def inject(api: str, body: dict[str, Any], block: str, strategy: Any) -> None:
    FAMILIES[api].inject(body, block, strategy)


def drop_present(memories: list[Memory], api: str, body: dict[str, Any]) -> list[Memory]:
    return _drop_present(memories, conversation(body, api))


BLOCK = BLOCK_OPEN + "- User: we use PostgreSQL\n  Assistant: ok\n" + BLOCK_CLOSE


def mem(text: str, i: int = 0) -> Memory:
    return Memory(id=f"m{i}", scope="p", text=text, created_at=0.0)


def anthropic_body() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Project rules.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "first question about builds"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "x"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "file body"},
                ],
            },
            {"role": "assistant", "content": "Builds use make."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>todo list empty</system-reminder>"},
                    {
                        "type": "text",
                        "text": "what database do we use?",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
    }


def openai_body() -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "first question about builds"},
            {"role": "assistant", "content": "Builds use make."},
            {"role": "user", "content": [{"type": "text", "text": "what database do we use?"}]},
        ],
    }


# -- which turns carry a new user message ---------------------------------------------------


def test_new_user_text_ignores_reminders() -> None:
    assert new_user_text(anthropic_body()) == "what database do we use?"
    assert new_user_text(openai_body()) == "what database do we use?"


def test_anthropic_tool_result_turn_carries_no_user_message() -> None:
    body = anthropic_body()
    body["messages"] = body["messages"][:3]
    assert new_user_text(body) is None
    body["messages"][2]["content"].append({"type": "text", "text": "also this"})
    assert new_user_text(body) is None  # a tool-result turn stays one


def test_openai_tool_turn_and_assistant_last_carry_no_user_message() -> None:
    body = openai_body()
    body["messages"].append({"role": "assistant", "tool_calls": [{"id": "c1"}], "content": None})
    assert new_user_text(body) is None
    body["messages"].append({"role": "tool", "tool_call_id": "c1", "content": "42"})
    assert new_user_text(body) is None
    assert new_user_text({"messages": []}) is None
    assert new_user_text({}) is None


# -- background calls -----------------------------------------------------------------------


def test_quota_probe_is_background() -> None:
    body = {
        "model": "claude-haiku",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "quota"}],
    }
    assert is_background_call("anthropic", body)


@pytest.mark.parametrize(
    "system",
    [
        "Analyze if this message indicates a new conversation topic. If it does, extract a 2-3 "
        "word title. Format your response as a JSON object with fields 'isNewTopic' and 'title'.",
        "Generate a concise, sentence-case title (3-7 words) for this coding session.",
        "Summarize this coding conversation in under 50 characters.",
        "Your task is to process Bash commands that an AI coding agent wants to run.",
    ],
)
def test_housekeeping_system_prompts_are_background(system: str) -> None:
    body = {
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": system},
        ],
        "messages": [{"role": "user", "content": "fix the login bug"}],
    }
    assert is_background_call("anthropic", body)
    oa = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "x"}]}
    assert is_background_call("openai", oa)


def test_compaction_request_in_user_message_is_background() -> None:
    text = "Your task is to create a detailed summary of the conversation so far, paying attention"
    body = {"max_tokens": 20000, "messages": [{"role": "user", "content": text}]}
    assert is_background_call("anthropic", body)


def test_ordinary_turns_are_not_background() -> None:
    assert not is_background_call("anthropic", anthropic_body())
    assert not is_background_call("openai", openai_body())
    long_system = "You are Claude Code. " + "Rules. " * 1000 + "Generate a title when asked."
    body = anthropic_body()
    body["system"] = long_system
    assert not is_background_call("anthropic", body)


# -- query strategies -----------------------------------------------------------------------


def test_query_strategies() -> None:
    body = anthropic_body()
    body["messages"][0]["content"].append({"type": "text", "text": "and tests"})
    assert build_query(body, "last_user") == "what database do we use?"
    assert build_query(body, "first_user") == "first question about builds\nand tests"
    assert build_query(body, "all_user") == (
        "what database do we use?\nfirst question about builds\nand tests"
    )
    assert build_query(body, "last_n", n=1) == "what database do we use?"
    assert build_query(openai_body(), "last_n", n=5).startswith("what database do we use?")
    assert build_query({"messages": []}, "last_user") == ""


# -- injection ------------------------------------------------------------------------------


def test_anthropic_default_touches_only_the_last_user_turn() -> None:
    body = anthropic_body()
    before = copy.deepcopy(body)
    inject("anthropic", body, BLOCK, None)
    assert json.dumps(body["system"]) == json.dumps(before["system"])
    assert json.dumps(body["messages"][:-1]) == json.dumps(before["messages"][:-1])
    last = body["messages"][-1]["content"]
    assert last[:-1] == before["messages"][-1]["content"]  # cache_control block kept as is
    assert last[-1] == {"type": "text", "text": BLOCK}


def test_anthropic_str_content_becomes_blocks() -> None:
    body = {"messages": [{"role": "user", "content": "hello there"}]}
    inject("anthropic", body, BLOCK, "user_suffix")
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "hello there"},
        {"type": "text", "text": BLOCK},
    ]
    body = {"messages": [{"role": "user", "content": "hello there"}]}
    inject("anthropic", body, BLOCK, "user_prefix")
    assert body["messages"][0]["content"][0] == {"type": "text", "text": BLOCK}


def test_anthropic_system_strategy_appends_at_the_end_of_system() -> None:
    body = anthropic_body()
    before = copy.deepcopy(body)
    inject("anthropic", body, BLOCK, "system")
    assert body["system"][:-1] == before["system"]
    assert body["system"][-1] == {"type": "text", "text": BLOCK}
    assert body["messages"] == before["messages"]
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
    inject("anthropic", body, BLOCK, "system")
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": BLOCK},
    ]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    inject("anthropic", body, BLOCK, "system")
    assert body["system"] == [{"type": "text", "text": BLOCK}]


def test_openai_default_appends_to_last_user_message() -> None:
    body = openai_body()
    before = copy.deepcopy(body)
    inject("openai", body, BLOCK, None)
    assert body["messages"][:-1] == before["messages"][:-1]
    assert body["messages"][-1]["content"][-1] == {"type": "text", "text": BLOCK}
    body = {"messages": [{"role": "user", "content": "hi"}]}
    inject("openai", body, BLOCK, None)
    assert body["messages"][0]["content"] == f"hi\n\n{BLOCK}"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    inject("openai", body, BLOCK, "user_prefix")
    assert body["messages"][0]["content"] == f"{BLOCK}\n\nhi"


def test_openai_system_strategy_goes_after_leading_system_messages() -> None:
    body = openai_body()
    inject("openai", body, BLOCK, "system")
    assert [m["role"] for m in body["messages"]] == [
        "system",
        "developer",
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert body["messages"][2] == {"role": "system", "content": BLOCK}


# -- rendering and dedupe -------------------------------------------------------------------


def test_render_block_respects_top_k_and_max_chars() -> None:
    memories = [mem(f"User: fact number {i}\nAssistant: " + "x" * 50, i) for i in range(10)]
    block, count = render_block(memories, top_k=3, max_chars=10_000)
    assert count == 3
    assert block.startswith(BLOCK_OPEN) and block.endswith(BLOCK_CLOSE)
    assert "fact number 2" in block and "fact number 3" not in block
    for limit in (0, 50, 150, 200, 333, 500, 1000):
        block, count = render_block(memories, top_k=10, max_chars=limit)
        assert len(block) <= limit
        assert (count == 0) == (block == "")


def test_render_block_cuts_a_big_one_short_when_room_is_left() -> None:
    memories = [mem("small one", 0), mem("y" * 5000, 1), mem("small two", 2)]
    block, count = render_block(memories, top_k=5, max_chars=400)
    assert count == 2  # small one whole, the big one cut short, then the block ends
    assert len(block) == 400
    assert "small one" in block and "…" in block and "small two" not in block


def test_render_block_skips_a_big_one_and_keeps_smaller_whole() -> None:
    memories = [mem("small one", 0), mem("y" * 5000, 1), mem("small two", 2)]
    overhead = len(BLOCK_OPEN) + len(BLOCK_CLOSE)
    block, count = render_block(memories, top_k=5, max_chars=overhead + 12 + 100)
    assert count == 2
    assert "small one" in block and "small two" in block and "y" * 10 not in block


def test_drop_present_removes_memories_already_in_the_conversation() -> None:
    body = anthropic_body()
    memories = [
        mem("User: first question about builds\nAssistant: Builds use make.", 0),
        mem("User: what database do we use?\nAssistant: PostgreSQL 16.", 1),
        mem("User: unrelated earlier note\nAssistant: fine", 2),
    ]
    kept = drop_present(memories, "anthropic", body)
    assert [m.id for m in kept] == ["m1", "m2"]  # the new question itself does not count
    body["messages"][-1]["content"].append(
        {"type": "text", "text": "User: unrelated earlier note\nAssistant: fine"}
    )
    assert [m.id for m in drop_present(memories, "anthropic", body)] == ["m1"]


def test_drop_present_ignores_case_and_any_kind_of_whitespace() -> None:
    body = openai_body_with(
        "earlier:\u00a0User:  WE\tuse\u2003Postgres\n\nAssistant:\u3000Noted.  ", "next question"
    )
    memories = [mem("User: we use Postgres\nAssistant: Noted.", 0), mem("User: other", 1)]
    assert [m.id for m in drop_present(memories, "openai", body)] == ["m1"]


def openai_body_with(earlier: str, last: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": earlier},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": last},
        ],
    }


@pytest.mark.parametrize("strategy", ["last_user", "first_user", "all_user", "last_n"])
def test_the_query_of_a_huge_message_is_its_beginning(strategy: Any) -> None:
    """A pasted 20 MB log is searched by its first MAX_QUERY_CHARS characters only."""
    from memproxy_cli.memory.strategies import MAX_QUERY_CHARS

    huge = "the billing service crashed " + "log line " * 2_000_000
    body = {"messages": [{"role": "user", "content": huge}]}
    query = build_query(body, strategy)
    assert len(query) == MAX_QUERY_CHARS and query.startswith("the billing service crashed")
    human = _build_query(conversation(body), strategy, 3, huge)
    assert len(human) == MAX_QUERY_CHARS

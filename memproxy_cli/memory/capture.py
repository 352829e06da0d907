"""Following an agent loop across requests, so a turn is the human's message and the final answer.

A client resends the whole conversation on every model call of its loop: the human's message,
then tool calls and tool results, until an answer that calls no tool ends the loop. The request
that carries the human's words gets a tool call back; the one that gets the final answer carries
only a tool result. The tracker keeps one small record per open loop (the human's words with
chrome removed, where that message sits, the tools used so far), found again on each leg by the
client's session headers and the conversation's first message, and checked against the message
it recorded. Each leg reads only the messages added since the last one. The records are an LRU,
bounded in number and age; a leg whose record was evicted finds its human message by walking
back from the end of the conversation once.

The request path only places a request (`leg_of`: where its last message is, whether it is the
human's, the session headers) and, on the human's leg, strips the chrome for the recall query;
the rest (`LoopTracker.observe_leg`, `finish`) runs after the answer, off the request path
(capture_worker.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memproxy_cli.memory.actions import describe, note_of
from memproxy_cli.memory.chrome import strip_chrome
from memproxy_cli.memory.conversation import Conversation, content_texts, has_tool_result

MAX_LOOPS = 2048
MAX_LOOP_AGE_S = 6 * 3600.0
MAX_CONVERSATIONS = 512  # conversations whose paragraphs are remembered (repeated chrome)
MAX_PARAGRAPHS = 256  # per conversation
MAX_ACTIONS_KEPT = 64
MARK_CHARS = 48
# Headers naming the conversation a request belongs to: Claude Code, Codex (its thread is the
# conversation, its session holds the main thread and its subagents), opencode.
SESSION_HEADERS = ("x-claude-code-session-id", "thread-id", "session-id", "x-opencode-session")
AGENT_HEADER = "x-claude-code-agent-id"  # set on Claude Code's subagent requests only
# Requests of a conversation another conversation's tool call started.
SUBAGENT_HEADERS = (AGENT_HEADER, "x-openai-subagent", "x-codex-parent-thread-id")
CODEX_TURN_METADATA = "x-codex-turn-metadata"

Key = tuple[str, str, str, int]  # scope, session, agent, mark of the first message


@dataclass(slots=True)
class OpenLoop:
    human: str  # the human's words, chrome removed
    mark: int  # hash of the human message's text, to recognise it on the next leg
    index: int  # where it sits in the conversation
    seen: int  # messages already read for tool calls
    subagent: bool
    chrome_chars: int = 0
    actions: list[str] = field(default_factory=list)
    touched: float = 0.0

    @property
    def note(self) -> str:
        return note_of(self.actions)


class Leg:
    """One request as the request path saw it, before memories were injected into its body.

    Who sent it (session, subagent) is read from the headers when first asked: on the request
    path only for the human's leg, else on the capture thread (request headers are not changed
    once parsed)."""

    __slots__ = (
        "_who",
        "conversation",
        "headers",
        "human_shaped",
        "key",
        "last_content",
        "last_index",
        "scope",
    )

    def __init__(
        self,
        conversation: Conversation,
        scope: str,
        headers: Mapping[str, str],
        last_index: int,
        last_content: Any,
        human_shaped: bool,
    ) -> None:
        self.conversation = conversation
        self.scope = scope
        self.headers = headers
        self.last_index = last_index  # the last message that is a turn
        self.last_content = last_content  # as sent (injection gives the message a new content)
        self.human_shaped = human_shaped  # a user message without a tool result
        self.key: Key | None = None
        self._who: tuple[str, str, bool] | None = None

    def _placed(self) -> tuple[str, str, bool]:
        if self._who is None:
            session, agent = _session(self.headers)
            subagent = self.conversation.subagent or is_subagent_request(self.headers)
            self._who = (session, agent, subagent)
        return self._who

    @property
    def subagent(self) -> bool:
        return self._placed()[2]

    def messages(self) -> list[dict[str, Any]]:
        """The conversation's messages as the client sent them."""
        messages = self.conversation.messages
        last = messages[self.last_index]
        if last.get("content") is self.last_content:
            return messages
        view = list(messages)
        view[self.last_index] = {**last, "content": self.last_content}
        return view


@dataclass(frozen=True, slots=True)
class Capture:
    """What one request is in its loop; handed back to `LoopTracker.finish` after the answer."""

    key: Key
    loop: OpenLoop | None  # None: no human message to follow (nothing to store)
    human_leg: bool  # this request carries the human's new message
    subagent: bool


@dataclass(frozen=True, slots=True)
class Draft:
    """A finished turn, before redaction."""

    human: str
    answer: str
    note: str
    chrome_chars: int


Evicted = Callable[[str, OpenLoop], None]


def is_subagent_request(headers: Mapping[str, str]) -> bool:
    """Header markers of a subagent's request (Claude Code, Codex)."""
    if any(headers.get(name) for name in SUBAGENT_HEADERS):
        return True
    metadata = headers.get(CODEX_TURN_METADATA)
    return metadata is not None and '"subagent"' in metadata.replace(" ", "")


def _session(headers: Mapping[str, str]) -> tuple[str, str]:
    session = next((v for name in SESSION_HEADERS if (v := headers.get(name))), "")
    return session[:200], (headers.get(AGENT_HEADER) or "")[:200]


def _text(message: dict[str, Any]) -> str:
    return "\n".join(content_texts(message.get("content")))


def _mark(message: dict[str, Any]) -> int:
    """Tells one message from another without hashing it whole on every request (a client's
    first message may carry kilobytes of project instructions): its sizes and the ends of its
    last text."""
    texts = content_texts(message.get("content"))
    if not texts:
        return 0
    last = texts[-1]
    return hash((len(texts), sum(map(len, texts)), last[:MARK_CHARS], last[-MARK_CHARS:]))


def _first_mark(messages: list[dict[str, Any]]) -> int:
    first = next((m for m in messages if m.get("role") != "system"), None)
    return _mark(first) if first is not None else 0


def _last_index(messages: list[dict[str, Any]]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") != "system":
            return i
    return None


def _is_human_shaped(message: dict[str, Any]) -> bool:
    return message.get("role") == "user" and not has_tool_result(message.get("content"))


def leg_of(conversation: Conversation, headers: Mapping[str, str], scope: str) -> Leg | None:
    """Where a request sits, read cheaply on the request path; None when it holds no turn."""
    messages = conversation.messages
    last_i = _last_index(messages)
    if last_i is None:
        return None
    last = messages[last_i]
    return Leg(conversation, scope, headers, last_i, last.get("content"), _is_human_shaped(last))


def _key(leg: Leg, messages: list[dict[str, Any]]) -> Key:
    if leg.key is None:
        session, agent, _ = leg._placed()
        leg.key = (leg.scope, session, agent, _first_mark(messages))
    return leg.key


class LoopTracker:
    """The open agent loops of the daemon, bounded; `on_evict` hears of loops that never ended."""

    def __init__(
        self,
        max_loops: int = MAX_LOOPS,
        max_age_s: float = MAX_LOOP_AGE_S,
        on_evict: Evicted | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loops: OrderedDict[Key, OpenLoop] = OrderedDict()
        self._paragraphs: OrderedDict[Key, dict[int, int]] = OrderedDict()
        self._max_loops = max_loops
        self._max_age_s = max_age_s
        self._on_evict = on_evict
        self._clock = clock

    def __len__(self) -> int:
        return len(self._loops)

    def observe(
        self, conversation: Conversation, headers: Mapping[str, str], scope: str
    ) -> Capture | None:
        """Place one request in its loop; None when it holds no turn at all."""
        leg = leg_of(conversation, headers, scope)
        return None if leg is None else self.observe_leg(leg)

    def human_words(self, leg: Leg) -> str | None:
        """The human's new message with chrome removed, for the recall query; None on a leg
        that carries none. Read-only: what the conversation repeats is learnt in `observe_leg`
        (on another thread: the table is only read here)."""
        if not leg.human_shaped:
            return None
        raw = "\n".join(content_texts(leg.last_content))
        if not raw:
            return None
        messages = leg.conversation.messages
        seen = self._paragraphs.get(_key(leg, messages))
        mark = _mark({"content": leg.last_content})
        cleaned = strip_chrome(raw, leg.conversation.system, seen, mark, learn=False)
        return cleaned.text or None

    def observe_leg(self, leg: Leg) -> Capture | None:
        """Place one request in its loop, after its answer; None when it holds no turn."""
        messages = leg.messages()
        system = leg.conversation.system
        subagent = leg.subagent
        key = _key(leg, messages)
        now = self._clock()
        last_i = leg.last_index
        if leg.human_shaped:
            last = messages[last_i]
            raw = _text(last)
            if not raw:
                return None  # no words and no tool result (a client's compaction request)
            mark = _mark(last)
            cleaned = strip_chrome(raw, system, self._seen(key), mark)
            if cleaned.text:
                loop = OpenLoop(
                    cleaned.text, mark, last_i, len(messages), subagent, cleaned.stripped_chars
                )
                loop.touched = now
                self._put(key, loop)
                return Capture(key, loop, True, subagent)
        found = self._loops.get(key)
        if found is None or not _still_there(found, messages):
            found = self._recover(messages, system, subagent)
            if found is None:
                return Capture(key, None, False, subagent)
            found.touched = now
            self._put(key, found)
        else:
            self._loops.move_to_end(key)
        loop = found
        _read_actions(loop, messages)
        loop.touched = now
        return Capture(key, loop, False, subagent)

    def finish(
        self, capture: Capture, ok: bool, ended_with_tool_call: bool, answer: str
    ) -> Draft | None:
        """The turn when this answer ends the loop; None while the loop goes on or ended badly."""
        loop = capture.loop
        if loop is None:
            return None
        if ok and ended_with_tool_call:
            return None  # the client runs the tool and calls again
        if self._loops.get(capture.key) is loop:
            del self._loops[capture.key]
        if not ok or not answer.strip():
            return None
        return Draft(loop.human, answer, loop.note, loop.chrome_chars)

    # -- state -------------------------------------------------------------------------------

    def _put(self, key: Key, loop: OpenLoop) -> None:
        self._loops[key] = loop
        self._loops.move_to_end(key)
        self._expire(loop.touched)

    def _expire(self, now: float) -> None:
        loops = self._loops
        while loops:
            key, oldest = next(iter(loops.items()))
            if len(loops) <= self._max_loops and now - oldest.touched <= self._max_age_s:
                break
            del loops[key]
            if self._on_evict is not None:
                self._on_evict(key[0], oldest)

    def _seen(self, key: Key) -> dict[int, int]:
        seen = self._paragraphs.get(key)
        if seen is None:
            seen = self._paragraphs[key] = {}
            while len(self._paragraphs) > MAX_CONVERSATIONS:
                self._paragraphs.popitem(last=False)
        else:
            self._paragraphs.move_to_end(key)
            if len(seen) > MAX_PARAGRAPHS:
                seen.clear()
        return seen

    def _recover(
        self, messages: list[dict[str, Any]], system: str, subagent: bool
    ) -> OpenLoop | None:
        """The loop of the last human message, found by walking back (a record was evicted)."""
        for i in range(len(messages) - 1, -1, -1):
            message = messages[i]
            if not _is_human_shaped(message):
                continue
            cleaned = strip_chrome(_text(message), system)
            if cleaned.text:
                mark = _mark(message)
                return OpenLoop(cleaned.text, mark, i, i + 1, subagent, cleaned.stripped_chars)
        return None


def _still_there(loop: OpenLoop, messages: list[dict[str, Any]]) -> bool:
    return loop.index < len(messages) and _mark(messages[loop.index]) == loop.mark


def _read_actions(loop: OpenLoop, messages: list[dict[str, Any]]) -> None:
    """Add the tool calls of the messages this loop has not read yet."""
    for message in messages[loop.seen :]:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                loop.actions.extend(describe(block.get("name"), block.get("input")))
    del loop.actions[MAX_ACTIONS_KEPT:]
    loop.seen = max(loop.seen, len(messages))

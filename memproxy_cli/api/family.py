"""What every client-facing API family tells the gateway about itself.

One subclass per family (OpenAI chat, Anthropic Messages, ...), each in its own module, owns
everything about that API: its paths, where the model is named, validation, its error body and
SSE error event, request preparation, usage and text from a whole response and from each
stream event, the terminal event, the conversation memory reads and where memories go, the
answers the gateway makes itself (echo), the upstream path and the LiteLLM translation. The
gateway, transports and memory only ever talk to a family through this interface.

What memory needs of a family to follow an agent loop (memory/capture.py), whatever the API:
- `conversation(body)` gives every turn in chat shape, in order. A tool call the model made is a
  block `{"type": "tool_use", "name": <tool name>, "input": <arguments as a dict>}` in an
  assistant message's content (chat `tool_calls`, Responses `function_call` and
  `custom_tool_call` items, Gemini `functionCall` parts); a tool's result is a user message
  whose content holds a `{"type": "tool_result", "content": ...}` block (chat `tool` messages,
  Responses `function_call_output`, Gemini `functionResponse`), never a message with text of
  its own. Client context sent as user messages stays a user message: memory tells chrome from
  the human's words. `Conversation.subagent` is True when the body itself says another
  conversation's tool call started this one (Gemini CLI offers `complete_task` to a subagent
  and no `invoke_agent`); header markers are memory's to read.
- `tally_response` / `tally_event` set `Tally.ended_with_tool_call` when the answer calls a tool
  (Messages `stop_reason: "tool_use"` or a `tool_use` block, chat `finish_reason: "tool_calls"`
  or `tool_calls` deltas, a Responses `function_call` output item, a Gemini `functionCall`
  part), and add only the answer's text to `Tally.add_text`: the text of an answer that ends in
  a tool call is a preamble and is not stored; the next answer that calls no tool is the turn's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson

from memproxy_cli.api.tally import Tally
from memproxy_cli.errors import GatewayError

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy
    from memproxy_cli.memory.conversation import Conversation

Body = dict[str, Any]
# The wire protocols upstreams speak; a family is relayed as it is to an upstream of its wire.
Wire = Literal["openai", "anthropic", "gemini"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route a family serves: `generate` routes go through the whole request path."""

    method: str
    path: str
    action: str = "generate"


@dataclass(frozen=True, slots=True)
class EventVerdict:
    """What the relay does with one stream event: relay it or not, and whether it ends the
    stream (the client has the whole answer once a terminal event reached it)."""

    keep: bool = True
    terminal: bool = False


KEEP = EventVerdict()
TERMINAL = EventVerdict(terminal=True)
DROP = EventVerdict(keep=False)


@dataclass(slots=True)
class Prepared:
    """What `prepare` changed: whether the body must be re-encoded, and what the client asked."""

    modified: bool = False
    client_wants_usage: bool = True


@dataclass(slots=True)
class Translation:
    """One translated call: the family builds it, the LiteLLM transport runs it."""

    model: str  # provider-prefixed LiteLLM model name
    provider: str
    common: dict[str, Any]  # configured keyword arguments: key, base, session, config extras
    stream: bool
    response_model: str  # the name the client asked for, used in translated answers
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Translated:
    """A translated answer: a whole JSON body, or the already framed SSE events."""

    body: Any = None
    events: AsyncIterator[bytes] | None = None


class ApiFamily(ABC):
    """A client-facing API; subclasses are stateless singletons found through the registry."""

    name: ClassVar[str]  # e.g. "openai.chat"
    wire: ClassVar[Wire]  # the upstream protocol that speaks this API as it is
    endpoints: ClassVar[tuple[Endpoint, ...]]
    path_prefixes: ClassVar[tuple[str, ...]]  # paths that belong to this family (errors of 404s)
    error_types: ClassVar[Mapping[int, str]]

    # -- ingress -------------------------------------------------------------------------------

    def model_of(self, match_info: Mapping[str, str], body: Body) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "`model` is required and must be a string", "missing_model")
        return model

    def is_stream(
        self, match_info: Mapping[str, str], query: Mapping[str, str], body: Body
    ) -> bool:
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise GatewayError(400, "`stream` must be a boolean")
        return bool(stream)

    @abstractmethod
    def validate(self, body: Body) -> None:
        """Raise GatewayError(400) for a body this API would refuse."""

    def prepare(self, body: Body, stream: bool) -> Prepared:
        """Adjust the body before it goes upstream (e.g. ask for usage in a stream)."""
        return Prepared()

    def upstream_path(self, model: str, stream: bool) -> str:
        """The path on the upstream's base URL, e.g. /chat/completions."""
        return self.endpoints[0].path.removeprefix("/v1")

    def upstream_query(self, query: str) -> str:
        """The client's query string as it goes upstream (credentials in it removed)."""
        return query

    # -- errors --------------------------------------------------------------------------------

    @abstractmethod
    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        """This API's error document."""

    def sse_error_event(self, status: int, message: str) -> bytes:
        """An error delivered inside an SSE stream that has already started."""
        return b"data: " + orjson.dumps(self.error_body(status, message)) + b"\n\n"

    # -- responses -----------------------------------------------------------------------------

    @abstractmethod
    def tally_response(self, tally: Tally, body: Any) -> None:
        """Read usage and the answer's text out of a whole response."""

    @abstractmethod
    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        """Read usage and text out of one stream event's decoded data."""

    def is_done_marker(self, data: bytes) -> bool:
        """A non-JSON data line that ends the stream (OpenAI's `[DONE]`)."""
        return False

    def event_counts(self, data: bytes) -> bool:
        """Whether `tally_event` must read this event's data when the answer's text and tool
        calls go unused (memory is off): False only where the event can carry nothing else
        that `tally_event` reads or decides (usage, a failure, the terminal event, a dropped
        event). Default: every event counts."""
        return True

    def first_count(self, run: bytes) -> int:
        """Where in `run` (whole raw events, one after another) the first event that may count
        (see `event_counts`) or end the stream may start: every event that ends before this
        offset does neither, and the relay sends those on as they are, without reading them
        one by one. `len(run)` where none may. Default: 0, read every event."""
        return 0

    # -- memory --------------------------------------------------------------------------------

    @abstractmethod
    def conversation(self, body: Body) -> Conversation:
        """The request as memory reads it: system text and chat-shaped messages."""

    @abstractmethod
    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        """Put the memory block into `body` in place, where `strategy` says."""

    # -- answers the gateway makes itself ------------------------------------------------------

    @abstractmethod
    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        """A whole response carrying `text`."""

    @abstractmethod
    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        """The SSE events that deliver `response`."""

    def echo_view(self, body: Body) -> Body:
        """What the echo model shows of a request: the conversation as it leaves the gateway."""
        conversation = self.conversation(body)
        view: Body = {"messages": body.get("messages")}
        if conversation.system and "system" in body:
            view = {"system": body.get("system"), **view}
        return view

    # -- translation ---------------------------------------------------------------------------

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        """Serve this API through LiteLLM for a provider that speaks another one."""
        raise GatewayError(
            501,
            f"{self.name} requests cannot be translated for provider {call.provider!r}",
            "translation_unsupported",
        )


def require_messages(body: Body) -> None:
    """`messages` is an array of objects with a string `role` (chat and Messages alike)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise GatewayError(400, "`messages` is required and must be an array", "invalid_messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GatewayError(400, f"messages[{i}] must be an object with a string `role`")


def framed(data: Any, event: str | None = None) -> bytes:
    """One SSE event carrying `data` as JSON."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"

"""m2parse as SGLang detectors: ``M2ParseDetector`` (tool calls) and two reasoning detectors, and their MiniMax-M3
forms (``M2ParseM3Detector``, ``M2ParseM3ReasoningDetector``).

SGLang runs a request's output through the reasoning detector first and hands its ``normal_text`` to the tool
detector (``FunctionCallParser``), which turns m2parse's events into ``ToolCallItem`` s: the name once, at the
invoke tag's ``>``, then argument fragments (string values character by character), ``tool_index`` being the
call's position in the output. SGLang's serving code makes the OpenAI chunks from those items.

Which text the tool detector reads decides its mode, from the first characters:

- ``</think>…`` — the hand-off of the ``m2parse`` reasoning detector: content after a closed reasoning;
- ``<think>…`` — the ``m2parse-append-think`` pass-through: m2parse's inline mode, reasoning kept in content;
- anything else — the raw output (no reasoning parser, or ``separate_reasoning: false``): inline mode too.

M3 reads the same way with its own tags (``</mm:think>``, ``<mm:think>``, ``]<]minimax[>[<tool_call>``). A raw
adaptive M3 output that opens with a bare ``</mm:think>`` reads as the hand-off does, which is also what
``parse()`` makes of it (no reasoning, the rest is content). Where an M3 output starts depends on the request's
``chat_template_kwargs.thinking_mode``; SGLang gives a reasoning detector only a ``force_reasoning`` flag, so
:func:`~m2parse.integrations.sglang.register` passes the kwarg on (see ``take_chat_template_kwargs``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sglang.srt.function_call.base_format_detector import BaseFormatDetector
from sglang.srt.function_call.core_types import StreamingParseResult, ToolCallItem, _GetInfoFunc
from sglang.srt.parser.reasoning_parser import BaseReasoningFormatDetector
from sglang.srt.parser.reasoning_parser import StreamingParseResult as ReasoningResult

from ...events import ContentDelta, Event, ToolCallArgumentsDelta, ToolCallEnd, ToolCallStart
from ...format import THINK_CLOSE, THINK_OPEN
from ...formats import m3
from ...parser import StreamParser
from ...problems import Problem
from ...schema import ToolsError
from ..reasoning_split import M2_SPELLINGS, M3_SPELLINGS, Spellings
from .split import ReasoningSplit, split_whole

__all__ = [
    "M2ParseAppendThinkDetector",
    "M2ParseDetector",
    "M2ParseM3Detector",
    "M2ParseM3ReasoningDetector",
    "M2ParseReasoningDetector",
]

logger = logging.getLogger("m2parse.integrations.sglang")

_WHITESPACE = " \t\r\n"


def _tool_dicts(tools: Sequence[Any] | None) -> list[Any] | None:
    """SGLang's ``Tool`` models as the plain OpenAI dicts m2parse reads."""
    if not tools:
        return None
    return [t.model_dump(exclude_none=True) if hasattr(t, "model_dump") else t for t in tools]


def _log_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        logger.warning("m2parse: %s at offset %d: %s", problem.code, problem.offset, problem.message)


def _mode(text: str, tags: Spellings = M2_SPELLINGS) -> str | None:
    """ "separated", "inline", or None while the start is still ambiguous (see the module docstring)."""
    start = text.lstrip(_WHITESPACE)
    for tag, mode in ((tags.think_close, "separated"), (tags.think_open, "inline")):
        if start.startswith(tag):
            return mode
        if tag.startswith(start):  # empty, or a tag not yet complete
            return None
    return "inline"


class M2ParseDetector(BaseFormatDetector):
    """SGLang tool-call detector backed by one ``StreamParser`` per output (``--tool-call-parser m2parse``)."""

    tags: Spellings = M2_SPELLINGS

    def __init__(self) -> None:
        super().__init__()
        self.bot_token = self.tags.tool_call_open
        self.eot_token = self.tags.tool_call_close
        #: Calls the output cut off: SGLang then keeps finish_reason "length"/"stop" rather than "tool_calls".
        self.incomplete_tool_call_indices: set[int] = set()
        self._parser: StreamParser | None = None
        self._head = ""

    # -- what SGLang asks before parsing

    def has_tool_call(self, text: str) -> bool:
        """Whether the text needs this detector: a call, or reasoning markup only it can place."""
        start, tags = text.lstrip(_WHITESPACE), self.tags
        return tags.tool_call_open in text or tags.think_close in text or start.startswith(tags.think_open)

    @classmethod
    def parses_without_tools(cls) -> bool:
        # m2parse keeps a call to an undeclared tool (and logs it), as parse() does, rather than leave markup
        # in the content.
        return True

    def supports_structural_tag(self) -> bool:
        # No constrained decoding: M2 writes XML calls that no JSON-schema structural tag describes.
        return False

    def structure_info(self) -> _GetInfoFunc:
        raise NotImplementedError("m2parse does not constrain M2's tool-call format (no structural tag)")

    # -- parsing

    def detect_and_parse(self, text: str, tools: list[Any]) -> StreamingParseResult:
        parser = self._new_parser(text, tools)
        parser.feed(text)
        parser.finish()
        result = parser.result
        _log_problems(result.problems)
        positions = self._get_tool_indices(tools or [])
        calls = [
            ToolCallItem(tool_index=positions.get(c.name, -1), name=c.name, parameters=c.arguments_json)
            for c in result.tool_calls
        ]
        return StreamingParseResult(normal_text=result.content, calls=calls)

    def parse_streaming_increment(self, new_text: str, tools: list[Any]) -> StreamingParseResult:
        if self._parser is None:
            self._head += new_text
            if _mode(self._head, self.tags) is None:
                return StreamingParseResult()
            new_text, self._head = self._head, ""
            self._parser = self._new_parser(new_text, tools)
        return self._result(self._parser.feed(new_text))

    def finish(self, tools: list[Any]) -> StreamingParseResult:
        if self._parser is None:
            if not self._head:
                return StreamingParseResult()
            self._parser = self._new_parser(self._head, tools)
            events = self._parser.feed(self._head)
            self._head = ""
        else:
            events = []
        events += self._parser.finish()
        _log_problems(self._parser.result.problems)
        return self._result(events)

    def _new_parser(self, text: str, tools: list[Any] | None) -> StreamParser:
        options = self._options(_mode(text, self.tags) or "inline")
        try:
            return StreamParser(_tool_dicts(tools), **options)
        except ToolsError as exc:  # SGLang validated the request already; never fail a generation over it
            logger.warning("m2parse: ignoring the request's tools (%s); tool calls are parsed without schemas", exc)
            return StreamParser(None, **options)

    def _options(self, mode: str) -> dict[str, Any]:
        return {"reasoning": mode}

    def _result(self, events: list[Event]) -> StreamingParseResult:
        """SGLang's result for one step; keeps the base class's bookkeeping exact where the serving code reads it.

        ``prev_tool_call_arr`` and ``streamed_args_for_tool`` are complete once a call ends (SGLang compares them
        at the end of the stream to send any arguments not yet streamed: with these, none).
        """
        text: list[str] = []
        calls: list[ToolCallItem] = []
        for event in events:
            if isinstance(event, ContentDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallStart):
                self.current_tool_id = event.index
                self.prev_tool_call_arr.append({"name": event.name, "arguments": {}})
                self.streamed_args_for_tool.append("")
                calls.append(ToolCallItem(tool_index=event.index, name=event.name, parameters=""))
            elif isinstance(event, ToolCallArgumentsDelta):
                last = calls[-1] if calls else None
                if last is not None and last.tool_index == event.index:
                    last.parameters += event.fragment
                else:
                    calls.append(ToolCallItem(tool_index=event.index, parameters=event.fragment))
            elif isinstance(event, ToolCallEnd):
                # Set once per call, not grown per fragment (that would copy the arguments on every delta).
                # The fragments concatenate to exactly arguments_json, which is json.dumps(arguments).
                self.prev_tool_call_arr[event.index]["arguments"] = event.arguments
                self.streamed_args_for_tool[event.index] = event.arguments_json
                if event.truncated:
                    self.incomplete_tool_call_indices.add(event.index)
        return StreamingParseResult(normal_text="".join(text), calls=calls)


class M2ParseReasoningDetector(BaseReasoningFormatDetector):
    """``--reasoning-parser m2parse``: m2parse's reasoning, then the raw rest for the tool detector.

    ``force_reasoning`` is accepted and ignored: M2's output always starts inside the reasoning (its prompt ends
    with ``<think>\\n``), whatever SGLang's template detection concluded.
    """

    def __init__(
        self,
        stream_reasoning: bool = True,
        force_reasoning: bool = False,
        continue_final_message: bool = False,
        previous_content: str = "",
        force_nonempty_content: bool = False,
        tool_call_parser_active: bool = False,
    ) -> None:
        # SGLang's scheduler reads think_end_token to find where a grammar may start.
        super().__init__(THINK_OPEN, THINK_CLOSE, force_reasoning=True, stream_reasoning=stream_reasoning)
        self.tool_call_parser_active = tool_call_parser_active
        self._split = ReasoningSplit(
            mark_close=tool_call_parser_active, stream_reasoning=stream_reasoning, pass_through=True
        )

    def detect_and_parse(self, text: str) -> ReasoningResult:
        reasoning, rest = split_whole(text, mark_close=self.tool_call_parser_active)
        return ReasoningResult(normal_text=rest, reasoning_text=reasoning)

    def parse_streaming_increment(self, new_text: str) -> ReasoningResult:
        reasoning, rest = self._split.feed(new_text)
        self._in_reasoning = not (self._split.handed_off or self._split.turn_ended)
        return ReasoningResult(normal_text=rest or "", reasoning_text=reasoning)

    def finish(self) -> ReasoningResult:
        self._in_reasoning = False
        return ReasoningResult(reasoning_text=self._split.finish()[0])


class M2ParseAppendThinkDetector(BaseReasoningFormatDetector):
    """``--reasoning-parser m2parse-append-think``: the whole output as content, with its ``<think>`` put back.

    m2parse's inline mode, for clients that send ``content`` back verbatim and drop ``reasoning_content``: the
    template splits the reasoning off again on the next turn. Paired with ``--tool-call-parser m2parse`` the
    calls are parsed and the content is exactly ``parse(..., reasoning="inline")``'s.
    """

    def __init__(
        self,
        stream_reasoning: bool = True,
        force_reasoning: bool = False,
        continue_final_message: bool = False,
        previous_content: str = "",
        force_nonempty_content: bool = False,
    ) -> None:
        super().__init__(THINK_OPEN, THINK_CLOSE, force_reasoning=False, stream_reasoning=stream_reasoning)
        self._lead: str | None = ""

    def detect_and_parse(self, text: str) -> ReasoningResult:
        return ReasoningResult(normal_text=_with_think_open(text))

    def parse_streaming_increment(self, new_text: str) -> ReasoningResult:
        if self._lead is None:
            return ReasoningResult(normal_text=new_text)
        lead = self._lead + new_text
        start = lead.lstrip(_WHITESPACE)
        if len(start) < len(THINK_OPEN) and THINK_OPEN.startswith(start):
            self._lead = lead  # the model may still be writing its own <think>
            return ReasoningResult()
        self._lead = None
        return ReasoningResult(normal_text=_with_think_open(lead))

    def finish(self) -> ReasoningResult:
        lead, self._lead = self._lead, None
        return ReasoningResult(normal_text=_with_think_open(lead) if lead else "")


def _with_think_open(text: str) -> str:
    """``<think>\\n`` + the output, unless the model wrote its own ``<think>``: inline mode's content."""
    return text if text.lstrip(_WHITESPACE).startswith(THINK_OPEN) else THINK_OPEN + "\n" + text


# ---------------------------------------------------------------------------------------------- MiniMax-M3


class M2ParseM3Detector(M2ParseDetector):
    """``--tool-call-parser m2parse-m3``: MiniMax-M3's calls, nested arguments typed by the schema.

    The hand-off (``</mm:think>…``) is read by a machine that starts inside reasoning and is closed at once;
    any other text is the raw output, read inline as "adaptive" (a tool parser is never told the request's
    ``thinking_mode``; pair it with ``--reasoning-parser m2parse-m3``, which is).
    """

    tags = M3_SPELLINGS

    def _options(self, mode: str) -> dict[str, Any]:
        if mode == "separated":
            return {"format": "m3", "thinking_mode": "enabled"}
        return {"format": "m3", "thinking_mode": "adaptive", "reasoning": "inline"}


class M2ParseM3ReasoningDetector(M2ParseReasoningDetector):
    """``--reasoning-parser m2parse-m3``: M3's reasoning, where it starts following ``thinking_mode``.

    SGLang builds a detector with a ``force_reasoning`` flag only, which for this name comes from its template
    detection, not from the request. ``register()`` therefore hands every ``ReasoningParser`` request's
    ``chat_template_kwargs`` to :meth:`take_chat_template_kwargs` right after the detector is made (before any
    text); without it (a detector made by hand) the mode is the template's default, adaptive.
    """

    def __init__(
        self,
        stream_reasoning: bool = True,
        force_reasoning: bool = False,
        continue_final_message: bool = False,
        previous_content: str = "",
        force_nonempty_content: bool = False,
        tool_call_parser_active: bool = False,
    ) -> None:
        BaseReasoningFormatDetector.__init__(
            self, m3.THINK_OPEN, m3.THINK_CLOSE, force_reasoning=False, stream_reasoning=stream_reasoning
        )
        self.tool_call_parser_active = tool_call_parser_active
        self._stream_reasoning = stream_reasoning
        self.thinking_mode: str | None = None
        self._split = self._new_split()

    def take_chat_template_kwargs(self, kwargs: Any) -> None:
        """The request's ``chat_template_kwargs``: its ``thinking_mode`` decides where the output starts (a value
        the template does not know renders as adaptive, and is read so)."""
        self.thinking_mode = m3.thinking_mode_from_kwargs(kwargs)
        self._in_reasoning = self.thinking_mode == "enabled"
        self._split = self._new_split()

    def _new_split(self) -> ReasoningSplit:
        return ReasoningSplit(
            mark_close=self.tool_call_parser_active,
            stream_reasoning=self._stream_reasoning,
            pass_through=True,
            model_format="m3",
            thinking_mode=self.thinking_mode,
        )

    def detect_and_parse(self, text: str) -> ReasoningResult:
        reasoning, rest = split_whole(
            text, mark_close=self.tool_call_parser_active, model_format="m3", thinking_mode=self.thinking_mode
        )
        return ReasoningResult(normal_text=rest, reasoning_text=reasoning)


#: SGLang's registries: tool-call parser name -> detector, reasoning parser name -> detector.
TOOL_DETECTORS: dict[str, type[BaseFormatDetector]] = {"m2parse": M2ParseDetector, "m2parse-m3": M2ParseM3Detector}
REASONING_DETECTORS: dict[str, type[BaseReasoningFormatDetector]] = {
    "m2parse": M2ParseReasoningDetector,
    "m2parse-append-think": M2ParseAppendThinkDetector,
    "m2parse-m3": M2ParseM3ReasoningDetector,
}

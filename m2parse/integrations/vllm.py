"""m2parse as vLLM's tool parser and reasoning parser: ``m2parse`` (M2) and ``m2parse_m3`` (M3) in both registries.

Load it with ``--tool-parser-plugin`` / ``--reasoning-parser-plugin`` pointing at the file that
``m2parse vllm-plugin-path`` prints (``vllm_plugin.py``, which imports this module).

How the work is split. vLLM composes the two parsers in a ``DelegatingParser``: the reasoning parser sees the
output until it reports the reasoning over, then the tool parser sees the rest. Both classes set
``engine_based_streaming``, so vLLM hands each of them only the new delta (it does not rebuild
``previous_text + delta`` on every step) and calls ``finish_streaming()`` at the end; the work per delta is
proportional to the delta, as in m2parse itself.

- The reasoning parser runs m2parse's machine over the reasoning and watches the raw text for what ends it
  (``</think>``, ``<minimax:tool_call>``, or a turn marker). When reasoning ends it hands vLLM the raw text after
  ``</think>`` (or from ``<minimax:tool_call>`` on), which vLLM passes to the tool parser.
- The tool parser runs m2parse's machine over that text as content after a closed reasoning: its machine is fed
  ``</think>`` first, so the rest parses exactly as it does in one ``parse()`` of the whole output. Without a
  reasoning parser (vLLM then sets ``skip_reasoning_parsing``), it parses the whole output in m2parse's inline
  mode: the reasoning stays in ``content`` as ``<think>…</think>``.

Special tokens. With ``skip_special_tokens`` (vLLM's default) the detokenizer drops special tokens from the
text, and on M2 the markers are special tokens: the ids arrive with no text. Both parsers set
``skip_special_tokens=False`` in ``adjust_request``, and put any marker that still arrives only as an id back
into the text (:func:`restore_markers`).

MiniMax-M3 (``m2parse_m3``). The same two classes read M3's spellings (``formats.m3``) through the same machine.
Where the output starts comes from the template's ``thinking_mode``: the reasoning parser reads it off the end of
the prompt (``<mm:think>``: enabled, ``</mm:think>``: disabled, else adaptive), which is what the model was
given, falling back to the request's ``chat_template_kwargs`` (which vLLM passes to it) when it has no prompt.
The tool parser reads what follows the reasoning as content after a closed ``</mm:think>``, or, without a
reasoning parser, the whole output inline with the request's ``thinking_mode``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from vllm.entrypoints.generate.base.protocol import (
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ExtractedToolCallInformation,
    FunctionCall,
    ToolCall,
)
from vllm.reasoning import ReasoningParser, ReasoningParserManager
from vllm.renderers.chat_utils import make_tool_call_id
from vllm.tool_parsers import ToolParser, ToolParserManager

from ..events import ContentDelta, Event, ReasoningDelta, ToolCallArgumentsDelta, ToolCallStart
from ..format import THINK_CLOSE, THINK_OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, TURN_MARKERS
from ..formats import m3
from ..parser import StreamParser
from ..schema import ToolsError
from .reasoning_split import M2_SPELLINGS, M3_SPELLINGS, ReasoningSplit, Spellings, format_options

__all__ = [
    "M3_PARSER_NAME",
    "PARSER_NAME",
    "M2ParseM3ReasoningParser",
    "M2ParseM3ToolParser",
    "M2ParseReasoningParser",
    "M2ParseToolParser",
    "restore_markers",
]

PARSER_NAME = "m2parse"
#: vLLM's own M3 parsers are ``minimax_m3``; ours sit beside them under this name.
M3_PARSER_NAME = "m2parse_m3"

logger = logging.getLogger(__name__)

#: Every marker M2 writes as one token; any of them may reach us as an id without text.
MARKERS = (THINK_OPEN, THINK_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, *TURN_MARKERS)
#: M3's markers that may be single tokens: the think tags, the namespace token before every call tag, the turn
#: markers (the tool-call block tags are the namespace token followed by plain text).
M3_MARKERS = (m3.THINK_OPEN, m3.THINK_CLOSE, m3.NAMESPACE, *m3.TURN_MARKERS)


# ---------------------------------------------------------------------------------------------- token ids


def marker_token_ids(vocab: Mapping[str, int], markers: Sequence[str] = MARKERS) -> dict[int, str]:
    """id -> marker text, for the markers that are single tokens of this tokenizer."""
    return {vocab[marker]: marker for marker in markers if marker in vocab}


def strippable_markers(markers: Mapping[int, str], decode: Callable[[list[int]], str]) -> dict[int, str]:
    """The markers that ``skip_special_tokens`` removes (special tokens): only these can go missing."""
    return {token: marker for token, marker in markers.items() if not decode([token])}


def restore_markers(
    text: str, token_ids: Sequence[int], markers: Mapping[int, str], decode: Callable[[list[int]], str]
) -> str:
    """``text`` with the markers whose ids are in ``token_ids`` but whose text the detokenizer dropped put back.

    ``markers`` are the special-token markers (:func:`strippable_markers`); ``decode`` decodes ids without them.
    A delta whose marker texts are all there is returned as is. Otherwise the runs of ids between the markers are
    decoded and matched against the text, keeping the markers that are there (``skip_special_tokens=False`` still
    leaves out a final stop token) and inserting the others. If the runs do not reproduce the text (the
    detokenizer held back part of a multi-byte character across the delta edge), they are matched from the end
    of the text, and a marker that cannot be placed goes as late as it can.
    """
    hits = [i for i, token in enumerate(token_ids) if token in markers]
    if not hits:
        return text
    wanted = [markers[token_ids[i]] for i in hits]
    pos = 0
    for marker in wanted:
        pos = text.find(marker, pos)
        if pos < 0:
            break
        pos += len(marker)
    else:
        return text
    bounds = [-1, *hits, len(token_ids)]
    runs = [decode(list(token_ids[a + 1 : b])) if b > a + 1 else "" for a, b in pairwise(bounds)]
    placed = _walk(text, runs, wanted)
    if placed is not None:
        return placed
    cuts = []
    end = len(text)
    for run in reversed(runs[1:]):
        if end >= len(run) and text.endswith(run, 0, end):
            end -= len(run)
        cuts.append(end)
    cuts.reverse()
    out: list[str] = []
    start = 0
    for cut, marker in zip(cuts, wanted, strict=True):
        cut = max(cut, start)
        out += [text[start:cut], marker]
        start = cut
    out.append(text[start:])
    return "".join(out)


def _walk(text: str, runs: list[str], wanted: list[str]) -> str | None:
    """run, marker, run, …, run read off ``text`` from the start, each marker optional; None if it does not fit."""
    out: list[str] = []
    pos = 0
    for run, marker in zip(runs, wanted, strict=False):
        if not text.startswith(run, pos):
            return None
        pos += len(run)
        if text.startswith(marker, pos):
            pos += len(marker)
        out += [run, marker]
    if text[pos:] != runs[-1]:
        return None
    out.append(runs[-1])
    return "".join(out)


def _decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    def decode(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=True))

    return decode


def _last_think_tag(token_ids: Sequence[int], markers: Mapping[int, str], tags: Spellings = M2_SPELLINGS) -> str | None:
    for token in reversed(token_ids):
        marker = markers.get(token)
        if marker in (tags.think_open, tags.think_close):
            return marker
    return None


# ---------------------------------------------------------------------------------------------- after the reasoning


def content_parser(
    tools: Iterable[Mapping[str, Any]] | None,
    *,
    inline: bool,
    tool_calls: bool = True,
    model_format: str = "m2",
    thinking_mode: str | None = None,
) -> StreamParser:
    """The machine for what follows the reasoning: it starts just after a think close it did not see (M3: an
    ``enabled`` machine fed ``</mm:think>``, the state after any reasoning). Inline, it reads the whole output
    (M3 with the request's ``thinking_mode``). ``tool_calls=False`` (``tool_choice: "none"``) keeps any call
    markup in the content, as text."""
    mode = "inline" if inline else "separated"
    options: dict[str, Any] = {"reasoning": mode, "tool_calls": tool_calls, "id_factory": make_tool_call_id}
    if model_format == "m3":
        options.update(format_options("m3", thinking_mode if inline else "enabled"))
    try:
        parser = StreamParser(tools, **options)
    except ToolsError as exc:  # vLLM validated the request already; never fail a generation over it
        logger.warning("m2parse: ignoring the request's tools (%s); tool calls are parsed without schemas", exc)
        parser = StreamParser(None, **options)
    if not inline:
        parser.feed(M3_SPELLINGS.think_close if model_format == "m3" else THINK_CLOSE)
    return parser


def events_to_delta(events: list[Event]) -> DeltaMessage | None:
    """One vLLM delta for the events of one step (a call's start and its fragments merge into one entry)."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[DeltaToolCall] = []
    for event in events:
        if isinstance(event, ContentDelta):
            content.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallStart):
            calls.append(
                DeltaToolCall(
                    index=event.index,
                    id=event.id,
                    type="function",
                    function=DeltaFunctionCall(name=event.name, arguments=""),
                )
            )
        elif isinstance(event, ToolCallArgumentsDelta):
            last = calls[-1] if calls else None
            if last is not None and last.index == event.index and last.function is not None:
                last.function.arguments = (last.function.arguments or "") + event.fragment
            else:
                calls.append(DeltaToolCall(index=event.index, function=DeltaFunctionCall(arguments=event.fragment)))
    if not (content or reasoning or calls):
        return None
    return DeltaMessage(content="".join(content) or None, reasoning="".join(reasoning) or None, tool_calls=calls)


def _tool_dicts(tools: Sequence[Any] | None) -> list[Mapping[str, Any]] | None:
    if not tools:
        return None
    return [t.model_dump(exclude_none=True) if hasattr(t, "model_dump") else t for t in tools]


# ---------------------------------------------------------------------------------------------- vLLM classes


@ReasoningParserManager.register_module(PARSER_NAME)
class M2ParseReasoningParser(ReasoningParser):
    """Separates the reasoning with m2parse and hands the raw rest on (see the module docstring)."""

    engine_based_streaming = True
    model_format = "m2"
    tags: Spellings = M2_SPELLINGS
    markers: tuple[str, ...] = MARKERS

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        self._markers = marker_token_ids(self.vocab, self.markers)
        self._ids = {marker: token for token, marker in self._markers.items()}
        self._tokenizer = tokenizer
        self._decode = _decoder(tokenizer)
        self._strippable = strippable_markers(self._markers, self._decode)
        self._starts_in_reasoning = True
        #: M3: the request's kwarg until a prompt says otherwise (vLLM passes chat_template_kwargs here).
        self._thinking_mode = m3.thinking_mode_from_kwargs(kwargs.get("chat_template_kwargs"))
        self._front: ReasoningSplit | None = None

    @property
    def reasoning_start_str(self) -> str:
        return self.tags.think_open

    @property
    def reasoning_end_str(self) -> str:
        return self.tags.think_close

    def adjust_request(self, request: Any) -> Any:
        request.skip_special_tokens = False
        return request

    def set_prompt_token_ids(self, prompt_token_ids: Sequence[int]) -> None:
        # A prompt whose last think tag is <think> (M2's generation prompt) leaves the output inside reasoning.
        # One with no think tag at all did not open it: only a leading <think> in the output does.
        self._starts_in_reasoning = _last_think_tag(prompt_token_ids, self._markers) == THINK_OPEN

    def _split(self) -> ReasoningSplit:
        return ReasoningSplit(starts_in_reasoning=self._starts_in_reasoning)

    # The structured-output gate (engine core) and the prompt check use these; they look at ids only.
    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        return _last_think_tag(input_ids, self._markers, self.tags) == self.tags.think_close

    def is_reasoning_end_streaming(self, input_ids: Sequence[int], delta_ids: Iterable[int]) -> bool:
        end = self._ids.get(self.tags.think_close)
        return end is not None and end in delta_ids

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        for i, token in enumerate(input_ids):
            marker = self._markers.get(token)
            if marker == self.tags.think_close:
                return input_ids[i + 1 :]
            if marker == TOOL_CALL_OPEN:
                return input_ids[i:]
        return input_ids

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        for i, token in enumerate(token_ids):
            if self._markers.get(token) in (self.tags.think_close, TOOL_CALL_OPEN):
                return i
        return len(token_ids)

    def extract_reasoning(self, model_output: str, request: Any) -> tuple[str | None, str | None]:
        front = self._split()
        _, handoff = front.feed(model_output)
        _, content = front.finish()
        return front.parser.result.reasoning_content, (handoff if handoff is not None else content) or None

    def extract_reasoning_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
    ) -> DeltaMessage | None:
        if self._front is None:
            self._front = self._split()
        text = restore_markers(delta_text, delta_token_ids, self._strippable, self._decode)
        reasoning, handoff = self._front.feed(text)
        if not reasoning and not handoff:
            return None
        return DeltaMessage(reasoning=reasoning or None, content=handoff or None)

    def has_engine_confirmed_reasoning_end(self) -> bool:
        return self._front is not None and self._front.handed_off

    def finish_streaming(self) -> DeltaMessage | None:
        """vLLM calls this when the reasoning ends (the hand-off already went out) and at the end of the output."""
        if self._front is None:
            return None
        reasoning, content = self._front.finish()
        if not reasoning and not content:
            return None
        return DeltaMessage(reasoning=reasoning or None, content=content or None)


@ReasoningParserManager.register_module(M3_PARSER_NAME)
class M2ParseM3ReasoningParser(M2ParseReasoningParser):
    """MiniMax-M3's reasoning (``--reasoning-parser m2parse_m3``): where it starts follows ``thinking_mode``.

    The id-based checks (the structured-output gate, vLLM's prompt check) look for ``</mm:think>`` as one token,
    as the M2 ones do for ``</think>``; M3's tokenizer has both think tags as vocabulary entries. A "disabled"
    prompt ends with ``</mm:think>``, so the structured-output gate is open from the start; only vLLM's prompt
    check (right after ``set_prompt_token_ids``) is told otherwise, so that a leading ``<mm:think>`` is still
    read as reasoning, as ``parse()`` reads it.
    """

    model_format = "m3"
    tags = M3_SPELLINGS
    markers = M3_MARKERS

    def set_prompt_token_ids(self, prompt_token_ids: Sequence[int]) -> None:
        # The generation prompt is ]~b]ai\n then <mm:think>, </mm:think> or nothing: a few tokens decode it.
        tail = self._tokenizer.decode(list(prompt_token_ids[-8:]), skip_special_tokens=False)
        self._thinking_mode = m3.thinking_mode_from_prompt(str(tail))
        self._prompt_length = len(prompt_token_ids)

    def _split(self) -> ReasoningSplit:
        return ReasoningSplit(model_format="m3", thinking_mode=self._thinking_mode)

    _prompt_length: int | None = None

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        if self._thinking_mode == "disabled" and len(input_ids) == self._prompt_length:
            # vLLM's prompt check: a "disabled" output may still open with <mm:think>, which parse() reads as
            # reasoning, so the reasoning parser must see its start (it hands anything else on at once).
            return False
        # Only the last turn counts: M3's system block and every earlier assistant turn hold think tags too (the
        # template's instructions spell <mm:think></mm:think>), so a prompt for adaptive mode would otherwise look
        # closed. After the last ]~b], the generation prompt's own tag (disabled: </mm:think>) or the model's.
        turn = self._ids.get(m3.TURN_START)
        start = 0
        if turn is not None:
            start = next((i + 1 for i in range(len(input_ids) - 1, -1, -1) if input_ids[i] == turn), 0)
        return _last_think_tag(input_ids[start:], self._markers, self.tags) == self.tags.think_close

    def _reasoning_span(self, token_ids: Sequence[int]) -> tuple[int, int] | None:
        """(first reasoning token, the ``</mm:think>`` ending it or the end) of an output's ids, as ``parse()``
        reads the start: enabled is reasoning from the first token; adaptive opens with ``<mm:think>`` or a bare
        ``</mm:think>``, disabled only with ``<mm:think>``. None: the output opens with neither (content)."""
        start = 0
        if self._thinking_mode != "enabled":
            first = self._markers.get(token_ids[0]) if token_ids else None
            openers = (m3.THINK_OPEN,) if self._thinking_mode == "disabled" else (m3.THINK_OPEN, m3.THINK_CLOSE)
            if first not in openers:
                return None
            start = 1 if first == m3.THINK_OPEN else 0
        for i in range(start, len(token_ids)):
            if self._markers.get(token_ids[i]) == m3.THINK_CLOSE:
                return start, i
        return start, len(token_ids)

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        span = self._reasoning_span(input_ids)
        return input_ids if span is None else input_ids[span[1] + 1 :]

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        span = self._reasoning_span(token_ids)
        return 0 if span is None else span[1] - span[0]


@ToolParserManager.register_module(PARSER_NAME)
class M2ParseToolParser(ToolParser):
    """Content and typed tool calls with m2parse, for the text after the reasoning (see the module docstring)."""

    engine_based_streaming = True
    # M2 writes its own XML calls whatever tool_choice says: parse them, never force vLLM's JSON format.
    supports_required_and_named = False
    model_format = "m2"
    markers: tuple[str, ...] = MARKERS

    def __init__(self, tokenizer: Any, tools: list[Any] | None = None) -> None:
        super().__init__(tokenizer, tools)
        #: Set by vLLM when no reasoning parser is configured: the reasoning is content, parsed inline.
        self.skip_reasoning_parsing = False
        self._decode = _decoder(tokenizer)
        self._strippable = strippable_markers(marker_token_ids(self.vocab, self.markers), self._decode)
        self._parser: StreamParser | None = None

    def adjust_request(self, request: Any) -> Any:
        request = super().adjust_request(request)
        request.skip_special_tokens = False
        return request

    def _new_parser(self, request: Any = None) -> StreamParser:
        tools = _tool_dicts(self.tools) or _tool_dicts(getattr(request, "tools", None))
        # tool_choice "none": vLLM still runs this parser (it is engine-based) and then drops whatever tool_calls
        # it returns, so a call must stay in the content as text or it would be lost (as m2parse serve does).
        calls = getattr(request, "tool_choice", None) != "none"
        return content_parser(
            tools,
            inline=self.skip_reasoning_parsing,
            tool_calls=calls,
            model_format=self.model_format,
            thinking_mode=m3.thinking_mode_from_kwargs(getattr(request, "chat_template_kwargs", None)),
        )

    def extract_tool_calls(self, model_output: str, request: Any) -> ExtractedToolCallInformation:
        parser = self._new_parser(request)
        parser.feed(model_output)
        parser.finish()
        result = parser.result
        calls = [
            ToolCall(id=c.id, type="function", function=FunctionCall(name=c.name, arguments=c.arguments_json))
            for c in result.tool_calls
        ]
        return ExtractedToolCallInformation(tools_called=bool(calls), tool_calls=calls, content=result.content or None)

    def extract_tool_calls_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
        request: Any,
    ) -> DeltaMessage | None:
        if self._parser is None:
            self._parser = self._new_parser(request)
        text = restore_markers(delta_text, delta_token_ids, self._strippable, self._decode)
        return events_to_delta(self._parser.feed(text))

    def finish_streaming(self) -> DeltaMessage | None:
        if self._parser is None:
            return None
        return events_to_delta(self._parser.finish())


@ToolParserManager.register_module(M3_PARSER_NAME)
class M2ParseM3ToolParser(M2ParseToolParser):
    """MiniMax-M3's content and typed tool calls (``--tool-call-parser m2parse_m3``): nested arguments typed by
    the schema, streamed as JSON fragments as early as is safe."""

    model_format = "m3"
    markers = M3_MARKERS

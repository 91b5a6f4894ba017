"""Server settings: one frozen value, built by ``m2parse serve`` or by whoever calls ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..backends import check_base_url, get_protocol
from ..format import RECOMMENDED_SAMPLING
from ..formats.detect import FORMATS, template_format

#: engines whose grammar field m2parse knows behind the generic ``openai`` backend type
GRAMMAR_ENGINES = ("vllm", "sglang", "llama.cpp")
ReasoningMode = Literal["separated", "inline"]
ReasoningField = Literal["reasoning_content", "reasoning", "both"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    backend_url: str
    backend_type: str = "openai"
    #: the ``model`` sent to an OpenAI-style backend; None asks its ``/v1/models`` once
    backend_model: str | None = None
    backend_api_key: str | None = None
    #: when set, ``/v1/*`` requires ``Authorization: Bearer <api_key>``
    api_key: str | None = None
    #: the name ``/v1/models`` lists and responses carry
    model_name: str = "MiniMax-M2"
    template: str = "MiniMax-M2"
    #: a chat template's text (``--chat-template FILE``), rendered instead of the built-in ``template``
    chat_template: str | None = None
    #: the output format the parser reads, "m2" or "m3"; None (the default): the template's own, a built-in
    #: variant's ``format`` or, for a ``chat_template`` text, ``formats.detect.detect_format`` of it
    model_format: str | None = None
    reasoning: ReasoningMode = "separated"
    reasoning_field: ReasoningField = "reasoning_content"
    infer_types: bool = False
    unknown_tool: Literal["keep", "drop"] = "keep"
    unknown_parameter: Literal["keep", "drop"] = "keep"
    validate: bool = True
    #: seconds to wait for the backend: to connect, and between two reads (each streamed token)
    timeout: float = 600.0
    connect_timeout: float = 10.0
    max_backend_connections: int = 1024
    #: sampling values used when a request leaves them out (``--recommended-sampling`` fills MiniMax's)
    default_sampling: tuple[tuple[str, float], ...] = field(default=())
    #: max_tokens sent when a request sets none; None: until the model stops or the context is full
    default_max_tokens: int | None = None
    #: largest request body accepted (``--max-request-bytes``); larger gets 413 before it is read. 8 MiB is about
    #: four times the JSON of a full 200k-token M2 context
    max_request_bytes: int = 8 * 1024 * 1024
    #: largest backend stream line (one SSE event) or non-streaming body; over it: an error event / 502
    max_backend_line_bytes: int = 64 * 1024 * 1024
    #: browser origins allowed besides the loopback ones (``http(s)://localhost|127.0.0.1|[::1]`` on any port);
    #: exact origins, ``*`` patterns (``chrome-extension://*``), or ``*`` for any. Requests without ``Origin``
    #: (every non-browser client) are not affected
    allowed_origins: tuple[str, ...] = ()
    #: a request that needs a grammar (tool_choice required/named, strict tools) on a backend type that cannot take
    #: one (openai, tgi; M3) is sent without it instead of being refused with 400 (docs/grammar.md)
    unconstrained_fallback: bool = False
    #: when set, ``/metrics`` requires ``Authorization: Bearer <metrics_key>`` (instead of ``api_key``), so a
    #: scraper's credential cannot call the model
    metrics_key: str | None = None
    #: the engine behind the generic ``openai`` backend type, whose grammar field tool-call grammars then use
    #: ("vllm", "sglang" or "llama.cpp"); ``m2parse serve`` sets it from a startup probe. None: unknown, so a
    #: request that needs a grammar is a 400 (or unconstrained with ``unconstrained_fallback``)
    grammar_engine: str | None = None

    def __post_init__(self) -> None:
        get_protocol(self.backend_type)  # raises ValueError on an unknown type
        if self.model_format is None:  # resolved once here, not per request (detection reads the whole template)
            object.__setattr__(self, "model_format", template_format(self.template, self.chat_template))
        if self.model_format not in FORMATS:
            raise ValueError(f"model_format must be one of {', '.join(FORMATS)}, not {self.model_format!r}")
        check_base_url(self.backend_url)  # raises ValueError saying what is wrong with it
        if self.grammar_engine not in (None, *GRAMMAR_ENGINES):
            raise ValueError(f"grammar_engine must be one of {', '.join(GRAMMAR_ENGINES)} or None")
        if self.default_max_tokens is not None and self.default_max_tokens < 1:
            raise ValueError("default_max_tokens must be a positive integer")
        if self.reasoning not in ("separated", "inline"):
            raise ValueError(f"reasoning must be 'separated' or 'inline', not {self.reasoning!r}")
        if self.reasoning_field not in ("reasoning_content", "reasoning", "both"):
            raise ValueError(
                f"reasoning_field must be reasoning_content, reasoning or both, not {self.reasoning_field!r}"
            )
        for label, policy in (("unknown_tool", self.unknown_tool), ("unknown_parameter", self.unknown_parameter)):
            if policy not in ("keep", "drop"):
                raise ValueError(f"{label} must be 'keep' or 'drop' (the server never raises on model output)")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_request_bytes < 1 or self.max_backend_line_bytes < 1:
            raise ValueError("max_request_bytes and max_backend_line_bytes must be positive")
        for key in (self.api_key, self.metrics_key):
            if key is not None and not _is_header_token(key):
                raise ValueError(
                    "the API key must be printable ASCII without spaces: HTTP clients (the openai SDK among them) "
                    "cannot send other characters in a header, so such a key could never match"
                )


def _is_header_token(key: str) -> bool:
    return bool(key) and key.isascii() and key.isprintable() and " " not in key


RECOMMENDED_DEFAULTS: tuple[tuple[str, float], ...] = tuple(RECOMMENDED_SAMPLING.items())

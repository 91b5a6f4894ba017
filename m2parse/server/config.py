"""Server settings: one frozen value, built by ``m2parse serve`` or by whoever calls ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..backends import get_protocol
from ..format import RECOMMENDED_SAMPLING

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

    def __post_init__(self) -> None:
        get_protocol(self.backend_type)  # raises ValueError on an unknown type
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


RECOMMENDED_DEFAULTS: tuple[tuple[str, float], ...] = tuple(RECOMMENDED_SAMPLING.items())

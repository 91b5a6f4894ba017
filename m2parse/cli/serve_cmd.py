"""``m2parse serve``: the OpenAI-compatible chat server in front of a raw-completion backend, on uvicorn.

Everything that can be wrong with the command line is found before the server starts, and reported in one line
with exit code 2: an unusable backend URL, a port already in use, a template that does not render.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from ..backends import BACKEND_TYPES, check_base_url
from ..formats.detect import FORMATS
from . import UsageError

if TYPE_CHECKING:
    from ..server import ServerConfig

DEFAULT_MODEL_NAME = "MiniMax-M2"
#: top-level modules of the [server] extra (m2parse/server/__init__.py checks the same ones)
SERVER_EXTRA = ("starlette", "uvicorn", "httpx", "anyio", "httpx_sse")
#: uvicorn's own listen backlog
BACKLOG = 2048

EPILOG = """environment:
  M2PARSE_API_KEY          the --api-key when the flag is not given
  M2PARSE_BACKEND_API_KEY  the --backend-api-key when the flag is not given
  M2PARSE_METRICS_KEY      the --metrics-key when the flag is not given

exit codes: 0 stopped normally; 2 a usage error found at startup (bad flag or backend URL, port in use,
unreadable template), reported in one line; 3 the server failed to start after that.
Without max_tokens in a request, the backend generates until the model stops or its context is full
(see docs/server.md, "max_tokens"); --default-max-tokens sets a cap for such requests instead."""

log = logging.getLogger("m2parse.server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", required=True, metavar="URL", help="base URL of the backend, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--backend-type",
        default="openai",
        choices=BACKEND_TYPES,
        help="openai (= vllm, sglang: /v1/completions), tgi (/generate_stream), llamacpp (= llama.cpp: native "
        "/completion)",
    )
    parser.add_argument(
        "--backend-model",
        metavar="NAME",
        help="model sent to an OpenAI-style backend (default: the first id of its /v1/models)",
    )
    parser.add_argument(
        "--backend-api-key",
        metavar="KEY",
        help="bearer key sent to the backend (default: $M2PARSE_BACKEND_API_KEY, else none)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on /v1/* (default: $M2PARSE_API_KEY, else no key)",
    )
    parser.add_argument(
        "--model-name",
        metavar="NAME",
        help="the model id /v1/models lists and responses carry (default: the model the backend reports at "
        f"startup: vLLM/SGLang /v1/models, llama.cpp /props, TGI /info; else {DEFAULT_MODEL_NAME})",
    )
    parser.add_argument(
        "--template",
        default="MiniMax-M2",
        metavar="NAME|PATH",
        help="built-in prompt template variant (MiniMax-M3 serves M3), or a template file as for --chat-template",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="the output format to parse, m2 or m3 (default: the template's: a built-in variant's own, or "
        "detected in a template file by M3's spellings)",
    )
    parser.add_argument(
        "--chat-template",
        metavar="PATH",
        help="render with this jinja chat template instead of --template: a .jinja file, tokenizer_config.json or "
        "model folder (default: none)",
    )
    parser.add_argument(
        "--reasoning", choices=("separated", "inline"), default="separated", help="where reasoning goes"
    )
    parser.add_argument(
        "--reasoning-field",
        choices=("reasoning_content", "reasoning", "both"),
        default="reasoning_content",
        help="name of the reasoning field",
    )
    parser.add_argument("--infer-types", action="store_true", help="read values without a schema as JSON")
    parser.add_argument(
        "--unknown-tool", choices=("keep", "drop"), default="keep", help="calls to tools not in the request"
    )
    parser.add_argument(
        "--unknown-parameter", choices=("keep", "drop"), default="keep", help="parameters not in the tool's schema"
    )
    parser.add_argument("--no-validate", action="store_true", help="skip JSON-schema validation of arguments")
    parser.add_argument(
        "--unconstrained-fallback",
        action="store_true",
        help="send requests that need a tool-call grammar (tool_choice required/named, strict tools) without one "
        "when the backend cannot take a grammar (tgi; openai when its engine is not identified at startup), instead "
        "of refusing them with 400",
    )
    parser.add_argument(
        "--recommended-sampling",
        action="store_true",
        help="fill temperature 1.0, top_p 0.95, top_k 20 when a request leaves them out",
    )
    parser.add_argument(
        "--default-max-tokens",
        type=int,
        metavar="N",
        help="max_tokens for requests that set none (default: none: until the model stops or the context is full)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        help="largest request body accepted; larger gets 413 (default: 8388608, 8 MiB)",
    )
    parser.add_argument(
        "--allowed-origins",
        metavar="ORIGINS",
        help="comma-separated browser origins allowed besides localhost/127.0.0.1/[::1]: exact origins, "
        "patterns like 'chrome-extension://*', or '*' for any (default: none)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds the backend may stay silent (between streamed reads, or for a whole non-streaming reply)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="S", help="seconds to connect to the backend"
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"), help="log level"
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="json: every log line one JSON object, plus one line per request (completion id, latencies, "
        "problem codes, finish reason)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="server processes sharing the port (one per core)"
    )
    parser.add_argument(
        "--metrics-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' on /metrics instead of --api-key (default: $M2PARSE_METRICS_KEY, "
        "else --api-key's rule)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
        from ..server.config import RECOMMENDED_DEFAULTS
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_EXTRA:
            raise  # a bug, not a missing extra: keep the traceback
        raise UsageError(
            f"the server needs the [server] extra (from a clone: pip install '.[server]'): {exc}"
        ) from None
    if args.chat_template is None:
        from ..templates import get_variant

        try:
            get_variant(args.template)
        except ValueError as exc:
            if not os.path.exists(args.template):
                raise UsageError(f"--template: {exc}") from None
            args.chat_template = args.template  # a template file: rendered (and its format detected) as one
    try:
        check_base_url(args.backend)
    except ValueError as exc:
        raise UsageError(f"--backend: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} must be a positive integer")
    for flag, value in (
        ("--default-max-tokens", args.default_max_tokens),
        ("--max-request-bytes", args.max_request_bytes),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value} must be a positive integer")
    try:
        config = ServerConfig(
            backend_url=args.backend,
            backend_type=args.backend_type,
            backend_model=args.backend_model,
            backend_api_key=_from_env(args.backend_api_key, "M2PARSE_BACKEND_API_KEY"),
            api_key=_from_env(args.api_key, "M2PARSE_API_KEY"),
            model_name=args.model_name or DEFAULT_MODEL_NAME,
            template=args.template,
            chat_template=_chat_template(args.chat_template),
            model_format=args.format,
            reasoning=args.reasoning,
            reasoning_field=args.reasoning_field,
            infer_types=args.infer_types,
            unknown_tool=args.unknown_tool,
            unknown_parameter=args.unknown_parameter,
            validate=not args.no_validate,
            unconstrained_fallback=args.unconstrained_fallback,
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            default_sampling=RECOMMENDED_DEFAULTS if args.recommended_sampling else (),
            default_max_tokens=args.default_max_tokens,
            **_optional_fields(args),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from ..server.access_log import configure_logging

    configure_logging(args.log_level, args.log_format)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))  # not one line per request
    sockets = listen(args.host, args.port)
    try:
        if args.model_name is None:
            config = dataclasses.replace(config, model_name=_reported_model(config))
        if config.backend_type == "openai" and config.model_format == "m2":  # explicit types name their engine
            config = dataclasses.replace(config, grammar_engine=_identified_engine(config))
        where = ", ".join(_url(sock) for sock in sockets)
        log.info(
            "serving %s (%s output) on %s in front of %s (%s)",
            config.model_name,
            config.model_format,
            where,
            config.backend_url,
            config.backend_type,
        )
        if args.workers > 1:
            from ..server.workers import run_workers

            run_workers(config, sockets, args.workers, log_level=args.log_level, log_format=args.log_format)
            return 0
        log_config: dict[str, Any] | None = None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config), log_level=args.log_level, access_log=False, lifespan="on", log_config=log_config
            )
        )
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    return 0 if server.started else 3


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (``localhost``: 127.0.0.1 and ::1, as uvicorn
    binds them), made here so that a port in use is one clear line, not uvicorn's multi-line log and exit 3.
    Handed to uvicorn as they are, so nothing can take the port in between."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UsageError(f"--host {host}: cannot resolve it ({reason})") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            if sockets and port == 0:  # one port for every address, the one the first bind picked
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; a live listener still wins
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # "::" and "0.0.0.0" apart, as asyncio
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {port}: {host}:{port} is already in use") from None
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    return sockets


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _reported_model(config: ServerConfig) -> str:
    """The model the backend reports (asked once, at startup), else the default, saying so in the log."""
    import asyncio

    import httpx

    from ..backends import get_protocol
    from ..backends.client import BackendClient  # needs httpx: imported only once the [server] extra is known

    if config.backend_model:
        return config.backend_model

    async def ask() -> str | None:
        timeout = httpx.Timeout(min(5.0, config.timeout), connect=min(5.0, config.connect_timeout))
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            client = BackendClient(
                get_protocol(config.backend_type), config.backend_url, http, api_key=config.backend_api_key
            )
            return await client.served_model()

    name = asyncio.run(ask())
    if name is None:
        log.warning(
            "the backend did not report its model (not up yet, or it does not say); serving as %r (--model-name "
            "sets it)",
            DEFAULT_MODEL_NAME,
        )
        return DEFAULT_MODEL_NAME
    return name


#: engine -> (name in the log, the grammar field it takes)
_ENGINE_FIELDS = {
    "vllm": ("vLLM", "structured_outputs.grammar"),
    "sglang": ("SGLang", "ebnf"),
    "llama.cpp": ("llama.cpp", "grammar"),
}


def _identified_engine(config: ServerConfig) -> str | None:
    """The engine behind the generic openai type, asked once at startup so that requests needing a tool-call
    grammar (forced calls, strict tools: many agent SDKs mark every tool strict) get that engine's grammar field
    instead of a 400; None, with a warning, when the backend does not say."""
    import asyncio

    import httpx

    from ..backends import get_protocol
    from ..backends.client import BackendClient

    async def ask() -> tuple[str, str] | None:
        timeout = httpx.Timeout(min(5.0, config.timeout), connect=min(5.0, config.connect_timeout))
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            client = BackendClient(
                get_protocol(config.backend_type), config.backend_url, http, api_key=config.backend_api_key
            )
            return await client.identify_engine(min(5.0, config.timeout))

    found = asyncio.run(ask())
    if found is None:
        if config.unconstrained_fallback:
            log.info("backend engine not identified: requests that need a tool-call grammar go without one")
        else:
            log.warning(
                "backend engine not identified (no vLLM /version, SGLang /server_info or llama.cpp /props): "
                "requests that need a tool-call grammar (tool_choice required/named, strict tools) get 400; "
                "start with --backend-type vllm, sglang or llama.cpp, or with --unconstrained-fallback"
            )
        return None
    engine, path = found
    name, field = _ENGINE_FIELDS[engine]
    log.info("backend identified as %s (GET %s): tool-call grammars go in %r", name, path, field)
    return engine


def _from_env(value: str | None, variable: str) -> str | None:
    """The flag's value, else the environment variable's (an empty variable counts as unset)."""
    if value is not None:
        return value
    return os.environ.get(variable) or None


def _optional_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Config fields whose default is the config's own: passed only when their flag is given."""
    out: dict[str, Any] = {}
    if args.max_request_bytes is not None:
        out["max_request_bytes"] = args.max_request_bytes
    if args.allowed_origins is not None:
        out["allowed_origins"] = tuple(o.strip() for o in args.allowed_origins.split(",") if o.strip())
    if (metrics_key := _from_env(args.metrics_key, "M2PARSE_METRICS_KEY")) is not None:
        out["metrics_key"] = metrics_key
    return out


def _chat_template(path: str | None) -> str | None:
    """The template's source, read once and tried once, so a bad file fails here rather than per request."""
    if path is None:
        return None
    from ..jinja_render import load_chat_template
    from ..render import render_prompt

    try:
        source = load_chat_template(path)
        render_prompt([{"role": "user", "content": "hi"}], chat_template=source)
    except (ValueError, ImportError, OSError) as exc:
        raise UsageError(f"--chat-template {path}: {exc}") from None
    return source

"""``m2parse serve``: the OpenAI-compatible chat server in front of a raw-completion backend, on uvicorn."""

from __future__ import annotations

import argparse
import logging
import os

from ..backends import BACKEND_TYPES
from . import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", required=True, metavar="URL", help="base URL of the backend, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--backend-type",
        default="openai",
        choices=BACKEND_TYPES,
        help="openai (= vllm, sglang: /v1/completions), tgi (/generate_stream), llamacpp (native /completion)",
    )
    parser.add_argument("--backend-model", help="model name sent to an OpenAI-style backend (default: its first model)")
    parser.add_argument(
        "--backend-api-key", default=os.environ.get("M2PARSE_BACKEND_API_KEY"), help="bearer key for the backend"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("M2PARSE_API_KEY"),
        help="require this bearer key from clients (or M2PARSE_API_KEY)",
    )
    parser.add_argument("--model-name", default="MiniMax-M2", help="the model id served on /v1/models")
    parser.add_argument("--template", default="MiniMax-M2", help="built-in prompt template variant")
    parser.add_argument(
        "--chat-template",
        metavar="PATH",
        help="render with this jinja chat template instead (.jinja, tokenizer_config.json or model folder)",
    )
    parser.add_argument("--reasoning", choices=("separated", "inline"), default="separated")
    parser.add_argument(
        "--reasoning-field", choices=("reasoning_content", "reasoning", "both"), default="reasoning_content"
    )
    parser.add_argument("--infer-types", action="store_true", help="read values without a schema as JSON")
    parser.add_argument("--unknown-tool", choices=("keep", "drop"), default="keep")
    parser.add_argument("--unknown-parameter", choices=("keep", "drop"), default="keep")
    parser.add_argument("--no-validate", action="store_true", help="skip JSON-schema validation of arguments")
    parser.add_argument(
        "--recommended-sampling",
        action="store_true",
        help="fill temperature 1.0, top_p 0.95, top_k 20 when a request leaves them out",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait on the backend per read")
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
        from ..server.config import RECOMMENDED_DEFAULTS
    except ImportError as exc:
        raise UsageError(f"the server needs the [server] extra (pip install 'm2parse[server]'): {exc}") from None
    if args.chat_template is None:
        from ..templates import get_variant

        try:
            get_variant(args.template)
        except ValueError as exc:
            raise UsageError(f"--template: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    try:
        config = ServerConfig(
            backend_url=args.backend,
            backend_type=args.backend_type,
            backend_model=args.backend_model,
            backend_api_key=args.backend_api_key,
            api_key=args.api_key,
            model_name=args.model_name,
            template=args.template,
            chat_template=_chat_template(args.chat_template),
            reasoning=args.reasoning,
            reasoning_field=args.reasoning_field,
            infer_types=args.infer_types,
            unknown_tool=args.unknown_tool,
            unknown_parameter=args.unknown_parameter,
            validate=not args.no_validate,
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            default_sampling=RECOMMENDED_DEFAULTS if args.recommended_sampling else (),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))  # not one line per request
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


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

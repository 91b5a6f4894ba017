"""The escape hatch: render any chat template with jinja2, in an environment that behaves like transformers'.

Plain jinja2 renders the M2 templates wrongly (stray whitespace without trim/lstrip_blocks, a ``tojson`` that
sorts keys and escapes non-ASCII, no ``raise_exception``), so this module rebuilds the environment
``apply_chat_template`` uses. jinja2 is imported only here, and only when a ``chat_template`` is given.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from .format import BOS, TURN_END
from .render import RenderError

__all__ = ["load_chat_template", "render_chat_template"]

#: What a MiniMax-M2 tokenizer passes as template variables (``special_tokens_map``); kwargs override them.
SPECIAL_TOKENS = {"bos_token": BOS, "eos_token": TURN_END, "unk_token": "]!d~["}
_MIN_JINJA = (3, 1, 6)
#: Bounds on what one template operation may build (jinja's sandbox already caps ``range`` at 100,000 items):
#: ``seq * n`` at this many items or characters, ``a ** b`` at this many bits of integer result.
MAX_REPEAT = 10_000_000
MAX_POWER_BITS = 100_000


def load_chat_template(template: str | os.PathLike[str]) -> str:
    """Template source from a string, a ``.jinja`` file, a ``tokenizer_config.json`` or a model folder."""
    if isinstance(template, str) and ("{{" in template or "{%" in template):
        return template
    path = Path(template)
    if path.is_dir():
        candidates = [path / "chat_template.jinja", path / "tokenizer_config.json"]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    if not path.is_file():
        raise RenderError(f"chat_template {str(template)!r}: no such file, and it is not a template ('{{' or '{{%')")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".json":
        return text
    source = json.loads(text).get("chat_template")
    if isinstance(source, list):  # named templates: [{"name": "default", "template": ...}, ...]
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    if not isinstance(source, str):
        raise RenderError(f"{path}: no 'chat_template' string in it")
    return source


def render_chat_template(
    template: str | os.PathLike[str],
    messages: list[dict[str, Any]],
    tools: list[Any] | None = None,
    *,
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> str:
    """Render prepared messages (see render.prepare_messages) the way ``apply_chat_template(tokenize=False)`` does."""
    compiled = _compile(load_chat_template(template))
    variables = {**SPECIAL_TOKENS, **template_kwargs}
    import jinja2

    try:
        return compiled.render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt, **variables
        )
    except RecursionError:
        raise RenderError(f"the chat template recursed too deep{_template_line()}") from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        # The template is the operator's code: any failure in it is a RenderError, with the line that raised.
        raise RenderError(f"the chat template raised {type(exc).__name__}: {exc}{_template_line(exc)}") from exc


def _template_line(exc: BaseException | None = None) -> str:
    """`` (template line N)`` from the innermost template frame of the traceback, when jinja left one."""
    tb = exc.__traceback__ if exc is not None else sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (template line {line})" if line is not None else ""


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    """Compiling costs milliseconds; templates are few and immutable, so a bounded cache is safe."""
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from jinja2.utils import Namespace
    except ImportError:
        raise ImportError("chat_template= needs jinja2; install it with: pip install 'm2parse[jinja]'") from None
    if tuple(int(p) for p in jinja2.__version__.split(".")[:3] if p.isdigit()) < _MIN_JINJA:
        raise ImportError(f"chat_template= needs jinja2 >= 3.1.6 (sandbox fixes), found {jinja2.__version__}")

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}…{% endgeneration %}`` marks assistant tokens for masks; for text it is a no-op."""

        tags = {"generation"}  # noqa: RUF012 - jinja's extension API

        def parse(self, parser: Any) -> Any:
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class TemplateNamespace(Namespace):
        """A namespace that refuses underscore-prefixed attributes, as transformers' does."""

        def __init__(*args: Any, **kwargs: Any) -> None:
            for name in dict(*args[1:], **kwargs):
                _check_attribute(name)
            Namespace.__init__(*args, **kwargs)

        def __setitem__(self, name: str, value: Any) -> None:
            _check_attribute(name)
            Namespace.__setitem__(self, name, value)

    def _check_attribute(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} starts with an underscore")

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        """transformers' sandbox, plus size checks on the two operators that build huge values from a few bytes.

        Intercepting them also stops jinja from folding ``10**10**10`` at compile time.
        """

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    env = BoundedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now, namespace=TemplateNamespace)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"the chat template does not compile: {exc} (line {exc.lineno})") from exc


def _check_binop(operator: str, left: Any, right: Any) -> None:
    import jinja2

    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT:
                raise jinja2.exceptions.SecurityError(f"'*' would build more than {MAX_REPEAT:,} items or characters")
    elif isinstance(left, int) and isinstance(right, int) and (abs(left).bit_length() - 1) * right > MAX_POWER_BITS:
        raise jinja2.exceptions.SecurityError(f"'**' would build an integer of more than {MAX_POWER_BITS:,} bits")

"""Write the golden vectors in fixtures/golden/: conversations and the exact prompts the official templates render.

    python scripts/make_golden.py            # (re)write fixtures/golden/*.jsonl
    python scripts/make_golden.py --check    # exit 1 when the files on disk differ from what would be written

The reference templates come from ``$M2PARSE_REFERENCE_DIR``, else ``../shared/reference`` (the folder the
conformance tests read), and are rendered by real transformers 5.23.0: its ``render_jinja_template`` with the one
input step ``apply_chat_template`` adds (None-valued message keys dropped), exactly as
``tests/test_render_conformance.py`` does. The conversations are the fixed ones of the conformance tests
(``tests/render_cases.py``) plus a seeded, deterministic generated set over every branch of the templates, with
the prompt's own markup glued into the text. The output never depends on m2parse: it is evidence about the
templates, and ``tests/test_golden.py`` holds the renderer and the prompt reader to it on every clone.

MiniMax-M3 gets its own file from its own cases (``tests/render_cases.M3_CASES``) and generator
(``M3Generator``, its own seed), written when the reference folder holds it; the M2 files never depend on it.
The M3 vectors' ``kwargs`` carry ``thinking_mode``.

One file per template, one JSON line per conversation:
``{"id", "messages", "tools", "kwargs", "prompt", "generation_prompt"}`` where ``prompt`` is the rendering with
``add_generation_prompt=False`` and ``prompt + generation_prompt`` the rendering with ``True`` (so each line is
two vectors); or ``{"id", "messages", "tools", "kwargs", "error"}`` when transformers raises on the conversation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "golden"
#: The official M2-family templates.
TEMPLATES = ("MiniMax-M2", "MiniMax-M2-original", "MiniMax-M2.1", "MiniMax-M2.5", "MiniMax-M2.7")
#: MiniMax-M3, a different format: its own fixed cases (render_cases.M3_CASES) and generator. Written when the
#: reference folder holds it (the M2 files never depend on it).
M3_TEMPLATE = "MiniMax-M3"
PINNED = "5.23.0"
SEED = 20261202
GENERATED = 200
M3_SEED = 20261203
M3_GENERATED = 230
SPECIAL_TOKENS = {"bos_token": "]~!b[", "eos_token": "[e~[", "unk_token": "]!d~["}

Conversation = tuple[str, list[dict[str, Any]], "list[dict[str, Any]] | None", dict[str, Any]]


def reference_dir() -> Path | None:
    """``$M2PARSE_REFERENCE_DIR``, else ``<repo>/../shared/reference``; None when neither holds the templates."""
    for candidate in (os.environ.get("M2PARSE_REFERENCE_DIR"), ROOT.parent / "shared" / "reference"):
        if candidate and all((Path(candidate) / n / "chat_template.jinja").is_file() for n in TEMPLATES):
            return Path(candidate)
    return None


# ------------------------------------------------------------------------------------------- conversations


class Generator:
    """Seeded conversations over every role, content shape, call shape and branch of the templates."""

    NAMES = ("get_weather", "f", "search", "中文", "a-b.c")
    ALPHABET = "ab k\n\t\"'&<>/=[]~!e中文😀{}:09."
    #: what varies by template: the roles of dropped messages, the floats a value may be, the chance of an
    #: assistant turn having calls, the bound on the number of turns
    DROPPED_ROLES: tuple[str | None, ...] = ("system", "developer", "function", None)
    FLOATS: tuple[float, ...] = (0.5, -2.25, 1e100, 3.0, 1e-7)
    CALL_CHANCE = 0.5
    MAX_TURNS = 7

    def __init__(self, seed: int) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.render_cases import RICH_TOOLS
        from tests.test_render import MARKUP_BITS, PLAIN_BITS, WEATHER_TOOLS

        self.rng = random.Random(seed)
        self.bits = PLAIN_BITS + MARKUP_BITS
        self.tool_lists: list[Any] = [None, [], WEATHER_TOOLS, RICH_TOOLS]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def text(self) -> str:
        rng = self.rng
        if self.chance(0.3):
            return "".join(rng.choice(self.ALPHABET) for _ in range(rng.randrange(12)))
        return "".join(rng.choice(self.bits) for _ in range(rng.randrange(6)))

    def scalar(self, kind: int) -> Any:
        """Value kinds 0-5, the same for every template: None, a bool, an int, a float (from FLOATS), text (twice)."""
        rng = self.rng
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 7, 2**53 + 1, -(2**70)])
        if kind == 3:
            return rng.choice(self.FLOATS)
        return self.text()

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(9 if depth < 2 else 6)
        if kind < 6:
            return self.scalar(kind)
        if kind in (6, 7):
            return [self.value(depth + 1) for _ in range(rng.randrange(3))]
        return {self.text(): self.value(depth + 1) for _ in range(rng.randrange(3))}

    def content(self) -> Any:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return None
        if kind == 1:  # text around think tags: the template splits assistant content there
            tags = ["</think>", "<think>", "\n</think>\n\n", "<think>\n"]
            return "".join(rng.choice([self.text(), rng.choice(tags)]) for _ in range(1 + rng.randrange(4)))
        if kind == 2:
            parts: list[Any] = []
            for _ in range(rng.randrange(4)):
                shape = rng.randrange(4)
                if shape == 0:
                    parts.append(self.text())
                elif shape == 1:
                    parts.append({"type": "text", "text": self.text()})
                elif shape == 2:
                    parts.append({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
                else:
                    parts.append({"type": "text"})
            return parts
        return self.text()

    def tool_result(self) -> Any:
        rng = self.rng
        kind = rng.randrange(5)
        if kind == 0:
            return None
        if kind == 1:
            items: list[Any] = []
            for _ in range(rng.randrange(4)):
                shape = rng.randrange(4)
                if shape == 0:
                    items.append(self.text())
                elif shape == 1:
                    items.append({"type": "text", "text": self.text()})
                elif shape == 2:
                    items.append({"output": self.value()})
                else:
                    items.append({"type": "image_url", "image_url": {"url": "u"}})
            return items
        return self.text()

    def call(self) -> dict[str, Any]:
        rng = self.rng
        name = rng.choice(self.NAMES) if self.chance(0.8) else self.text()
        keys = [rng.choice(self.NAMES) if self.chance(0.5) else self.text() for _ in range(rng.randrange(4))]
        arguments = {key: self.value() for key in keys}
        shape = rng.randrange(5)
        if shape == 0:
            return {"name": name, "arguments": arguments}
        if shape == 1:  # a falsy "function" makes the template read the call itself
            return {"function": rng.choice([{}, None]), "name": name, "arguments": arguments}
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        if shape == 2:  # the release body reads this key in its tool-result check
            call["name"] = rng.choice([None, name])
        return call

    def tools(self) -> Any:
        rng = self.rng
        if self.chance(0.8):
            return rng.choice(self.tool_lists)
        name = rng.choice(self.NAMES)
        properties = {rng.choice(self.NAMES): {"type": rng.choice(["string", "integer", "object"])}}
        return [{"type": "function", "function": {"name": name, "description": self.text(), "parameters": {
            "type": "object", "properties": properties}}}]  # fmt: skip

    def conversation(self) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.chance(0.5):
            system: dict[str, Any] = {"role": "system"}
            if self.chance(0.8):
                system["content"] = self.content()
            if self.chance(0.3):
                system["current_date"] = self.text() if self.chance(0.95) else 20250101
            if self.chance(0.3):
                system["current_location"] = self.text()
            messages.append(system)
        self.turns(messages)
        kwargs = {"model_identity": self.text()} if self.chance(0.15) else {}
        return messages, self.tools(), kwargs

    def turns(self, messages: list[dict[str, Any]]) -> None:
        """Append the turns after the front messages: users, assistants, tool runs after calls, dropped ones."""
        rng = self.rng
        calls_open = False
        for _ in range(rng.randrange(0 if messages else 1, self.MAX_TURNS)):
            kinds = ["user", "user", "assistant", "assistant", "assistant", "dropped"] + ["tool"] * (3 * calls_open)
            if not calls_open and self.chance(0.04):
                kinds = ["tool"]  # the template raises: a result with no call before it
            kind = rng.choice(kinds)
            if kind == "user":
                message: dict[str, Any] = {"role": "user"}
                if self.chance(0.9):
                    message["content"] = self.content()
            elif kind == "tool":
                message = {"role": "tool", "tool_call_id": "call_1"}
                if self.chance(0.9):
                    message["content"] = self.tool_result()
            elif kind == "dropped":
                role = rng.choice(self.DROPPED_ROLES)
                message = {"role": role, "content": self.text()} if role else {"content": self.text()}
            else:
                message = {"role": "assistant"}
                if self.chance(0.8):
                    message["content"] = self.content()
                if self.chance(0.5):
                    key = rng.choice(["reasoning_content", "reasoning_content", "reasoning", "thinking"])
                    message[key] = self.text() if self.chance(0.9) else None
                if self.chance(self.CALL_CHANCE):
                    message["tool_calls"] = [self.call() for _ in range(rng.randrange(4))]
                calls_open = bool(message.get("tool_calls"))
            messages.append(message)


class M3Generator(Generator):
    """Seeded M3 conversations: root/system/developer roles, media parts, think tags in content, nested arguments
    with None at several levels, tool-result runs, every thinking_mode (and an unknown one), M3's own markup glued
    into the text. Draws from its own stream, so the M2 vectors never change."""

    NAMES = ("get_weather", "f", "search", "中文", "a-b.c", "item", "a")
    DROPPED_ROLES = ("root", "system", "developer", "function", None)
    FLOATS = (0.5, -2.25, 1e100, 3.0, 1e-7, -0.0, float("inf"), float("nan"))
    CALL_CHANCE = 0.6
    MAX_TURNS = 8
    THINK_TAGS = ("</mm:think>", "<mm:think>", "\n</mm:think>\n", "<mm:think>\n")

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from tests.test_render import PLAIN_BITS
        from tests.test_render_m3 import M3_MARKUP_BITS

        self.bits = PLAIN_BITS + M3_MARKUP_BITS

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(11 if depth < 3 else 6)
        if kind < 6:
            return self.scalar(kind)
        if kind in (6, 7):
            return [self.value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 8:  # an array of objects
            return [{self.key(): self.value(depth + 2) for _ in range(1 + rng.randrange(2))} for _ in range(2)]
        return {self.key(): self.value(depth + 1) for _ in range(rng.randrange(4))}

    def key(self) -> str:
        return self.rng.choice(self.NAMES) if self.chance(0.6) else self.text()

    def content(self) -> Any:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return None
        if kind == 1:
            return "".join(rng.choice([self.text(), rng.choice(self.THINK_TAGS)]) for _ in range(1 + rng.randrange(4)))
        if kind == 2:
            parts: list[Any] = []
            for _ in range(rng.randrange(4)):
                shape = rng.randrange(5)
                if shape == 0:
                    parts.append(self.text())
                elif shape == 1:
                    parts.append({"type": "text", "text": self.text()})
                elif shape == 2:
                    parts.append({"type": rng.choice(["image", "video"])})
                elif shape == 3:
                    parts.append({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
                else:
                    parts.append({"type": "text"})
            return parts
        return self.text()

    def tool_result(self) -> Any:
        rng = self.rng
        if rng.randrange(4) == 0:
            items: list[Any] = []
            for _ in range(rng.randrange(4)):
                shape = rng.randrange(5)
                if shape == 0:
                    items.append(self.text())
                elif shape == 1:
                    items.append({"type": "text", "text": self.text()})
                elif shape == 2:
                    items.append({"output": self.value()})
                elif shape == 3:
                    items.append({"type": rng.choice(["image", "video"])})
                else:
                    items.append({"type": "image_url", "image_url": {"url": "u"}})
            return items
        return super().tool_result()

    def call(self) -> dict[str, Any]:
        rng = self.rng
        name = rng.choice(self.NAMES) if self.chance(0.8) else self.text()
        arguments = {self.key(): self.value() for _ in range(rng.randrange(5))}
        shape = rng.randrange(4)
        if shape == 0:
            return {"name": name, "arguments": arguments}
        if shape == 1:
            return {"function": rng.choice([{}, None]), "name": name, "arguments": arguments}
        return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}

    def conversation(self) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
        rng = self.rng
        messages: list[dict[str, Any]] = []
        for role, p in (("root", 0.4), (None, 0.5)):
            if self.chance(p):
                message: dict[str, Any] = {"role": role or rng.choice(["system", "developer"])}
                if self.chance(0.85):
                    message["content"] = self.content()
                messages.append(message)
        self.turns(messages)
        kwargs: dict[str, Any] = {}
        mode = rng.choice([None, "enabled", "disabled", "adaptive", "auto"])
        if mode is not None:
            kwargs["thinking_mode"] = mode
        if self.chance(0.15):
            kwargs["model_identity"] = self.text()
        return messages, self.tools(), kwargs


def m3_conversations() -> list[Conversation]:
    """The fixed M3 conformance cases, then the generated ones."""
    sys.path.insert(0, str(ROOT))
    from tests.render_cases import M3_CASES

    fixed = [(f"fixed/{name}", messages, tools, kwargs) for name, (messages, tools, kwargs) in M3_CASES.items()]
    generator = M3Generator(M3_SEED)
    generated = [(f"generated/{i:03d}", *generator.conversation()) for i in range(M3_GENERATED)]
    return fixed + generated


def conversations() -> list[Conversation]:
    """The fixed conformance cases, then the generated ones; ids are stable names."""
    sys.path.insert(0, str(ROOT))
    from tests.render_cases import CASES

    fixed = [(f"fixed/{name}", messages, tools, kwargs) for name, (messages, tools, kwargs) in CASES.items()]
    generator = Generator(SEED)
    generated = [(f"generated/{i:03d}", *generator.conversation()) for i in range(GENERATED)]
    return fixed + generated


# ------------------------------------------------------------------------------------------- rendering


def reference_render(source: str, messages: list[dict[str, Any]], tools: Any, generation: bool, **kwargs: Any) -> str:
    """transformers 5.23's apply_chat_template(tokenize=False): None-valued keys dropped, then the template."""
    from transformers.utils.chat_template_utils import render_jinja_template

    messages = [{k: v for k, v in m.items() if v is not None} for m in messages]
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools, chat_template=source, add_generation_prompt=generation,
        **{**SPECIAL_TOKENS, **kwargs},
    )  # fmt: skip
    return rendered[0]


def vector(source: str, case: Conversation) -> dict[str, Any]:
    import jinja2

    ident, messages, tools, kwargs = case
    line: dict[str, Any] = {"id": ident, "messages": messages, "tools": tools, "kwargs": kwargs}
    try:
        plain = reference_render(source, messages, tools, False, **kwargs)
        with_prompt = reference_render(source, messages, tools, True, **kwargs)
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        return {**line, "error": f"{type(exc).__name__}: {exc}"}
    if not with_prompt.startswith(plain):
        raise AssertionError(f"{ident}: the generation prompt is not a suffix")
    return {**line, "prompt": plain, "generation_prompt": with_prompt[len(plain) :]}


def build(reference: Path) -> dict[str, str]:
    """File name -> file text for every template: what this script writes."""
    import transformers

    if transformers.__version__ != PINNED:
        raise SystemExit(f"needs transformers=={PINNED} (as the conformance tests), not {transformers.__version__}")
    cases = conversations()
    files = {}
    for name in TEMPLATES:
        source = (reference / name / "chat_template.jinja").read_text(encoding="utf-8")
        lines = [json.dumps(vector(source, case), ensure_ascii=False) + "\n" for case in cases]
        files[f"{name}.jsonl"] = "".join(lines)
    m3_path = reference / M3_TEMPLATE / "chat_template.jinja"
    if m3_path.is_file():
        source = m3_path.read_text(encoding="utf-8")
        lines = [json.dumps(vector(source, case), ensure_ascii=False) + "\n" for case in m3_conversations()]
        files[f"{M3_TEMPLATE}.jsonl"] = "".join(lines)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when fixtures/golden/ is not what would be written")
    args = ap.parse_args(argv)
    reference = reference_dir()
    if reference is None:
        print("no reference templates: set M2PARSE_REFERENCE_DIR (default ../shared/reference)", file=sys.stderr)
        return 2
    files = build(reference)
    stale = [n for n, text in files.items() if not (OUT / n).is_file() or (OUT / n).read_text("utf-8") != text]
    if args.check:
        for name in stale:
            print(f"out of date: fixtures/golden/{name} (run python scripts/make_golden.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8", newline="\n")
    lines = sum(t.count("\n") for t in files.values())
    size = sum(len(t.encode("utf-8")) for t in files.values())
    print(f"wrote {len(files)} files, {lines} lines, {size / 1e6:.2f} MB to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

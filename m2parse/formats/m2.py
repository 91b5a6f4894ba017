"""The MiniMax-M2 output format as a description, built from the spellings in m2parse/format.py.

format.py stays the one place that spells M2's tags (render.py, the server and the integrations import it);
this module only says how the engine should read them.
"""

from __future__ import annotations

from .. import format as f
from .spec import Markup, OutputFormat

MARKUP = Markup(
    namespace="",
    think_open=f.THINK_OPEN,
    think_close=f.THINK_CLOSE,
    think_newline="\n",
    tool_call_open=f.TOOL_CALL_OPEN,
    tool_call_close=f.TOOL_CALL_CLOSE,
    invoke_tag=f.INVOKE_TAG,
    parameter_tag=f.PARAMETER_TAG,
    newline_before_block=True,
    bos=f.BOS,
    turn_start=f.TURN_START,
    turn_end=f.TURN_END,
)
assert MARKUP.invoke_close == f.INVOKE_CLOSE and MARKUP.tag(f.PARAMETER_TAG, closing=True) == f.PARAMETER_CLOSE

M2 = OutputFormat(
    name="m2",
    markup=MARKUP,
    values="flat",
    item_tag=None,
    thinking_modes=(),
    generation_prompts={None: f.GENERATION_PROMPT},
)

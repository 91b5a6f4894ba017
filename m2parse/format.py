"""The literal markers of the MiniMax-M2 prompt and output format.

Everything that knows a tag's spelling imports it from here, so a family variant changes one file.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_CALL_OPEN = "<minimax:tool_call>"
TOOL_CALL_CLOSE = "</minimax:tool_call>"
INVOKE_TAG = "invoke"
INVOKE_CLOSE = "</invoke>"
PARAMETER_TAG = "parameter"
PARAMETER_CLOSE = "</parameter>"

BOS = "]~!b["
TURN_START = "]~b]"
TURN_END = "[e~["
#: Markers that end an assistant turn when a backend did not stop on them.
TURN_MARKERS = (BOS, TURN_START, TURN_END)

ROLE_SYSTEM = "system"
ROLE_USER = "user"
ROLE_AI = "ai"
ROLE_TOOL = "tool"

#: What the official template appends with add_generation_prompt=True: the output starts inside reasoning.
GENERATION_PROMPT = TURN_START + ROLE_AI + "\n" + THINK_OPEN + "\n"

#: Stop strings a raw-completion backend should be given so that it never runs past the turn.
STOP_STRINGS = (TURN_END, TURN_START)

#: MiniMax's recommended sampling defaults for M2 (documented, never forced).
RECOMMENDED_SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 20}

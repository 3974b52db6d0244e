"""contextcompany: OpenTelemetry-native observability for AI agents.

>>> import contextcompany as tcc
>>> r = tcc.run()
>>> s = r.step().prompt("Hello").response("World").model(requested="gpt-4", used="gpt-4-0613")
>>> s.tokens(prompt_uncached=150, prompt_cached=50, completion=25).end()
>>> r.prompt("Say hello").response("World").end()
"""

from ._api import flush, run, shutdown, stats, step, tool_call
from ._decorators import agent, tool
from ._destinations import get_api_key, get_url
from ._export import SpanProcessor, Stats
from ._import import send_run, send_step, send_tool_call
from ._records import Run, Step, ToolCall, current_run, submit_feedback
from ._settings import configure

__version__ = "3.0.0"

__all__ = [
    "Run",
    "SpanProcessor",
    "Stats",
    "Step",
    "ToolCall",
    "__version__",
    "agent",
    "configure",
    "current_run",
    "flush",
    "get_api_key",
    "get_url",
    "run",
    "send_run",
    "send_step",
    "send_tool_call",
    "shutdown",
    "stats",
    "step",
    "submit_feedback",
    "tool",
    "tool_call",
]

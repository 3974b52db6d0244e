"""Plain-text helpers shared by the terminal tree and the web viewer: numbers, durations, messages.

Nothing here imports rich, so the viewer's store works without the ``cli`` extra.

Example::

    >>> format_duration(1200)
    '1.20 s'
    >>> message_texts('[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]')
    ['Hi']
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "format_cost",
    "format_duration",
    "format_tokens",
    "json_preview",
    "message_preview",
    "message_texts",
    "number",
    "parse_json",
    "shorten",
]


def format_duration(ms: float) -> str:
    """``12.3 ms`` below a second, ``1.20 s`` above."""
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def format_cost(usd: float) -> str:
    """Six decimals, enough for the cost of one small call: ``$0.000150``."""
    return f"${usd:.6f}"


def number(value: Any) -> float | None:
    """An int or float attribute value; a bool (an int subclass, and a bug upstream) is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def format_tokens(value: Any) -> str | None:
    """``12,345``, or None when the value is not a number."""
    n = number(value)
    return None if n is None else f"{int(n):,}"


def shorten(text: str, limit: int, ellipsis: str = "…") -> str:
    """One line of at most ``limit`` characters: whitespace runs collapsed, the end cut."""
    flat = " ".join(text.split())  # newlines would break a one-line layout
    return flat if len(flat) <= limit else flat[: limit - len(ellipsis)].rstrip() + ellipsis


def parse_json(raw: Any) -> Any:
    """``raw`` decoded as JSON when it is a JSON string, else ``raw`` itself (never raises)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _part_text(part: Any) -> str | None:
    if not isinstance(part, Mapping):
        return None
    if part.get("type") == "text" and isinstance(part.get("content"), str):
        return str(part["content"])
    # Not text (a tool call, an image...): name what it is rather than show nothing.
    kind = part.get("type", "part")
    name = part.get("name")
    return f"[{kind} {name}]" if isinstance(name, str) else f"[{kind}]"


def _texts(messages: list[Mapping[str, Any]]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        parts = message.get("parts")
        if isinstance(parts, list):
            texts.extend(t for t in map(_part_text, parts) if t)
        elif isinstance(message.get("content"), str):  # the older {"role", "content"} shape
            texts.append(message["content"])
    return texts


def message_texts(raw: Any) -> list[str]:
    """Every text in a GenAI messages (or parts) JSON value; a value that is not that JSON, as is."""
    if raw is None:
        return []
    data = parse_json(raw)
    if not isinstance(data, list):
        text = raw if isinstance(raw, str) else str(raw)
        return [text] if text else []
    # A list of parts (system instructions) reads the same as the parts of one message.
    items = [m for m in data if isinstance(m, Mapping)]
    if items and all("parts" not in m and "role" not in m for m in items):
        return [t for t in map(_part_text, items) if t]
    return _texts(items)


def message_preview(raw: Any, role: str | None, limit: int, ellipsis: str = "…") -> str | None:
    """The text of a GenAI messages JSON value, shortened; the last ``role`` message when given.

    Anything that is not the expected JSON is shown as it is, shortened: a preview never fails.
    """
    if raw is None:
        return None
    if not isinstance(raw, str):
        raw = str(raw)
    try:
        data = json.loads(raw)
    except ValueError:
        return shorten(raw, limit, ellipsis) or None
    if not isinstance(data, list):
        return shorten(raw, limit, ellipsis) or None
    messages = [m for m in data if isinstance(m, Mapping)]
    if role is not None:
        # The prompt is the latest user turn; earlier turns and system messages are context.
        chosen = [m for m in messages if m.get("role") == role][-1:] or messages[-1:]
    else:
        chosen = messages
    text = " ".join(_texts(chosen))
    return shorten(text, limit, ellipsis) if text else None


def json_preview(raw: Any, limit: int, ellipsis: str = "…") -> str | None:
    """A JSON value on one line (compact), shortened; text that is not JSON, shortened as it is."""
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else str(raw)
    with contextlib.suppress(ValueError, TypeError, RecursionError):  # not JSON: shown as it is
        # Re-dumped compactly so pretty-printed arguments still fit on one line.
        text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    return shorten(text, limit, ellipsis)

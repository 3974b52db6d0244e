"""What content leaves the process: capture on or off, the user's mask, and a size limit.

    >>> apply({"gen_ai.input.messages": big_json}, (sc.INPUT_MESSAGES,))   # in place, as a record ends

Applied to the content attributes of each record as it ends (prompts, responses, system instructions,
tool arguments and results, full input and output, feedback text), on the caller's thread, so the
policy holds on every exporter the span reaches, a service's own included:

- ``capture_content`` off (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false`` or
  ``configure(capture_content=False)``): the content attributes are left out, and ``tcc.content.withheld``
  names them, so the span processor can still tell a step that had a prompt and a response from one
  that did not.
- ``configure(mask=fn)``: ``fn`` is applied to every content string (each text inside a message, each
  string inside JSON arguments and results) before export. A mask that raises or returns a non-str
  withholds that attribute: content is never sent unmasked.
- A value longer than the limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, else 262,144 characters) is
  cut with a visible marker, and ``tcc.truncated.<attribute>`` records its original length. Messages
  stay valid JSON: the longest texts inside are cut, not the JSON itself. The default keeps even a step
  with a long prompt, response and tool definitions around a megabyte, so the span processor can send
  it in a request well inside the 4 MiB a collector's gRPC receiver accepts by default.

With nothing configured and nothing too long, this is a few length checks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from . import _semconv as sc

logger = logging.getLogger("contextcompany")

DEFAULT_VALUE_LIMIT: Final = 262_144
WITHHELD: Final = "tcc.content.withheld"
TRUNCATED_PREFIX: Final = "tcc.truncated."
# Keys of the GenAI message format that say how a message is built, not what it says: never masked.
_STRUCTURE: Final = frozenset({"role", "type", "finish_reason", "modality", "mime_type", "id", "name"})
_JSON_KEYS: Final = frozenset(
    {
        sc.INPUT_MESSAGES,
        sc.OUTPUT_MESSAGES,
        sc.SYSTEM_INSTRUCTIONS,
        sc.TOOL_CALL_ARGUMENTS,
        sc.TOOL_CALL_RESULT,
    }
)
_MAX_CUTS: Final = 32
_warned: set[str] = set()


def value_limit_from_env() -> int:
    raw = os.environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "").strip()
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_VALUE_LIMIT
    return value if value > 0 else DEFAULT_VALUE_LIMIT


def marker(original: int) -> str:
    return f"…[truncated by tcc: {original} chars]"


def apply(
    attributes: dict[str, AttributeValue],
    keys: Iterable[str],
    *,
    capture: bool,
    mask: Callable[[str], str] | None,
    limit: int,
) -> None:
    """Apply the content policy to ``attributes`` (only the ``keys`` present are content), in place."""
    if not capture:
        withheld = tuple(key for key in keys if attributes.pop(key, None) is not None)
        if withheld:
            attributes[WITHHELD] = withheld
        return
    withheld_list: list[str] = []
    for key in keys:
        value = attributes.get(key)
        if not isinstance(value, str):
            continue
        if mask is not None:
            masked = _masked(key, value, mask)
            if masked is None:
                del attributes[key]
                withheld_list.append(key)
                continue
            value = masked
        if len(value) > limit:
            attributes[TRUNCATED_PREFIX + key] = len(value)
            value = _truncated(key, value, limit)
        attributes[key] = value
    if withheld_list:
        attributes[WITHHELD] = tuple(withheld_list)


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def _parse(key: str, value: str) -> Any:
    """The JSON inside a content attribute, or None when it is plain text."""
    if key not in _JSON_KEYS and not value.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


def _walk(value: Any, fn: Callable[[str], str], parent_key: str | None = None) -> Any:
    if isinstance(value, str):
        return value if parent_key in _STRUCTURE else fn(value)
    if isinstance(value, list):
        return [_walk(v, fn, parent_key) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, fn, k) for k, v in value.items()}
    return value


def _masked(key: str, value: str, mask: Callable[[str], str]) -> str | None:
    def checked(text: str) -> str:
        out = mask(text)
        if not isinstance(out, str):
            raise TypeError(f"the mask returned {type(out).__name__}, not str")
        return out

    try:
        parsed = _parse(key, value)
        if parsed is None:
            return checked(value)
        return sc.dumps(_walk(parsed, checked))
    except Exception as exc:
        # Never send what the user wanted masked: withhold it instead, and say why once.
        _warn_once(
            "mask",
            "contextcompany: configure(mask=...) failed (%s: %s); the content was withheld",
            type(exc).__name__,
            exc,
        )
        return None


def _cut(text: str, keep: int, original: int) -> str:
    return text[: max(keep, 0)] + marker(original)


def _truncated(key: str, value: str, limit: int) -> str:
    parsed = _parse(key, value)
    if parsed is not None:
        shortened = _truncate_json(parsed, limit)
        if shortened is not None:
            return shortened
    tail = marker(len(value))
    return value[: max(limit - len(tail), 0)] + tail if limit > len(tail) else value[:limit]


def _truncate_json(parsed: Any, limit: int) -> str | None:
    """Cut the longest strings inside until the JSON fits; None if that does not get it there."""
    for _ in range(_MAX_CUTS):
        text = sc.dumps(parsed)
        excess = len(text) - limit
        if excess <= 0:
            return text
        holder, slot, longest = _longest(parsed)
        if holder is None or len(longest) < 64:
            return None  # many small pieces: no single cut helps
        original = len(longest)
        # Escaping can make the JSON longer than the string's own length; the next round cuts again if so.
        holder[slot] = _cut(longest, len(longest) - excess - len(marker(original)) - 16, original)
    return None


def _longest(value: Any) -> tuple[Any, Any, str]:
    best: tuple[Any, Any, str] = (None, None, "")
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for slot, child in items:
            if isinstance(child, str):
                if len(child) > len(best[2]) and (not isinstance(node, dict) or slot not in _STRUCTURE):
                    best = (node, slot, child)
            elif isinstance(child, dict | list):
                stack.append(child)
    return best

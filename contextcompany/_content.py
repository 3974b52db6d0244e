"""What content leaves the process: capture on or off, the user's mask, and a size limit.

    >>> apply(attributes, (sc.INPUT_MESSAGES,), capture=True, mask=None, limit=262_144)   # in place

Applied to each record's attributes as it ends, before any span processor sees them, so the policy holds
on every exporter the span reaches, a service's own included: on the caller's thread, or on tcc's export
worker for a span only tcc's processor sees (``Pending``: long content, and all of a step's content when
the worker starts its span):

- ``capture`` off (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false`` or
  ``configure(capture_content=False)``): the content attributes (prompts, responses, system
  instructions, tool arguments and results, full input and output, feedback text) are left out, and
  ``tcc.content.withheld`` names them, so the span processor can still tell a step that had a prompt
  and a response from one that did not.
- ``mask`` (``configure(mask=fn)``): ``fn`` is applied to every content string before export: each text
  inside a message, each string (and key) inside JSON arguments and results. A mask that raises or
  returns a non-str withholds that attribute: content is never sent unmasked.
- Any string attribute longer than the limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, else 262,144
  characters) is cut with a visible marker, and ``tcc.truncated.<attribute>`` records its original
  length. JSON stays valid JSON: the longest strings inside are cut to a common length, and when that is
  not enough, trailing items of the list are replaced by one that says how many were left out. The
  default keeps even a step with a long prompt, response and tool definitions around a megabyte, so the
  span processor can send it in a request inside the 4 MiB a collector's gRPC receiver accepts by default.

With nothing configured and nothing too long, this is a few type and length checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from . import _diag as diag
from . import _semconv as sc

logger = logging.getLogger("contextcompany")

WITHHELD: Final = sc.CONTENT_WITHHELD
TRUNCATED_PREFIX: Final = sc.TRUNCATED_PREFIX
# The GenAI message format: these keys of a message and of its parts say how it is built, not what it
# says, and are never masked. Everything deeper (a tool call's arguments, a response) is the user's.
_MESSAGES: Final = frozenset({sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES, sc.SYSTEM_INSTRUCTIONS})
_STRUCTURE: Final = frozenset({"role", "type", "finish_reason", "modality", "mime_type", "id", "name"})
_PART_LISTS: Final = frozenset({"parts"})


def marker(original: int) -> str:
    return f"…[truncated by tcc: {original} chars]"


def fit(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, the marker included, when it is longer."""
    if text is None or len(text) <= limit:
        return text
    tail = marker(len(text))
    return text[: limit - len(tail)] + tail if limit > len(tail) else text[:limit]


# --- content finished on the export worker --------------------------------------------------------------

# A text longer than this is written out (GenAI message JSON), masked and cut on the export worker instead
# of the caller's thread, where that work grows with the text: a 10 MB prompt would cost the caller tens
# of milliseconds. Shorter texts cost microseconds and are finished on the caller, as before.
DEFER_AT: Final = 16_384


class Later:
    """A content attribute whose value is built later: on the export worker when the span goes only
    through a tcc span processor, else on the caller's thread when the record ends.

    >>> Later(sc.text_messages, "user", prompt)()   # the messages JSON of a long prompt, when called
    """

    __slots__ = ("_args", "_build", "size")

    def __init__(self, build: Callable[..., str], text: str, *args: Any) -> None:
        self._build = build
        self._args = (text, *args)
        self.size = len(text)  # what it holds until built, in characters

    def __call__(self) -> str:
        return self._build(*self._args)


# A record's attributes as it ends: some content values may still be to build.
Draft = dict[str, "AttributeValue | Later"]


class Pending:
    """The content attributes of one ended span, with the policy in force when it ended, finished on the
    export worker (``resolve``) exactly as ``apply`` would have on the caller's thread.

    >>> Pending({sc.INPUT_MESSAGES: Later(...)}, keys, mask=None, limit=262_144).resolve()
    """

    __slots__ = ("_keys", "_limit", "_mask", "_values", "size")

    def __init__(
        self,
        values: dict[str, AttributeValue | Later],
        keys: tuple[str, ...],
        *,
        mask: Callable[[str], str] | None,
        limit: int,
    ) -> None:
        self._values = values
        self._keys = keys
        self._mask = mask
        self._limit = limit
        self.size = content_size(values)

    def keys(self) -> list[str]:
        """The content attributes held (finished or not)."""
        return list(self._values)

    def resolve(self) -> dict[str, AttributeValue]:
        attributes = built(self._values)
        apply(attributes, self._keys, capture=True, mask=self._mask, limit=self._limit)
        return attributes


def built(
    attributes: dict[str, AttributeValue | Later], keys: Iterable[str] | None = None
) -> dict[str, AttributeValue]:
    """``attributes`` with every ``Later`` value (among ``keys``, else all) built, in place."""
    for key in list(attributes) if keys is None else keys:
        value = attributes.get(key)
        if isinstance(value, Later):
            attributes[key] = value()
    return attributes  # type: ignore[return-value]  # no Later is left


def content_size(attributes: dict[str, AttributeValue | Later]) -> int:
    """The characters of the texts in ``attributes`` (built or not)."""
    return sum(
        value.size if isinstance(value, Later) else len(value) if type(value) is str else 0
        for value in attributes.values()
    )


def worth_deferring(attributes: dict[str, AttributeValue | Later], keys: Iterable[str]) -> bool:
    """A content attribute is still to be built, or long enough that cutting it would cost the caller."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, Later) or (type(value) is str and len(value) > DEFER_AT):
            return True
    return False


def finish(
    attributes: dict[str, AttributeValue | Later],
    keys: tuple[str, ...],
    *,
    capture: bool,
    mask: Callable[[str], str] | None,
    limit: int,
    defer: bool,
) -> tuple[dict[str, AttributeValue], Pending | None]:
    """The policy applied to a record's attributes as it ends (in place). With ``defer`` (and capture on),
    the content attributes are taken out and returned as a ``Pending`` for the export worker, which
    finishes them exactly as this would have; the rest is finished here.

    >>> ready, pending = finish(attributes, keys, capture=True, mask=None, limit=262_144, defer=True)
    """
    pending = None
    if capture and defer:
        content = {key: attributes.pop(key) for key in keys if key in attributes}
        pending = Pending(content, keys, mask=mask, limit=limit)
    elif capture:
        built(attributes, keys)  # only content attributes are ever Later
    # With capture off, ``apply`` drops every content attribute (every ``Later`` is one) unbuilt.
    ready: dict[str, AttributeValue] = attributes  # type: ignore[assignment]
    apply(ready, keys, capture=capture, mask=mask, limit=limit)
    return ready, pending


def apply(
    attributes: dict[str, AttributeValue],
    keys: Iterable[str],
    *,
    capture: bool,
    mask: Callable[[str], str] | None,
    limit: int,
) -> None:
    """Apply the content policy to ``attributes`` in place; ``keys`` are the content attributes."""
    if not capture:
        withheld = tuple(key for key in keys if attributes.pop(key, None) is not None)
        if withheld:
            attributes[WITHHELD] = withheld
    elif mask is not None:
        withheld_list = []
        for key in keys:
            value = attributes.get(key)
            if isinstance(value, str):
                masked = _masked(key, value, mask)
                if masked is None:
                    del attributes[key]
                    withheld_list.append(key)
                else:
                    attributes[key] = masked
        if withheld_list:
            attributes[WITHHELD] = tuple(withheld_list)
    too_long = [key for key, value in attributes.items() if type(value) is str and len(value) > limit]
    for key in too_long:
        value = attributes[key]
        assert isinstance(value, str)
        attributes[TRUNCATED_PREFIX + key] = len(value)
        attributes[key] = _truncated(value, limit)


def _parse(value: str) -> Any:
    """The JSON list or object inside an attribute, or None when it holds plain text."""
    if not value.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


# --- masking ------------------------------------------------------------------------------------------------


def _mask_all(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_mask_all(v, fn) for v in value]
    if isinstance(value, dict):
        return {fn(k): _mask_all(v, fn) for k, v in value.items()}
    return value


def _mask_message(value: Any, fn: Callable[[str], str], depth: int) -> Any:
    # depth 0: the list of messages (or of parts); 1: a message (or part); 2: its parts; 3: a part.
    if isinstance(value, list) and depth in (0, 2):
        return [_mask_message(v, fn, depth + 1) for v in value]
    if isinstance(value, dict) and depth in (1, 3):
        return {
            k: v
            if k in _STRUCTURE and isinstance(v, str)
            else _mask_message(v, fn, depth + 1)
            if k in _PART_LISTS
            else _mask_all(v, fn)
            for k, v in value.items()
        }
    return _mask_all(value, fn)


def _masked(key: str, value: str, mask: Callable[[str], str]) -> str | None:
    def checked(text: str) -> str:
        out = mask(text)
        if not isinstance(out, str):
            raise TypeError(f"the mask returned {type(out).__name__}, not str")
        return out

    try:
        parsed = _parse(value)
        if parsed is None:
            return checked(value)
        if key in _MESSAGES:
            # system instructions are a list of parts: treat them as the parts of one message
            depth = 2 if key == sc.SYSTEM_INSTRUCTIONS else 0
            return sc.dumps(_mask_message(parsed, checked, depth))
        return sc.dumps(_mask_all(parsed, checked))
    except Exception as exc:
        # Never send what the user wanted masked: withhold it instead, and say why once.
        diag.warn_once(
            "mask",
            "contextcompany: configure(mask=...) failed (%s: %s); the content was withheld",
            type(exc).__name__,
            exc,
        )
        return None


# --- truncation -----------------------------------------------------------------------------------------

_SHORTEST_CUT: Final = 32  # below this, cutting strings further says little: drop list items instead


def _truncated(value: str, limit: int) -> str:
    parsed = _parse(value)
    if parsed is not None:
        shortened = _truncate_json(parsed, limit)
        if shortened is not None:
            return shortened
    return fit(value, limit) or ""


def _leaves(value: Any) -> list[tuple[Any, Any, str]]:
    """(container, slot, string) for every string value in ``value``; keys stay whole."""
    found: list[tuple[Any, Any, str]] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for slot, child in items:
            if isinstance(child, str):
                found.append((node, slot, child))
            elif isinstance(child, dict | list):
                stack.append(child)
    return found


def _truncate_json(parsed: Any, limit: int) -> str | None:
    """Valid JSON of at most ``limit`` characters, or None if even the cut-down shape is too long.

    First every string longer than a common cap is cut to it (the cap found by bisection, so the work
    is one pass per probe, not one per string); then, for a list, trailing items give way to one that
    says how many were left out.
    """
    text = sc.dumps(parsed)
    leaves = _leaves(parsed)
    total = sum(len(s) for _, _, s in leaves)
    overhead = len(text) - total  # everything but the strings' own characters (escapes count here)
    budget = limit - overhead
    lengths = sorted(len(s) for _, _, s in leaves)

    def size_at(cap: int) -> int:
        return sum(n if n <= cap else cap + len(marker(n)) for n in lengths)

    if lengths and budget > 0:
        low, high = 0, lengths[-1]
        while low < high:  # the largest cap whose strings fit the budget
            mid = (low + high + 1) // 2
            if size_at(mid) <= budget:
                low = mid
            else:
                high = mid - 1
        cap = low
        for attempt in range(4):
            if cap >= _SHORTEST_CUT or attempt == 0:
                for node, slot, s in leaves:
                    node[slot] = s if len(s) <= cap else s[:cap] + marker(len(s))
            text = sc.dumps(parsed)
            if len(text) <= limit:
                return text
            cap -= len(text) - limit  # escaping made it longer than counted: cut by the difference
            if cap < _SHORTEST_CUT:
                break
    if isinstance(parsed, list) and parsed:
        return _drop_tail(parsed, limit)
    return None


def _drop_tail(items: list[Any], limit: int) -> str | None:
    """The longest prefix of ``items`` that fits, followed by one item that counts what was left out."""

    def with_note(k: int) -> str:
        left_out = len(items) - k
        note: Any = f"…[truncated by tcc: {left_out} more items]"
        if isinstance(items[0], dict) and "parts" in items[0]:  # a list of messages: a message says it
            note = {"role": items[k].get("role", "user") if k < len(items) else "user"}
            note["parts"] = [{"type": "text", "content": f"…[truncated by tcc: {left_out} more messages]"}]
        return sc.dumps([*items[:k], note])

    low, high = -1, len(items) - 1
    while low < high:  # the largest k whose prefix (with the note) fits
        mid = (low + high + 1) // 2
        if len(with_note(mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return with_note(low) if low >= 0 else None

"""Argument checks for the public API: each returns the clean value or raises at the call.

Every error names the call and the parameter and says what was expected:

    >>> token_count("25", "s.tokens(completion=...)")
    Traceback (most recent call last):
    TypeError: [TCC] s.tokens(completion=...) expects an int >= 0 or None, got str '25'
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Final

from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from . import _ids
from . import _semconv as sc

STATUS_CODES: Final = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_NS: Final = 2**63 - 1  # OTLP carries fixed64 nanoseconds; Python's datetime stops at 9999 anyway
# OTLP carries ints as int64. Token counts stay far below that (2**53 is also the largest integer a
# JavaScript backend reads exactly), so a sum of them or a run's total cannot overflow either.
MAX_COUNT: Final = 2**53
_INT64: Final = range(-(2**63), 2**63)


def type_name(value: object) -> str:
    return type(value).__name__


def show(value: object) -> str:
    """``repr(value)`` for an error message, short, and never raising (a user's __repr__ may)."""
    try:
        shown = repr(value)
    except Exception:
        return f"<{type_name(value)} whose repr() failed>"
    return shown if len(shown) <= 80 else shown[:77] + "..."


def text(value: object, where: str) -> str:
    """A str for span content. Lone surrogates (which UTF-8, and so the OTLP encoder, cannot carry)
    become U+FFFD and surrogate pairs are joined, here at the call rather than failing in the export."""
    if type(value) is str and value.isascii():  # the common case first: every setter passes here
        return value
    if not isinstance(value, str):
        raise TypeError(f"[TCC] {where} expects a str, got {type_name(value)}")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def optional_text(value: object, where: str) -> str | None:
    return None if value is None else text(value, where)


def optional_bool(value: object, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"[TCC] {where} expects a bool or None, got {type_name(value)}")
    return value


def seconds(value: object, where: str) -> float | None:
    """A duration in seconds (int or float, finite, >= 0), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"[TCC] {where} expects a number of seconds >= 0 or None, got {type_name(value)}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"[TCC] {where} expects a number of seconds >= 0 (0 disables), got {show(value)}")
    return float(value)


def identifier(value: object, where: str) -> str:
    """An id: a non-empty str (a UUID object is accepted and turned into its str)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"[TCC] {where} expects a non-empty str, got {type_name(value)}")
    if not value.strip():
        raise ValueError(f"[TCC] {where} expects a non-empty str, got {show(value)}")
    return text(value, where)


def uuid4() -> str:
    """A random UUID4 string, in the format of ``str(uuid.uuid4())``.

    Not ``uuid.uuid4()``: its ``os.urandom`` releases the GIL for a getrandom() syscall on every step, and
    while the export thread is busy the caller then waits to get the GIL back (about 10 µs a step in
    ``make bench``). An id needs to be unique, not secret, so it comes from a generator of tcc's own,
    seeded from ``os.urandom`` when created and again in every forked child; a ``random.seed()`` of the
    application's cannot make two processes repeat each other's ids.
    """
    h = f"{_ids.rng.getrandbits(128) & _CLEAR | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# RFC 4122: version 4 in bits 76-79, variant 10 in bits 62-63 (as uuid.UUID(int=..., version=4) sets them).
_CLEAR: Final = ~((0xF << 76) | (0x3 << 62))
_SET: Final = (0x4 << 76) | (0x2 << 62)


def new_id(value: object, where: str) -> str:
    return uuid4() if value is None else identifier(value, where)


def token_count(value: object, where: str) -> int | None:
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case first
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"[TCC] {where} expects an int >= 0 or None, got bool {value!r}")
    try:
        count = operator.index(value)  # type: ignore[arg-type]  # int and int-like (numpy), not float/str
    except Exception:
        raise TypeError(
            f"[TCC] {where} expects an int >= 0 or None, got {type_name(value)} {show(value)}"
        ) from None
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"[TCC] {where} expects an int from 0 to 2**53 or None, got {count}")
    return count


def cost(value: object, where: str) -> float:
    if type(value) is float and 0.0 <= value < math.inf:  # the common case first
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise TypeError(f"[TCC] {where} expects a number of USD >= 0, got {type_name(value)} {show(value)}")
    try:
        cost = float(value)
    except (OverflowError, ValueError):  # 10**400, Decimal("sNaN")
        cost = math.nan
    if not math.isfinite(cost) or cost < 0:
        raise ValueError(f"[TCC] {where} expects a finite number of USD >= 0, got {show(value)}")
    return cost


def metadata_value(key: str, value: object, where: str) -> AttributeValue:
    if isinstance(value, str):
        return text(value, f"{where} value for {show(key)}")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"[TCC] {where} value for {show(key)} must fit in 64 bits, got {value}")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"[TCC] {where} value for {show(key)} must be a finite float, got {value}")
        return float(value)
    raise TypeError(
        f"[TCC] {where} value for {show(key)} must be a str (or a bool, int or finite float), "
        f"got {type_name(value)}"
    )


def metadata(data: object, kwargs: Mapping[str, object], where: str) -> dict[str, AttributeValue]:
    items: dict[str, AttributeValue] = {}
    if data is not None:
        if not isinstance(data, Mapping):
            raise TypeError(f"[TCC] {where}(data=...) expects a dict of str to str, got {type_name(data)}")
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"[TCC] {where}(data=...) keys must be str, got {type_name(key)} {show(key)}")
            if not key.strip():
                raise ValueError(f"[TCC] {where}(data=...) keys must be non-empty, got {show(key)}")
            items[text(key, f"{where}(data=...) key")] = metadata_value(key, value, f"{where}(data=...)")
    for key, value in kwargs.items():
        if not key.strip():
            raise ValueError(f"[TCC] {where}() keys must be non-empty, got {show(key)}")
        items[text(key, f"{where}() key")] = metadata_value(key, value, f"{where}({key}=...)")
    return items


def status_code(code: object, where: str) -> StatusCode:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(
            f"[TCC] {where}(code=...) expects 0 (ok) or 2 (error), got {type_name(code)} {show(code)}"
        )
    try:
        return STATUS_CODES[code]
    except KeyError:
        raise ValueError(
            f"[TCC] {where}(code=...) expects 0 (ok), 1 (ok, explicit) or 2 (error), got {code}"
        ) from None


def json_or_text(value: object, where: str) -> str:
    """A str as is, anything else as JSON; what JSON cannot hold raises here, naming the parameter."""
    if isinstance(value, str):
        return text(value, where)
    try:
        return text(sc.dumps(value), where)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"[TCC] {where} expects a str or a JSON-serialisable value: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"[TCC] {where} expects a str or a JSON-serialisable value: it nests too deeply"
        ) from None


def timestamp(value: object, where: str) -> int | None:
    """Epoch nanoseconds from an aware datetime, a naive one (read as UTC) or an int of epoch ns.

    >>> timestamp(datetime(2026, 1, 1, tzinfo=UTC), "start_time")
    1767225600000000000
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = aware - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    else:
        hint = "; epoch seconds (time.time()) must be given as a datetime" if isinstance(value, float) else ""
        raise TypeError(
            f"[TCC] {where} expects a datetime or an int of epoch nanoseconds, got {type_name(value)}{hint}"
        )
    if ns < 0:
        raise ValueError(f"[TCC] {where} expects a time after 1970-01-01 UTC, got {show(value)}")
    if ns > _MAX_NS:
        raise ValueError(
            f"[TCC] {where} expects a time before the year 2262 (64-bit nanoseconds), got {show(value)}"
        )
    return ns

"""Secret redaction for error messages, exception texts and log lines.

    >>> redact("401: Authorization: Bearer abc.def.ghi for sk-proj-abcdefghijklmnop1234")
    '401: Authorization: Bearer [REDACTED] for [REDACTED]'

Each pattern matches one well-known credential shape. They are applied in one pass of one compiled
alternation, so a clean message costs a single regex scan.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[REDACTED]"

# (kept prefix, secret) pairs: the prefix stays readable, the secret becomes [REDACTED].
_RULES: Final = (
    # "Authorization: Bearer <token>", "Bearer <token>", "Basic <base64>"
    (r"\b(?:Bearer|Basic)\s+", r"[A-Za-z0-9._~+/=-]{6,}"),
    # "password=...", "api_key: ...", "token=..." in query strings, configs and messages
    (
        r"\b(?:api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret|"
        r"secret|password|passwd|pwd|token|authorization)\b[\"']?\s*[:=]\s*[\"']?",
        r"(?!Bearer\b|Basic\b|\[REDACTED\])[^\s\"',;&})\]]+",
    ),
    # userinfo in URLs: scheme://user:password@host
    (r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:", r"[^@\s/]+(?=@)"),
    # vendor key shapes: OpenAI and Anthropic sk-..., Google AIza..., GitHub tokens, Slack xox?-,
    # AWS access key ids
    ("", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"),
    ("", r"\bAIza[0-9A-Za-z_-]{30,}"),
    ("", r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    ("", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    ("", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
)
_SECRET = re.compile(
    "|".join(f"(?P<k{i}>{keep}){secret}" for i, (keep, secret) in enumerate(_RULES)), re.IGNORECASE
)


def _replace(match: re.Match[str]) -> str:
    # Exactly one alternative matched; its (possibly empty) kept prefix is the one non-None k-group.
    keep = next(g for g in match.groups() if g is not None)
    return keep + REDACTED


def redact(text: str) -> str:
    """Return ``text`` with credentials replaced by ``[REDACTED]``.

    >>> redact("https://bob:hunter2@db.internal/x")
    'https://bob:[REDACTED]@db.internal/x'
    """
    return _SECRET.sub(_replace, text)

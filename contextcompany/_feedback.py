"""User feedback on a run: a short ``feedback`` span in the run's trace.

    >>> tcc.submit_feedback(r.run_id, score="thumbs_up", text="Spot on")
    True

The span carries the GenAI evaluation attributes: ``gen_ai.evaluation.name="user_feedback"``,
``gen_ai.evaluation.score.label`` (the score), ``gen_ai.evaluation.score.value`` (+1.0 / -1.0) and
``gen_ai.evaluation.explanation`` (the text, under the content policy like any content), plus
``tcc.run.id``. It goes where the run goes: the destination given, else the live run's.
"""

from __future__ import annotations

from typing import Final, Literal

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from . import _checks as checks
from . import _destinations
from . import _fields as fields
from . import _registry as registry
from . import _semconv as sc
from ._span import SpanHandle

FeedbackScore = Literal["thumbs_up", "thumbs_down"]
FEEDBACK_SCORES: Final = {"thumbs_up": 1.0, "thumbs_down": -1.0}
FEEDBACK_TEXT_MAX: Final = 2000
_CONTENT: Final = (sc.EVALUATION_EXPLANATION,)


def check(run_id: object, score: object, text: object) -> tuple[str, FeedbackScore | None, str | None]:
    """The checked run id, score and text; raises TypeError/ValueError naming the parameter."""
    rid = checks.identifier(run_id, "tcc.submit_feedback(run_id=...)")
    if score is not None and not isinstance(score, str):
        raise TypeError(
            f"[TCC] {fields.SCORE.where} expects 'thumbs_up', 'thumbs_down' or None, "
            f"got {checks.type_name(score)}"
        )
    if score is not None and score not in FEEDBACK_SCORES:
        raise ValueError(
            f"[TCC] {fields.SCORE.where} expects 'thumbs_up', 'thumbs_down' or None, got {checks.show(score)}"
        )
    body = fields.FEEDBACK_TEXT.check(text, fields.FEEDBACK_TEXT.where)
    if not score and not body:
        raise ValueError("[TCC] Cannot submit feedback: at least one of 'score' or 'text' must be provided")
    if body is not None and len(body) > FEEDBACK_TEXT_MAX:
        raise ValueError(
            f"[TCC] Cannot submit feedback: text length ({len(body)}) exceeds maximum of "
            f"{FEEDBACK_TEXT_MAX} characters"
        )
    return rid, score, body  # type: ignore[return-value]  # score is one of FEEDBACK_SCORES here


def send(
    run_id: str, score: FeedbackScore | None, text: str | None, dest: _destinations.Destination | None
) -> None:
    """Record checked feedback (see ``check``) on run ``run_id``. Never raises."""
    if dest is None:
        live = registry.live_runs.get(run_id)
        dest = live._dest if live is not None else None
    attributes: dict[str, AttributeValue] = {
        sc.RUN_ID: run_id,
        sc.EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME,
    }
    if score is not None:
        attributes[sc.EVALUATION_SCORE_LABEL] = score
        attributes[sc.EVALUATION_SCORE_VALUE] = FEEDBACK_SCORES[score]
    if text:
        attributes[sc.EVALUATION_EXPLANATION] = text
    # Started and finished at once: the span starts at finish(), with the content policy applied.
    handle = SpanHandle.later(
        "feedback", sc.FEEDBACK_SPAN_NAME, registry.run_context(run_id), SpanKind.INTERNAL, {}, dest=dest
    )
    handle.finish(attributes, content=_CONTENT)


def submit_feedback(
    run_id: str,
    score: FeedbackScore | None = None,
    text: str | None = None,
    api_key: str | None = None,
    tcc_url: str | None = None,
) -> bool:
    """Record user feedback on a run, as a short ``feedback`` span in the run's trace.

    The span carries the GenAI evaluation attributes: ``gen_ai.evaluation.name="user_feedback"``,
    ``gen_ai.evaluation.score.label`` (the score), ``gen_ai.evaluation.score.value`` (+1.0 / -1.0) and
    ``gen_ai.evaluation.explanation`` (the text), plus ``tcc.run.id``.

    >>> tcc.submit_feedback(r.run_id, score="thumbs_up", text="Spot on")
    True
    """
    rid, checked_score, body = check(run_id, score, text)
    send(rid, checked_score, body, _destinations.destination(api_key, tcc_url, "tcc.submit_feedback"))
    return True

"""The one place where the dashboard turns a message into words.

At the merge of the ``words`` helper's work this becomes ``autonoma.words.describe``;
until then it uses `autonoma.report.summary`, the one-line words of ``autonoma logs``.
"""

from __future__ import annotations

from typing import Literal

from autonoma import protocol as p
from autonoma.report import summary
from autonoma.text import inert

Level = Literal["info", "good", "warn", "bad"]


def said(message: p.Message) -> tuple[str, Level]:
    """One inert line for ``message`` and how it reads (info, good, warn or bad)."""
    text = inert(summary(message)).replace("\n", " ")
    return text, _level(message)


def _level(message: p.Message) -> Level:
    match message:
        case p.AgentToolResult(is_error=True) | p.ActorCrashed() | p.Escalation():
            return "bad"
        case p.TaskStateChanged(state="escalated") | p.SupervisorGaveUp():
            return "bad"
        case p.AgentTurnFinished(is_error=True):
            return "bad"
        case p.PermissionDenied() | p.SchemaRejected() | p.AnswerRejected() | p.MergeFailed():
            return "warn"
        case p.ReviewVerdict(verdict="changes_requested") | p.TaskStateChanged(state="failed"):
            return "warn"
        case p.TaskMerged() | p.TaskStateChanged(state="merged") | p.RunFinished(outcome="done"):
            return "good"
        case p.RunFinished():
            return "bad"
    return "info"

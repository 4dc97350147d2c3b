"""What the journal says about the commit Autonoma made for an agent (pure)."""

from __future__ import annotations

from autonoma.protocol import WorkCommittedForAgent, WorkLeftOut
from autonoma.vcs.workspace import CommitResult


def for_agent(
    task_id: str, agent_id: str, result: CommitResult
) -> WorkCommittedForAgent | WorkLeftOut | None:
    """The message that journals ``result``: a commit (with what it left out), only what
    was left out, or None when the agent left nothing behind."""
    if result.commit is not None:
        return WorkCommittedForAgent(
            task_id=task_id,
            agent_id=agent_id,
            commit=result.commit,
            files=result.files,
            left_out=result.left_out,
            left_out_more=result.left_out_more,
        )
    if result.left_out:
        return WorkLeftOut(
            task_id=task_id,
            agent_id=agent_id,
            left_out=result.left_out,
            left_out_more=result.left_out_more,
        )
    return None

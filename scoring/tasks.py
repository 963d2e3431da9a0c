from __future__ import annotations

from celery import shared_task

from scoring.decay import scores_decay


@shared_task(name="scoring.tasks.scores_decay")
def scores_decay_task() -> dict[str, int]:
    """Beat's decay run: idempotent, so a run twice or after downtime is safe."""
    return scores_decay()

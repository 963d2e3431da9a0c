from __future__ import annotations

from celery import shared_task

from leads.models import Segment
from leads.outages import OUTAGE_RETRY

# The task names stay those of the release that ran them from ``leads``: messages
# queued before an upgrade still find their task.


@shared_task(name="leads.tasks.segment_recompute", **OUTAGE_RETRY)
def segment_recompute_task(segment_id: int) -> None:
    from segments.services import segment_recompute

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is not None:
        segment_recompute(segment=segment)


@shared_task(name="leads.tasks.segments_refresh")
def segments_refresh_task() -> int:
    from segments.services import segments_refresh_time_relative

    return segments_refresh_time_relative()

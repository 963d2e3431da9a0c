from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """Segments: their conditions, membership, pages and API. The models stay in
    ``leads`` (tables do not move); this package is everything that works on them."""

    name = "segments"
    verbose_name = "Segments"

    def ready(self) -> None:
        from leads.services.background import sweep_register
        from leads.services.bulk import bulk_action_register
        from leads.services.reactions import reaction_register
        from segments.services import (
            leads_segment_add,
            segment_refreshes_sweep,
            segments_on_event,
        )

        reaction_register(name="segments", react=segments_on_event)
        sweep_register(name="segment-refreshes", part=segment_refreshes_sweep)
        bulk_action_register(name="segment", run=leads_segment_add)

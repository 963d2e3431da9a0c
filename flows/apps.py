from functools import partial

from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows.engine import (
            LISTENING,
            enrollments_trigger_release,
            flows_on_event,
            listeners_probed,
            segments_heard_by_flows,
        )
        from flows.hooks import hooks_on_event, hooks_segments_heard
        from flows.metrics import flows_metrics
        from flows.privacy import lead_flows_erase, lead_flows_export
        from flows.selectors import score_step_origins
        from leads.services.metrics import metrics_register
        from leads.services.partitions import event_references_register
        from leads.services.privacy import lead_data_register
        from leads.services.reactions import reaction_register
        from scoring.selectors import step_origins_register
        from segments.check import SEGMENT_EVENT_TYPES, segment_listeners_register

        # After segments (REACTION_ORDER): triggers see the memberships the event changed.
        reaction_register(
            name="flows",
            react=flows_on_event,
            lock_probe=LISTENING,
            probe_answered=listeners_probed,
        )
        # Last: outbound subscriptions see the lead as the flows left it.
        reaction_register(name="hooks", react=hooks_on_event)
        # Entries and exits of segments no trigger, wait or hook hears are written
        # processed by the per-lead check, without a turn of the event loop.
        segment_listeners_register(
            name="flows", heard=partial(segments_heard_by_flows, SEGMENT_EVENT_TYPES)
        )
        segment_listeners_register(
            name="hooks", heard=partial(hooks_segments_heard, SEGMENT_EVENT_TYPES)
        )
        lead_data_register(name="flows", export=lead_flows_export, erase=lead_flows_erase)
        metrics_register(name="flows", collect=flows_metrics)
        # Enrollments keep their trigger event without a database constraint.
        event_references_register(name="flows", release=enrollments_trigger_release)
        # Scoring sits below flows: breakdowns learn from here which flow and
        # node gave a step's points.
        step_origins_register(score_step_origins())

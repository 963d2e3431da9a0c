"""A small account with one of everything the API addresses by id, for tests that
walk every operation of the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import SchemaGenerator

from flows.hooks import hook_subscribe
from flows.lifecycle import flow_create
from flows.models import Enrollment
from leads.models import ApiKey, Segment
from scoring.models import ScoreCategory
from segments.services import segment_create
from tests.factories import (
    EmailTemplateFactory,
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    OpportunityFactory,
    TaskFactory,
)
from tests.flows.helpers import drain, graph, published


def api_schema() -> dict[str, Any]:
    """The live OpenAPI document, as ``/api/schema/`` serves it."""
    return SchemaGenerator().get_schema(request=None, public=True)


def api_world() -> dict[str, int]:
    """Objects behind every kind of path id; returns ``{resource: id}``, where the
    resource is the path segment before the id (``leads`` for ``/leads/{id}/``).

    The flow's score change is made by the engine, so its ``created_by`` is null;
    its version was published by no one; the draft-only flow has no version. The
    hook, subscribed by a key, has a delivery of that score change; the task is
    open, unassigned and has no due time; the opportunity is open."""
    hook = hook_subscribe(
        target_url="https://hooks.example/in", events=["score.changed"], created_by=None
    )
    flow = published(
        "Trial scoring",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            ("score", "score.adjust", {"points": 15, "category": "engagement", "reason": "Trial"}),
            ("wait", "wait", {"amount": 2, "unit": "days"}),
        ),
    )
    flow_create(name="Draft only")
    lead = LeadFactory.create(email="world@acme.example")
    event = EventFactory.create(lead=lead, name="Signed up for trial", properties={})
    drain()
    segment = segment_create(
        name="CEOs", conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
    )
    segment_create(name="Hand-picked", kind="static")
    field = FieldDefinitionFactory.create(key="plan")
    task = TaskFactory.create(lead=lead, title="Call back")
    opportunity = OpportunityFactory.create(lead=lead, name="Pilot", value=12000)
    email_template = EmailTemplateFactory.create(name="Welcome")
    return {
        "leads": lead.pk,
        "flows": flow.pk,
        "segments": segment.pk,
        "events": event.pk,
        "fields": field.pk,
        "enrollments": Enrollment.objects.get(lead=lead).pk,
        "score-categories": ScoreCategory.objects.get(key="engagement").pk,
        "api-keys": ApiKey.objects.order_by("id").values_list("id", flat=True).first() or 1,
        "versions": 1,
        "static-segment": Segment.objects.get(name="Hand-picked").pk,
        "tasks": task.pk,
        "hooks": hook.pk,
        "opportunities": opportunity.pk,
        "email-templates": email_template.pk,
    }


def world_id(template: str, name: str, world: dict[str, int]) -> int:
    """The world's id for the path parameter ``name`` of ``template``."""
    if name == "lead_pk":
        return world["leads"]
    if name == "number":
        return world["versions"]
    parts = template.strip("/").split("/")
    resource = parts[parts.index("{" + name + "}") - 1]
    return world.get(resource, 1)


def concrete_path(template: str, world: dict[str, int]) -> str:
    """``/api/v1/leads/{lead_pk}/score/`` with the world's ids filled in."""
    return "/".join(
        str(world_id(template, part.strip("{}"), world)) if part.startswith("{") else part
        for part in template.split("/")
    )

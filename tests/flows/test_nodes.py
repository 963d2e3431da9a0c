"""One test per node type not covered by the engine tests: each runs in a
published flow, on the real database, through the event pipeline."""

import pytest

from flows.models import Enrollment, StepRun
from leads.models import Event, Lead, Segment
from leads.services.leads import lead_tags_change, lead_update
from scoring.models import ScoreCategory
from scoring.services import score_adjust
from segments.services import segment_create
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db

MARK = ("mark", "tag.add", {"tag": "reached"})


def reached(lead: Lead) -> bool:
    return lead.tags.filter(name="reached").exists()


def test_email_activity_trigger_with_campaign_and_link():
    published(
        "E",
        graph(
            (
                "t",
                "email.activity",
                {
                    "activity": "clicked",
                    "campaign": "Launch",
                    "url": {"op": "contains", "value": "/pricing"},
                },
            ),
            MARK,
        ),
        reentry="always",
    )
    hit, miss = LeadFactory.create(), LeadFactory.create()
    EventFactory.create(
        lead=hit,
        type="email.clicked",
        name="Launch",
        properties={"url": "https://x.example/pricing"},
    )
    EventFactory.create(
        lead=miss, type="email.clicked", name="Launch", properties={"url": "https://x.example/blog"}
    )
    drain()
    assert (reached(hit), reached(miss)) == (True, False)


def test_page_visited_trigger():
    published(
        "P",
        graph(
            (
                "t",
                "page.visited",
                {"url": {"op": "starts_with", "value": "https://x.example/pricing"}},
            ),
            MARK,
        ),
    )
    hit, miss = LeadFactory.create(), LeadFactory.create()
    EventFactory.create(
        lead=hit, type="page", name="", properties={"url": "https://x.example/pricing/teams"}
    )
    EventFactory.create(
        lead=miss, type="page", name="", properties={"url": "https://x.example/docs"}
    )
    drain()
    assert (reached(hit), reached(miss)) == (True, False)


def test_field_changed_trigger_with_from_and_to():
    published(
        "F",
        graph(("t", "field.changed", {"field": "stage", "from": "lead", "to": "mql"}), MARK),
        reentry="always",
    )
    lead = LeadFactory.create(stage="subscriber")
    for stage in ("lead", "mql"):
        lead_update(lead=Lead.objects.get(pk=lead.pk), changes={"stage": stage})
        drain()
        assert reached(lead) == (stage == "mql")


def test_tag_removed_lead_created_and_form_submitted_triggers():
    published(
        "T", graph(("t", "tag.removed", {"tag": "trial"}), ("m", "tag.add", {"tag": "trial-ended"}))
    )
    published("C", graph(("t", "lead.created", {}), ("m", "tag.add", {"tag": "welcome"})))
    published(
        "S",
        graph(("t", "form.submitted", {"form": "Demo request"}), ("m", "tag.add", {"tag": "demo"})),
    )
    EventFactory.create(lead=None, type="track", name="Anything", user_id="new-user")
    drain()
    lead = Lead.objects.get(external_id="new-user")
    assert list(lead.tags.values_list("name", flat=True)) == ["welcome"]
    lead_tags_change(lead=lead, add=["trial"])
    lead_tags_change(lead=lead, remove=["trial"])
    EventFactory.create(lead=lead, type="form.submitted", name="Demo request")
    EventFactory.create(lead=lead, type="form.submitted", name="Newsletter", idempotency_key="n")
    drain()
    assert sorted(lead.tags.values_list("name", flat=True)) == ["demo", "trial-ended", "welcome"]


def test_score_threshold_and_grade_changed_triggers():
    published(
        "Up",
        graph(
            ("t", "score.threshold", {"threshold": 30, "category": "fit"}),
            ("m", "tag.add", {"tag": "fit-30"}),
        ),
    )
    published(
        "Hot", graph(("t", "grade.changed", {"grade": "hot"}), ("m", "tag.add", {"tag": "hot"}))
    )
    published(
        "Down",
        graph(
            ("t", "score.threshold", {"threshold": 10, "direction": "down"}),
            ("m", "tag.add", {"tag": "cooled"}),
        ),
    )
    lead = LeadFactory.create()
    fit = ScoreCategory.objects.get(key="fit")
    for n, delta in enumerate((20, 20, 20, -55)):
        score_adjust(
            lead=lead, delta=delta, category=fit, reason="t", source="system", source_key=f"k{n}"
        )
        drain()
    assert sorted(lead.tags.values_list("name", flat=True)) == ["cooled", "fit-30", "hot"]


def test_owner_field_stage_disqualify_and_exit_actions():
    rep = UserFactory.create(username="rep-x", role="sales")
    published(
        "Actions",
        graph(
            ("t", "app.event", {"event": "Go"}),
            ("o", "owner.assign", {"user": rep.pk}),
            ("f", "field.set", {"field": "industry", "value": "Software"}),
            ("s", "stage.change", {"stage": "lead"}),
            ("back", "stage.change", {"stage": "subscriber"}),
            ("d", "lead.disqualify", {"reason": "Student"}),
            ("x", "exit", {}),
        ),
    )
    lead = LeadFactory.create(stage="subscriber")
    EventFactory.create(lead=lead, type="track", name="Go")
    drain()
    lead.refresh_from_db()
    assert (lead.owner, lead.industry, lead.stage) == (rep, "Software", "disqualified")
    back = StepRun.objects.get(node_id="back")
    assert back.output == {"changed": False, "handles": ["next"]}  # forward only
    assert StepRun.objects.filter(node_id="d").get().output["reason"] == "Student"
    assert not lead.tags.exists()
    assert Enrollment.objects.get().status == "completed"


def test_static_segment_actions():
    static = segment_create(name="Follow-up list", kind="static")
    published(
        "Seg",
        graph(("t", "app.event", {"event": "Go"}), ("a", "segment.add", {"segment": static.pk})),
    )
    published(
        "Unseg",
        graph(
            ("t", "app.event", {"event": "Stop"}), ("r", "segment.remove", {"segment": static.pk})
        ),
    )
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Go")
    drain()
    assert Segment.objects.get(pk=static.pk).member_count == 1
    EventFactory.create(lead=lead, type="track", name="Stop")
    drain()
    assert Segment.objects.get(pk=static.pk).member_count == 0
    assert (
        Event.objects.filter(type__in=["segment.entered", "segment.left"], lead=lead).count() == 2
    )

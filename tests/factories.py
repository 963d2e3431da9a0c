from __future__ import annotations

import uuid

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from emails.models import (
    EmailKind,
    EmailSend,
    EmailSettings,
    EmailTemplate,
    OutboxMessage,
    Sender,
    SendStatus,
)
from flows.models import Delivery, Enrollment, Flow, FlowVersion, HookSubscription, StepRun
from leads.models import (
    ConsentRecord,
    ConsentSource,
    ConsentState,
    Event,
    FieldDefinition,
    Heartbeat,
    Identity,
    Lead,
    LeadImport,
    LeadJob,
    Note,
    Notification,
    Opportunity,
    Segment,
    SegmentMembership,
    Tag,
    Task,
)
from scoring.models import LeadScore, ReviewLogEntry, ScoreCategory, ScoreChange


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def role(obj: User, create: bool, extracted: str | None, **kwargs: object) -> None:
        if extracted:
            # get_or_create: a transactional test flushes the groups the
            # migration made.
            obj.groups.add(Group.objects.get_or_create(name=extracted)[0])
        obj.save()


class LeadFactory(factory.django.DjangoModelFactory[Lead]):
    class Meta:
        model = Lead

    email = factory.Sequence(lambda n: f"lead{n}@acme.example")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company_name = "Acme GmbH"
    job_title = "Head of Marketing"


class EventFactory(factory.django.DjangoModelFactory[Event]):
    class Meta:
        model = Event

    lead = factory.SubFactory(LeadFactory)
    type = "track"
    name = "Created project"
    occurred_at = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
    source = "api"
    idempotency_key = factory.LazyFunction(lambda: uuid.uuid4().hex)


class TaskFactory(factory.django.DjangoModelFactory[Task]):
    class Meta:
        model = Task

    lead = factory.SubFactory(LeadFactory)
    title = factory.Sequence(lambda n: f"Task {n}")


class OpportunityFactory(factory.django.DjangoModelFactory[Opportunity]):
    class Meta:
        model = Opportunity

    lead = factory.SubFactory(LeadFactory)
    name = factory.Sequence(lambda n: f"Deal {n}")
    value = 1000
    currency = "EUR"
    opened_at = factory.LazyFunction(timezone.now)


class NotificationFactory(factory.django.DjangoModelFactory[Notification]):
    class Meta:
        model = Notification

    message = factory.Sequence(lambda n: f"Message {n}")


class HookSubscriptionFactory(factory.django.DjangoModelFactory[HookSubscription]):
    class Meta:
        model = HookSubscription

    target_url = "https://hooks.example.com/leadflow"
    events = factory.LazyFunction(lambda: ["lead.mql"])
    secret = factory.Sequence(lambda n: f"whsec_test{n}")


class DeliveryFactory(factory.django.DjangoModelFactory[Delivery]):
    class Meta:
        model = Delivery

    kind = "webhook"
    key = factory.Sequence(lambda n: f"test:{n}")
    target = "https://hooks.example/in"
    payload = factory.LazyFunction(lambda: {"secret": "", "body": {"hello": "world"}})


class SegmentFactory(factory.django.DjangoModelFactory[Segment]):
    """A segment row as it is stored. A dynamic segment made here has no dependency
    index and is not recomputed: tests of segments at work use ``segment_create``."""

    class Meta:
        model = Segment

    class Params:
        static = factory.Trait(kind="static")

    name = factory.Sequence(lambda n: f"Segment {n}")
    kind = "dynamic"
    conditions = factory.LazyAttribute(lambda s: {"all": []} if s.kind == "dynamic" else {})


class SegmentMembershipFactory(factory.django.DjangoModelFactory[SegmentMembership]):
    """An open stay of a lead in a segment, added by hand."""

    class Meta:
        model = SegmentMembership

    segment = factory.SubFactory(SegmentFactory, static=True)
    lead = factory.SubFactory(LeadFactory)
    entered_at = factory.LazyFunction(timezone.now)
    source = "manual"


class LeadJobFactory(factory.django.DjangoModelFactory[LeadJob]):
    class Meta:
        model = LeadJob

    kind = "export"
    created_by = factory.SubFactory(UserFactory, role="marketer")
    filters = factory.LazyFunction(dict)
    sort = "score"


class LeadImportFactory(factory.django.DjangoModelFactory[LeadImport]):
    """An import whose columns are mapped (``file__data`` is the CSV's content)."""

    class Meta:
        model = LeadImport

    file = factory.django.FileField(filename="leads.csv", data=b"email\n")
    original_name = "leads.csv"
    mapping = factory.LazyFunction(lambda: {"email": "email"})
    queued_at = factory.LazyFunction(timezone.now)


class FieldDefinitionFactory(factory.django.DjangoModelFactory[FieldDefinition]):
    class Meta:
        model = FieldDefinition
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda f: f.key.replace("_", " ").capitalize())
    type = "text"


class TagFactory(factory.django.DjangoModelFactory[Tag]):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


class IdentityFactory(factory.django.DjangoModelFactory[Identity]):
    class Meta:
        model = Identity

    lead = factory.SubFactory(LeadFactory)
    kind = "anonymous_id"
    value = factory.Sequence(lambda n: f"anon-{n}")


class NoteFactory(factory.django.DjangoModelFactory[Note]):
    class Meta:
        model = Note

    lead = factory.SubFactory(LeadFactory)
    body = factory.Sequence(lambda n: f"Note {n}")


class HeartbeatFactory(factory.django.DjangoModelFactory[Heartbeat]):
    class Meta:
        model = Heartbeat

    name = factory.Sequence(lambda n: f"worker:celery@host{n}")
    seen_at = factory.LazyFunction(timezone.now)


class ScoreCategoryFactory(factory.django.DjangoModelFactory[ScoreCategory]):
    """A category of the team's own; ``key="fit"`` or ``"engagement"`` returns the
    built-in one the data migration made."""

    class Meta:
        model = ScoreCategory
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"category{n}")
    label = factory.LazyAttribute(lambda c: c.key.capitalize())


class ScoreChangeFactory(factory.django.DjangoModelFactory[ScoreChange]):
    """A ledger row alone: the lead's totals are not moved (``score_adjust`` does that)."""

    class Meta:
        model = ScoreChange

    lead = factory.SubFactory(LeadFactory)
    delta = 10
    category = factory.SubFactory(ScoreCategoryFactory, key="engagement")
    reason = "Test points"
    source = "manual"
    source_key = factory.Sequence(lambda n: f"manual:test-{n}")


class LeadScoreFactory(factory.django.DjangoModelFactory[LeadScore]):
    """A lead's points in one category, without ledger rows (a test of what reads
    the points, not of the ledger)."""

    class Meta:
        model = LeadScore

    lead = factory.SubFactory(LeadFactory)
    category = factory.SubFactory(ScoreCategoryFactory, key="fit")
    score = 10


class FlowFactory(factory.django.DjangoModelFactory[Flow]):
    """A flow's row and draft; publishing (versions, subscriptions) is ``flow_publish``'s."""

    class Meta:
        model = Flow

    name = factory.Sequence(lambda n: f"Flow {n}")


class FlowVersionFactory(factory.django.DjangoModelFactory[FlowVersion]):
    """A version row without trigger subscriptions: it shows in pages and histories
    but no event enrolls anyone in it."""

    class Meta:
        model = FlowVersion

    flow = factory.SubFactory(FlowFactory, status="active")
    number = factory.LazyAttribute(lambda v: v.flow.versions.count() + 1)
    graph = factory.LazyFunction(lambda: {"nodes": [], "edges": []})


class EnrollmentFactory(factory.django.DjangoModelFactory[Enrollment]):
    class Meta:
        model = Enrollment

    version = factory.SubFactory(FlowVersionFactory)
    flow = factory.SelfAttribute("version.flow")
    lead = factory.SubFactory(LeadFactory)
    trigger_node = "t1"


class StepRunFactory(factory.django.DjangoModelFactory[StepRun]):
    class Meta:
        model = StepRun

    enrollment = factory.SubFactory(EnrollmentFactory)
    node_id = "n1"
    node_type = "score.adjust"
    status = "completed"


class ReviewLogEntryFactory(factory.django.DjangoModelFactory[ReviewLogEntry]):
    class Meta:
        model = ReviewLogEntry

    subject = "settings"
    summary = "Hot threshold 50 to 60"


class ConsentRecordFactory(factory.django.DjangoModelFactory[ConsentRecord]):
    class Meta:
        model = ConsentRecord

    lead = factory.SubFactory(LeadFactory)
    state = ConsentState.PENDING
    source = ConsentSource.FORM
    occurred_at = factory.LazyFunction(timezone.now)


class SenderFactory(factory.django.DjangoModelFactory[Sender]):
    class Meta:
        model = Sender

    name = "Acme Marketing"
    address = factory.Sequence(lambda n: f"news{n}@acme.example")


class EmailTemplateFactory(factory.django.DjangoModelFactory[EmailTemplate]):
    class Meta:
        model = EmailTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    subject = 'Hello {{ first_name | default: "there" }}'
    preheader = "What is new at Acme"
    sender = factory.SubFactory(SenderFactory)
    blocks = factory.LazyFunction(
        lambda: [
            {"type": "heading", "text": 'Welcome, {{ first_name | default: "friend" }}'},
            {"type": "text", "text": "Thanks for signing up at **{{ company_name }}**."},
            {"type": "button", "label": "Get started", "url": "https://acme.example/start"},
        ]
    )


class EmailSettingsFactory(factory.django.DjangoModelFactory[EmailSettings]):
    class Meta:
        model = EmailSettings

    postal_address = "Leadflow GmbH, Hauptstr. 1, 10115 Berlin"
    sends_per_minute = 10000
    frequency_cap = 0


class EmailSendFactory(factory.django.DjangoModelFactory[EmailSend]):
    class Meta:
        model = EmailSend

    key = factory.Sequence(lambda n: f"test:{n}")
    lead = factory.SubFactory(LeadFactory)
    template = factory.SubFactory(EmailTemplateFactory)
    kind = EmailKind.MARKETING
    to_email = factory.LazyAttribute(lambda send: send.lead.email or "")
    message_id = factory.Sequence(lambda n: f"{n}.send@acme.example")
    token = factory.Sequence(lambda n: f"{n:032d}")
    status = SendStatus.QUEUED
    next_attempt_at = factory.LazyFunction(timezone.now)


class OutboxMessageFactory(factory.django.DjangoModelFactory[OutboxMessage]):
    class Meta:
        model = OutboxMessage

    from_email = "Acme Marketing <news@acme.example>"
    to = factory.LazyFunction(lambda: ["lead@acme.example"])
    subject = "Hello"
    text = "Hello\n"
    html = "<html><body><p>Hello</p></body></html>"
    message_id = factory.Sequence(lambda n: f"<{n}.outbox@acme.example>")

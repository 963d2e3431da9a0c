from __future__ import annotations

import uuid

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from flows.models import Delivery, HookSubscription
from leads.models import (
    Event,
    FieldDefinition,
    Lead,
    LeadImport,
    LeadJob,
    Notification,
    Segment,
    Task,
)
from scoring.models import ScoreCategory


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
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    kind = "dynamic"
    conditions = factory.LazyFunction(lambda: {"all": []})


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


class ScoreCategoryFactory(factory.django.DjangoModelFactory[ScoreCategory]):
    class Meta:
        model = ScoreCategory
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"category_{n}")
    label = factory.LazyAttribute(lambda c: c.key.replace("_", " ").capitalize())

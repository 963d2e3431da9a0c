"""Lifecycle dates, the qualified score and follow-ups closed when a lead's stage
changes, from a person, an event (its effective time), a bulk change or a CSV."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.db import transaction
from django.utils import timezone

from leads.models import Lead, Stage, TaskStatus
from leads.services.bulk import leads_stage_set
from leads.services.imports import leads_import_stream
from leads.services.leads import lead_merge, lead_update
from tests.factories import EventFactory, LeadFactory, TaskFactory

pytestmark = pytest.mark.django_db

LAST_MONTH = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)


def _locked(lead: Lead) -> Lead:
    return Lead.objects.select_for_update().get(pk=lead.pk)


def test_a_stage_change_caused_by_an_event_is_dated_when_the_event_happened():
    lead = LeadFactory.create(stage=Stage.LEAD)
    cause = EventFactory.create(lead=lead, occurred_at=LAST_MONTH)
    with transaction.atomic():
        lead_update(lead=_locked(lead), changes={"stage": Stage.MQL}, cause=cause)
    lead.refresh_from_db()
    assert (lead.mql_at, lead.sql_at, lead.customer_at) == (LAST_MONTH, None, None)


def test_each_date_is_kept_when_the_lead_moves_on_and_back():
    lead = LeadFactory.create(stage=Stage.LEAD)
    first = EventFactory.create(lead=lead, occurred_at=LAST_MONTH)
    later = EventFactory.create(lead=lead, occurred_at=LAST_MONTH + dt.timedelta(days=5))
    with transaction.atomic():
        locked = _locked(lead)
        lead_update(lead=locked, changes={"stage": Stage.MQL}, cause=first)
        lead_update(lead=locked, changes={"stage": Stage.SQL}, cause=later)
        lead_update(lead=locked, changes={"stage": Stage.MQL})
    lead.refresh_from_db()
    assert (lead.stage, lead.mql_at, lead.sql_at) == (
        Stage.MQL,
        LAST_MONTH,
        LAST_MONTH + dt.timedelta(days=5),
    )


def test_a_lead_jumping_to_customer_gets_only_the_customer_date_and_its_score():
    lead = LeadFactory.create(stage=Stage.LEAD, score=42)
    before = timezone.now()
    with transaction.atomic():
        locked = _locked(lead)
        lead_update(lead=locked, changes={"stage": Stage.CUSTOMER})
    assert locked.customer_at is not None
    assert locked.customer_at >= before
    assert (locked.mql_at, locked.sql_at, locked.opportunity_at) == (None, None, None)
    assert locked.qualified_score == 42


def test_the_qualified_score_is_the_score_when_it_first_became_an_opportunity():
    lead = LeadFactory.create(stage=Stage.SQL, score=30)
    with transaction.atomic():
        locked = _locked(lead)
        lead_update(lead=locked, changes={"stage": Stage.OPPORTUNITY})
        Lead.objects.filter(pk=lead.pk).update(score=80)
        lead_update(lead=locked, changes={"stage": Stage.CUSTOMER})
    lead.refresh_from_db()
    assert (lead.qualified_score, lead.score) == (30, 80)
    assert lead.opportunity_at is not None
    assert lead.customer_at is not None


def test_reaching_a_closed_stage_closes_open_follow_ups_with_the_reason():
    lead = LeadFactory.create(stage=Stage.SQL)
    follow_up = TaskFactory.create(lead=lead, follow_up=True, title="Call the hot lead")
    done = TaskFactory.create(lead=lead, follow_up=True, status=TaskStatus.DONE)
    other = TaskFactory.create(lead=lead, title="Send the contract")
    with transaction.atomic():
        lead_update(lead=_locked(lead), changes={"stage": Stage.CUSTOMER})
    follow_up.refresh_from_db()
    done.refresh_from_db()
    other.refresh_from_db()
    assert (follow_up.status, follow_up.closed_reason) == (
        TaskStatus.CLOSED,
        "Lead became a customer",
    )
    assert follow_up.completed_at is not None
    assert (done.status, done.closed_reason) == (TaskStatus.DONE, "")
    assert (other.status, other.closed_reason) == (TaskStatus.OPEN, "")


def test_disqualified_and_lost_give_their_own_reasons():
    disqualified = LeadFactory.create()
    lost = LeadFactory.create()
    tasks = [TaskFactory.create(lead=lead, follow_up=True) for lead in (disqualified, lost)]
    with transaction.atomic():
        lead_update(lead=_locked(disqualified), changes={"stage": Stage.DISQUALIFIED})
        lead_update(lead=_locked(lost), changes={"stage": Stage.LOST})
    for task in tasks:
        task.refresh_from_db()
    assert [(t.status, t.closed_reason) for t in tasks] == [
        (TaskStatus.CLOSED, "Lead was disqualified"),
        (TaskStatus.CLOSED, "Lead was lost"),
    ]


def test_a_bulk_stage_change_dates_every_lead():
    leads = LeadFactory.create_batch(3, stage=Stage.LEAD)
    result = leads_stage_set(leads=Lead.objects.all(), stage=Stage.SQL, batch_size=2)
    assert result.changed == 3
    assert Lead.objects.filter(sql_at__isnull=False).count() == len(leads)


def _import(text: str, mapping: dict[str, str], file_name: str = "fair-2026.csv"):
    return leads_import_stream(
        stream=io.BytesIO(text.encode()), mapping=mapping, file_name=file_name
    )


def test_an_import_dates_the_stages_it_sets_and_closes_follow_ups():
    known = LeadFactory.create(email="known@acme.example", stage=Stage.SQL, score=25)
    task = TaskFactory.create(lead=known, follow_up=True)
    _import(
        "email,stage\nknown@acme.example,customer\nnew@acme.example,mql\nplain@acme.example,\n",
        {"email": "email", "stage": "stage"},
    )
    known.refresh_from_db()
    task.refresh_from_db()
    new = Lead.objects.get(email="new@acme.example")
    plain = Lead.objects.get(email="plain@acme.example")
    assert (known.customer_at is not None, known.qualified_score) == (True, 25)
    assert (task.status, task.closed_reason) == (TaskStatus.CLOSED, "Lead became a customer")
    assert (new.stage, new.mql_at is not None) == (Stage.MQL, True)
    assert (plain.stage, plain.mql_at) == (Stage.SUBSCRIBER, None)


def test_a_merge_keeps_the_earliest_dates_and_the_known_source():
    target = LeadFactory.create(sql_at=LAST_MONTH + dt.timedelta(days=1))
    source = LeadFactory.create(
        mql_at=LAST_MONTH, sql_at=LAST_MONTH, source="paid", source_detail="google / cpc"
    )
    with transaction.atomic():
        merged = lead_merge(source=source, target=_locked(target))
    merged.refresh_from_db()
    assert (merged.mql_at, merged.sql_at, merged.source, merged.source_detail) == (
        LAST_MONTH,
        LAST_MONTH,
        "paid",
        "google / cpc",
    )

"""A flow run end to end by a real Celery worker and a real beat: a lead enters
"Active subscribers", gets +5 with its reason, its owner gets one task and one
notification, and a wait of a few seconds completes through beat."""

import json
import os
import subprocess

import pytest
import requests

from flows.models import Enrollment, StepRun
from leads.models import Lead, Notification, Task
from scoring.models import ScoreChange
from segments.services import segment_create
from tests.factories import LeadFactory, UserFactory
from tests.flows.helpers import graph, published
from tests.integration.conftest import ROOT, celery_command, database_url, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def beat_process(transactional_db, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        celery_command("beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield beat
    beat.terminate()
    beat.wait(timeout=20)
    log.close()


def test_active_subscriber_flow_runs_through_worker_and_beat(
    live_server, full_key, celery_worker_process, beat_process
):
    segment = segment_create(
        name="Active subscribers",
        conditions={
            "all": [
                {"field": "stage", "op": "in", "value": ["subscriber", "lead"]},
                {"activity": "email.opened", "within_days": 30},
            ]
        },
    )
    rep = UserFactory.create(username="rep-e2e", email="rep@example.com", role="sales")
    published(
        "Engaged subscriber",
        graph(
            ("t", "segment.entered", {"segment": segment.pk}),
            (
                "score",
                "score.adjust",
                {"points": 5, "category": "engagement", "reason": "Active subscriber"},
            ),
            ("notify", "sales.notify", {"title": "Reach out to {lead}", "email": False}),
            ("wait", "wait", {"amount": 3, "unit": "seconds"}),
            ("tag", "tag.add", {"tag": "nurtured"}),
        ),
    )
    lead = LeadFactory.create(email="sub@example.com", first_name="Sam", last_name="Lee", owner=rep)
    # The email provider reports an open; the worker applies it, the lead enters
    # the segment, and the flow runs.
    response = requests.post(
        f"{live_server.url}/api/v1/email-events/",
        data=json.dumps({"type": "opened", "email": "sub@example.com", "event_id": "open-1"}),
        headers={"Authorization": f"Bearer {full_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202

    wait_for(lambda: Task.objects.filter(lead=lead).exists(), 90, "the task")
    wait_for(lambda: lead.tags.filter(name="nurtured").exists(), 60, "the wait to end through beat")
    lead.refresh_from_db()
    assert lead.score == 5
    assert list(ScoreChange.objects.filter(lead=lead).values_list("delta", "reason")) == [
        (5, "Active subscriber")
    ]
    assert Task.objects.filter(lead=lead).count() == 1
    assert Task.objects.get(lead=lead).assignee == rep
    assert Notification.objects.filter(user=rep).count() == 1
    enrollment = Enrollment.objects.get(lead=lead)
    wait_for(
        lambda: Enrollment.objects.get(pk=enrollment.pk).status == "completed", 30, "completion"
    )
    wait_step = StepRun.objects.get(enrollment=enrollment, node_id="wait")
    assert wait_step.finished_at is not None
    assert (wait_step.finished_at - wait_step.started_at).total_seconds() >= 3
    assert Lead.objects.count() == 1

import datetime as dt
import html as htmllib
import re

import pytest
from django.utils import timezone

from leads.models import Notification, Task
from tests.factories import LeadFactory, NotificationFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Wednesday afternoon (the test settings' time zone is UTC).
NOW = dt.datetime(2025, 6, 11, 14, 0, tzinfo=dt.UTC)
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def section(html: str, key: str) -> str:
    match = re.search(rf'<section id="tasks-{key}".*?</section>', html, re.DOTALL)
    assert match is not None, key
    return match.group(0)


def titles(html: str) -> list[str]:
    found = re.findall(r'<div class="fw-semibold[^"]*">(.*?)</div>', html)
    return [htmllib.unescape(title) for title in found]


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="task-(\d+)"', html)]


def badge(html: str) -> str:
    match = re.search(r'<span id="notification-count" class="([^"]*)"[^>]*>(.*?)<span', html)
    assert match is not None
    return f"{match.group(2)}{' hidden' if 'd-none' in match.group(1) else ''}"


# --- My tasks -------------------------------------------------------------------


def test_my_tasks_grouped_by_due_date(client, sales, other_sales):
    lead = LeadFactory.create(owner=sales, first_name="Ada", last_name="Lovelace")
    due = {
        "Yesterday's call": NOW - dt.timedelta(days=1, hours=4),
        "Earlier today": NOW - dt.timedelta(hours=1),
        "Send the deck": NOW + dt.timedelta(hours=4),
        "Last minute": dt.datetime(2025, 6, 11, 23, 59, tzinfo=dt.UTC),
        "Midnight": dt.datetime(2025, 6, 12, 0, 0, tzinfo=dt.UTC),
        "Someday": None,
    }
    for title, due_at in due.items():
        TaskFactory.create(lead=lead, assignee=sales, title=title, due_at=due_at)
    TaskFactory.create(lead=lead, assignee=sales, title="Finished", status="done", completed_at=NOW)
    TaskFactory.create(assignee=other_sales, title="Not mine", due_at=NOW)
    client.force_login(sales)

    html = client.get("/tasks/").content.decode()

    assert titles(section(html, "overdue")) == ["Yesterday's call", "Earlier today"]
    assert titles(section(html, "today")) == ["Send the deck", "Last minute"]
    assert titles(section(html, "upcoming")) == ["Midnight", "Someday"]
    assert titles(section(html, "done")) == ["Finished"]
    assert "Not mine" not in html
    overdue = section(html, "overdue")
    assert "1\xa0day, 4\xa0hours ago" in overdue
    assert "Tue 10 Jun 2025, 10:00" in overdue
    today = section(html, "today")
    assert "in 4\xa0hours" in today
    assert "Wed 11 Jun 2025, 18:00" in today
    assert "No due date" in section(html, "upcoming")
    assert f'href="/leads/{lead.pk}/">Ada Lovelace</a>' in overdue
    assert '<span class="badge text-bg-light border">Low</span>' not in html
    assert '<span class="badge bg-primary-subtle text-primary-emphasis">Normal</span>' in overdue


def test_priority_badges(client, sales):
    for priority in ("low", "normal", "high", "urgent"):
        TaskFactory.create(assignee=sales, priority=priority, due_at=NOW)
    client.force_login(sales)
    html = client.get("/tasks/").content.decode()
    assert '<span class="badge text-bg-light border">Low</span>' in html
    assert '<span class="badge text-bg-warning">High</span>' in html
    assert '<span class="badge text-bg-danger">Urgent</span>' in html


def test_done_group_lists_the_last_20_newest_first(client, sales):
    for minutes in range(25):
        TaskFactory.create(
            assignee=sales,
            title=f"Done {minutes}",
            status="done",
            completed_at=NOW - dt.timedelta(minutes=minutes),
        )
    client.force_login(sales)
    done = section(client.get("/tasks/").content.decode(), "done")
    assert titles(done) == [f"Done {minutes}" for minutes in range(20)]
    # Done tasks offer no actions.
    assert "Complete</button>" not in done


def test_empty_state_says_what_to_do_next(client, sales):
    client.force_login(sales)
    html = client.get("/tasks/").content.decode()
    assert "You have no tasks." in html
    assert '<a href="/leads/">browse your leads</a>' in html
    assert "?scope=all" not in html


def test_nav_links_tasks_and_bell(client, sales):
    client.force_login(sales)
    html = client.get("/").content.decode()
    assert '<a href="/tasks/">Tasks</a>' in html
    assert 'id="notification-bell" href="/notifications/"' in html


# --- actions --------------------------------------------------------------------


def test_complete_swaps_the_row(client, sales):
    task = TaskFactory.create(assignee=sales, title="Call Ada", due_at=NOW)
    client.force_login(sales)

    response = client.post(f"/tasks/{task.pk}/complete/", **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<tr id="task-{task.pk}" class="text-body-secondary">')
    assert "<html" not in html
    assert '<div class="small text-success" role="status">Completed.</div>' in html
    assert "Wed 11 Jun 2025, 14:00" in html
    assert "Complete</button>" not in html
    task.refresh_from_db()
    assert (task.status, task.completed_at) == ("done", NOW)


def test_complete_twice_keeps_the_first_time(client, sales, monkeypatch):
    task = TaskFactory.create(assignee=sales, status="done", completed_at=NOW)
    client.force_login(sales)
    monkeypatch.setattr(timezone, "now", lambda: NOW + dt.timedelta(hours=2))
    assert client.post(f"/tasks/{task.pk}/complete/", **HX).status_code == 200
    task.refresh_from_db()
    assert task.completed_at == NOW


def test_complete_without_htmx_redirects_to_the_list(client, sales):
    task = TaskFactory.create(assignee=sales)
    client.force_login(sales)
    response = client.post(f"/tasks/{task.pk}/complete/")
    assert response.status_code == 302
    assert response["Location"] == "/tasks/"
    assert Task.objects.get(pk=task.pk).status == "done"


@pytest.mark.parametrize(
    ("choice", "until", "shown"),
    [
        ("hour", dt.datetime(2025, 6, 11, 15, 0, tzinfo=dt.UTC), "Wed 11 Jun 2025, 15:00"),
        ("tomorrow", dt.datetime(2025, 6, 12, 9, 0, tzinfo=dt.UTC), "Thu 12 Jun 2025, 09:00"),
        ("next-week", dt.datetime(2025, 6, 16, 9, 0, tzinfo=dt.UTC), "Mon 16 Jun 2025, 09:00"),
    ],
)
def test_snooze_moves_the_due_time(client, sales, choice, until, shown):
    task = TaskFactory.create(assignee=sales, due_at=NOW - dt.timedelta(days=1))
    client.force_login(sales)

    response = client.post(f"/tasks/{task.pk}/snooze/", {"until": choice}, **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<tr id="task-{task.pk}">')
    assert f'<div class="small text-success" role="status">Snoozed until {shown}.</div>' in html
    assert f'<time class="small text-body-secondary" datetime="{until.isoformat()}">' in html
    task.refresh_from_db()
    assert task.due_at == until


def test_snooze_refuses_an_unknown_choice(client, sales):
    task = TaskFactory.create(assignee=sales, due_at=NOW)
    client.force_login(sales)

    response = client.post(f"/tasks/{task.pk}/snooze/", {"until": "forever"}, **HX)

    assert response.status_code == 422
    assert (
        '<div class="small text-danger" role="alert">Choose how long to snooze: 1 hour, '
        "tomorrow 9:00 or next week.</div>"
    ) in response.content.decode()
    task.refresh_from_db()
    assert task.due_at == NOW


def test_snooze_refuses_a_done_task(client, sales):
    task = TaskFactory.create(assignee=sales, status="done", completed_at=NOW, due_at=NOW)
    client.force_login(sales)
    response = client.post(f"/tasks/{task.pk}/snooze/", {"until": "hour"}, **HX)
    assert response.status_code == 422
    assert "This task is already done." in response.content.decode()
    task.refresh_from_db()
    assert task.due_at == NOW


def test_reassign_to_another_rep_notifies_them(client, sales, other_sales):
    lead = LeadFactory.create(owner=sales)
    task = TaskFactory.create(lead=lead, assignee=sales, title="Call Ada")
    client.force_login(sales)

    response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": other_sales.pk}, **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<div class="small text-success" role="status">Reassigned to sales-2.</div>' in html
    assert "Assigned to sales-2" in html
    # Still on the rep's own lead, so the rep can still act on it.
    assert "Complete</button>" in html
    task.refresh_from_db()
    assert task.assignee == other_sales
    note = Notification.objects.get(user=other_sales)
    assert (note.message, note.lead_id, note.read_at) == (
        "sales-t assigned you a task: Call Ada",
        lead.pk,
        None,
    )


def test_reassign_hands_over_a_task_on_another_reps_lead(client, sales, other_sales):
    task = TaskFactory.create(lead=LeadFactory.create(owner=other_sales), assignee=sales)
    client.force_login(sales)
    response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": other_sales.pk}, **HX)
    assert response.status_code == 200
    assert "Complete</button>" not in response.content.decode()
    assert client.post(f"/tasks/{task.pk}/complete/", **HX).status_code == 404


def test_reassign_to_an_admin(client, sales, admin_user):
    task = TaskFactory.create(assignee=sales)
    client.force_login(sales)
    response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": admin_user.pk}, **HX)
    assert response.status_code == 200
    assert Task.objects.get(pk=task.pk).assignee == admin_user


def test_reassign_refuses_who_cannot_take_tasks(client, sales, marketer, django_user_model):
    gone = UserFactory.create(username="gone", role="sales")
    gone.is_active = False
    gone.save()
    task = TaskFactory.create(assignee=sales)
    client.force_login(sales)
    refused = "Choose a sales rep or admin from the list."
    for assignee in (marketer.pk, gone.pk, 999999, "", "x"):
        response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": assignee}, **HX)
        assert response.status_code == 422
        assert f'<div class="small text-danger" role="alert">{refused}</div>' in (
            response.content.decode()
        )
    response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": sales.pk}, **HX)
    assert response.status_code == 422
    assert "The task is already assigned to sales-t." in response.content.decode()
    assert Task.objects.get(pk=task.pk).assignee == sales
    assert Notification.objects.count() == 0


def test_reassign_select_lists_sales_and_admins_only(client, sales, other_sales, marketer):
    admin = UserFactory.create(username="boss", role="admin")
    TaskFactory.create(assignee=sales)
    client.force_login(sales)
    html = client.get("/tasks/").content.decode()
    options = re.findall(r'<option value="(\d+)">([^<]*)</option>', html)
    assert options == [(str(admin.pk), "boss"), (str(other_sales.pk), "sales-2")]


# --- permissions ----------------------------------------------------------------


def test_sales_cannot_touch_another_reps_task(client, sales, other_sales):
    task = TaskFactory.create(
        lead=LeadFactory.create(owner=other_sales), assignee=other_sales, due_at=NOW
    )
    client.force_login(sales)
    assert client.post(f"/tasks/{task.pk}/complete/", **HX).status_code == 404
    assert client.post(f"/tasks/{task.pk}/snooze/", {"until": "hour"}, **HX).status_code == 404
    response = client.post(f"/tasks/{task.pk}/reassign/", {"assignee": sales.pk}, **HX)
    assert response.status_code == 404
    task.refresh_from_db()
    assert (task.status, task.due_at, task.assignee) == ("open", NOW, other_sales)


def test_sales_can_act_on_a_task_on_an_unassigned_lead(client, sales, other_sales):
    task = TaskFactory.create(lead=LeadFactory.create(owner=None), assignee=other_sales)
    client.force_login(sales)
    assert client.post(f"/tasks/{task.pk}/complete/", **HX).status_code == 200


def test_actions_need_post(client, sales):
    task = TaskFactory.create(assignee=sales)
    client.force_login(sales)
    assert client.get(f"/tasks/{task.pk}/complete/").status_code == 405


@pytest.mark.parametrize("path", ["/tasks/", "/notifications/"])
def test_pages_need_login_and_a_role(client, django_user_model, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"
    client.force_login(django_user_model.objects.create_user("norole", password="x"))
    assert client.get(path).status_code == 403


def test_sales_cannot_see_everyones_tasks(client, sales):
    client.force_login(sales)
    assert client.get("/tasks/?scope=all").status_code == 403


# --- everyone's open tasks ------------------------------------------------------


def test_all_open_tasks_with_assignee_filter(client, marketer, sales, other_sales):
    mine = TaskFactory.create(assignee=sales, title="For sales-t", due_at=NOW)
    theirs = TaskFactory.create(assignee=other_sales, title="For sales-2", due_at=NOW)
    nobody = TaskFactory.create(assignee=None, title="For nobody")
    TaskFactory.create(assignee=sales, title="Already done", status="done", completed_at=NOW)
    client.force_login(marketer)

    everyone = client.get("/tasks/?scope=all").content.decode()
    assert row_ids(everyone) == [mine.pk, theirs.pk, nobody.pk]
    assert "Already done" not in everyone
    assert "Assigned to sales-2" in everyone
    filtered = client.get(f"/tasks/?scope=all&assignee={other_sales.pk}").content.decode()
    assert row_ids(filtered) == [theirs.pk]
    assert row_ids(client.get("/tasks/?scope=all&assignee=none").content.decode()) == [nobody.pk]
    bad = client.get("/tasks/?scope=all&assignee=bogus").content.decode()
    assert "Choose an assignee from the list." in bad
    assert row_ids(bad) == [mine.pk, theirs.pk, nobody.pk]


def test_all_open_tasks_empty_state(client, admin_user):
    client.force_login(admin_user)
    html = client.get("/tasks/?scope=all").content.decode()
    assert "No open tasks. Add a “Notify sales” step to a flow" in html
    assert '<a href="/flows/">Open flows</a>' in html


def test_all_open_tasks_load_more(client, admin_user):
    # Ties on the due time and tasks without one: the cursor must still visit
    # each task exactly once, in order.
    created = [
        TaskFactory.create(due_at=NOW + dt.timedelta(hours=n // 3) if n < 45 else None)
        for n in range(55)
    ]
    client.force_login(admin_user)

    first = client.get("/tasks/?scope=all").content.decode()
    first_ids = row_ids(first)
    assert len(first_ids) == 50
    more_url = re.search(r'hx-get="(/tasks/\?scope=all[^"]*)"', first)
    assert more_url is not None
    more = client.get(more_url.group(1).replace("&amp;", "&"), **HX).content.decode()

    assert "<html" not in more
    assert first_ids + row_ids(more) == [task.pk for task in created]
    assert "Load more" not in more


@pytest.mark.parametrize("sort", ["-score", "score"])
def test_all_open_tasks_by_lead_score_page_every_task_once(client, admin_user, sort):
    # Given 55 open tasks whose leads share a few scores.
    created = [
        TaskFactory.create(lead=LeadFactory.create(score=(n % 4) * 10), due_at=NOW)
        for n in range(55)
    ]
    client.force_login(admin_user)
    # When everyone's tasks are sorted by the lead's score and the next page loaded.
    first = client.get(f"/tasks/?scope=all&sort={sort}").content.decode()
    more_url = re.search(r'hx-get="(/tasks/\?scope=all[^"]*)"', first)
    assert more_url is not None
    more = client.get(more_url.group(1).replace("&amp;", "&"), **HX).content.decode()
    # Then every task comes once, by score (highest first for "-score"), ties by id.
    sign = -1 if sort == "-score" else 1
    expected = sorted(created, key=lambda task: (sign * task.lead.score, task.pk))
    assert row_ids(first) + row_ids(more) == [task.pk for task in expected]
    # The header says how the list is sorted and turns it round on a click.
    assert (
        'aria-sort="descending"' in first if sort == "-score" else 'aria-sort="ascending"' in first
    )
    turned = "score" if sort == "-score" else "-score"
    assert f'sort={turned}" data-sort="score"' in first
    # So does the sort bar, which a phone shows above the cards.
    arrow = "↓" if sort == "-score" else "↑"
    assert (
        f'<a class="btn btn-outline-secondary active" href="?scope=all&amp;assignee=&amp;'
        f'sort={turned}" aria-current="true">Score {arrow}</a>'
    ) in first
    assert '&amp;sort=due">Due date</a>' in first
    # An unknown sort is the due order.
    assert row_ids(client.get("/tasks/?scope=all&sort=bogus").content.decode())[:3] == [
        task.pk for task in created[:3]
    ]


def test_actions_from_everyones_list(client, admin_user, sales):
    task = TaskFactory.create(assignee=sales, due_at=NOW)
    client.force_login(admin_user)
    response = client.post(f"/tasks/{task.pk}/snooze/", {"until": "tomorrow"}, **HX)
    assert response.status_code == 200
    assert "Assigned to sales-t" in response.content.decode()


# --- escaping and query counts --------------------------------------------------


def test_titles_are_escaped(client, sales):
    task = TaskFactory.create(assignee=sales, title="<script>alert(1)</script>", due_at=NOW)
    NotificationFactory.create(user=sales, message="<script>alert(2)</script>")
    client.force_login(sales)
    for response in (
        client.get("/tasks/"),
        client.post(f"/tasks/{task.pk}/snooze/", {"until": "hour"}, **HX),
        client.get("/notifications/"),
    ):
        assert b"<script>alert(" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/tasks/").content
    assert b"&lt;script&gt;alert(2)&lt;/script&gt;" in client.get("/notifications/").content


def test_my_tasks_query_count(client, sales, other_sales, django_assert_max_num_queries):
    for n in range(30):
        TaskFactory.create(
            assignee=sales,
            lead=LeadFactory.create(owner=sales),
            due_at=NOW + dt.timedelta(hours=n - 10),
        )
        TaskFactory.create(assignee=sales, status="done", completed_at=NOW)
    client.force_login(sales)
    with django_assert_max_num_queries(8):
        response = client.get("/tasks/")
    assert len(row_ids(response.content.decode())) == 50


def test_all_tasks_query_count(
    client, admin_user, sales, other_sales, django_assert_max_num_queries
):
    for n in range(60):
        TaskFactory.create(assignee=(sales, other_sales, None)[n % 3], due_at=NOW)
    client.force_login(admin_user)
    with django_assert_max_num_queries(7):
        response = client.get("/tasks/?scope=all")
    assert len(row_ids(response.content.decode())) == 50


def test_notifications_query_count(client, sales, django_assert_max_num_queries):
    for _ in range(40):
        NotificationFactory.create(user=sales, lead=LeadFactory.create())
    client.force_login(sales)
    with django_assert_max_num_queries(6):
        response = client.get("/notifications/")
    assert response.content.count(b'<li id="notification-') == 30


# --- notifications --------------------------------------------------------------


def test_bell_shows_the_unread_count(client, sales, other_sales):
    NotificationFactory.create_batch(3, user=sales)
    NotificationFactory.create(user=sales, read_at=NOW)
    NotificationFactory.create(user=other_sales)
    client.force_login(sales)
    assert badge(client.get("/").content.decode()) == "3"
    Notification.objects.filter(user=sales).update(read_at=NOW)
    assert badge(client.get("/").content.decode()) == "0 hidden"


def test_bell_caps_the_count(client, sales):
    NotificationFactory.create_batch(100, user=sales)
    client.force_login(sales)
    assert badge(client.get("/").content.decode()) == "99+"


def test_notification_list_newest_first_unread_highlighted(client, sales, other_sales):
    lead = LeadFactory.create(first_name="Ada", last_name="Lovelace")
    read = NotificationFactory.create(user=sales, message="Old news", read_at=NOW)
    unread = NotificationFactory.create(user=sales, message="Fresh", lead=lead)
    NotificationFactory.create(user=other_sales, message="Someone else's")
    client.force_login(sales)

    html = client.get("/notifications/").content.decode()

    items = re.findall(r'<li id="notification-(\d+)" class="([^"]*)"', html)
    assert items == [
        (
            str(unread.pk),
            "list-group-item d-flex flex-wrap align-items-center gap-2 "
            "list-group-item-primary unread",
        ),
        (str(read.pk), "list-group-item d-flex flex-wrap align-items-center gap-2"),
    ]
    assert f'<a href="/notifications/{unread.pk}/open/" class="fw-semibold">Fresh</a>' in html
    assert "Ada Lovelace" in html
    assert "Someone else's" not in html
    assert html.count("Mark read</button>") == 1
    assert "Mark all read" in html


def test_notification_list_empty_state(client, sales):
    client.force_login(sales)
    html = client.get("/notifications/").content.decode()
    assert "No notifications yet." in html
    assert '<a href="/tasks/">See your tasks</a>' in html
    assert "Mark all read" not in html


def test_notification_list_load_more(client, sales):
    created = NotificationFactory.create_batch(35, user=sales)
    client.force_login(sales)

    first = client.get("/notifications/").content.decode()
    first_ids = [int(pk) for pk in re.findall(r'<li id="notification-(\d+)"', first)]
    assert first_ids == [n.pk for n in reversed(created)][:30]
    assert f'hx-get="/notifications/?before={first_ids[-1]}"' in first

    more = client.get(f"/notifications/?before={first_ids[-1]}", **HX).content.decode()

    assert "<html" not in more
    more_ids = [int(pk) for pk in re.findall(r'<li id="notification-(\d+)"', more)]
    assert more_ids == [n.pk for n in reversed(created)][30:]
    assert "Load more" not in more


def test_mark_one_read(client, sales, other_sales):
    first, second = NotificationFactory.create_batch(2, user=sales)
    foreign = NotificationFactory.create(user=other_sales)
    client.force_login(sales)

    response = client.post(f"/notifications/{first.pk}/read/", **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(
        f'<li id="notification-{first.pk}" class="list-group-item d-flex flex-wrap '
        'align-items-center gap-2">'
    )
    assert "Mark read" not in html
    assert 'id="notification-count"' in html
    assert 'hx-swap-oob="true"' in html
    assert badge(html) == "1"
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.read_at, second.read_at) == (NOW, None)
    assert client.post(f"/notifications/{foreign.pk}/read/", **HX).status_code == 404
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_mark_all_read(client, sales, other_sales):
    NotificationFactory.create_batch(3, user=sales)
    foreign = NotificationFactory.create(user=other_sales)
    client.force_login(sales)

    response = client.post("/notifications/read/", **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<div id="notifications">')
    assert "list-group-item-primary" not in html
    assert "Mark all read" not in html
    assert badge(html) == "0 hidden"
    assert Notification.objects.filter(user=sales, read_at=NOW).count() == 3
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_mark_all_read_without_htmx(client, sales):
    NotificationFactory.create_batch(2, user=sales)
    client.force_login(sales)
    response = client.post("/notifications/read/")
    assert (response.status_code, response["Location"]) == (302, "/notifications/")
    assert Notification.objects.filter(read_at__isnull=True).count() == 0


def test_opening_a_notification_marks_it_read(client, sales, other_sales):
    lead = LeadFactory.create(owner=sales)
    notification = NotificationFactory.create(user=sales, lead=lead)
    foreign = NotificationFactory.create(user=other_sales, lead=lead)
    client.force_login(sales)

    response = client.get(f"/notifications/{notification.pk}/open/")

    assert (response.status_code, response["Location"]) == (302, f"/leads/{lead.pk}/")
    notification.refresh_from_db()
    assert notification.read_at == NOW
    assert client.get(f"/notifications/{foreign.pk}/open/").status_code == 404


def test_completing_a_task_from_the_lead_profile(client, sales):
    lead = LeadFactory.create(email="p@x.example", owner=sales)
    task = TaskFactory.create(lead=lead, assignee=sales, title="Call Pat")
    client.force_login(sales)

    profile = client.get(f"/leads/{lead.pk}/").content.decode()
    partial = client.post(
        f"/tasks/{task.pk}/complete/", {"from": "profile"}, headers={"HX-Request": "true"}
    )
    task.refresh_from_db()
    again = TaskFactory.create(lead=lead, assignee=sales, title="Send offer")
    plain = client.post(f"/tasks/{again.pk}/complete/", {"from": "profile"})

    assert f'hx-post="/tasks/{task.pk}/complete/" hx-target="#profile-tasks"' in profile
    assert task.status == "done"
    body = partial.content.decode()
    assert body.startswith('<section class="card" id="profile-tasks"')
    assert "Call Pat: Completed." in body
    assert f'action="/tasks/{task.pk}/complete/"' not in body
    assert plain["Location"] == f"/leads/{lead.pk}/"


# --- the rep's day: scores on tasks, sorting, completing from anywhere ------------


def _scored_tasks(sales):
    """Three open tasks due today on leads of different scores and grades."""
    spec = [
        ("Call Ada", 40, "warm", 1),
        ("Email Ben", 90, "hot", 2),
        ("Visit Cy", 10, "cold", 3),
    ]
    for title, score, grade, hours in spec:
        lead = LeadFactory.create(owner=sales, score=score, grade=grade)
        TaskFactory.create(
            lead=lead, assignee=sales, title=title, due_at=NOW + dt.timedelta(hours=hours)
        )


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", ["Call Ada", "Email Ben", "Visit Cy"]),
        ("due", ["Call Ada", "Email Ben", "Visit Cy"]),
        ("-score", ["Email Ben", "Call Ada", "Visit Cy"]),
        ("score", ["Visit Cy", "Call Ada", "Email Ben"]),
        ("-grade", ["Email Ben", "Call Ada", "Visit Cy"]),
        ("grade", ["Visit Cy", "Call Ada", "Email Ben"]),
        ("nonsense", ["Call Ada", "Email Ben", "Visit Cy"]),
    ],
)
def test_my_tasks_sorted_by_the_leads_score_or_grade(client, sales, sort, expected):
    _scored_tasks(sales)
    client.force_login(sales)

    page = client.get(f"/tasks/?sort={sort}").content.decode()

    assert titles(section(page, "today")) == expected


def test_task_rows_show_the_leads_score_and_grade_and_headers_sort(client, sales):
    _scored_tasks(sales)
    client.force_login(sales)

    first = client.get("/tasks/").content.decode()
    by_score = client.get("/tasks/?sort=-score").content.decode()

    today = section(first, "today")
    assert re.findall(r"<span class=\"fw-semibold\" data-score[^>]*>(\d+)</span>", today) == [
        "40",
        "90",
        "10",
    ]
    assert re.findall(r'data-grade="(\w+)"', today) == ["warm", "hot", "cold"]
    # A header sorts the highest first, and a second click turns it round.
    assert '<a class="link-body-emphasis" href="?sort=-score" data-sort="score">' in today
    assert '<a class="link-body-emphasis" href="?sort=score" data-sort="score">' in by_score
    assert '<a class="link-body-emphasis" href="?sort=-grade" data-sort="grade">' in by_score
    # One row of actions: complete, snooze, reassign (its form folded in a menu).
    row = today.split("<tr id=")[1]
    assert re.findall(
        r'<button type="(?:submit|button)" class="btn btn-sm [^"]*"[^>]*>([^<]+)<', row
    ) == [
        "Complete",
        "Snooze",
        "Reassign",
        "Reassign",
    ]
    assert row.count('class="lf-task-actions') == 0
    assert row.count("lf-task-actions") == 1


def test_my_tasks_sorted_query_count(client, sales, django_assert_max_num_queries):
    for n in range(30):
        TaskFactory.create(
            assignee=sales,
            lead=LeadFactory.create(owner=sales, score=n),
            due_at=NOW + dt.timedelta(hours=n - 10),
        )
    client.force_login(sales)
    with django_assert_max_num_queries(8):
        response = client.get("/tasks/?sort=-grade")
    assert len(row_ids(response.content.decode())) == 30


def test_completing_a_task_from_the_dashboard(client, sales):
    lead = LeadFactory.create(owner=sales, first_name="Pat", last_name="Lee")
    task = TaskFactory.create(lead=lead, assignee=sales, title="Call Pat", due_at=NOW)
    client.force_login(sales)

    dashboard = client.get("/").content.decode()
    answer = client.post(f"/tasks/{task.pk}/complete/", {"from": "dashboard"}, **HX)
    task.refresh_from_db()

    item = '<li class="list-group-item px-0 d-flex gap-2 align-items-start"'
    assert f'{item} id="dashboard-task-{task.pk}">' in dashboard
    assert task.status == "done"
    body = answer.content.decode()
    assert body.startswith(f'{item} id="dashboard-task-{task.pk}">')
    assert "Completed." in body
    assert f'action="/tasks/{task.pk}/complete/"' not in body


def test_snoozing_a_task_from_the_lead_profile(client, sales):
    lead = LeadFactory.create(owner=sales)
    task = TaskFactory.create(lead=lead, assignee=sales, title="Call Pat", due_at=NOW)
    client.force_login(sales)

    answer = client.post(
        f"/tasks/{task.pk}/snooze/", {"from": "profile", "until": "tomorrow"}, **HX
    )
    refused = client.post(f"/tasks/{task.pk}/snooze/", {"from": "profile", "until": "never"}, **HX)
    task.refresh_from_db()

    assert task.due_at == dt.datetime(2025, 6, 12, 9, 0, tzinfo=dt.UTC)
    body = answer.content.decode()
    assert body.startswith('<section class="card" id="profile-tasks"')
    assert "Call Pat: Snoozed until" in body
    assert refused.status_code == 422
    assert "Choose how long to snooze" in refused.content.decode()

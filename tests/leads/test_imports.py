import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from leads.models import Event, ImportStatus, Lead, LeadImport
from leads.services.imports import BATCH_SIZE, import_guess_mapping, leads_import_stream
from tests.factories import FieldDefinitionFactory, LeadFactory

pytestmark = pytest.mark.django_db

CSV = (
    "E-mail,First Name,Last Name,Title,Company,Employees,Seats,Tags\n"
    "ada@example.com,Ada,Lovelace,CTO,Analytical,12,5,vip;beta\n"
    "not-an-email,Bad,Row,,,,,\n"
    "GRACE@example.com,Grace,,Admiral,Navy,1000,x,\n"
    "existing@example.com,,Updated,,,,,\n"
    ",Missing,Email,,,,,\n"
    "\n"
    'linus@example.com,Linus,,,,"2,500",,\n'
)


def run(text, mapping=None):
    data = text.encode()
    headers = text.splitlines()[0].split(",")
    return leads_import_stream(
        stream=io.BytesIO(data), mapping=mapping or import_guess_mapping(headers)
    )


def test_guess_mapping():
    FieldDefinitionFactory.create(key="seats", type="number")
    headers = [
        "E-mail",
        "First Name",
        "Last Name",
        "Title",
        "Company",
        "Employees",
        "Seats",
        "Tags",
        "Notes",
    ]
    assert import_guess_mapping(headers) == {
        "E-mail": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Title": "job_title",
        "Company": "company_name",
        "Employees": "company_size",
        "Seats": "custom:seats",
        "Tags": "tags",
    }


def test_import_upserts_and_reports_bad_rows():
    FieldDefinitionFactory.create(key="seats", type="number")
    existing = LeadFactory.create(email="existing@example.com", first_name="Keep", last_name="Old")
    totals = run(CSV)
    assert (totals["total"], totals["created"], totals["updated"], totals["failed"]) == (6, 2, 1, 3)
    assert totals["errors"] == [
        {"row": 3, "error": "email: 'not-an-email' is not a valid email address."},
        {"row": 4, "error": "seats: 'x' is not a number."},
        {"row": 6, "error": "email: missing; rows are matched by email."},
    ]
    ada = Lead.objects.get(email="ada@example.com")
    assert (ada.first_name, ada.job_title, ada.company_size, ada.custom_fields) == (
        "Ada",
        "CTO",
        12,
        {"seats": 5},
    )
    assert sorted(ada.tags.values_list("name", flat=True)) == ["beta", "vip"]
    assert Lead.objects.get(email="linus@example.com").company_size == 2500
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name) == ("Keep", "Updated")
    assert Event.objects.filter(type="lead.created").count() == 2


def test_import_again_changes_nothing_new():
    run(CSV)
    count = Lead.objects.count()
    totals = run(CSV)
    assert totals["created"] == 0
    assert Lead.objects.count() == count


def test_import_spanning_batches():
    rows = "\n".join(f"p{i}@example.com,Person {i}" for i in range(BATCH_SIZE * 2 + 7))
    totals = run("email,first_name\n" + rows + "\n")
    assert (totals["total"], totals["created"], totals["failed"]) == (
        2 * BATCH_SIZE + 7,
        2 * BATCH_SIZE + 7,
        0,
    )
    assert Lead.objects.count() == 2 * BATCH_SIZE + 7


def test_mapping_to_missing_column_is_an_error():
    with pytest.raises(ValueError, match="no column 'Nope'"):
        run("email\na@example.com\n", {"Nope": "email"})


def test_management_command(tmp_path, capsys):
    path = tmp_path / "leads.csv"
    path.write_text("Email,Company\nz@example.com,Zed Inc\nbad,\n")
    call_command("import_leads", str(path))
    out, err = capsys.readouterr()
    assert out.strip() == "2 rows: 1 created, 0 updated, 1 failed"
    assert "row 3: email: 'bad' is not a valid email address." in err
    assert Lead.objects.get().company_name == "Zed Inc"


def test_web_upload_map_and_progress(client, marketer, django_capture_on_commit_callbacks):
    client.force_login(marketer)
    upload = SimpleUploadedFile(
        "people.csv", b"Mail,Firma\nm@example.com,Muster AG\n", content_type="text/csv"
    )
    response = client.post("/leads/import/", {"file": upload})
    assert response.status_code == 200
    assert b"Map the columns of people.csv" in response.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/leads/import/", {"mapping_step": "1", "col_0": "email", "col_1": "company_name"}
        )
    record = LeadImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/leads/import/{record.pk}/"
    record.refresh_from_db()
    assert (record.status, record.rows_total, record.rows_created) == (ImportStatus.DONE, 1, 1)
    assert Lead.objects.get().company_name == "Muster AG"
    partial = client.get(f"/leads/import/{record.pk}/", HTTP_HX_REQUEST="true")
    assert b'data-status="done"' in partial.content
    assert b"<html" not in partial.content


def test_web_mapping_requires_email(client, marketer):
    client.force_login(marketer)
    upload = SimpleUploadedFile("p.csv", b"A,B\n1,2\n", content_type="text/csv")
    client.post("/leads/import/", {"file": upload})
    response = client.post("/leads/import/", {"mapping_step": "1", "col_0": "first_name"})
    assert b"Map one column to email" in response.content


def test_sales_cannot_import(client, sales):
    client.force_login(sales)
    assert client.get("/leads/import/").status_code == 403


def test_external_id_claimed_twice_is_a_row_error_not_a_crash():
    LeadFactory.create(email="owner@example.com", external_id="u-9")
    text = (
        "Email,User ID\n"
        "a@example.com,u-1\n"
        "b@example.com,u-1\n"
        "c@example.com,u-9\n"
        "owner@example.com,u-9\n"
    )
    totals = run(text)
    assert totals["errors"] == [
        {"row": 3, "error": "external_id: 'u-1' is already used on row 2."},
        {"row": 4, "error": "external_id: 'u-9' belongs to another lead."},
    ]
    assert Lead.objects.get(external_id="u-1").email == "a@example.com"
    assert not Lead.objects.filter(email__in=["b@example.com", "c@example.com"]).exists()


def test_reimport_touches_only_changed_leads():
    run("email,job_title\nsame@example.com,CTO\nchange@example.com,CTO\n")
    before = dict(Lead.objects.values_list("email", "updated_at"))
    run("email,job_title\nsame@example.com,CTO\nchange@example.com,CEO\n")
    after = dict(Lead.objects.values_list("email", "updated_at"))
    assert after["same@example.com"] == before["same@example.com"]
    assert after["change@example.com"] > before["change@example.com"]
    assert Lead.objects.get(email="change@example.com").job_title == "CEO"


def test_unreadable_csv_header_is_a_form_error(client, marketer):
    client.force_login(marketer)
    upload = SimpleUploadedFile("big.csv", b'"' + b"x" * 200_000 + b'"\n', content_type="text/csv")
    response = client.post("/leads/import/", {"file": upload})
    assert response.status_code == 200
    assert b"The file is not readable as CSV" in response.content
    assert not LeadImport.objects.exists()


def test_company_size_too_large_is_a_row_error():
    totals = run("email,company_size\nbig@example.com,99999999999\n")
    assert totals["errors"] == [{"row": 2, "error": "company_size: '99999999999' is too large."}]


def test_import_emits_change_and_tag_events_for_existing_leads():
    lead = LeadFactory.create(email="known@example.com", job_title="Engineer")
    run("email,job_title,tags\nknown@example.com,CTO,vip\n")
    change = Event.objects.get(lead=lead, type="field.changed")
    assert change.properties == {"field": "job_title", "from": "Engineer", "to": "CTO"}
    assert list(
        Event.objects.filter(lead=lead, type="tag.added").values_list("name", flat=True)
    ) == ["vip"]
    run("email,job_title,tags\nknown@example.com,CTO,vip\n")
    assert Event.objects.filter(lead=lead, type__in=["field.changed", "tag.added"]).count() == 2

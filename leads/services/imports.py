"""CSV import of leads: map columns to fields, upsert by email, report bad rows.

Rows stream from the file in batches, so memory stays flat whatever the size;
each batch is one transaction (a few queries), and the counters on the
LeadImport row move as it goes, which is what the progress page shows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from leads.locales import language_codes, language_of, time_zone_of
from leads.models import (
    ConsentSource,
    ConsentState,
    Event,
    FieldDefinition,
    ImportStatus,
    Lead,
    LeadImport,
    LeadSource,
    Stage,
    Tag,
)
from leads.outages import outage, task_send_on_commit
from leads.services.apply import MAX_COMPANY_SIZE
from leads.services.background import ClaimLost, job_claim
from leads.services.consent import ConsentRefused, consent_set
from leads.services.events import SYSTEM_SOURCE, events_record
from leads.services.fields import FieldValueError, custom_value_clean
from leads.services.leads import STAGE_DATE_FIELDS, leads_stage_reached

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 200 * 1024 * 1024
BATCH_SIZE = 1000
MAX_STORED_ERRORS = 1000

IMPORT_FIELDS: list[tuple[str, StrOrPromise]] = [
    ("email", gettext_lazy("Email")),
    ("external_id", gettext_lazy("External user id")),
    ("first_name", gettext_lazy("First name")),
    ("last_name", gettext_lazy("Last name")),
    ("phone", gettext_lazy("Phone")),
    ("job_title", gettext_lazy("Job title")),
    ("company_name", gettext_lazy("Company")),
    ("company_size", gettext_lazy("Company size")),
    ("industry", gettext_lazy("Industry")),
    ("country", gettext_lazy("Country")),
    ("city", gettext_lazy("City")),
    ("language", gettext_lazy("Language (de, en; de-DE)")),
    ("time_zone", gettext_lazy("Time zone (Europe/Berlin)")),
    ("stage", gettext_lazy("Lifecycle stage")),
    ("source", gettext_lazy("Source")),
    ("source_detail", gettext_lazy("Source detail (campaign, list)")),
    ("unsubscribed", gettext_lazy("Unsubscribed")),
    ("consent_state", gettext_lazy("Marketing consent (pending, confirmed, withdrawn)")),
    ("tags", gettext_lazy("Tags (separated by ; or ,)")),
]
HEADER_ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "user_id": "external_id",
    "userid": "external_id",
    "firstname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "title": "job_title",
    "jobtitle": "job_title",
    "position": "job_title",
    "company": "company_name",
    "organization": "company_name",
    "organisation": "company_name",
    "employees": "company_size",
    "tag": "tags",
    "channel": "source",
    "lead_source": "source",
    "consent": "consent_state",
    "marketing_consent": "consent_state",
    "opt_in": "consent_state",
    "locale": "language",
    "timezone": "time_zone",
    "tz": "time_zone",
}
# What a CSV may say for a source besides our own keys and labels.
SOURCE_WORDS = {
    "trade fair": LeadSource.EVENT,
    "trade show": LeadSource.EVENT,
    "fair": LeadSource.EVENT,
    "event": LeadSource.EVENT,
    "seo": LeadSource.ORGANIC,
    "search": LeadSource.ORGANIC,
    "ads": LeadSource.PAID,
    "cpc": LeadSource.PAID,
    "referral": LeadSource.REFERRAL,
}
TEXT_LIMITS = {
    f.name: f.max_length for f in Lead._meta.concrete_fields if getattr(f, "max_length", None)
}
LEAD_COLUMNS = {f.name for f in Lead._meta.concrete_fields}
BOOL_WORDS = {
    "true": True,
    "yes": True,
    "1": True,
    "y": True,
    "false": False,
    "no": False,
    "0": False,
    "n": False,
    "": False,
}


def import_target_choices() -> list[tuple[str, StrOrPromise]]:
    custom: list[tuple[str, StrOrPromise]] = [
        (f"custom:{d.key}", gettext("%(label)s (custom)") % {"label": d.label})
        for d in FieldDefinition.objects.all()
    ]
    return [*IMPORT_FIELDS, *custom]


def import_guess_mapping(headers: Iterable[str]) -> dict[str, str]:
    """A starting mapping from header names ("E-mail", "Job Title" …)."""
    targets = {key for key, _ in import_target_choices()}
    mapping: dict[str, str] = {}
    for header in headers:
        normal = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
        target = HEADER_ALIASES.get(normal, normal)
        if target not in targets and f"custom:{target}" in targets:
            target = f"custom:{target}"
        if target in targets and target not in mapping.values():
            mapping[header] = target
    return mapping


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")


def import_read_headers(stream: IO[bytes]) -> list[str]:
    text = _text(stream)
    try:
        row = next(csv.reader(text), [])
    except csv.Error as exc:
        raise ValueError(
            gettext("The file is not readable as CSV: %(problem)s.") % {"problem": exc}
        ) from None
    finally:
        text.detach()
    return [h.strip() for h in row]


def lead_import_upload(*, upload: File[bytes], created_by: User | None) -> LeadImport:
    """Keep an uploaded file until its columns are mapped."""
    return LeadImport.objects.create(
        file=upload,
        original_name=str(getattr(upload, "name", "import.csv"))[:255],
        created_by=created_by,
    )


def lead_import_start(*, record: LeadImport, mapping: dict[str, str]) -> LeadImport:
    """Save the column mapping and have a worker run the import after commit."""
    from leads.tasks import lead_import_run as task

    record.mapping = mapping
    # From now on beat's sweeper sends it again if its message is lost.
    record.queued_at = timezone.now()
    record.save(update_fields=["mapping", "queued_at"])
    task_send_on_commit(task, record.pk)
    return record


class RowError(Exception):
    pass


def _clean_row(
    row: list[str], columns: list[tuple[int, str]], definitions: dict[str, FieldDefinition]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(standard fields, custom fields, tags) of one row; raises RowError."""
    standard: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    tags: list[str] = []
    for index, target in columns:
        value = row[index].strip() if index < len(row) else ""
        if target == "tags":
            tags += [t.strip()[:100] for t in re.split(r"[;,]", value) if t.strip()]
            continue
        if value == "":
            continue
        if target.startswith("custom:"):
            definition = definitions[target[7:]]
            try:
                custom[definition.key] = custom_value_clean(definition, value, lenient=True)
            except FieldValueError as exc:
                raise RowError(f"{definition.key}: {exc}") from None
            continue
        standard[target] = _standard_cell(target, value)
    if not standard.get("email"):
        raise RowError("email: missing; rows are matched by email.")
    return standard, custom, tags


def _standard_cell(target: str, value: str) -> Any:
    """A non-empty cell as the value of the lead's field ``target``; raises RowError."""
    cleaned: Any = value
    if target == "email":
        cleaned = value.lower()
        try:
            validate_email(cleaned)
        except ValidationError:
            raise RowError(f"email: {cleaned!r} is not a valid email address.") from None
    elif target == "company_size":
        digits = value.replace(",", "").replace(" ", "")
        if not digits.isdigit():
            raise RowError(f"company_size: {value!r} is not a whole number.")
        cleaned = int(digits)
        if cleaned > MAX_COMPANY_SIZE:
            raise RowError(f"company_size: {value!r} is too large.")
    elif target == "stage":
        cleaned = value.lower()
        if cleaned not in Stage.values:
            raise RowError(f"stage: {value!r} is not one of {', '.join(Stage.values)}.")
    elif target in _CHOICE_CELLS:
        cleaned = _CHOICE_CELLS[target](value)
    elif target == "unsubscribed":
        if value.lower() not in BOOL_WORDS:
            raise RowError(f"unsubscribed: {value!r} is not yes/no.")
        cleaned = BOOL_WORDS[value.lower()]
    limit = TEXT_LIMITS.get(target)
    if limit and isinstance(cleaned, str) and len(cleaned) > limit:
        raise RowError(f"{target}: longer than {limit} characters.")
    return cleaned


# What an import may set: not "unknown" (forgetting is a user's correction).
IMPORT_CONSENT_STATES = (ConsentState.PENDING, ConsentState.CONFIRMED, ConsentState.WITHDRAWN)


def _consent_cell(value: str) -> str:
    """A consent cell as a state: its key or its English label; raises RowError."""
    word = value.strip().lower()
    by_label = {str(ConsentState(key).label).lower(): key for key in IMPORT_CONSENT_STATES}
    found = word if word in IMPORT_CONSENT_STATES else by_label.get(word)
    if found is None:
        raise RowError(
            f"consent_state: {value!r} is not one of {', '.join(IMPORT_CONSENT_STATES)}."
        )
    return str(found)


def import_source_clean(value: str) -> str:
    """A source cell as one of ``LeadSource``: its key, its English label or a
    common word for it ("trade fair"); raises RowError."""
    word = value.strip().lower()
    by_label = {str(label).lower(): key for key, label in LeadSource.choices}
    found = word if word in LeadSource.values else by_label.get(word) or SOURCE_WORDS.get(word)
    if found is None:
        raise RowError(f"source: {value!r} is not one of {', '.join(LeadSource.values)}.")
    return str(found)


def _batches(
    rows: Iterator[list[str]], size: int, *, start_after: int = 0
) -> Iterator[list[tuple[int, list[str]]]]:
    batch: list[tuple[int, list[str]]] = []
    # Row 1 is the header, so the first data row is row 2, as a spreadsheet shows it.
    for number, row in enumerate(rows, start=2):
        if number <= start_after or not any(cell.strip() for cell in row):
            continue
        batch.append((number, row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def leads_import_stream(
    *,
    stream: IO[bytes],
    mapping: dict[str, str],
    on_batch: Any = None,
    start_after: int = 0,
    file_name: str = "",
) -> dict[str, Any]:
    """Import leads from a CSV byte stream. Returns counts and row errors.

    A lead the file creates comes from the import (``source`` "import", the
    ``file_name`` as its detail) unless its row names a source.
    An existing lead (same email) gets the non-empty cells of its row; a cell left
    empty never erases a value. Tags are added, never removed. ``on_batch`` gets
    each batch's counts (with ``position``, its last row) inside the batch's
    transaction, so what it records commits with the batch or not at all; rows up
    to ``start_after`` are skipped (a run going on where another stopped).
    """
    text = _text(stream)
    reader = csv.reader(text)
    headers = [h.strip() for h in next(reader, [])]
    definitions = {d.key: d for d in FieldDefinition.objects.all()}
    columns: list[tuple[int, str]] = []
    for header, target in mapping.items():
        if header not in headers:
            raise ValueError(f"The file has no column {header!r}.")
        if target.startswith("custom:") and target[7:] not in definitions:
            raise ValueError(f"No custom field {target[7:]!r}.")
        columns.append((headers.index(header), target))
    totals: dict[str, Any] = {"total": 0, "created": 0, "updated": 0, "failed": 0, "errors": []}
    run = ImportRun(
        columns=columns,
        definitions=definitions,
        key=uuid.uuid4().hex,
        source_detail=file_name[: TEXT_LIMITS["source_detail"]],
    )
    for batch in _batches(reader, BATCH_SIZE, start_after=start_after):
        try:
            counts = _import_batch(batch, run, on_batch)
        except IntegrityError:
            # A worker created one of these leads meanwhile; the batch rolled
            # back whole, and a second pass finds that lead and updates it.
            counts = _import_batch(batch, run, on_batch)
        for key in ("total", "created", "updated", "failed"):
            totals[key] += counts[key]
        room = MAX_STORED_ERRORS - len(totals["errors"])
        totals["errors"] += counts["errors"][: max(room, 0)]
    text.detach()
    return totals


@dataclass(frozen=True)
class ImportRun:
    """What every batch of one run of an import shares."""

    columns: list[tuple[int, str]]
    definitions: dict[str, FieldDefinition]
    key: str
    source_detail: str


def _import_batch(
    batch: list[tuple[int, list[str]]], run: ImportRun, on_batch: Any
) -> dict[str, Any]:
    with transaction.atomic():
        counts = _import_rows(batch, run)
        counts["position"] = batch[-1][0]
        if on_batch is not None:
            on_batch(counts)
    return counts


# A row's cleaned cells: (standard fields, custom fields, tags).
CleanRow = tuple[dict[str, Any], dict[str, Any], list[str]]
# One field changed on an existing lead: (lead id, field, from, to, is custom).
FieldChange = tuple[int, str, Any, Any, bool]


def _import_rows(batch: list[tuple[int, list[str]]], run: ImportRun) -> dict[str, Any]:
    columns, definitions, run_key = run.columns, run.definitions, run.key
    errors: list[dict[str, Any]] = []
    rows, row_numbers = _rows_by_email(batch, columns, definitions, errors)
    # Consent is not a field to overwrite: it moves by its rules, with evidence.
    consents = {
        email: standard.pop("consent_state")
        for email, (standard, _, _) in rows.items()
        if "consent_state" in standard
    }
    existing = {
        lead.email: lead
        # Locked, so a worker applying an event to one of them waits for us
        # instead of having its change overwritten.
        for lead in Lead.objects.select_for_update()
        .filter(email__in=list(rows))
        .only("id", "email", "custom_fields", *{t for _, t in columns if t in LEAD_COLUMNS})
    }
    _external_ids_check(rows, row_numbers, errors)

    now = timezone.now()
    new_leads, changed, update_fields, changes = _rows_to_leads(
        rows, existing, now, source_detail=run.source_detail
    )
    if new_leads:
        Lead.objects.bulk_create(new_leads, batch_size=500)
        if new_leads[0].pk is None:
            ids = dict(
                Lead.objects.filter(email__in=[lead.email for lead in new_leads]).values_list(
                    "email", "id"
                )
            )
            for lead in new_leads:
                lead.pk = ids[lead.email]
    if changed:
        Lead.objects.bulk_update(changed, [*sorted(update_fields), "updated_at"], batch_size=500)
    _stages_reached(new_leads, changes, now)
    if consents:
        _consents_set(consents, existing, new_leads, run)

    derived = [
        Event(
            lead_id=lead_id,
            type="field.changed",
            name=field,
            properties={
                "field": field,
                "from": old,
                "to": new,
                **({"custom": True} if custom_field else {}),
            },
            occurred_at=now,
            received_at=now,
            source=SYSTEM_SOURCE,
            idempotency_key=f"field.changed:import:{run_key}:{lead_id}:{field}",
        )
        for lead_id, field, old, new, custom_field in changes
    ]
    tag_rows = [(email, tags) for email, (_, _, tags) in rows.items() if tags]
    if tag_rows:
        derived += _tags_add(tag_rows, existing, new_leads, now=now, run_key=run_key)
    if new_leads or derived:
        events_record(
            events=derived
            + [
                Event(
                    lead_id=lead.pk,
                    type="lead.created",
                    properties={"email": lead.email, "source": "import"},
                    occurred_at=now,
                    received_at=now,
                    source=SYSTEM_SOURCE,
                    idempotency_key=f"lead.created:{lead.pk}",
                )
                for lead in new_leads
            ]
        )
    return {
        "total": len(batch),
        "created": len(new_leads),
        "updated": len(batch) - len(new_leads) - len(errors),
        "failed": len(errors),
        "errors": sorted(errors, key=lambda e: e["row"]),
    }


def _consents_set(
    consents: dict[str, str],
    existing: dict[str | None, Lead],
    new_leads: list[Lead],
    run: ImportRun,
) -> None:
    """Each row's consent through the consent rules, the file's name as the
    evidence's detail. A change the rules refuse (lifting a withdrawal) leaves
    the consent as it was; the rest of the row is imported."""
    leads = {**existing, **{lead.email: lead for lead in new_leads}}
    for email, state in consents.items():
        lead = leads.get(email)
        if lead is None:
            continue
        try:
            consent_set(
                lead=lead,
                state=state,
                source=ConsentSource.IMPORT,
                source_detail=run.source_detail,
            )
        except ConsentRefused as refused:
            logger.info("import kept a lead's consent: %s", refused.message)


# Cells whose words are read as one of a field's choices.
def _language_cell(value: str) -> str:
    code = language_of(value)
    if code is None:
        raise RowError(f"language: {value!r} is not one of {', '.join(language_codes())}.")
    return code


def _time_zone_cell(value: str) -> str:
    zone = time_zone_of(value)
    if zone is None:
        raise RowError(f"time_zone: {value!r} is not a time zone like Europe/Berlin.")
    return zone


_CHOICE_CELLS = {
    "source": import_source_clean,
    "consent_state": _consent_cell,
    "language": _language_cell,
    "time_zone": _time_zone_cell,
}


def _rows_by_email(
    batch: list[tuple[int, list[str]]],
    columns: list[tuple[int, str]],
    definitions: dict[str, FieldDefinition],
    errors: list[dict[str, Any]],
) -> tuple[dict[str, CleanRow], dict[str, int]]:
    """The batch's clean rows by email, rows for the same address merged, and the
    number of each address's last row; a row that is not clean goes to ``errors``."""
    rows: dict[str, CleanRow] = {}
    row_numbers: dict[str, int] = {}
    for number, row in batch:
        try:
            standard, custom, tags = _clean_row(row, columns, definitions)
        except RowError as exc:
            errors.append({"row": number, "error": str(exc)})
            continue
        email = standard["email"]
        if email in rows:
            # A later row for the same address wins, as it would one by one.
            prev_standard, prev_custom, prev_tags = rows[email]
            standard = {**prev_standard, **standard}
            custom = {**prev_custom, **custom}
            tags = prev_tags + tags
        rows[email] = (standard, custom, tags)
        row_numbers[email] = number
    return rows, row_numbers


def _external_ids_check(
    rows: dict[str, CleanRow], row_numbers: dict[str, int], errors: list[dict[str, Any]]
) -> None:
    """An external id names one lead: it cannot move away from a lead that already
    has it, and among the rows of a batch the first to claim it keeps it. A row
    that breaks this leaves ``rows`` for ``errors``."""

    def reject(email: str, message: str) -> None:
        errors.append({"row": row_numbers[email], "error": message})
        rows.pop(email, None)

    wanted = [s["external_id"] for s, _, _ in rows.values() if s.get("external_id")]
    taken = dict(
        Lead.objects.filter(external_id__in=wanted).values_list("external_id", "email")
        if wanted
        else []
    )
    claimed: dict[str, str] = {}
    for email, (standard, _, _) in list(rows.items()):
        external_id = standard.get("external_id")
        if not external_id:
            continue
        if external_id in taken:
            if taken[external_id] != email:
                reject(email, f"external_id: {external_id!r} belongs to another lead.")
        elif claimed.setdefault(external_id, email) != email:
            first_row = row_numbers[claimed[external_id]]
            reject(email, f"external_id: {external_id!r} is already used on row {first_row}.")


def _stages_reached(new_leads: list[Lead], changes: list[FieldChange], now: dt.datetime) -> None:
    """Lifecycle dates (and follow-ups closed) for the stages the batch set, as
    ``lead_update`` does for one lead: the leads created in a dated stage, and
    the leads whose stage the file changed."""
    stages = {lead.pk: lead.stage for lead in new_leads if lead.stage in STAGE_DATE_FIELDS}
    stages.update({lead_id: new for lead_id, field, _, new, custom in changes if field == "stage"})
    if stages:
        leads_stage_reached(stages=stages, at=now)


def _rows_to_leads(
    rows: dict[str, CleanRow],
    existing: dict[str | None, Lead],
    now: dt.datetime,
    *,
    source_detail: str = "",
) -> tuple[list[Lead], list[Lead], set[str], list[FieldChange]]:
    """(new leads, changed leads, the fields changed, each change) once the rows
    are written over the leads; nothing is saved. A new lead's source is the
    import unless its row names one."""
    new_leads: list[Lead] = []
    changed: list[Lead] = []
    update_fields: set[str] = set()
    changes: list[FieldChange] = []
    for email, (standard, custom, _) in rows.items():
        lead = existing.get(email)
        if lead is None:
            origin = {"source": LeadSource.IMPORT, "source_detail": source_detail}
            new_leads.append(
                Lead(**{**origin, **standard}, custom_fields=custom, created_at=now, updated_at=now)
            )
            continue
        if _lead_change(lead, standard, custom, update_fields=update_fields, changes=changes):
            lead.updated_at = now
            changed.append(lead)
    return new_leads, changed, update_fields, changes


def _lead_change(
    lead: Lead,
    standard: dict[str, Any],
    custom: dict[str, Any],
    *,
    update_fields: set[str],
    changes: list[FieldChange],
) -> bool:
    """Write a row's values over an existing lead (its email stays); True when
    any changed. Adds to ``update_fields`` and ``changes``."""
    dirty = False
    for field, value in standard.items():
        old = getattr(lead, field)
        if field != "email" and old != value:
            setattr(lead, field, value)
            update_fields.add(field)
            changes.append((lead.pk, field, old, value, False))
            dirty = True
    for key, value in custom.items():
        old = lead.custom_fields.get(key)
        if old != value:
            lead.custom_fields = {**lead.custom_fields, key: value}
            update_fields.add("custom_fields")
            changes.append((lead.pk, key, old, value, True))
            dirty = True
    return dirty


def _tags_add(
    tag_rows: list[tuple[str, list[str]]],
    existing: dict[str | None, Lead],
    new_leads: list[Lead],
    *,
    now: dt.datetime,
    run_key: str,
) -> list[Event]:
    """Give the rows' leads their tags (new names create tags): the ``tag.added``
    events of the tags a lead did not have."""
    lead_ids = {email: lead.pk for email, lead in existing.items()}
    lead_ids.update({str(lead.email): lead.pk for lead in new_leads})
    names = {name for _, tags in tag_rows for name in tags}
    Tag.objects.bulk_create([Tag(name=n) for n in names], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
    through = Lead.tags.through
    links = {(lead_ids[email], tag_ids[name]) for email, tags in tag_rows for name in set(tags)}
    present = set(
        through.objects.filter(lead_id__in={lead for lead, _ in links}).values_list(
            "lead_id", "tag_id"
        )
    )
    added = sorted(links - present)
    through.objects.bulk_create(
        [through(lead_id=lead, tag_id=tag) for lead, tag in added], ignore_conflicts=True
    )
    tag_names = {tag_id: name for name, tag_id in tag_ids.items()}
    return [
        Event(
            lead_id=lead,
            type="tag.added",
            name=tag_names[tag],
            properties={"tag": tag_names[tag]},
            occurred_at=now,
            received_at=now,
            source=SYSTEM_SOURCE,
            idempotency_key=f"tag.added:import:{run_key}:{lead}:{tag}",
        )
        for lead, tag in added
    ]


def lead_import_run(*, import_id: int) -> None:
    """Run a stored import (in a worker) once its claim is ours: a finished
    import, or one another worker holds, is left alone. A run that takes over
    from a worker that died goes on after the last row committed, with the
    counts so far (each batch commits its rows, counts and position together)."""
    claim = job_claim(model=LeadImport, pk=import_id)
    if claim is None:
        return
    record = LeadImport.objects.get(pk=import_id)
    stored_errors: list[dict[str, Any]] = list(record.errors)

    def progress(counts: dict[str, Any]) -> None:
        room = MAX_STORED_ERRORS - len(stored_errors)
        stored_errors.extend(counts["errors"][: max(room, 0)])
        claim.touch(
            rows_total=F("rows_total") + counts["total"],
            rows_created=F("rows_created") + counts["created"],
            rows_updated=F("rows_updated") + counts["updated"],
            rows_failed=F("rows_failed") + counts["failed"],
            rows_position=counts["position"],
            errors=stored_errors,
        )

    try:
        with record.file.open("rb") as stream:
            leads_import_stream(
                stream=stream,
                mapping=record.mapping,
                on_batch=progress,
                start_after=record.rows_position,
                file_name=record.original_name,
            )
    except ClaimLost:
        return
    except Exception as exc:
        if outage(exc):
            # Not the import's fault: the claim runs out and beat sends it again.
            raise
        logger.exception("import %s failed", import_id)
        claim.release(
            status=ImportStatus.FAILED,
            errors=[*stored_errors, {"row": None, "error": f"The import stopped: {exc}"}],
            finished_at=timezone.now(),
        )
        return
    claim.release(status=ImportStatus.DONE, finished_at=timezone.now())

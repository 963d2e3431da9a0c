"""The segment pages: the list, the editor with its condition builder and live
count, the segment's page (conditions in words, members, refresh, static
members by hand) and deleting.

Segments are for admins and marketers: a sales rep gets 403 on every segment
page, reading ones included (the list and a segment's members would show leads
that belong to other reps). Reps see the segments of their own leads on the lead
profile."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, ALL_ROLES
from core.vocabulary import COUNTABLE_TYPES
from leads.decorators import role_required
from leads.models import FieldDefinition, Lead, Segment, SegmentKind, Tag
from leads.selectors import lead_owner_choices, leads_visible_to
from scoring.models import ScoreCategory
from segments.conditions import ConditionError
from segments.conditions.schema import NO_VALUE
from segments.conditions.tree import rules_in
from segments.conditions.words import (
    ACTIVITY_LABELS,
    COUNT_LABELS,
    describe_tree,
)
from segments.forms import (
    NEW_RULE,
    BuilderChoices,
    EmailsForm,
    SegmentForm,
    activity_types_in,
    builder_apply,
    builder_nodes,
    error_paths,
    tree_from_form,
)
from segments.names import condition_names_load
from segments.selectors import (
    SEGMENT_PREVIEW_SAMPLE,
    event_names,
    lead_segment_history,
    member_cursor,
    member_cursor_parse,
    segment_candidates,
    segment_members,
    segment_preview,
    segments_list,
)
from segments.services import (
    segment_add_leads,
    segment_conditions_clean,
    segment_create,
    segment_delete,
    segment_refresh_request,
    segment_remove_leads,
    segment_update,
)

# htmx leaves 4xx answers unswapped unless told; a refused form is a 422.
INVALID = 422
TAG_CHOICES_LIMIT = 500
HISTORY_LIMIT = 100
SEARCH_LIMIT = 10


def _definitions() -> dict[str, FieldDefinition]:
    return {d.key: d for d in FieldDefinition.objects.all()}


def _builder_choices(
    tree: Any, definitions: dict[str, FieldDefinition], segment: Segment | None
) -> BuilderChoices:
    segments = Segment.objects.order_by("name").values_list("id", "name")
    if segment is not None:
        segments = segments.exclude(pk=segment.pk)
    return BuilderChoices(
        definitions=definitions,
        categories=list(ScoreCategory.objects.values_list("key", "label")),
        owners=list(lead_owner_choices()),
        tags=list(Tag.objects.values_list("name", flat=True)[:TAG_CHOICES_LIMIT]),
        segments=list(segments),
        event_names=event_names(types=activity_types_in(tree)),
    )


def _editor_context(
    *,
    form: SegmentForm,
    segment: Segment | None,
    kind: str,
    tree: dict[str, Any],
    definitions: dict[str, FieldDefinition],
    errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    choices = _builder_choices(tree, definitions, segment)
    root = builder_nodes(tree, choices, errors)
    return {
        "form": form,
        "segment": segment,
        "kind": kind,
        "dynamic": kind == SegmentKind.DYNAMIC,
        "root": root,
        "choices": choices,
        "field_choices": choices.field_choices(),
        "activity_choices": [(a, ACTIVITY_LABELS[a]) for a in COUNTABLE_TYPES],
        "count_choices": list(COUNT_LABELS.items()),
        "form_url": reverse("segment-edit", args=[segment.pk])
        if segment
        else reverse("segment-new"),
        "tree_errors": bool(errors),
    }


def _editor(request: HtmxHttpRequest, segment: Segment | None) -> HttpResponse:
    """New and edit: a builder action re-renders the builder (htmx) or the page;
    saving validates the form and the tree together and shows every problem."""
    definitions = _definitions()
    if request.method != "POST":
        form = SegmentForm(segment=segment, initial=_initial(segment))
        kind = str(segment.kind) if segment else SegmentKind.DYNAMIC
        tree = (segment.conditions if segment else None) or {"all": [dict(NEW_RULE)]}
        return render(
            request,
            "segments/editor.html",
            _editor_context(
                form=form, segment=segment, kind=kind, tree=tree, definitions=definitions
            ),
        )
    form = SegmentForm(request.POST, segment=segment)
    kind = form.chosen_kind()
    tree = tree_from_form(request.POST, definitions=definitions)
    action = request.POST.get("builder_action", "")
    if action:
        tree = builder_apply(tree, action)
        context = _editor_context(
            form=SegmentForm(segment=segment, initial=_posted(request, segment)),
            segment=segment,
            kind=kind,
            tree=tree,
            definitions=definitions,
        )
        if request.htmx:
            # The new builder asks for the count again as it loads.
            return render(request, "segments/_builder.html", context)
        return render(request, "segments/editor.html", context)
    errors: dict[str, list[str]] = {}
    conditions: dict[str, Any] = {}
    if kind == SegmentKind.DYNAMIC:
        try:
            conditions = segment_conditions_clean(conditions=tree, kind=kind, segment=segment)
        except ConditionError as exc:
            errors = exc.fields
        if not errors and not rules_in(tree):
            errors = {"": [gettext("Add at least one rule: a dynamic segment needs conditions.")]}
    if not form.is_valid() or errors:
        context = _editor_context(
            form=form,
            segment=segment,
            kind=kind,
            tree=tree,
            definitions=definitions,
            errors=errors,
        )
        return render(request, "segments/editor.html", context, status=INVALID)
    data = form.cleaned_data
    try:
        with transaction.atomic():
            if segment is None:
                segment = segment_create(
                    name=data["name"],
                    kind=kind,
                    conditions=conditions or None,
                    description=data["description"],
                    created_by=request.user,
                )
                notice = gettext("Segment created.")
            else:
                segment_update(
                    segment=segment,
                    name=data["name"],
                    description=data["description"],
                    conditions=conditions if kind == SegmentKind.DYNAMIC else None,
                )
                notice = gettext("Segment saved.")
    except ConditionError as exc:
        # Another segment changed between the check and the save.
        context = _editor_context(
            form=form,
            segment=segment,
            kind=kind,
            tree=tree,
            definitions=definitions,
            errors=exc.fields,
        )
        return render(request, "segments/editor.html", context, status=INVALID)
    if kind == SegmentKind.DYNAMIC:
        notice = f"{notice} {gettext('The members are being worked out.')}"
    messages.success(request, notice)
    return redirect("segment-detail", pk=segment.pk)


def _initial(segment: Segment | None) -> dict[str, Any]:
    if segment is None:
        return {"kind": SegmentKind.DYNAMIC}
    return {"name": segment.name, "description": segment.description}


def _posted(request: HtmxHttpRequest, segment: Segment | None) -> dict[str, Any]:
    """The form as typed, shown again without its errors (a builder edit is not
    a save)."""
    initial = {
        "name": request.POST.get("name", ""),
        "description": request.POST.get("description", ""),
    }
    if segment is None:
        initial["kind"] = request.POST.get("kind", SegmentKind.DYNAMIC)
    return initial


# --- pages ------------------------------------------------------------------------------


@role_required(*ADMIN_MARKETER)
@require_GET
def segment_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "segments/segment_list.html", {"segments": list(segments_list())})


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def segment_new(request: HtmxHttpRequest) -> HttpResponse:
    return _editor(request, None)


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def segment_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _editor(request, get_object_or_404(Segment, pk=pk))


@role_required(*ADMIN_MARKETER)
@require_POST
def segment_preview_view(request: HtmxHttpRequest) -> HttpResponse:
    """The live count and a sample for the tree in the editor, through the same
    validation and compiler as saving; problems go next to their rules."""
    definitions = _definitions()
    tree = tree_from_form(request.POST, definitions=definitions)
    segment_id = request.POST.get("segment_id", "")
    segment = (
        Segment.objects.filter(pk=int(segment_id)).first()
        if segment_id.isdigit() and len(segment_id) < 19
        else None
    )
    errors: dict[str, list[str]] = {}
    count, sample = 0, list[Lead]()
    counted, blank = _without_blank_rules(tree)
    try:
        segment_conditions_clean(conditions=counted, kind=SegmentKind.DYNAMIC, segment=segment)
    except ConditionError as exc:
        errors = exc.fields
    else:
        count, sample = segment_preview(
            tree=counted, user=request.user, sample=SEGMENT_PREVIEW_SAMPLE
        )
    marks = error_paths(errors)
    context = {
        "count": count,
        "sample": sample,
        "errors": errors,
        "blank": blank,
        # Every rule's error slot, filled or cleared.
        "oob": [(path, marks.get(path, ([], set()))[0]) for path in _paths(tree)],
    }
    return render(request, "segments/_preview.html", context)


def _without_blank_rules(tree: Any) -> tuple[Any, int]:
    """The tree with each rule still waiting for its value (a field rule just
    added) or its activity (an activity rule just added)
    replaced by an empty group of its parent's kind — true in "all", false in
    "any", so it changes nothing — and how many there were. The live count
    leaves such rules out rather than marking them red; saving still insists."""
    blank = 0

    def walk(node: Any, parent: str) -> Any:
        nonlocal blank
        if not isinstance(node, dict):
            return node
        for kind in ("all", "any"):
            if kind in node and isinstance(node[kind], list):
                return {**node, kind: [walk(child, kind) for child in node[kind]]}
        waiting = node.get("value") in (None, "", [])
        if ("field" in node and node.get("op") not in NO_VALUE and waiting) or (
            "activity" in node and not node.get("activity")
        ):
            blank += 1
            return {parent: []}
        return node

    return walk(tree, "all"), blank


def _paths(tree: Any, path: str = "c") -> list[str]:
    """Every node's builder path, for the preview to clear or fill its errors."""
    out = [path]
    kids = tree.get("all", tree.get("any")) if isinstance(tree, dict) else None
    if isinstance(kids, list):
        for index, child in enumerate(kids):
            out += _paths(child, f"{path}-{index}")
    return out


def _members_context(request: HtmxHttpRequest, segment: Segment) -> dict[str, Any]:
    after = request.GET.get("after", "")
    cursor = member_cursor_parse(after) if after else None
    page, next_cursor = segment_members(segment=segment, cursor=cursor)
    next_url = None
    if next_cursor is not None:
        next_url = (
            f"{reverse('segment-detail', args=[segment.pk])}?"
            f"{urlencode({'after': member_cursor(next_cursor)})}"
        )
    return {
        "segment": segment,
        "members": page,
        "next_url": next_url,
        "static": segment.kind == SegmentKind.STATIC,
    }


@role_required(*ADMIN_MARKETER)
@require_GET
def segment_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The segment: header, conditions in words, refresh and members. htmx gets
    the next rows of members (``?after=``)."""
    segment = get_object_or_404(Segment.objects.select_related("created_by"), pk=pk)
    if request.htmx and request.GET.get("after"):
        return render(request, "segments/_member_rows.html", _members_context(request, segment))
    context = {
        **_members_context(request, segment),
        "summary": describe_tree(segment.conditions, condition_names_load(segment.conditions))
        if segment.kind == SegmentKind.DYNAMIC
        else None,
        "emails_form": EmailsForm(),
    }
    return render(request, "segments/detail.html", context)


@role_required(*ADMIN_MARKETER)
@require_GET
def segment_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The refresh status, polled while a recompute runs; when it is done, the
    member list is swapped in too."""
    segment = get_object_or_404(Segment, pk=pk)
    if not request.htmx:
        return redirect("segment-detail", pk=segment.pk)
    context: dict[str, Any] = {"segment": segment}
    if not segment.refreshing and request.GET.get("polling"):
        context = {**_members_context(request, segment), "members_oob": True}
    return render(request, "segments/_status.html", context)


@role_required(*ADMIN_MARKETER)
@require_POST
def segment_refresh(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    error = ""
    try:
        segment_refresh_request(segment=segment)
    except ConditionError as exc:
        error = " ".join(m for found in exc.fields.values() for m in found)
    segment.refresh_from_db()
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("segment-detail", pk=segment.pk)
    context: dict[str, Any] = {"segment": segment, "status_error": error}
    if not segment.refreshing:
        # Done already (an eager worker): show the new members at once.
        context = {**context, **_members_context(request, segment), "members_oob": True}
    return render(request, "segments/_status.html", context)


def _members_response(
    request: HtmxHttpRequest,
    segment: Segment,
    *,
    notice: str = "",
    form: EmailsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    if not request.htmx:
        if notice:
            messages.success(request, notice)
        if form is not None and form.errors:
            for error in form.errors.get("emails", []):
                messages.error(request, str(error))
        return redirect("segment-detail", pk=segment.pk)
    segment.refresh_from_db()
    context = {
        **_members_context(request, segment),
        "emails_form": form or EmailsForm(),
        "members_notice": notice,
        "count_oob": True,
    }
    return render(request, "segments/_members.html", context, status=status)


@role_required(*ADMIN_MARKETER)
@require_POST
def segment_members_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add leads to a static segment by their emails (unknown emails are named),
    or one lead picked from the search (``lead``)."""
    segment = get_object_or_404(Segment, pk=pk, kind=SegmentKind.STATIC)
    picked = request.POST.get("lead", "")
    if picked.isdigit() and len(picked) < 19:
        lead = get_object_or_404(Lead, pk=int(picked))
        added = segment_add_leads(segment=segment, lead_ids=[lead.pk])
        notice = (
            gettext("%(lead)s added.") if added else gettext("%(lead)s was already a member.")
        ) % {"lead": lead.full_name or lead}
        return _members_response(request, segment, notice=notice)
    form = EmailsForm(request.POST)
    if not form.is_valid():
        return _members_response(request, segment, form=form, status=INVALID)
    emails = form.cleaned_data["emails"]
    found = dict(Lead.objects.filter(email__in=emails).values_list("email", "id"))
    added = segment_add_leads(segment=segment, lead_ids=found.values())
    notice = ngettext("%(count)d lead added.", "%(count)d leads added.", added) % {"count": added}
    missing = [e for e in emails if e not in found]
    if missing:
        notice += " " + gettext("No lead has these emails: %(emails)s.") % {
            "emails": ", ".join(missing)
        }
    return _members_response(request, segment, notice=notice)


@role_required(*ADMIN_MARKETER)
@require_GET
def segment_lead_search(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Leads to pick for a static segment: by name, email or company, not in it yet."""
    segment = get_object_or_404(Segment, pk=pk, kind=SegmentKind.STATIC)
    if not request.htmx:
        return redirect("segment-detail", pk=segment.pk)
    text = request.GET.get("q", "").strip()[:200]
    leads = segment_candidates(segment=segment, text=text, limit=SEARCH_LIMIT) if text else []
    return render(
        request,
        "segments/_lead_search.html",
        {"segment": segment, "leads": leads, "q": text},
    )


@role_required(*ADMIN_MARKETER)
@require_POST
def segment_members_remove(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk, kind=SegmentKind.STATIC)
    ids = [int(v) for v in request.POST.getlist("lead") if v.isdigit() and len(v) < 19]
    if not ids:
        form = EmailsForm()
        return _members_response(
            request, segment, notice=gettext("Select members to remove first."), form=form
        )
    removed = segment_remove_leads(segment=segment, lead_ids=ids)
    notice = ngettext("%(count)d lead removed.", "%(count)d leads removed.", removed) % {
        "count": removed
    }
    return _members_response(request, segment, notice=notice)


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def segment_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Asks first (GET), deletes on POST; a segment other segments use stays."""
    segment = get_object_or_404(Segment, pk=pk)
    error = ""
    if request.method == "POST":
        try:
            segment_delete(segment=segment)
        except ConditionError as exc:
            error = " ".join(m for found in exc.fields.values() for m in found)
        else:
            messages.success(
                request, gettext("Segment “%(name)s” deleted.") % {"name": segment.name}
            )
            return redirect("segment-list")
    return render(
        request,
        "segments/delete.html",
        {"segment": segment, "error": error},
        status=INVALID if error else 200,
    )


@role_required(*ALL_ROLES)
@require_GET
def lead_segment_history_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A lead's stays in segments, past and present (a part of its profile)."""
    lead = get_object_or_404(leads_visible_to(request.user), pk=pk)
    if not request.htmx:
        return redirect("lead-detail", pk=lead.pk)
    return render(
        request,
        "leads/_profile_segment_history.html",
        {"lead": lead, "history": lead_segment_history(lead=lead, limit=HISTORY_LIMIT)},
    )

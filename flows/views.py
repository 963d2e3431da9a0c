"""Flow pages: the list of flows, creating one (empty or from the template
gallery), renaming and the other settings, copying, archiving and deleting
one; the builder canvas with its header (status, versions, what the draft
changes against the live version), restoring a version, and the side panel's
node configuration form."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, gettext
from django.utils.translation.trans_real import DjangoTranslation
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import JavaScriptCatalog
from django_htmx.http import trigger_client_event

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER
from flows.changes import graph_differs
from flows.flow_forms import FlowSettingsForm
from flows.forms import NodeConfigForm, config_from_param
from flows.graph import NODE_ID, graph_mask
from flows.lifecycle import (
    FlowRefused,
    flow_create,
    flow_deletable,
    flow_delete,
    flow_duplicate,
    flow_set_status,
    flow_unarchive,
    flow_update,
    flow_version_restore,
)
from flows.models import Flow, FlowStatus, FlowVersion
from flows.nodes import REGISTRY
from flows.nodes.summaries import node_summary
from flows.selectors import default_summaries, flow_changes, flows_listed, node_summaries
from flows.templates_catalog import FLOW_TEMPLATES, TEMPLATES, flow_create_from_template
from leads.decorators import role_required
from segments.conditions import ConditionError, validate
from segments.selectors import segment_preview

# The builder's version menu lists the newest ones; the API pages through all.
VERSIONS_LISTED = 50


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every flow with its status, published version (and whether its draft
    changes it) and enrollments, and what can be done with each; the form
    creates a new flow, empty or from a template of the gallery (then named
    after it unless named), and opens it in the builder."""
    error = template_error = name = template_key = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        template_key = request.POST.get("template", "")
        template = FLOW_TEMPLATES.get(template_key)
        try:
            if template_key and template is None:
                template_error = gettext("Choose one of the listed templates.")
            elif template is not None:
                flow = flow_create_from_template(
                    template=template, name=name, created_by=request.user
                )
                return redirect("flow-builder", pk=flow.pk)
            else:
                flow = flow_create(name=name, created_by=request.user)
                return redirect("flow-builder", pk=flow.pk)
        except FlowRefused as refused:
            error = refused.message
    context = {
        "flows": flows_listed(),
        "error": error,
        "template_error": template_error,
        "name": name,
        "template_key": template_key,
        "templates": TEMPLATES,
    }
    return render(request, "flows/flow_list.html", context)


def _back(request: HtmxHttpRequest, flow: Flow | None = None) -> HttpResponse:
    """Back where the form was sent from (``next``: the list or the builder)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("flow-builder", pk=flow.pk) if flow is not None else redirect("flow-list")


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_settings(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The flow's name, description and re-entry rule: a dialog in the builder
    (htmx, which closes once saved and refreshes the header), a page from the
    list of flows."""
    flow = get_object_or_404(Flow, pk=pk)
    form = FlowSettingsForm(request.POST or None, flow=flow)
    if request.method == "POST" and form.is_valid():
        try:
            flow_update(
                flow=flow,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                reentry=form.cleaned_data["reentry"],
                reentry_days=form.cleaned_data["reentry_days"],
            )
        except FlowRefused as refused:
            form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        else:
            if request.htmx:
                response = HttpResponse("")
                return trigger_client_event(
                    trigger_client_event(response, "leadflow:dialog-close", {}),
                    "leadflow:flow-changed",
                    {},
                )
            messages.success(request, gettext("The flow's settings are saved."))
            return _back(request, flow)
    template = "flows/_flow_settings.html" if request.htmx else "flows/flow_settings.html"
    return render(request, template, {"flow": flow, "form": form})


@role_required(*ADMIN_MARKETER)
@require_POST
def flow_duplicate_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A copy of the flow's draft as a new draft flow, opened in the builder."""
    flow = get_object_or_404(Flow, pk=pk)
    copy = flow_duplicate(flow=flow, created_by=request.user)
    messages.success(
        request,
        gettext("“%(name)s” is a copy of “%(original)s”, as a draft.")
        % {"name": copy.name, "original": flow.name},
    )
    return redirect("flow-builder", pk=copy.pk)


@role_required(*ADMIN_MARKETER)
@require_POST
def flow_archive_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Archive the flow (it stops; waiting leads hold), or bring it back."""
    flow = get_object_or_404(Flow, pk=pk)
    if request.POST.get("unarchive"):
        flow = flow_unarchive(flow=flow)
        text = (
            gettext("“%(name)s” is back, paused: resume it to run it again.")
            if flow.status == FlowStatus.PAUSED
            else gettext("“%(name)s” is back, as a draft.")
        )
    else:
        flow = flow_set_status(flow=flow, status=FlowStatus.ARCHIVED)
        text = gettext("“%(name)s” is archived: no lead enters it any more.")
    messages.success(request, text % {"name": flow.name})
    return _back(request, flow)


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_delete_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Asks first, then deletes a flow that was never published."""
    flow = get_object_or_404(Flow, pk=pk)
    if request.method == "POST":
        try:
            flow_delete(flow=flow)
        except FlowRefused as refused:
            messages.error(request, refused.message)
            return redirect("flow-builder", pk=flow.pk)
        messages.success(request, gettext("“%(name)s” is deleted.") % {"name": flow.name})
        return redirect("flow-list")
    return render(
        request,
        "flows/flow_delete.html",
        {"flow": flow, "deletable": flow_deletable(flow)},
    )


@role_required(*ADMIN_MARKETER)
def flow_changes_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """What the draft changes against the live version, in words."""
    flow = get_object_or_404(Flow.objects.select_related("published"), pk=pk)
    context = {"flow": flow, "changes": flow_changes(flow=flow)}
    template = "flows/_flow_changes.html" if request.htmx else "flows/flow_changes.html"
    return render(request, template, context)


def _header_context(flow: Flow, version: FlowVersion | None) -> dict[str, Any]:
    # The menu needs no graphs, which can be large.
    versions = list(
        flow.versions.select_related("created_by")
        .defer("graph")
        .order_by("-number")[: VERSIONS_LISTED + 1]
    )
    return {
        "flow": flow,
        "version": version,
        "versions": versions[:VERSIONS_LISTED],
        "more_versions": len(versions) > VERSIONS_LISTED,
        "versions_listed": VERSIONS_LISTED,
        "unpublished": flow.published is not None
        and graph_differs(flow.published.graph, flow.draft),
        "deletable": flow.published_id is None and not versions,
    }


def _viewed_version(flow: Flow, number: str) -> FlowVersion | None:
    if not number:
        return None
    if not number.isdigit():
        raise Http404("Expected a version number.")
    return get_object_or_404(
        FlowVersion.objects.select_related("created_by"), flow=flow, number=int(number)
    )


@role_required(*ADMIN_MARKETER)
def flow_header(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The builder's header again, after the canvas saved or published: the
    status, whether the draft changes the live version, the versions."""
    flow = get_object_or_404(Flow.objects.select_related("published"), pk=pk)
    version = _viewed_version(flow, request.GET.get("version", ""))
    return render(request, "flows/_builder_header.html", _header_context(flow, version))


def builder_data(flow: Flow, *, version: FlowVersion | None, csrf_token: str) -> dict[str, Any]:
    """What the canvas starts with: the graph (the draft, or a published
    version read-only), node types, summaries and the URLs it talks to."""
    graph = version.graph if version is not None else flow.draft
    api = f"/api/v1/flows/{flow.pk}/"
    defaults = default_summaries()
    return {
        "flow": {
            "id": flow.pk,
            "name": flow.name,
            "status": flow.status,
            "version": flow.published.number if flow.published else None,
        },
        "graph": graph_mask(graph),
        "revision": flow.draft_revision,
        "readOnly": version is not None,
        "viewing": version.number if version is not None else None,
        "nodeTypes": [
            {**t.describe(), "defaultSummary": defaults.get(t.key)} for t in REGISTRY.values()
        ],
        "summaries": node_summaries(graph),
        "csrfToken": csrf_token,
        "urls": {
            "draft": f"{api}draft/",
            "validate": f"{api}validate/",
            "publish": f"{api}publish/",
            "pause": f"{api}pause/",
            "resume": f"{api}resume/",
            "stats": f"{api}stats/",
            "enrollments": f"{api}enrollments/",
            "dryRun": f"{api}dry-run/",
            "leads": "/api/v1/leads/",
            "leadPage": "/leads/",
            "nodeForm": reverse("flow-node-form", args=[flow.pk]),
        },
    }


@lru_cache(maxsize=8)
def canvas_catalog(language: str) -> dict[str, Any]:
    """The canvas's translations (the ``djangojs`` domain) for ``language``, as
    Django's JavaScriptCatalog serves them: embedded in the builder page, so the
    canvas needs no second request to speak the user's language."""
    catalog = JavaScriptCatalog()
    # Our own catalog (LOCALE_PATHS) only, not the JavaScript of every installed app.
    catalog.translation = DjangoTranslation(
        language, domain="djangojs", localedirs=catalog.get_paths(["flows"])
    )
    return {"catalog": catalog.get_catalog(), "plural": catalog.get_plural()}


@role_required(*ADMIN_MARKETER)
def flow_builder(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The canvas: the draft, or with ``?version=N`` that published version,
    read-only."""
    flow = get_object_or_404(Flow.objects.select_related("published"), pk=pk)
    number = request.GET.get("version", "")
    if number and not number.isdigit():
        return redirect("flow-builder", pk=flow.pk)
    version = _viewed_version(flow, number)
    data = builder_data(flow, version=version, csrf_token=get_token(request))
    context = {
        **_header_context(flow, version),
        "data": data,
        "i18n_catalog": canvas_catalog(get_language()),
    }
    return render(request, "flows/builder.html", context)


@role_required(*ADMIN_MARKETER)
@require_POST
def flow_version_restore_page(request: HtmxHttpRequest, pk: int, number: int) -> HttpResponse:
    """Make a published version the draft again and go back to the builder."""
    flow = get_object_or_404(Flow, pk=pk)
    version = get_object_or_404(FlowVersion, flow=flow, number=number)
    flow_version_restore(flow=flow, version=version, user=request.user)
    messages.success(
        request,
        gettext("Version %(number)d is now the draft; publish it to make it live.")
        % {"number": version.number},
    )
    return redirect("flow-builder", pk=flow.pk)


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_node_form(request: HtmxHttpRequest, flow_id: int) -> HttpResponse:
    """The side panel's form for one node. GET shows it filled from ``config``
    (JSON); POST (sent as the settings are typed) reads it back and sends the
    canvas what was typed in the ``leadflow:node-configured`` event: the config,
    its summary when it is complete, else the problems still to fix, which the
    form shows next to their fields. A POST with ``builder_action`` (an edit in
    a condition tree's builder) answers with the builder alone."""
    flow = get_object_or_404(Flow, pk=flow_id)
    params = request.POST if request.method == "POST" else request.GET
    node_type = REGISTRY.get(params.get("type", ""))
    if node_type is None:
        raise Http404("Unknown node type.")
    node_id = params.get("node", "")
    if not re.fullmatch(NODE_ID, node_id):
        return HttpResponseBadRequest("Expected a node id.")
    context: dict[str, Any] = {"flow": flow, "node_type": node_type, "node_id": node_id}
    if request.method == "GET":
        config, problem = config_from_param(request.GET.get("config", ""))
        form = NodeConfigForm(node_type, node_id=node_id, config=config)
        form.builders_prepare(reverse("flow-node-form", args=[flow.pk]))
        if problem:
            form.general.append(problem)
        context.update(form=form, readonly=request.GET.get("readonly") == "1")
        return render(request, "flows/_node_form.html", context)
    form = NodeConfigForm(node_type, node_id=node_id, data=request.POST)
    valid = form.is_valid()
    form.builders_prepare(reverse("flow-node-form", args=[flow.pk]))
    tree_field = form.tree_field()
    if request.POST.get("builder_action") and tree_field is not None:
        response = render(
            request, "flows/_conditions.html", {**context, "form": form, "field": tree_field}
        )
    elif valid:
        # Shown as saved: typed values as read ("+10" as 10), a blank row to add one.
        saved = NodeConfigForm(node_type, node_id=node_id, config=form.config)
        saved.builders_prepare(reverse("flow-node-form", args=[flow.pk]))
        saved_tree = saved.tree_field()
        if saved_tree is not None and tree_field is not None:
            saved_tree.json_mode = tree_field.json_mode
        response = render(request, "flows/_node_form.html", {**context, "form": saved})
    else:
        response = render(request, "flows/_node_form.html", {**context, "form": form})
    return trigger_client_event(
        response,
        "leadflow:node-configured",
        {
            "node": node_id,
            "type": node_type.key,
            "config": form.config,
            "complete": valid,
            "summary": node_summary(node_type.key, form.config) if valid else "",
            "problems": form.problems() if not valid else [],
        },
    )


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_condition_count(request: HtmxHttpRequest, flow_id: int) -> HttpResponse:
    """How many leads the condition being edited in the side panel sends
    through "yes" right now, read from the node form as it is typed (POST), or
    from ``config`` (GET: a read-only panel, whose disabled fields send nothing)."""
    get_object_or_404(Flow, pk=flow_id)
    params = request.POST if request.method == "POST" else request.GET
    node_type = REGISTRY.get(params.get("type", ""))
    if node_type is None:
        raise Http404("Unknown node type.")
    if request.method == "POST":
        form = NodeConfigForm(node_type, node_id="count", data=request.POST)
    else:
        config, _problem = config_from_param(request.GET.get("config", ""))
        form = NodeConfigForm(node_type, node_id="count", config=config)
    tree_field = form.tree_field()
    count: int | None = None
    if tree_field is not None and isinstance(tree_field.tree, dict):
        try:
            tree = validate(tree_field.tree)
        except ConditionError:
            pass
        else:
            count, _sample = segment_preview(tree=tree, user=request.user, sample=0)
    return render(request, "flows/_condition_count.html", {"count": count})

"""Flow pages: the list of flows, creating one (empty or from a template), the
builder canvas with its version history, restoring a version, and the side
panel's node configuration form."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import get_language, gettext
from django.utils.translation.trans_real import DjangoTranslation
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import JavaScriptCatalog
from django_htmx.http import trigger_client_event

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER
from flows.forms import NodeConfigForm, config_from_param
from flows.graph import NODE_ID, graph_mask
from flows.lifecycle import flow_create, flow_version_restore
from flows.models import Flow, FlowVersion
from flows.nodes import REGISTRY
from flows.nodes.summaries import node_summary
from flows.selectors import default_summaries, node_summaries
from flows.templates_catalog import FLOW_TEMPLATES, TEMPLATES, flow_create_from_template
from leads.decorators import role_required
from segments.conditions import ConditionError, validate
from segments.selectors import segment_preview

# The builder's version menu lists the newest ones; the API pages through all.
VERSIONS_LISTED = 50


@role_required(*ADMIN_MARKETER)
@require_http_methods(["GET", "POST"])
def flow_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every flow with its status, published version and enrollments; the form
    creates a new flow, empty or from a template (then named after it unless
    named), and opens it in the builder."""
    error = template_error = name = template_key = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        template_key = request.POST.get("template", "")
        template = FLOW_TEMPLATES.get(template_key)
        if template_key and template is None:
            template_error = gettext("Choose one of the listed templates.")
        elif not name and template is None:
            error = gettext("Give the flow a name.")
        elif len(name) > 200:
            error = gettext("A flow name has at most 200 characters.")
        elif template is not None:
            flow = flow_create_from_template(template=template, name=name, created_by=request.user)
            return redirect("flow-builder", pk=flow.pk)
        else:
            flow = flow_create(name=name, created_by=request.user)
            return redirect("flow-builder", pk=flow.pk)
    flows = (
        Flow.objects.select_related("published")
        .annotate(enrollment_count=Count("enrollments"))
        .order_by("-updated_at", "-id")
    )
    context = {
        "flows": flows,
        "error": error,
        "template_error": template_error,
        "name": name,
        "template_key": template_key,
        "templates": TEMPLATES,
    }
    return render(request, "flows/flow_list.html", context)


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
    version = None
    number = request.GET.get("version", "")
    if number:
        if not number.isdigit():
            return redirect("flow-builder", pk=flow.pk)
        version = get_object_or_404(
            FlowVersion.objects.select_related("created_by"), flow=flow, number=int(number)
        )
    # The menu needs no graphs, which can be large.
    versions = list(
        flow.versions.select_related("created_by")
        .defer("graph")
        .order_by("-number")[: VERSIONS_LISTED + 1]
    )
    data = builder_data(flow, version=version, csrf_token=get_token(request))
    context = {
        "flow": flow,
        "version": version,
        "data": data,
        "versions": versions[:VERSIONS_LISTED],
        "more_versions": len(versions) > VERSIONS_LISTED,
        "versions_listed": VERSIONS_LISTED,
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

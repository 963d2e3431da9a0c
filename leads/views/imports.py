"""CSV import of leads: upload, map the columns, follow the progress."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER
from leads.decorators import role_required
from leads.forms.imports import LeadImportMappingForm, LeadImportUploadForm
from leads.models import LeadImport
from leads.services.imports import (
    import_guess_mapping,
    import_read_headers,
    lead_import_start,
    lead_import_upload,
)


@role_required(*ADMIN_MARKETER)
def lead_import_new(request: HtmxHttpRequest) -> HttpResponse:
    """Step 1 uploads the file; step 2 maps its columns and starts the import."""
    if request.method == "POST" and "mapping_step" in request.POST:
        pending_id = request.session.get("lead_import_upload")
        pending = (
            LeadImport.objects.filter(pk=pending_id, status="pending", mapping={}).first()
            if isinstance(pending_id, int)
            else None
        )
        if pending is None:
            return redirect("lead-import")
        with pending.file.open("rb") as stream:
            headers = import_read_headers(stream)
        form = LeadImportMappingForm(request.POST, headers=headers, initial_mapping={})
        if form.is_valid():
            lead_import_start(record=pending, mapping=form.cleaned_data["mapping"])
            del request.session["lead_import_upload"]
            return redirect("lead-import-detail", pk=pending.pk)
        return render(request, "leads/import_mapping.html", {"form": form, "upload": pending})
    if request.method == "POST":
        upload_form = LeadImportUploadForm(request.POST, request.FILES)
        if upload_form.is_valid():
            headers = upload_form.headers
            pending = lead_import_upload(
                upload=upload_form.cleaned_data["file"], created_by=request.user
            )
            request.session["lead_import_upload"] = pending.pk
            form = LeadImportMappingForm(
                headers=headers, initial_mapping=import_guess_mapping(headers)
            )
            return render(request, "leads/import_mapping.html", {"form": form, "upload": pending})
    else:
        upload_form = LeadImportUploadForm()
    recent = LeadImport.objects.exclude(mapping={}).order_by("-id")[:10]
    return render(request, "leads/import_upload.html", {"form": upload_form, "recent": recent})


@role_required(*ADMIN_MARKETER)
def lead_import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(LeadImport, pk=pk)
    template = "leads/_import_progress.html" if request.htmx else "leads/import_detail.html"
    return render(request, template, {"record": record})

"""The open pixel and the click redirect: no login (the email's reader has
none), no CSRF (GET), nothing about the lead in the answer."""

from __future__ import annotations

import base64

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from emails.tracking import click_target, email_click_record, email_open_record, open_token

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@never_cache
@require_GET
def email_opened(request: HttpRequest, signed: str) -> HttpResponse:
    """The pixel, whatever the token: a forged one records nothing."""
    token = open_token(signed)
    if token is not None:
        email_open_record(token=token, user_agent=request.headers.get("User-Agent", "")[:400])
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def email_clicked(request: HttpRequest, token: str) -> HttpResponse:
    """To the link's URL if the email held it (the signature says so), else 404."""
    url = click_target(
        token=token, url=request.GET.get("u", ""), signature=request.GET.get("s", "")
    )
    if url is None:
        raise Http404
    email_click_record(token=token, url=url, user_agent=request.headers.get("User-Agent", "")[:400])
    return HttpResponseRedirect(url)

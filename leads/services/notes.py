"""Notes on leads: what a person wrote about a call or a meeting."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from leads.models import Lead, Note

NOTE_MAX_LENGTH = 10_000


@transaction.atomic
def note_create(*, lead: Lead, author: User, body: str) -> Note:
    """Add a note by ``author`` to ``lead``; blank or overlong text is refused."""
    text = body.strip()
    if not text:
        raise ValidationError(gettext("Write something first."), code="blank")
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError(
            gettext("A note can be at most %(limit)d characters long.")
            % {"limit": NOTE_MAX_LENGTH},
            code="too_long",
        )
    return Note.objects.create(lead=lead, author=author, body=text)

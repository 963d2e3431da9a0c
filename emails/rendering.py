"""Placeholder of the renderer until the template editor lands: the same
signature, plain output."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emails.models import EmailTemplate
from leads.models import Lead


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


def _fill(text: str, lead: Lead) -> str:
    def value(match: re.Match[str]) -> str:
        name, _, fallback = match.group(1).partition("|")
        got = getattr(lead, name.strip(), "") or ""
        if not got:
            got = fallback.split(":", 1)[-1].strip().strip('"') if fallback else ""
        return str(got)

    return re.sub(r"\{\{\s*(.*?)\s*\}\}", value, text)


def email_render(
    *,
    template: EmailTemplate,
    lead: Lead,
    unsubscribe_url: str | None = None,
    link_wrap: Callable[[str], str] | None = None,
    open_pixel_url: str | None = None,
    subject_override: str = "",
    postal_address: str | None = None,
) -> RenderedEmail:
    parts_html: list[str] = []
    parts_text: list[str] = []
    for block in template.blocks:
        b: dict[str, Any] = block
        text = _fill(str(b.get("text", "")), lead)
        if b.get("type") == "button":
            href = str(b.get("url", ""))
            shown = link_wrap(href) if link_wrap else href
            parts_html.append(f'<p><a href="{html.escape(shown)}">{html.escape(text)}</a></p>')
            parts_text.append(f"{text}: {shown}")
        else:
            parts_html.append(f"<p>{html.escape(text)}</p>")
            parts_text.append(text)
    if postal_address:
        parts_html.append(f"<p>{html.escape(postal_address)}</p>")
        parts_text.append(postal_address)
    if unsubscribe_url:
        parts_html.append(f'<p><a href="{html.escape(unsubscribe_url)}">Unsubscribe</a></p>')
        parts_text.append(f"Unsubscribe: {unsubscribe_url}")
    if open_pixel_url:
        parts_html.append(f'<img src="{html.escape(open_pixel_url)}" width="1" height="1" alt="">')
    return RenderedEmail(
        subject=_fill(subject_override or template.subject, lead),
        preheader=_fill(template.preheader, lead),
        html="<html><body>" + "".join(parts_html) + "</body></html>",
        text="\n\n".join(parts_text),
    )

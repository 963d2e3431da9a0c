"""How a template's text with merge tags reads in lists: each tag as a marked
placeholder naming what goes there, instead of its code."""

from __future__ import annotations

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from emails.merge_tags import MERGE_TAG

register = template.Library()


@register.filter
def merge_tags_marked(text: str) -> SafeString:
    """``Welcome, {{ first_name | default: "there" }}`` as "Welcome, [first name]"
    with the tag's code in the placeholder's title; everything else escaped."""
    parts: list[str] = []
    last = 0
    for match in MERGE_TAG.finditer(text):
        parts.append(escape(text[last : match.start()]))
        name = match.group(1).split("|", 1)[0].strip().replace(".", " ").replace("_", " ")
        parts.append(
            format_html('<span class="lf-merge-tag" title="{}">{}</span>', match.group(0), name)
        )
        last = match.end()
    parts.append(escape(text[last:]))
    return mark_safe("".join(parts))  # noqa: S308 - every part is escaped above

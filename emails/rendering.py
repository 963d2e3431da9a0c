"""A template, rendered for one lead: subject, preheader, HTML and plain text.

The blocks become MJML, and MJML (MRML through ``mjml-python``) responsive,
inline-styled HTML. That is the slow part, and it does not depend on the lead:
it runs once per template revision (and footer language) with every merge tag
replaced by a placeholder; the result is kept as a list of literal pieces and
slots (a merge tag, a link, the postal address, the unsubscribe link, the open
pixel). Rendering for a lead fills the slots: each distinct merge tag is
evaluated once (``emails.merge_tags``), HTML-escaped in the HTML part; each
http(s) link goes through ``link_wrap`` (click tracking), the unsubscribe link
does not."""

from __future__ import annotations

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from mjml import mjml2html

from emails.merge_tags import (
    MERGE_TAG,
    lead_merge_context,
    merge_tag_fill,
    merge_tag_problems,
    merge_text_fill,
)
from emails.models import EmailKind, EmailSettings, EmailTemplate
from leads.models import Lead

__all__ = ["RenderedEmail", "email_render", "merge_tag_problems", "template_compile"]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str  # full responsive, inline-styled HTML document
    text: str  # the plain-text part


# Placeholders survive Markdown, MJML and URL encoding (letters and digits only).
_TOKEN = "Xq7mrg{}grm7qX"  # noqa: S105 (not a secret: a placeholder)
_TOKEN_PATTERN = re.compile(r"Xq7mrg(\d+|ADDR|UNSUB)grm7qX")
_ADDRESS = _TOKEN.format("ADDR")
_UNSUBSCRIBE = _TOKEN.format("UNSUB")
_ANCHOR_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]*)(")', re.IGNORECASE)
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MARKDOWN_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")

# A line break in the text is a line break in the email (a signature, an address).
_MARKDOWN = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True}
)

TEXT_COLOR = "#1f2937"
MUTED_COLOR = "#6b7280"
LINK_COLOR = "#2563eb"
BUTTON_COLOR = "#2563eb"
FONT = "Helvetica, Arial, sans-serif"


# Slots of a compiled part. A literal piece is a plain ``str``.
@dataclass(frozen=True)
class _Tag:
    index: int  # which merge tag


@dataclass(frozen=True)
class _Link:
    pieces: tuple[str | _Tag, ...]  # the URL with its merge tags, unescaped


class _Special:
    def __init__(self, name: str) -> None:
        self.name = name


_ADDRESS_SLOT = _Special("address")
_UNSUBSCRIBE_SLOT = _Special("unsubscribe")
_PIXEL_SLOT = _Special("pixel")

_Piece = str | _Tag | _Link | _Special


@dataclass(frozen=True)
class CompiledEmail:
    """What one template revision renders to, before any lead."""

    expressions: tuple[str, ...]
    html: tuple[_Piece, ...]
    text: tuple[_Piece, ...]
    uses_owner: bool


class _Tags:
    """Numbers each distinct merge tag and stands a placeholder in its place."""

    def __init__(self) -> None:
        self.expressions: dict[str, int] = {}

    def hide(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            index = self.expressions.setdefault(match.group(1), len(self.expressions))
            return _TOKEN.format(index)

        return MERGE_TAG.sub(replace, text)


def _split_tokens(text: str) -> Iterator[_Piece]:
    position = 0
    for match in _TOKEN_PATTERN.finditer(text):
        if match.start() > position:
            yield text[position : match.start()]
        name = match.group(1)
        if name == "ADDR":
            yield _ADDRESS_SLOT
        elif name == "UNSUB":
            yield _UNSUBSCRIBE_SLOT
        else:
            yield _Tag(int(name))
        position = match.end()
    if position < len(text):
        yield text[position:]


def _link(raw_url: str) -> _Piece:
    if raw_url == _UNSUBSCRIBE:
        return _UNSUBSCRIBE_SLOT
    return _Link(tuple(p for p in _split_tokens(raw_url) if isinstance(p, str | _Tag)))


# --- MJML ---------------------------------------------------------------------


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _markdown_html(text: str) -> str:
    rendered = str(_MARKDOWN.render(text)).strip()
    rendered = rendered.replace("<p>", '<p style="margin:0 0 12px 0;">')
    rendered = rendered.replace(
        "<a href=", f'<a style="color:{LINK_COLOR};text-decoration:underline;" href='
    )
    return rendered


def _block_mjml(block: dict[str, Any], tags: _Tags) -> str:
    kind = block.get("type")
    if kind == "heading":
        level = 2 if block.get("level") == 2 else 1
        size = "22px" if level == 2 else "28px"
        text = html.escape(tags.hide(str(block.get("text", ""))))
        return (
            f'<mj-text font-size="{size}" line-height="1.25" font-weight="700" '
            f'padding="12px 24px 8px 24px"><h{level} style="margin:0;font-size:{size};'
            f'font-weight:700;">{text}</h{level}></mj-text>'
        )
    if kind == "text":
        return (
            '<mj-text font-size="16px" line-height="1.6" padding="4px 24px 4px 24px">'
            f"{_markdown_html(tags.hide(str(block.get('text', ''))))}</mj-text>"
        )
    if kind == "button":
        color = str(block.get("color") or BUTTON_COLOR)
        return (
            f'<mj-button href="{_attr(tags.hide(str(block.get("url", ""))))}" '
            f'background-color="{_attr(color)}" color="#ffffff" font-size="16px" '
            'font-weight="700" border-radius="6px" inner-padding="12px 24px" '
            f'padding="12px 24px">{html.escape(tags.hide(str(block.get("label", ""))))}</mj-button>'
        )
    if kind == "image":
        attributes = [
            f'src="{_attr(tags.hide(str(block.get("src", ""))))}"',
            f'alt="{_attr(tags.hide(str(block.get("alt", ""))))}"',
            'padding="8px 24px"',
        ]
        if block.get("link"):
            attributes.append(f'href="{_attr(tags.hide(str(block["link"])))}"')
        if isinstance(block.get("width"), int):
            attributes.append(f'width="{int(block["width"])}px"')
        return f"<mj-image {' '.join(attributes)} />"
    if kind == "divider":
        return '<mj-divider border-color="#e5e7eb" border-width="1px" padding="16px 24px" />'
    if kind == "spacer":
        height = block.get("height", 24)
        return f'<mj-spacer height="{int(height) if isinstance(height, int) else 24}px" />'
    return ""


def _section(inner: str) -> str:
    return f'<mj-section background-color="#ffffff" padding="0">{inner}</mj-section>'


def _body_mjml(blocks: list[Any], tags: _Tags) -> str:
    sections: list[str] = []
    run: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "columns":
            if run:
                sections.append(_section(f"<mj-column>{''.join(run)}</mj-column>"))
                run = []
            columns = "".join(
                "<mj-column>"
                + "".join(
                    _block_mjml(inner, tags)
                    for inner in (block.get(side) or [])
                    if isinstance(inner, dict) and inner.get("type") != "columns"
                )
                + "</mj-column>"
                for side in ("left", "right")
            )
            sections.append(_section(columns))
        else:
            run.append(_block_mjml(block, tags))
    if run:
        sections.append(_section(f"<mj-column>{''.join(run)}</mj-column>"))
    return "".join(sections)


def _footer_mjml() -> str:
    return (
        '<mj-section padding="16px 0 24px 0"><mj-column>'
        f'<mj-text align="center" font-size="12px" line-height="1.5" color="{MUTED_COLOR}">'
        f'<p style="margin:0 0 8px 0;">{_ADDRESS}</p>'
        f'<p style="margin:0;">{html.escape(_("You receive this email because you subscribed."))} '
        f'<a href="{_UNSUBSCRIBE}" style="color:{MUTED_COLOR};text-decoration:underline;">'
        f"{html.escape(_('Unsubscribe'))}</a></p>"
        "</mj-text></mj-column></mj-section>"
    )


def _mjml(template: EmailTemplate, tags: _Tags, *, footer: bool) -> str:
    preheader = html.escape(tags.hide(template.preheader))
    return (
        "<mjml><mj-head>"
        f"<mj-title>{html.escape(tags.hide(template.subject))}</mj-title>"
        f"<mj-preview>{preheader}</mj-preview>"
        "<mj-attributes>"
        f'<mj-all font-family="{FONT}" />'
        f'<mj-text color="{TEXT_COLOR}" />'
        "</mj-attributes>"
        "</mj-head>"
        '<mj-body background-color="#f3f4f6" width="600px">'
        '<mj-section padding="12px 0 0 0"><mj-column><mj-spacer height="12px" /></mj-column>'
        "</mj-section>"
        f"{_body_mjml(template.blocks or [], tags)}"
        '<mj-section background-color="#ffffff" padding="0 0 16px 0"><mj-column>'
        '<mj-spacer height="8px" /></mj-column></mj-section>'
        f"{_footer_mjml() if footer else ''}"
        "</mj-body></mjml>"
    )


def _html_pieces(document: str) -> list[_Piece]:
    pieces: list[_Piece] = []

    def literal(text: str) -> None:
        pieces.extend(_split_tokens(text))

    position = 0
    for match in _ANCHOR_HREF.finditer(document):
        literal(document[position : match.end(1)])
        pieces.append(_link(html.unescape(match.group(2))))
        position = match.start(3)
    rest = document[position:]
    end = rest.rfind("</body>")
    if end == -1:
        literal(rest)
    else:
        literal(rest[:end])
        pieces.append(_PIXEL_SLOT)
        literal(rest[end:])
    return pieces


# A start tag's name and its first attribute may be parted by a line break
# without changing anything; MJML writes the body as one line of ~25,000
# characters. Lines under the mail limit (998) let the HTML part go as 8bit
# instead of quoted-printable, which took 4 ms of MIME encoding per email of a
# 20-block template.
_FOLD_AT = re.compile(r"<(?!a\b)([a-zA-Z][a-zA-Z0-9]*) ")
_FOLD_AFTER = 400
# What a filled slot (a tracked link, a lead's value, the pixel) is counted as.
_SLOT_WIDTH = 200


def _fold_long_lines(pieces: list[_Piece]) -> list[_Piece]:
    """The HTML's literal pieces with a line break after a start tag's name
    wherever the line has grown past ``_FOLD_AFTER`` characters, each slot counted
    as ``_SLOT_WIDTH`` (a longer value only costs the part its 8bit)."""
    folded: list[_Piece] = []
    column = 0
    for piece in pieces:
        if not isinstance(piece, str):
            folded.append(piece)
            column += _SLOT_WIDTH
            continue
        out: list[str] = []
        position = 0
        for match in _FOLD_AT.finditer(piece):
            line_break = piece.rfind("\n", position, match.start())
            if line_break != -1:
                column = match.start() - line_break - 1
            else:
                column += match.start() - position
            out.append(piece[position : match.end() - 1])
            position = match.end()
            if column >= _FOLD_AFTER:
                out.append("\n")
                column = 0
            else:
                out.append(" ")
                column += match.end() - match.start()
        rest = piece[position:]
        line_break = rest.rfind("\n")
        column = len(rest) - line_break - 1 if line_break != -1 else column + len(rest)
        out.append(rest)
        folded.append("".join(out))
    return folded


# --- plain text ---------------------------------------------------------------


def _text_lines(block: dict[str, Any], tags: _Tags) -> list[_Piece]:
    kind = block.get("type")
    if kind == "heading":
        heading = tags.hide(str(block.get("text", "")))
        return [*_split_tokens(heading), "\n\n"]
    if kind == "text":
        return [*_markdown_text(tags.hide(str(block.get("text", "")))), "\n\n"]
    if kind == "button":
        label = tags.hide(str(block.get("label", "")))
        return [*_split_tokens(label), ": ", _link(tags.hide(str(block.get("url", "")))), "\n\n"]
    if kind == "image":
        if not block.get("link"):
            return []
        alt = tags.hide(str(block.get("alt", ""))) or _("Image")
        return [*_split_tokens(alt), ": ", _link(tags.hide(str(block["link"]))), "\n\n"]
    if kind == "divider":
        return ["----------\n\n"]
    return []


def _markdown_text(text: str) -> Iterator[_Piece]:
    """Markdown reads well as text; its links become "label (url)" with the URL a slot."""
    position = 0
    matches = sorted(
        [*_MARKDOWN_LINK.finditer(text), *_MARKDOWN_AUTOLINK.finditer(text)],
        key=lambda match: match.start(),
    )
    for match in matches:
        if match.start() < position:
            continue
        yield from _split_tokens(text[position : match.start()])
        if match.re is _MARKDOWN_LINK:
            yield from _split_tokens(match.group(1))
            yield " ("
            yield _link(match.group(2))
            yield ")"
        else:
            yield _link(match.group(1))
        position = match.end()
    yield from _split_tokens(text[position:].rstrip())


def _text_pieces(blocks: list[Any], tags: _Tags, *, footer: bool) -> list[_Piece]:
    pieces: list[_Piece] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "columns":
            for side in ("left", "right"):
                for inner in block.get(side) or []:
                    if isinstance(inner, dict) and inner.get("type") != "columns":
                        pieces.extend(_text_lines(inner, tags))
        else:
            pieces.extend(_text_lines(block, tags))
    if footer:
        pieces.extend(
            [
                "-- \n",
                _ADDRESS_SLOT,
                "\n",
                _("Unsubscribe: "),
                _UNSUBSCRIBE_SLOT,
                "\n",
            ]
        )
    return pieces


# --- compile once per revision --------------------------------------------------

_CACHE: OrderedDict[tuple[Any, ...], CompiledEmail] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def template_compile(*, template: EmailTemplate, footer: bool, language: str = "") -> CompiledEmail:
    """The template's MJML compiled to HTML, with slots for what each lead fills in.

    Kept per (template, revision, footer, language); an unsaved template is compiled
    every time. ``updated_at`` is part of the key so two rows that shared an id (a
    test database rolled back) never share an entry."""
    try:
        language = translation.get_supported_language_variant(language or settings.LANGUAGE_CODE)
    except LookupError:
        language = settings.LANGUAGE_CODE
    key = (template.pk, template.revision, template.updated_at, footer, language)
    if template.pk is not None:
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is not None:
                _CACHE.move_to_end(key)
                return cached
    with translation.override(language):
        tags = _Tags()
        document = mjml2html(_mjml(template, tags, footer=footer))
        text = _text_pieces(template.blocks or [], tags, footer=footer)
    expressions = tuple(tags.expressions)
    compiled = CompiledEmail(
        expressions=expressions,
        html=tuple(_fold_long_lines(_html_pieces(document))),
        text=tuple(text),
        uses_owner=any("owner" in expression for expression in expressions),
    )
    if template.pk is not None:
        with _CACHE_LOCK:
            _CACHE[key] = compiled
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return compiled


# --- fill per lead ----------------------------------------------------------------


def _url(link: _Link, values: list[str]) -> str:
    return "".join(
        piece if isinstance(piece, str) else values[piece.index]
        for piece in link.pieces
        if isinstance(piece, str | _Tag)
    )


def _fill(
    pieces: tuple[_Piece, ...],
    values: list[str],
    *,
    escape: bool,
    address: str,
    unsubscribe_url: str,
    link_wrap: Callable[[str], str] | None,
    pixel: str,
) -> str:
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif isinstance(piece, _Tag):
            value = values[piece.index]
            out.append(html.escape(value, quote=True) if escape else value)
        elif isinstance(piece, _Link):
            url = _url(piece, values).strip()
            if link_wrap is not None and url.lower().startswith(("http://", "https://")):
                url = link_wrap(url)
            out.append(html.escape(url, quote=True) if escape else url)
        elif piece is _ADDRESS_SLOT:
            if escape:
                out.append("<br>".join(html.escape(line) for line in address.splitlines()))
            else:
                out.append(address)
        elif piece is _UNSUBSCRIBE_SLOT:
            out.append(html.escape(unsubscribe_url, quote=True) if escape else unsubscribe_url)
        elif piece is _PIXEL_SLOT:
            out.append(pixel)
    return "".join(out)


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
    """The template for this lead: merge tags filled (escaped in the HTML), links
    wrapped by ``link_wrap`` (not the unsubscribe link), a 1x1 open pixel at the end
    when ``open_pixel_url`` is given, and, for a marketing template given an
    ``unsubscribe_url``, the footer with the postal address (``postal_address``, or
    the email settings' when None) and the unsubscribe link."""
    footer = template.kind == EmailKind.MARKETING and unsubscribe_url is not None
    # An unsaved lead's language is still the database's default, not a string.
    language = lead.language if isinstance(lead.language, str) else ""
    compiled = template_compile(template=template, footer=footer, language=language)
    context = lead_merge_context(lead, with_owner=compiled.uses_owner)
    values = [merge_tag_fill(expression, context) for expression in compiled.expressions]
    if footer and postal_address is None:
        email_settings = EmailSettings.objects.first()
        postal_address = email_settings.postal_address if email_settings else ""
    address = (postal_address or "").strip()
    pixel = ""
    if open_pixel_url:
        pixel = (
            f'<img src="{html.escape(open_pixel_url, quote=True)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px;overflow:hidden;" />'
        )
    subject_context = context if "{{" in (subject_override or template.subject) else {}
    return RenderedEmail(
        subject=" ".join(
            merge_text_fill(subject_override or template.subject, subject_context).split()
        ),
        preheader=merge_text_fill(template.preheader, context),
        html=_fill(
            compiled.html,
            values,
            escape=True,
            address=address,
            unsubscribe_url=unsubscribe_url or "",
            link_wrap=link_wrap,
            pixel=pixel,
        ),
        text=_fill(
            compiled.text,
            values,
            escape=False,
            address=address,
            unsubscribe_url=unsubscribe_url or "",
            link_wrap=link_wrap,
            pixel="",
        ).strip()
        + "\n",
    )

"""The body of a template: a list of blocks, its shape and the checks run on save.

A block is a small JSON object with a ``type``:

- ``heading``: ``text``, ``level`` (1 or 2);
- ``text``: ``text`` in Markdown (no raw HTML);
- ``button``: ``label``, ``url``, optional ``color`` (``#rrggbb``);
- ``image``: ``src`` (an http(s) URL), ``alt``, optional ``link`` and ``width`` (px);
- ``divider``; ``spacer``: ``height`` (px);
- ``columns``: ``left`` and ``right``, each a list of the blocks above (no columns
  inside columns).

Merge tags (``{{ first_name | default: "there" }}``) may appear in every text,
label and URL; they are checked by ``emails.merge_tags``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext as _

BLOCK_TYPES = ("heading", "text", "button", "image", "divider", "spacer", "columns")
SIMPLE_BLOCK_TYPES = BLOCK_TYPES[:-1]
MAX_BLOCKS = 200
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_URL_SCHEMES = ("http://", "https://", "mailto:")


def block_type_labels() -> dict[str, str]:
    return {
        "heading": _("Heading"),
        "text": _("Text"),
        "button": _("Button"),
        "image": _("Image"),
        "divider": _("Divider"),
        "spacer": _("Spacer"),
        "columns": _("Two columns"),
    }


def _text(block: dict[str, Any], key: str) -> str:
    value = block.get(key, "")
    return value if isinstance(value, str) else ""


def block_texts(blocks: list[Any]) -> Iterator[str]:
    """Every piece of text a marketer wrote in the blocks (where merge tags may be)."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "columns":
            for side in ("left", "right"):
                side_blocks = block.get(side)
                if isinstance(side_blocks, list):
                    yield from block_texts(side_blocks)
            continue
        for key in ("text", "label", "url", "src", "alt", "link"):
            value = block.get(key)
            if isinstance(value, str) and value:
                yield value


def _url_problem(value: str, what: str, position: str) -> str | None:
    if not value.strip().lower().startswith(_URL_SCHEMES):
        return _("%(position)s: the %(what)s must start with https://, http:// or mailto:.") % {
            "position": position,
            "what": what,
        }
    return None


def _simple_block_problems(block: dict[str, Any], position: str) -> list[str]:  # noqa: C901
    kind = block.get("type")
    problems: list[str] = []
    if kind == "heading":
        if not _text(block, "text").strip():
            problems.append(_("%(position)s: the heading is empty.") % {"position": position})
        if block.get("level", 1) not in (1, 2):
            problems.append(
                _("%(position)s: a heading is of level 1 or 2.") % {"position": position}
            )
    elif kind == "text":
        if not _text(block, "text").strip():
            problems.append(_("%(position)s: the text is empty.") % {"position": position})
    elif kind == "button":
        if not _text(block, "label").strip():
            problems.append(_("%(position)s: the button has no label.") % {"position": position})
        problem = _url_problem(_text(block, "url"), _("button's link"), position)
        if problem:
            problems.append(problem)
        color = block.get("color") or ""
        if color and not (isinstance(color, str) and _COLOR.match(color)):
            problems.append(
                _("%(position)s: the button colour must look like #2563eb.")
                % {"position": position}
            )
    elif kind == "image":
        src = _text(block, "src")
        if not src.strip().lower().startswith(("http://", "https://")):
            problems.append(
                _("%(position)s: the image address must start with https:// or http://.")
                % {"position": position}
            )
        link = _text(block, "link")
        if link:
            problem = _url_problem(link, _("image's link"), position)
            if problem:
                problems.append(problem)
        width = block.get("width")
        if width not in (None, "") and not (isinstance(width, int) and 16 <= width <= 600):
            problems.append(
                _("%(position)s: the image width is a number of pixels from 16 to 600.")
                % {"position": position}
            )
    elif kind == "spacer":
        height = block.get("height", 24)
        if not (isinstance(height, int) and 4 <= height <= 200):
            problems.append(
                _("%(position)s: the spacer's height is a number of pixels from 4 to 200.")
                % {"position": position}
            )
    elif kind != "divider":
        problems.append(
            _("%(position)s: “%(type)s” is not a kind of block.")
            % {"position": position, "type": kind}
        )
    return problems


def blocks_problems(blocks: Any) -> list[str]:
    """What is wrong with a body of blocks, in plain sentences (empty: nothing)."""
    if not isinstance(blocks, list):
        return [_("The body must be a list of blocks.")]
    if len(blocks) > MAX_BLOCKS:
        return [_("A template has at most %(count)d blocks.") % {"count": MAX_BLOCKS}]
    problems: list[str] = []
    for index, block in enumerate(blocks, start=1):
        position = _("Block %(number)d") % {"number": index}
        if not isinstance(block, dict):
            problems.append(_("%(position)s is not a block.") % {"position": position})
            continue
        if block.get("type") != "columns":
            problems.extend(_simple_block_problems(block, position))
            continue
        for side, side_name in (("left", _("left column")), ("right", _("right column"))):
            side_blocks = block.get(side, [])
            if not isinstance(side_blocks, list):
                problems.append(
                    _("%(position)s: the %(side)s must be a list of blocks.")
                    % {"position": position, "side": side_name}
                )
                continue
            for inner_index, inner in enumerate(side_blocks, start=1):
                inner_position = _("Block %(number)d, %(side)s, block %(inner)d") % {
                    "number": index,
                    "side": side_name,
                    "inner": inner_index,
                }
                if not isinstance(inner, dict) or inner.get("type") == "columns":
                    problems.append(
                        _(
                            "%(position)s: columns hold headings, text, buttons, images, "
                            "dividers and spacers."
                        )
                        % {"position": inner_position}
                    )
                    continue
                problems.extend(_simple_block_problems(inner, inner_position))
    return problems

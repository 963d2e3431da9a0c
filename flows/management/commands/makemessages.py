"""``makemessages`` that also reads the canvas's JSX.

xgettext parses JavaScript but not JSX: past the first closing tag it loses
track and misses the strings after it. So, for the ``djangojs`` domain, a
``.jsx`` file is handed to xgettext as just the translation calls it contains,
each on the line it is on, which keeps the ``#:`` references right. The calls
must have literal strings as their message arguments (no concatenation, no
template literals); ``tests/flows/test_builder_i18n.py`` checks that they do.
"""

from __future__ import annotations

import re
from functools import cached_property

from django.core.management.commands import makemessages

_STRING = r"""(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
# gettext("…"), ngettext("…", "…", n), pgettext("context", "…"), npgettext(…):
# the name and the literal arguments up to the first one that is not a string.
TRANSLATION_CALL = re.compile(
    rf"\b(?:gettext|ngettext|pgettext|npgettext|gettext_noop)\(\s*{_STRING}(?:\s*,\s*{_STRING})*"
)
# Any call of those names, to find the ones without a literal string.
ANY_TRANSLATION_CALL = re.compile(r"\b(?:gettext|ngettext|pgettext|npgettext|gettext_noop)\(")


def jsx_messages(source: str) -> str:
    """The translation calls of a JSX source as plain JavaScript, each on its
    original line."""
    lines = [""] * (source.count("\n") + 1)
    for match in TRANSLATION_CALL.finditer(source):
        line = source.count("\n", 0, match.start())
        call = re.sub(r"\s*\n\s*", " ", match.group(0))
        lines[line] += f"{call});"
    return "\n".join(lines)


class JsxBuildFile(makemessages.BuildFile):
    @cached_property
    def is_templatized(self) -> bool:
        if self.domain == "djangojs":
            return str(self.path).endswith(".jsx")
        return super().is_templatized

    def preprocess(self) -> None:
        if self.domain != "djangojs":
            super().preprocess()
            return
        if not self.is_templatized:
            return
        with open(self.path, encoding="utf-8") as source:
            content = jsx_messages(source.read())
        with open(self.work_path, "w", encoding="utf-8") as work:
            work.write(content)


class Command(makemessages.Command):
    build_file_class = JsxBuildFile

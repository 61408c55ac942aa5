"""Where in a YAML file a character of a filter is: problems point at the user's line, not the key's."""

from __future__ import annotations

import re

from phase3ops.spec.documents import SpecDocument

_BLOCK_SCALAR_KEY = re.compile(r":\s*[|>][+-]?[0-9]?\s*(#.*)?$")


def block_scalar_line(document: SpecDocument, parts: list[str | int], text: str, offset: int) -> int | None:
    """The line of the document holding character `offset` of a block-scalar filter (`filter: >-`) at `parts`.

    A folded or literal block turns each line break into one character, so
    counting the lines' stripped lengths finds the line. The count is checked
    against the text itself, and anything it cannot vouch for (blank lines in
    the block, a filter set by a stack's overrides) keeps the key's line.
    """
    lines = document.text.splitlines()
    key_line = document.line_of(parts)
    if not key_line or key_line > len(lines) or not _BLOCK_SCALAR_KEY.search(lines[key_line - 1]):
        return None
    key_indent = len(lines[key_line - 1]) - len(lines[key_line - 1].lstrip())
    start = 0
    for number in range(key_line, len(lines)):
        line = lines[number]
        if line.strip() and len(line) - len(line.lstrip()) <= key_indent:
            return None
        content = line.strip()
        if offset <= start + len(content):
            column = offset - start
            written = content[column : column + 12]
            return number + 1 if written and text[offset : offset + len(written)] == written else None
        start += len(content) + 1
    return None

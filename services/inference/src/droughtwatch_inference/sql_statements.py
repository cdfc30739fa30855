"""Split a SQL script (a migration file) into its statements, as PostgreSQL's own lexer would:
a ``;`` ends a statement only outside string literals (``'...'`` with ``''``, ``E'...'`` with
backslash escapes), quoted identifiers (``"..."``), dollar-quoted bodies (``$$ ... $$``,
``$tag$ ... $tag$``) and comments (``-- ...`` to the end of the line, ``/* ... */``, which
nest).

The RDS Data API runs one statement per call, so the migrate function runs each migration
statement by statement, in one transaction; locally the same statements go through psycopg.
"""

from __future__ import annotations

import re

# A dollar quote's tag: empty, or an identifier without '$' (a digit after '$' is a parameter).
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\uffff]")


class UnterminatedSql(ValueError):
    """The script ends inside a literal, a quoted identifier, a dollar quote or a comment."""


def split_statements(script: str) -> list[str]:
    """The statements of ``script`` in order, each from its first token to its ``;``
    (excluded); comments before a statement are left out, those inside it stay, and a piece
    holding only comments is dropped."""
    statements: list[str] = []
    start = 0
    i = 0
    meaningful = False  # the current piece holds more than comments and blank space
    n = len(script)
    while i < n:
        char = script[i]
        if char == "-" and script.startswith("--", i):
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if char == "/" and script.startswith("/*", i):
            i = _block_comment_end(script, i)
            continue
        if char.isspace():
            i += 1
            continue
        if char == ";":
            if meaningful:
                statements.append(script[start:i].strip())
            start, i, meaningful = i + 1, i + 1, False
            continue
        if not meaningful:
            start, meaningful = i, True  # a statement starts at its first token
        if char == "'":
            escapes = i > 0 and script[i - 1] in "eE" and not _continues_word(script, i - 1)
            i = _quoted_end(script, i, "'", backslash=escapes)
        elif char == '"':
            i = _quoted_end(script, i, '"', backslash=False)
        elif char == "$" and not (i > 0 and _IDENTIFIER_CHAR.match(script[i - 1])):
            tag = _DOLLAR_TAG.match(script, i)
            if tag:
                close = script.find(tag.group(0), tag.end())
                if close < 0:
                    raise UnterminatedSql(f"unterminated dollar quote {tag.group(0)} at {i}")
                i = close + len(tag.group(0))
            else:
                i += 1
        else:
            i += 1
    if meaningful:
        statements.append(script[start:].strip())
    return statements


def _continues_word(script: str, position: int) -> bool:
    """Whether the character at ``position`` is part of a longer word (``some'`` is not an
    escape string prefix, ``E'`` is)."""
    return position > 0 and bool(_IDENTIFIER_CHAR.match(script[position - 1]))


def _quoted_end(script: str, i: int, quote: str, *, backslash: bool) -> int:
    """The index after the literal or identifier opening at ``i`` (a doubled quote is one
    quote character; with ``backslash``, so is a backslash before it)."""
    j = i + 1
    n = len(script)
    while j < n:
        char = script[j]
        if backslash and char == "\\":
            j += 2
            continue
        if char == quote:
            if j + 1 < n and script[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise UnterminatedSql(f"unterminated {quote} quote at {i}")


def _block_comment_end(script: str, i: int) -> int:
    """The index after the block comment opening at ``i``; PostgreSQL's block comments nest."""
    depth = 0
    j = i
    n = len(script)
    while j < n:
        if script.startswith("/*", j):
            depth += 1
            j += 2
        elif script.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise UnterminatedSql(f"unterminated block comment at {i}")

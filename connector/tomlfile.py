"""Why a TOML file the connector reads (its config, a mapping) does not parse: the parser's message, the line it
stopped at, and the fix for the two likeliest mistakes (a double quote inside "...", a number with leading zeros)."""

from __future__ import annotations

import re
import tomllib

TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)$")  # where tomllib's message says it stopped
QUOTES = 'a double quote inside a "..." value ends it; write the whole value in single quotes'
EXAMPLE = "from = 'phoneNumbers[type eq \"work\"].value'"


def not_toml(file: str, text: str, exc: tomllib.TOMLDecodeError, *, quotes_where: str = "") -> str:
    """The message for `text` (the file `file`) that tomllib refused with `exc`: "{file}: not valid TOML: {exc};
    {fix}" and, when the parser stopped on a line, "\\n{file}: line N: {the line}". `quotes_where` follows the
    advice on quotes (", as ... says")."""
    at = TOML_AT.search(str(exc))
    lines = text.split("\n")  # as tomllib counts them
    if at is None or int(at[1]) > len(lines):  # at the end of the document
        return f"{file}: not valid TOML: {exc}; fix the syntax there"
    number, column = int(at[1]), int(at[2])
    line = lines[number - 1].rstrip("\r")
    fix = _toml_fix(line[:column - 1], line[column - 1:], QUOTES + quotes_where) or "fix the syntax there"
    return f"{file}: not valid TOML: {exc}; {fix}\n{file}: line {number}: {line.strip()}"


def _toml_fix(before: str, after: str, quotes: str) -> str | None:
    """The fix when the parser stopped (between `before` and `after` on its line) right after a "..." string that
    a double quote inside it ended, or in a number written with leading zeros; None for any other mistake."""
    if before.endswith('"') and after[:1] not in ("", " ", "\t", ",", "]", "}", "#") and '"' in after:
        whole = re.fullmatch(r'\s*([A-Za-z0-9_.-]+)\s*=\s*"(.*)"\s*', before + after)
        single = whole is not None and "'" not in whole[2]
        return f"{quotes}: {whole[1]} = '{whole[2]}'" if whole and single else f"{quotes}: {EXAMPLE}"
    zero, rest = re.search(r"(?:^|[\s=\[,{])([+-]?0)$", before), re.match(r"[0-9][0-9_]*", after)
    if zero and rest:
        number = zero[1] + rest[0]
        key = re.search(r"([A-Za-z0-9_-]+)\s*=\s*[+-]?0$", before)
        quoted = f'{key[1]} = "{number}"' if key else f'"{number}"'
        return f"{number} is a number with a leading zero, which TOML refuses; quote it: {quoted}"
    return None

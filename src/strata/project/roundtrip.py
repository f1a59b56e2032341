r"""Writing an edit back so that only the lines it needs change.

ruamel.yaml keeps comments, key order, quotes and block strings, but it renders the whole file
in one style of its own: one indentation, ``\n`` line ends, ``key: value`` with one space, no
``---`` marker and ``~`` as nothing. Two things close the gap:

- ``style_of`` reads the file's indentation (mapping indent, and where a sequence's dash and
  content sit under their key), so the rendering matches the file and new lines fit in;
- ``patch`` applies the edit as a three-way merge: ``before`` and ``after`` are the renderings
  of the tree before and after the edit, and only the lines that differ between those two are
  changed in the file's own text. Every other line stays byte for byte, its line end included;
  new lines get the file's usual line end.

Where the file's own spelling of a line and the edit touch the same lines, the edit wins for
those lines only.
"""

from __future__ import annotations

import itertools
import re
from difflib import SequenceMatcher
from typing import Any, NamedTuple

from strata.project.yamlstyle import Style

_OPENER = re.compile(r"^(?P<lead> *(?:- +)*)(?P<key>[^\s#-][^#]*?|-[^\s#][^#]*?):\s*(?:#.*)?$")
"""A line that opens a block: ``key:`` with nothing after it but a comment."""
_ITEM = re.compile(r"^(?P<indent> *)-(?P<gap> +)\S")
_BLOCK_SCALAR = re.compile(r":\s*[|>][-+0-9]*\s*(?:#.*)?$")


def style_of(text: str) -> Style:
    """The indentation ``text`` uses: the first nested mapping and the first sequence under a key tell."""
    mapping = sequence = offset = None
    lines = _significant(text.replace("\r\n", "\n").split("\n"))
    for (line, _), (nxt, nxt_indent) in itertools.pairwise(lines):
        opener = _OPENER.match(line)
        if opener is None:
            continue
        column = len(opener.group("lead"))
        item = _ITEM.match(nxt)
        if item is not None and sequence is None and nxt_indent >= column:
            offset = nxt_indent - column
            sequence = offset + 1 + len(item.group("gap"))
        elif item is None and mapping is None and nxt_indent > column:
            mapping = nxt_indent - column
        if mapping is not None and sequence is not None:
            break
    default = Style()
    mapping = mapping or default.mapping
    if sequence is None or offset is None:
        return Style(mapping, default.sequence, default.offset)
    return Style(mapping, max(sequence, offset + 2), offset)


def _significant(lines: list[str]) -> list[tuple[str, int]]:
    """Lines that carry structure, with their indentation: no blanks, comments or block-string bodies."""
    kept: list[tuple[str, int]] = []
    inside: int | None = None
    for line in lines:
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if inside is not None and indent > inside:
            continue
        inside = indent if _BLOCK_SCALAR.search(line) else None
        kept.append((line, indent))
    return kept


class _Hunk(NamedTuple):
    start: int
    end: int
    theirs: bool
    lines: list[str]


def rewrite(text: str, before: str, after: str, expected: Any) -> str:
    """``patch``, checked: when the patched text would not read back as ``expected``, ``after`` itself.

    ``expected`` is the edited tree as plain data (``yamlfile.plain``). The fallback keeps the
    edit right at the cost of the file's spelling (it is still in the file's indentation and
    line ends); no case is known where it is taken.
    """
    from strata.project.yamlfile import load_text, plain

    patched = patch(text, before, after)
    if plain(load_text(patched, "patched", typ="safe")) == expected:
        return patched
    newline = "\r\n" if _crlf(text.splitlines(keepends=True)) else "\n"
    return after.replace("\n", newline)


def _crlf(lines: list[str]) -> bool:
    """Whether most lines end in CR LF."""
    return sum(line.endswith("\r\n") for line in lines) * 2 > len(lines)


def patch(text: str, before: str, after: str) -> str:
    r"""``text`` with the change from ``before`` to ``after`` applied, every other line left as it is.

    ``before`` is a rendering of ``text`` (it may spell some lines differently); ``after`` is
    the same rendering after the edit. Both use ``\n`` line ends.
    """
    own = text.splitlines(keepends=True)
    newline = "\r\n" if _crlf(own) else "\n"
    bare = [line.rstrip("\r\n") for line in own]
    base, edited = before.splitlines(), after.splitlines()
    same: dict[int, int] = {}
    hunks: list[_Hunk] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, base, bare, autojunk=False).get_opcodes():
        if tag == "equal":
            same.update((i1 + k, j1 + k) for k in range(i2 - i1))
        elif i2 - i1 == j2 - j1:  # lines spelled differently, one for one: each its own hunk
            hunks += [_Hunk(i1 + k, i1 + k + 1, theirs=False, lines=[own[j1 + k]]) for k in range(i2 - i1)]
        else:
            hunks.append(_Hunk(i1, i2, theirs=False, lines=own[j1:j2]))
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, base, edited, autojunk=False).get_opcodes():
        if tag != "equal":
            hunks.append(_Hunk(i1, i2, theirs=True, lines=[line + newline for line in edited[j1:j2]]))
    out: list[str] = []
    position = 0
    for group in _groups(sorted(hunks, key=lambda h: (h.start, h.end, h.theirs))):
        out.extend(own[same[i]] for i in range(position, group[0].start))
        out.extend(_resolve(group, base, newline))
        position = max(h.end for h in group)
    out.extend(own[same[i]] for i in range(position, len(base)))
    return "".join(_ended(out, newline))


def _groups(hunks: list[_Hunk]) -> list[list[_Hunk]]:
    """Hunks in order, those that touch the same base lines (or insert at the same point) together."""
    groups: list[list[_Hunk]] = []
    for hunk in hunks:
        if groups:
            group = groups[-1]
            start, end = group[0].start, max(h.end for h in group)
            if hunk.start < end or hunk.start == hunk.end == start == end:
                group.append(hunk)
                continue
        groups.append([hunk])
    return groups


def _resolve(group: list[_Hunk], base: list[str], newline: str) -> list[str]:
    """The lines for one group: a lone hunk as it is; two insertions both (the file's first); else the edit's."""
    if len(group) == 1:
        return group[0].lines
    if all(h.start == h.end for h in group):
        return [line for h in group for line in h.lines]
    start, end = group[0].start, max(h.end for h in group)
    edits = [h for h in group if h.theirs]
    lines: list[str] = []
    position = start
    for hunk in edits:
        lines.extend(line + newline for line in base[position : hunk.start])
        lines.extend(hunk.lines)
        position = hunk.end
    lines.extend(line + newline for line in base[position:end])
    return lines


def _ended(lines: list[str], newline: str) -> list[str]:
    """``lines`` with a line end on every line that another line follows (the file's last may have none)."""
    return [
        line if line.endswith("\n") or index == len(lines) - 1 else line + newline for index, line in enumerate(lines)
    ]

"""Reading and writing the project file with its line numbers and comments kept.

The file is parsed once with ruamel.yaml's round-trip loader: the tree it returns remembers
the line of every key, so a schema error can name ``file:line`` and the dotted key, and
edits (``strata add``, ``config set``) write the file back with its comments and order
(``roundtrip`` then keeps every line the edit does not touch as it was).
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import re
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from strata.errors import ProjectFileError
from strata.project.keypath import dotted, path_key

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from strata.project.yamlstyle import Style

T = TypeVar("T")


ALIAS_LIMIT = 10_000
"""Nodes a document may expand to through aliases, plus ``ALIAS_LIMIT_PER_CHAR`` per character of text."""
ALIAS_LIMIT_PER_CHAR = 10
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)
"""Tags of plain data (and ``<<`` merge keys); any other tag would build an object, or a value strata cannot read."""


class _Refused(Exception):
    """A document composed fine but holds what a project file must not; ``message`` says what."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


class _Checked:
    """Constructor mixin: check the composed node graph before anything is built from it.

    Aliases are references, so composing an alias bomb is cheap; it is every walk over the
    built data (``plain``, ``line_map``, validation) that would expand it without end.
    """

    def construct_document(self, node: Any) -> Any:
        _check_nodes(node, self.node_limit)  # type: ignore[attr-defined]
        return super().construct_document(node)  # type: ignore[misc]


def _check_nodes(root: Any, limit: int) -> None:
    """Raise ``_Refused`` for a tag that is not plain data, or when aliases expand past ``limit`` nodes."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = limit + 1  # met again before it is counted: a cycle
        tag = str(node.tag)
        if tag not in _PLAIN_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise _Refused(f"the YAML tag `{shown}` is not allowed in a project file", node.start_mark)
        total = 1
        children = node.value if isinstance(node, (MappingNode, SequenceNode)) else ()
        for child in children:
            for part in child if isinstance(child, tuple) else (child,):
                total += size(part)
            if total > limit:
                raise _Refused(f"YAML aliases expand too far (more than {limit:,} nodes)")
        sizes[id(node)] = total
        return total

    size(root)


def _yaml(typ: str = "rt", text: str = "") -> YAML:
    yaml = YAML(typ=typ, pure=True)
    base = yaml.Constructor
    limit = ALIAS_LIMIT + ALIAS_LIMIT_PER_CHAR * len(text)
    yaml.Constructor = type("CheckedConstructor", (_Checked, base), {"node_limit": limit})
    if typ == "rt":
        yaml.preserve_quotes = True
        yaml.indent(mapping=2, sequence=4, offset=2)
        yaml.width = 4096
    return yaml


def load_text(text: str, name: str, typ: str = "rt") -> Any:
    """Parse ``text`` (named ``name`` in errors) as plain YAML data; raise ``ProjectFileError`` otherwise.

    Only plain tags are read, aliases may not expand past a generous multiple of the text's size,
    and a document nested too deeply for the parser is refused in one line.
    """
    try:
        return _yaml(typ, text).load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ProjectFileError(f"{where}: malformed YAML: {exc.problem or exc.context}", "fix the YAML syntax") from exc
    except _Refused as exc:
        where = f"{name}:{exc.mark.line + 1}:{exc.mark.column + 1}" if exc.mark else name
        hint = "remove it: a project file holds plain values" if exc.mark else "remove the nested anchors"
        raise ProjectFileError(f"{where}: {exc.message}", hint) from None
    except RecursionError:
        raise ProjectFileError(f"{name}: YAML nested too deeply", "flatten the structure") from None


def shown(path: Path) -> str:
    """How errors name a project file: the main file by its name, an included one relative to the root."""
    return path.name if path.is_absolute() else path.as_posix()


def load_tree_from_text(text: str, path: Path) -> CommentedMap:
    """Parse project-file ``text`` (named ``path`` in errors, see ``shown``) into a round-trip tree."""
    name = shown(path)
    tree = load_text(text, name)
    if tree is None:
        raise ProjectFileError(f"{name} is empty", "write at least `version: 1`, or run `strata init`")
    if not isinstance(tree, CommentedMap):
        raise ProjectFileError(
            f"{name}:1: the project file must be a mapping of keys to values", "see `strata init` for an example"
        )
    return tree


def plain(node: Any) -> Any:
    """Turn a round-trip tree into plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.date):
        return node.isoformat()
    return str(node)


_PATH_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\.\.\.\]")
_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(path):
        if match.group(1) is not None:
            parts.append(match.group(1))
        elif match.group(2) is not None:
            parts.append(int(match.group(2)))
    return parts


def line_of(tree: Any, parts: list[str | int]) -> int | None:
    """1-based line of the key at ``parts`` in ``tree`` (the deepest one that exists)."""
    node, line = tree, None
    for part in parts:
        if isinstance(node, CommentedMap) and part in node:
            line = _key_line(node, part) or line
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def convert(tree: CommentedMap, model: type[T], path: Path, prepare: Callable[[Any], Any] | None = None) -> T:
    """Validate ``tree`` (its plain data through ``prepare``) against ``model``; errors name file, line and key."""
    data = plain(tree)
    try:
        return msgspec.convert(data if prepare is None else prepare(data), model)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_ERROR.match(str(exc))
        assert match is not None
        message, parts = match.group("msg"), _parse_path(match.group("path") or "")
        unknown = re.match(r"Object contains unknown field `(.+)`", message)
        if unknown:
            key = unknown.group(1)
            fields = _fields_at(model, parts)
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "remove it or check the spelling"
            where = _where(path, tree, [*parts, key])
            raise ProjectFileError(f"{where}: unknown key `{dotted([*parts, key])}`", hint) from None
        missing = re.match(r"Object missing required field `(.+)`", message)
        if missing:
            where = _where(path, tree, parts)
            raise ProjectFileError(f"{where}: `{dotted(parts)}` needs a `{missing.group(1)}` key", "add it") from None
        expected = message.replace("`", "").replace("Expected", "expected")
        where = _where(path, tree, parts)
        raise ProjectFileError(f"{where}: `{dotted(parts)}`: {expected}", "fix the value") from None


def _key_line(node: CommentedMap, key: Any) -> int | None:
    """1-based line of ``key`` in ``node``; None for a key merged in with ``<<`` (its line is the anchor's)."""
    position = node.lc.data.get(key)
    return position[0] + 1 if position else None


def _where(path: Path, tree: Any, parts: list[str | int]) -> str:
    line = line_of(tree, parts)
    return f"{shown(path)}:{line}" if line else shown(path)


def _fields_at(model: type[Any], parts: list[str | int]) -> list[str]:
    """Field names of the schema node that ``parts`` points into."""
    import typing

    current: Any = model
    for part in parts:
        if isinstance(part, int):
            continue
        hints = typing.get_type_hints(current)
        current = hints.get(part)
        for arg in (*typing.get_args(current), current):
            inner = typing.get_args(arg)
            candidate = inner[0] if inner else arg
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                current = candidate
                break
        else:
            return []
    return list(getattr(current, "__struct_fields__", ()))


def dump(tree: CommentedMap, style: Style | None = None) -> str:
    """Render ``tree`` back to YAML text, indented in ``style`` (see ``roundtrip.style_of``)."""
    yaml = _yaml()
    if style is not None:
        yaml.indent(mapping=style.mapping, sequence=style.sequence, offset=style.offset)
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return stream.getvalue()


def line_map(tree: CommentedMap, prefix: list[str | int] | None = None) -> dict[str, int]:
    """1-based line of every key and list item, keyed by ``path_key(path)``; paths start with ``prefix``."""
    lines: dict[str, int] = {}

    def walk(node: Any, path: list[str | int]) -> None:
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                line = _key_line(node, key)
                if line is not None:
                    lines[path_key([*path, key])] = line
                walk(value, [*path, key])
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                lines[path_key([*path, index])] = node.lc.item(index)[0] + 1
                walk(value, [*path, index])

    walk(tree, list(prefix or []))
    return lines


def delete(node: Any, key: Any) -> None:
    """Delete ``node[key]``; the blank lines and comments after a last item stay, on the item before it.

    ruamel.yaml keeps the lines that follow an item (up to the next key) as that item's comment,
    so deleting the last item of a section would also delete the blank line that ends the section.
    """
    keys = list(node) if isinstance(node, CommentedMap) else list(range(len(node)))
    position = keys.index(key)
    if position == len(keys) - 1 and position > 0:
        gone = _tail(node, key)
        following = str(gone.value).partition("\n")[2] if gone is not None else ""
        if following:
            _append_tail(node, keys[position - 1], following)
    del node[key]


def _tail(node: Any, key: Any) -> Any:
    """The comment token after the last line of ``node[key]`` (its end-of-line comment and the lines after), if any."""
    value = node[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
        last = list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1
        return _tail(value, last)
    slots = node.ca.items.get(key)
    return slots[2 if isinstance(node, CommentedMap) else 0] if slots else None


def _append_tail(node: Any, key: Any, lines: str) -> None:
    """Add ``lines`` (whole lines of blanks and comments) after the last line of ``node[key]``."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    value = node[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
        last = list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1
        _append_tail(value, last, lines)
        return
    slot = 2 if isinstance(node, CommentedMap) else 0
    slots = node.ca.items.setdefault(key, [None, None, None, None])
    current = slots[slot]
    if current is None:
        slots[slot] = CommentToken("\n" + lines, CommentMark(0), None)
    else:
        current.value += lines

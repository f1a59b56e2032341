"""A project over several files: Meltano's ``include_paths``.

``include_paths`` in the main file lists paths or glob patterns, relative to the project root.
Each file they match holds more ``plugins``, ``schedules``, ``environments`` and ``jobs``;
they are appended, file by file, after the main file's own, as Meltano's deep merge does. The
merged round-trip tree holds the very entry nodes of each file, so an edit inside an entry
changes that file's tree; ``split`` puts added and removed entries back where they belong
(new ones in the main file, as Meltano does) before the files are written.

Nothing heavy is imported at module level: a read from the parse cache resolves the patterns
again (the set of files is part of the cache key) without loading ruamel.yaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.errors import ProjectFileError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ruamel.yaml.comments import CommentedMap

SECTIONS = ("plugins", "schedules", "environments", "jobs")
"""The keys an included file may hold (Meltano's ``MULTI_FILE_KEYS``)."""

_GLOB = frozenset("*?[")


def resolve(root: Path, main: Path, patterns: list[str], where: Callable[[int], str]) -> list[Path]:
    """The files ``patterns`` name, in pattern order (matches of one pattern sorted), each once.

    A glob that matches nothing is fine, as in Meltano; a plain path that does not exist is an
    error (Meltano skips it silently, which hides a typo). ``where(i)`` locates pattern ``i``.
    """
    found: dict[Path, None] = {}
    for index, pattern in enumerate(patterns):
        for path in _matches(root, pattern, where(index)):
            checked = _checked(root, path, pattern, where(index))
            if checked != main:
                found[checked] = None
    return list(found)


def _matches(root: Path, pattern: str, where: str) -> list[Path]:
    if pattern.startswith(("/", "~")) or ":" in pattern.split("/", maxsplit=1)[0]:
        raise ProjectFileError(
            f"{where}: include_paths entry `{pattern}` is not relative to the project", "give a path inside the project"
        )
    if _GLOB.isdisjoint(pattern):
        path = root / pattern
        if not path.exists():
            raise ProjectFileError(
                f"{where}: include_paths names `{pattern}`, which does not exist",
                "create the file, fix the path, or remove the entry",
            )
        return [path]
    return sorted(root.glob(pattern))


def _checked(root: Path, path: Path, pattern: str, where: str) -> Path:
    """``path`` resolved, when it is a file inside the project."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ProjectFileError(
            f"{where}: include_paths entry `{pattern}` reaches {path}, outside the project",
            "keep included files inside the project directory",
        )
    if not resolved.is_file():
        raise ProjectFileError(
            f"{where}: include_paths entry `{pattern}` matches {path}, which is not a file", "name files"
        )
    return resolved


def extra_keys(tree: dict[str, Any]) -> list[str]:
    """Keys of an included file that are not read (only ``SECTIONS`` are)."""
    return [str(key) for key in tree if key not in SECTIONS]


def _entries(tree: Any) -> Iterator[tuple[tuple[str, ...], list[Any]]]:
    """Every section of entries in a file tree, with its key path (``("plugins", "extractors")``)."""
    plugins = tree.get("plugins")
    if isinstance(plugins, dict):
        for plugin_type, section in plugins.items():
            if isinstance(section, list):
                yield ("plugins", str(plugin_type)), section
    for key in SECTIONS[1:]:
        section = tree.get(key)
        if isinstance(section, list):
            yield (key,), section


def merge(trees: list[CommentedMap]) -> tuple[CommentedMap, dict[int, int]]:
    """One tree holding every file's entries (main file first), and the file index of each entry by id."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    main = trees[0]
    merged = CommentedMap()
    main.copy_attributes(merged)
    for key, value in main.items():
        merged[key] = CommentedMap() if key == "plugins" else (CommentedSeq() if key in SECTIONS else value)
    owners: dict[int, int] = {}
    for index, tree in enumerate(trees):
        for path, section in _entries(tree):
            target = _section(merged, path)
            for entry in section:
                owners[id(entry)] = index
                target.append(entry)
    return merged, owners


def _section(tree: Any, path: tuple[str, ...], *, create: bool = True) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = tree
    for depth, key in enumerate(path):
        child = node.get(key)
        last = depth == len(path) - 1
        if not isinstance(child, CommentedSeq if last else CommentedMap):
            if not create:
                return None
            child = CommentedSeq() if last else CommentedMap()
            node[key] = child
        node = child
    return node


def split(merged: CommentedMap, trees: list[CommentedMap], owners: dict[int, int]) -> None:
    """Put ``merged`` back into the file trees: other keys to the main file, each entry to its file.

    A section whose entries did not change is left as it is (its comments with it); an entry
    that no file held before goes to the main file, as in Meltano.
    """
    main = trees[0]
    for key in [k for k in main if k not in SECTIONS and k not in merged]:
        del main[key]
    for key, value in merged.items():
        if key not in SECTIONS and main.get(key) is not value:
            main[key] = value
    for path, section in _entries(merged):
        for entry in section:
            owners.setdefault(id(entry), 0)
        for index, tree in enumerate(trees):
            wanted = [entry for entry in section if owners[id(entry)] == index]
            current = _section(tree, path, create=bool(wanted))
            if current is not None:
                _replace(current, wanted, tree if index == 0 else None, path)
    for index, tree in enumerate(trees):  # sections that are gone from the merged tree altogether
        for path, section in list(_entries(tree)):
            if _section(merged, path, create=False) is None:
                _replace(section, [], tree if index == 0 else None, path)


def _replace(section: list[Any], wanted: list[Any], main: Any = None, path: tuple[str, ...] = ()) -> None:
    """Make ``section`` hold ``wanted``: drop what is gone, append what is new, keep the rest in place.

    In the ``main`` file, a top-level section (``jobs``, ``schedules``, ``environments``) that
    this empties is removed, as Meltano removes it.
    """
    from strata.project.yamlfile import delete

    ids = {id(entry) for entry in wanted}
    held = len(section)
    for position in reversed(range(len(section))):
        if id(section[position]) not in ids:
            delete(section, position)
    if main is not None and len(path) == 1 and held and not wanted:
        delete(main, path[0])
        return
    present = {id(entry) for entry in section}
    section.extend(entry for entry in wanted if id(entry) not in present)


def line_map(merged: CommentedMap, trees: list[CommentedMap]) -> dict[str, list[int]]:
    """``[file index, line]`` of every key and item of ``merged``, keyed by ``path_key(path)``."""
    from strata.project import yamlfile
    from strata.project.keypath import path_key

    where: dict[int, list[int]] = {}
    for index, tree in enumerate(trees):
        for _, section in _entries(tree):
            for position, entry in enumerate(section):
                where[id(entry)] = [index, section.lc.item(position)[0] + 1]  # type: ignore[attr-defined]
    lines = {key: [0, line] for key, line in yamlfile.line_map(trees[0]).items() if _outside_entries(key)}
    for path, section in _entries(merged):
        for position, entry in enumerate(section):
            item: list[str | int] = [*path, position]
            index, line = where.get(id(entry), [0, 0])
            lines[path_key(item)] = [index, line]
            for key, inner in yamlfile.line_map(entry, item).items():
                lines[key] = [index, inner]
    return lines


def _outside_entries(key: str) -> bool:
    """Whether a line-map key of the main file lies outside its entries (which are mapped per entry)."""
    import json

    path = json.loads(key)
    depth = 3 if path[0] == "plugins" else 2
    return path[0] not in SECTIONS or len(path) < depth

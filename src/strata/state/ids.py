r"""State ids: Meltano's form, and the one check every backend runs before an id names anything.

A state id becomes a directory name (file backend), part of an object key (S3, Azure) and a bound
SQL parameter. The check is deliberately narrow: ASCII letters, digits and ``:-_.@=+``, at most
255 characters (a file name's limit), not starting with ``.`` and without ``..``. That refuses
``/``, ``\``, NUL and other control characters, spaces, ``%`` and everything else that could
climb out of a directory, split a key or change meaning in a URL.
"""

from __future__ import annotations

import re

from strata.errors import StateIdError

MAX_LENGTH = 255
"""Longest accepted state id: the longest file name most file systems take."""

SAFE_CHARACTERS = "letters, digits and `:-_.@=+`"
"""The allowed characters, as the error message names them."""

_SHOWN = 80
"""Characters of a bad id that an error message repeats."""

_SAFE = re.compile(r"[A-Za-z0-9:_.@=+-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9:_.@=+-]")


def _shown(text: str) -> str:
    """The id as it can be printed on one line: control characters and non-ASCII escaped."""
    return text.encode("unicode_escape").decode("ascii").replace("`", "\\x60")


def check_state_id(state_id: str) -> str:
    """Return ``state_id`` when it is safe as a path component, object key and URL part; else raise.

    Every backend calls this before an id reaches a path, a key or a query, and the file and
    object backends call it again where they build the path or key.
    """
    if not isinstance(state_id, str) or not state_id:
        raise StateIdError("the state id is empty", "name a state id such as `dev:tap-x-to-target-y`")
    shown = _shown(state_id[:_SHOWN]) + ("…" if len(state_id) > _SHOWN else "")
    if len(state_id) > MAX_LENGTH:
        raise StateIdError(
            f"state id `{shown}` is {len(state_id)} characters long", f"use at most {MAX_LENGTH} characters"
        )
    if _SAFE.fullmatch(state_id) is None:
        bad = _UNSAFE.search(state_id)
        assert bad is not None
        what = {"/": "`/`", "\\": "`\\`", "\0": "a NUL character", " ": "a space"}.get(
            bad.group(), f"`{_shown(bad.group())}`"
        )
        raise StateIdError(f"state id `{shown}` contains {what}", f"state ids use {SAFE_CHARACTERS} only")
    if ".." in state_id or state_id.startswith("."):
        what = "contains `..`" if ".." in state_id else "starts with `.`"
        raise StateIdError(f"state id `{shown}` {what}", "state ids may not name a parent or hidden directory")
    return state_id


def is_state_id(text: str) -> bool:
    """Whether ``text`` passes :func:`check_state_id` (listings skip names that do not)."""
    try:
        check_state_id(text)
    except StateIdError:
        return False
    return True


def make_state_id(environment: str, extractor: str, loader: str, suffix: str | None = None) -> str:
    """Meltano's state id: ``<environment>:<extractor>-to-<loader>[:<suffix>]``.

    ``:`` separates the parts, so no part may contain one (Meltano refuses it too). An empty
    suffix is no suffix, as in Meltano.
    """
    parts = {"environment": environment, "extractor": extractor, "loader": loader}
    if suffix:
        parts["suffix"] = suffix
    for name, value in parts.items():
        if not value:
            raise StateIdError(f"the {name} part of the state id is empty", f"give a non-empty {name}")
        if ":" in value:
            raise StateIdError(
                f"the {name} part `{_shown(value)}` of the state id contains `:`",
                "`:` separates the parts of a state id; leave it out",
            )
    state_id = f"{environment}:{extractor}-to-{loader}" + (f":{suffix}" if suffix else "")
    return check_state_id(state_id)

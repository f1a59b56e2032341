"""Every edit strata makes to a project file changes only the lines it must (issue 12, item 6).

Each case under ``tests/fixtures/meltano-roundtrip`` is a ``meltano.yml`` in one shape (an
indentation style, CRLF line ends, block strings, quoting and comments, unknown keys) and
the edit in ``edit``; ``record.sh`` stored beside it the file Meltano 4.4.1 leaves after the
same edit (``meltano-after.yml``) and its mode. Where Meltano keeps the file's shape, strata
must write exactly what Meltano wrote; everywhere else the difference between the file before
and after must be exactly the lines the edit needs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from pathlib import Path

import pytest

from tests.helpers import Cli, changed_lines, record_again, snapshot

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-roundtrip"
CASES = sorted(p.name for p in FIXTURE.iterdir() if p.is_dir())
SAME_AS_MELTANO = (
    "meltano-style",
    "block-strings",
    "unset-last-key",
    "environment-add",
    "environment-remove",
    "schedule-add",
)
"""Cases whose shape Meltano keeps too: strata writes byte for byte what Meltano wrote."""
ONLY_LINES: dict[str, list[str]] = {
    "four-space-indented": ["+              foo: bar\n"],
    "four-space-non-indented": ["+            foo: bar\n"],
    "crlf": ["+        foo: bar\r\n"],
    "quoting-and-comments": ["-      limit: 10\n", "+      limit: 20\n"],
    "unknown-keys": ["+      foo: bar\n"],
}
"""The changed lines of every other case (Meltano re-indents, drops CRLF, quotes and comments there)."""


def _copy(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / case
    root.mkdir()
    shutil.copyfile(FIXTURE / case / "meltano.yml", root / "meltano.yml")
    monkeypatch.chdir(root)
    for var in ("STRATA_ENVIRONMENT", "MELTANO_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    return root


def _edit(case: str) -> list[str]:
    """The case's edit; strata writes the plugin's own config without ``-e`` (Meltano: ``--no-environment``)."""
    return shlex.split((FIXTURE / case / "edit").read_text())


def test_every_case_is_checked() -> None:
    assert sorted([*SAME_AS_MELTANO, *ONLY_LINES]) == CASES


@pytest.mark.parametrize("case", CASES)
def test_an_edit_changes_only_the_lines_it_must(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    root = _copy(case, tmp_path, monkeypatch)
    before = (root / "meltano.yml").read_bytes()
    result = strata(*_edit(case))
    assert result.code == 0, result.err
    after = (root / "meltano.yml").read_bytes()
    if case in SAME_AS_MELTANO:
        assert after == (FIXTURE / case / "meltano-after.yml").read_bytes()
    else:
        assert changed_lines(before.decode(), after.decode()) == ONLY_LINES[case]


@pytest.mark.parametrize("case", CASES)
def test_an_edit_keeps_the_files_mode_where_meltano_makes_it_owner_only(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    root = _copy(case, tmp_path, monkeypatch)
    path = root / "meltano.yml"
    path.chmod(0o640)
    assert strata(*_edit(case)).code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert (FIXTURE / case / "meltano-after.mode").read_text().strip() == "600"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another owner to see it kept")
def test_an_edit_keeps_the_files_owner(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy("crlf", tmp_path, monkeypatch)
    path = root / "meltano.yml"
    os.chown(path, 4321, 4322)
    assert strata(*_edit("crlf")).code == 0
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)


BUSY = """\
# Team project: 4-space indentation, sequences at their key's column, CRLF.
version: 1
default_environment: dev
environments:
-   name: dev   # local
    config:
        plugins:
            extractors:
            -   name: tap-x
                config:
                    limit: 5
-   name: prod

plugins:
    extractors:
    -   name: tap-x
        namespace: tap_x
        executable: tap-x
        config:
            note: >
                folded
                text
            start_date: "2024-01-01"   # first day
            limit: 10
    -   name: tap-old
        executable: tap-old
    loaders:
    -   name: target-y
        executable: target-y
jobs:
-   name: load
    tasks:
    -   tap-x target-y
-   name: old
    tasks: [tap-old target-y]
schedules:
-   name: nightly
    job: load
    interval: '@daily'
-   name: hourly
    job: old
    interval: '@hourly'
"""

EDITS: list[tuple[list[str], list[str]]] = [
    (["config", "set", "tap-x", "limit", "20"], ["-            limit: 10", "+            limit: 20"]),
    (["config", "set", "tap-x", "a.b", "1"], ["+            a:", "+                b: 1"]),
    (["config", "unset", "tap-x", "limit"], ["-            limit: 10"]),
    (
        ["-e", "dev", "config", "set", "tap-x", "limit", "6"],
        ["-                    limit: 5", "+                    limit: 6"],
    ),
    (
        ["-e", "prod", "config", "set", "tap-x", "limit", "7"],
        [
            "+    config:",
            "+        plugins:",
            "+            extractors:",
            "+            -   name: tap-x",
            "+                config:",
            "+                    limit: 7",
        ],
    ),
    (
        ["add", "extractor", "tap-z", "--executable", "tap-z", "--no-install"],
        ["+    -   name: tap-z", "+        executable: tap-z"],
    ),
    (["environment", "add", "staging"], ["+-   name: staging"]),
    (["environment", "remove", "prod"], ["--   name: prod"]),
    (
        ["job", "add", "more", "--tasks", "tap-x target-y"],
        ["+-   name: more", "+    tasks:", "+    -   tap-x target-y"],
    ),
    (
        ["schedule", "add", "weekly", "--job", "load", "--interval", "@weekly"],
        ["+-   name: weekly", "+    interval: '@weekly'", "+    job: load"],
    ),
    (
        ["schedule", "remove", "hourly"],
        ["--   name: hourly", "-    job: old", "-    interval: '@hourly'"],
    ),
]
"""Each edit through the CLI and the lines it changes in ``BUSY`` (CRLF left off here)."""


@pytest.mark.parametrize(("args", "lines"), EDITS, ids=[" ".join(args) for args, _ in EDITS])
def test_every_kind_of_edit_changes_only_its_lines_and_keeps_crlf(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], lines: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "meltano.yml"
    path.write_bytes(BUSY.replace("\n", "\r\n").encode())
    before = path.read_bytes().decode()
    result = strata(*args)
    assert result.code == 0, result.err
    assert changed_lines(before, path.read_bytes().decode()) == [f"{line}\r\n" for line in lines]


def test_removing_a_plugin_takes_its_entry_and_nothing_else(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "meltano.yml"
    path.write_text(BUSY.replace("    tasks: [tap-old target-y]\n", "    tasks: [tap-x target-y]\n"))
    before = path.read_text()
    assert strata("remove", "tap-old").code == 0
    assert changed_lines(before, path.read_text()) == [
        "-    -   name: tap-old\n",
        "-        executable: tap-old\n",
    ]


def test_an_edit_in_an_included_file_keeps_that_files_shape(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meltano.yml").write_text("version: 1\ninclude_paths:\n  - ./extra/*.yml\n")
    (tmp_path / "extra").mkdir()
    included = tmp_path / "extra" / "taps.yml"
    text = "# taps\r\nplugins:\r\n    extractors:\r\n    -   name: tap-x   # main\r\n        executable: tap-x\r\n"
    included.write_bytes(text.encode())
    included.chmod(0o600)
    main = snapshot(tmp_path)["meltano.yml"]
    assert strata("config", "set", "tap-x", "limit", "3").code == 0
    after = included.read_bytes().decode()
    assert changed_lines(text, after) == ["+        config:\r\n", "+            limit: 3\r\n"]
    assert stat.S_IMODE(included.stat().st_mode) == 0o600
    assert snapshot(tmp_path)["meltano.yml"] == main


def test_meltano_still_writes_what_is_stored(tmp_path: Path) -> None:
    copy = record_again(FIXTURE, tmp_path, "meltano-after.*")
    for case in CASES:
        for name in ("meltano-after.yml", "meltano-after.mode"):
            assert (copy / case / name).read_bytes() == (FIXTURE / case / name).read_bytes(), (case, name)


def test_unknown_top_level_keys_survive_every_edit_byte_for_byte(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meltano rewrites them (aliases expanded, flow maps respaced); strata leaves them alone."""
    root = _copy("unknown-keys", tmp_path, monkeypatch)
    path = root / "meltano.yml"
    before = path.read_text()
    edits = [
        ["config", "set", "tap-x", "limit", "3"],
        ["-e", "dev", "config", "set", "tap-x", "limit", "4"],
        ["job", "add", "again", "--tasks", "tap-x target-y"],
        ["schedule", "add", "weekly", "--job", "again", "--interval", "@weekly"],
        ["environment", "add", "prod"],
        ["config", "unset", "tap-x", "limit"],
    ]
    for args in edits:
        result = strata(*args)
        assert result.code == 0, (args, result.err)
    removed = [line for line in changed_lines(before, path.read_text()) if line.startswith("-")]
    assert removed == ["-    config:\n", "-      limit: 10\n"]


def test_an_edit_next_to_lines_in_the_files_own_spelling_keeps_them(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flag:   yes`` and ``nothing: ~`` read the same in any spelling; removing one keeps the other's."""
    root = _copy("quoting-and-comments", tmp_path, monkeypatch)
    before = (root / "meltano.yml").read_text()
    assert strata("config", "unset", "tap-x", "flag").code == 0
    assert changed_lines(before, (root / "meltano.yml").read_text()) == ["-      flag:   yes\n"]


def test_a_file_without_a_final_line_end_gets_one_only_where_lines_follow(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy("crlf", tmp_path, monkeypatch)
    path = root / "meltano.yml"
    text = path.read_bytes().decode().removesuffix("\r\n")
    path.write_bytes(text.encode())
    assert strata("environment", "add", "staging").code == 0
    assert changed_lines(text, path.read_bytes().decode()) == ["+  - name: staging\r\n"]
    assert strata("job", "add", "load", "--tasks", "tap-x target-y").code == 0
    after = path.read_bytes().decode()
    assert changed_lines(text, after) == [
        "+  - name: staging\r\n",
        "-      executable: target-y",
        "+      executable: target-y\r\n",
        "+jobs:\r\n",
        "+  - name: load\r\n",
        "+    tasks:\r\n",
        "+      - tap-x target-y\r\n",
    ]


@pytest.mark.parametrize(
    "edits",
    [
        [["job", "add", "again", "--tasks", "tap-x target-y"], ["job", "remove", "again"]],
        [["environment", "add", "zz"], ["environment", "remove", "zz"]],
        [
            ["schedule", "add", "s1", "--extractor", "tap-x", "--loader", "target-y", "--interval", "@daily"],
            ["schedule", "remove", "s1"],
        ],
        [["config", "set", "tap-x", "foo", "bar"], ["config", "unset", "tap-x", "foo"]],
    ],
    ids=["job", "environment", "schedule", "config"],
)
def test_an_edit_and_its_undo_leave_the_file_as_it_was(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edits: list[list[str]]
) -> None:
    """As in Meltano, removing the last entry of a section removes the section it created."""
    root = _copy("crlf", tmp_path, monkeypatch)
    path = root / "meltano.yml"
    text = path.read_bytes().replace(b"  - name: dev\r\n  - name: prod\r\n", b"").replace(b"environments:\r\n", b"")
    text = text.replace(b"default_environment: dev\r\n", b"")
    path.write_bytes(text)
    for args in edits:
        assert strata(*args).code == 0, args
    assert path.read_bytes() == text

"""A corpus of Meltano project layouts reads in strata as in Meltano 4.4.1 (issue 12, "How it is checked").

Each directory of ``tests/fixtures/meltano-corpus`` is one layout, written in the shape real
public Meltano projects have (hub plugins with their ``plugins/*/*.lock`` definitions, custom
plugins, several environments, ``inherit_from``, mappings, jobs and schedules, plugin
``commands:``, ``include_paths``, a dbt transformer beside a file bundle of the same name,
underscore extras, a CRLF file, unknown keys, ``env:`` blocks, ``${VAR}`` references, secrets
from ``.env`` and the process). ``NAME/environ`` holds the process variables of the layout.
``NAME/expected/`` is what Meltano printed for it, made by ``record.sh`` (which says how):
``plugin list``, ``job list`` and ``schedule list`` as JSON, ``environment list``, and for every
plugin ``config list --all`` and ``config print --format=json`` with no environment and in each
environment. The tests run strata's read commands on a copy of the layout and compare.

Normalised, and only these (each a documented difference, see docs/meltano.md):

- strata shows a secret as ``(redacted)`` everywhere; Meltano's ``config print`` shows ``*****``.
- ``config list`` is compared through strata's ``--json`` rows (name, value, source) against the
  rows parsed from Meltano's text; a project file is one source whichever file of
  ``include_paths`` holds the value (strata names the file and line, Meltano says `meltano.yml`).
- Meltano's ``config`` commands ignore ``default_environment``; strata's use it, so Meltano's
  output without an environment is compared with strata's ``--no-environment``.
- The project directory (``$MELTANO_PROJECT_ROOT``) is written ``<project>`` in both.
- Files matched by one ``include_paths`` glob are read in sorted order by strata, in the file
  system's directory order by Meltano: where a glob matches several files, ``plugin list`` is
  compared without the order of the plugins within a type (and so is the live check).

A comparison that differs because another engineer is building that part right now is marked
``xfail(strict=True)`` naming the item and its owner: it fails as soon as the part lands, and
the mark is then removed.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, files_under, record_again

CORPUS = Path(__file__).parent.parent / "fixtures" / "meltano-corpus"
LAYOUTS = sorted(p.name for p in CORPUS.iterdir() if (p / "project").is_dir())
NO_ENVIRONMENT = "no-environment"
TYPE_ORDER = ["extractor", "loader", "transform", "orchestrator", "transformer", "file bundle", "utility", "mapper"]
"""Meltano's order of plugin types in ``plugin list``."""
MELTANO_SECRET = "*****"
STRATA_SECRET = "(redacted)"

KNOWN: dict[tuple[str, ...], str] = {}
"""Comparisons that differ because another engineer's item is in progress: (check, layout, …) -> reason."""


def _expected(layout: str) -> Path:
    return CORPUS / layout / "expected"


def _extras_cases() -> Iterator[Any]:
    """The ``_config_cases`` where Meltano's ``config list --extras`` shows at least one extra."""
    for case in _config_cases():
        layout, environment, plugin_type, plugin = case
        path = _expected(layout) / "config" / environment / f"{plugin_type}.{plugin}.extras.txt"
        if path.is_file() and " current value: " in path.read_text():
            yield case


def _config_cases() -> Iterator[Any]:
    """(layout, environment, type, plugin) for every ``config`` output Meltano printed."""
    for layout in LAYOUTS:
        config = _expected(layout) / "config"
        if not config.is_dir():
            continue
        for env_dir in sorted(config.iterdir()):
            for listed in sorted(env_dir.glob("*.list.txt")):
                plugin_type, plugin = listed.name.removesuffix(".list.txt").split(".", 1)
                yield layout, env_dir.name, plugin_type, plugin


def _marked(check: str, *case: str) -> Any:
    """``case`` as a pytest param, xfail-marked when ``(check, *case)`` is a known difference of an item in progress."""
    reason = KNOWN.get((check, *case))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*case, marks=marks, id="-".join(case))


@pytest.fixture
def layout_dir(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the layout's project, the working directory, with the layout's process variables set."""
    layout = request.node.callspec.params["layout"]
    root = tmp_path / "project"
    shutil.copytree(CORPUS / layout / "project", root)
    monkeypatch.chdir(root)
    environ = CORPUS / layout / "environ"
    if environ.is_file():
        for line in environ.read_text().splitlines():
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    return root


def _normal(text: str, root: Path) -> str:
    return text.replace(str(root), "<project>")


def _meltano_json(path: Path) -> Any:
    text = path.read_text()
    return {"exit": text.strip()} if text.startswith("exit ") else json.loads(text)


def _strata_json(result: Any, root: Path) -> Any:
    if result.code != 0:
        return {"exit": f"exit {result.code}"}
    return json.loads(_normal(result.out, root).replace(json.dumps(STRATA_SECRET), json.dumps(MELTANO_SECRET)))


def _globbed(layout: str) -> bool:
    """Whether one of the layout's ``include_paths`` globs matches several files (read in a different order)."""
    root = CORPUS / layout / "project"
    patterns = re.findall(r"^- (\S*\*\S*)$", (root / "meltano.yml").read_text(), re.MULTILINE)
    return any(len(list(root.glob(pattern))) > 1 for pattern in patterns)


def _plugin_rows(rows: Any, layout: str) -> Any:
    """``plugin list`` rows, ordered by type and name where the order within a type is the file system's."""
    if not _globbed(layout) or not isinstance(rows, list):
        return rows
    return sorted(rows, key=lambda row: (TYPE_ORDER.index(row["type"]), row["name"]))


@pytest.mark.parametrize("layout", [_marked("plugins", name) for name in LAYOUTS])
def test_plugin_list_is_meltanos(strata: Cli, layout: str, layout_dir: Path) -> None:
    result = strata("plugin", "list", "--format", "json")
    expected = _meltano_json(_expected(layout) / "plugin-list.json")
    assert _plugin_rows(_strata_json(result, layout_dir), layout) == _plugin_rows(expected, layout), result.err


@pytest.mark.parametrize("layout", [_marked("jobs", name) for name in LAYOUTS])
def test_job_list_is_meltanos(strata: Cli, layout: str, layout_dir: Path) -> None:
    result = strata("job", "list", "--format", "json")
    assert _strata_json(result, layout_dir) == _meltano_json(_expected(layout) / "job-list.json"), result.err


@pytest.mark.parametrize("layout", [_marked("schedules", name) for name in LAYOUTS])
def test_schedule_list_is_meltanos(strata: Cli, layout: str, layout_dir: Path) -> None:
    result = strata("schedule", "list", "--format", "json")
    assert _strata_json(result, layout_dir) == _meltano_json(_expected(layout) / "schedule-list.json"), result.err


@pytest.mark.parametrize("layout", [_marked("environments", name) for name in LAYOUTS])
def test_environment_list_is_meltanos(strata: Cli, layout: str, layout_dir: Path) -> None:
    result = strata("environment", "list")
    expected = (_expected(layout) / "environment-list.txt").read_text()
    assert (result.out if result.code == 0 else f"exit {result.code}\n") == expected, result.err


def _environment_args(environment: str) -> list[str]:
    return ["--no-environment"] if environment == NO_ENVIRONMENT else ["-e", environment]


@pytest.mark.parametrize(
    ("layout", "environment", "plugin_type", "plugin"), [_marked("print", *case) for case in _config_cases()]
)
def test_config_print_is_meltanos(
    strata: Cli, layout: str, layout_dir: Path, environment: str, plugin_type: str, plugin: str
) -> None:
    args = [*_environment_args(environment), "config", "print", plugin, "--plugin-type", plugin_type]
    result = strata(*args, "--format", "json")
    expected = _meltano_json(_expected(layout) / "config" / environment / f"{plugin_type}.{plugin}.print.json")
    assert _strata_json(result, layout_dir) == expected, result.err


_LISTED = re.compile(r"^(?P<name>\S+) \[env: [^\]]+\](?: \(default: .*?\))? current value: (?P<rest>.*)$")
_SOURCES = (
    (re.compile(r"^\(default(?:: .*)?\)$"), "default"),
    (re.compile(r"^\(inherited from '[^']+'\)$"), "inherited"),
    (re.compile(r"^\(from the active environment in `[^`]+`(?::.*)?\)$"), "environment"),
    (re.compile(r"^\(from the (?P<var>\S+) variable in `\.env`\)$"), ".env"),
    (re.compile(r"^\(from the (?P<var>\S+) variable in the environment\)$"), "env"),
    (re.compile(r"^\(from `[^`]+`(?::.*)?\)$"), "file"),
)


def _meltano_rows(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings and custom extras of Meltano's ``config list`` text: name -> (value, source, variable)."""
    settings: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    target = settings
    for line in text.splitlines():
        if line.startswith("Custom extras"):
            target = extras
            continue
        match = _LISTED.match(line)
        if match is None:
            continue
        rest = match["rest"]
        for pattern, source in _SOURCES:
            start = rest.find(" (")
            while start != -1:
                found = pattern.match(rest[start + 1 :])
                if found is not None:
                    raw = rest[:start]
                    value = STRATA_SECRET if raw == STRATA_SECRET else ast.literal_eval(raw)
                    target[match["name"]] = (value, source, found.groupdict().get("var"))
                    break
                start = rest.find(" (", start + 1)
            if match["name"] in target:
                break
        else:
            raise AssertionError(f"unparsed line of Meltano's config list: {line}")
    return settings, extras


def _strata_rows(rows: list[dict[str, Any]], files: set[str]) -> dict[str, Any]:
    """strata's ``--json config list`` rows in the same terms: name -> (value, source, variable)."""
    out = {}
    for row in rows:
        source = row["source"]
        variable = row["detail"] if source in (".env", "env") else None
        if source in files:
            source = "file"
        elif source.startswith("environment "):
            source = "environment"
        elif source == "unset":
            source = "default"
        out[row["name"]] = (row["value"], source, variable)
    return out


def _project_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.yml")}


@pytest.mark.parametrize(
    ("layout", "environment", "plugin_type", "plugin"), [_marked("list", *case) for case in _config_cases()]
)
def test_config_list_values_and_sources_are_meltanos(
    strata: Cli, layout: str, layout_dir: Path, environment: str, plugin_type: str, plugin: str
) -> None:
    text = (_expected(layout) / "config" / environment / f"{plugin_type}.{plugin}.list.txt").read_text()
    if text.startswith("exit "):
        result = strata(*_environment_args(environment), "config", "list", plugin, "--plugin-type", plugin_type)
        assert f"exit {result.code}\n" == text, result.out
        return
    expected, _ = _meltano_rows(text)
    args = [*_environment_args(environment), "--json", "config", "list", plugin, "--plugin-type", plugin_type]
    result = strata(*args)
    assert result.code == 0, result.err
    rows = json.loads(_normal(result.out, layout_dir))
    assert _strata_rows(rows, _project_files(layout_dir)) == expected


@pytest.mark.parametrize(
    ("layout", "environment", "plugin_type", "plugin"),
    [_marked("extras", *case) for case in _extras_cases()],
)
def test_config_list_extras_are_meltanos(
    strata: Cli, layout: str, layout_dir: Path, environment: str, plugin_type: str, plugin: str
) -> None:
    """Meltano's ``config list --extras`` rows (``_select``, ``_metadata.…``, custom extras) in strata's ``--json`` rows.

    Meltano hides extras at their default values here, so only the extras it shows are compared.
    """
    text = (_expected(layout) / "config" / environment / f"{plugin_type}.{plugin}.extras.txt").read_text()
    settings, extras = _meltano_rows(text)
    expected = {**settings, **extras}
    args = [*_environment_args(environment), "--json", "config", "list", plugin, "--plugin-type", plugin_type]
    result = strata(*args, "--extras")
    assert result.code == 0, result.err
    rows = _strata_rows(json.loads(_normal(result.out, layout_dir)), _project_files(layout_dir))
    assert {name: rows.get(name) for name in expected} == expected


def test_the_stored_meltano_output_is_what_meltano_prints_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again reproduces every stored file byte for byte."""
    copy = record_again(CORPUS, tmp_path, "expected", timeout=3600)
    for layout in LAYOUTS:
        now, before = files_under(copy / layout / "expected"), files_under(_expected(layout))
        if _globbed(layout):
            listed = Path("plugin-list.json")
            now[listed], before[listed] = (
                json.dumps(_plugin_rows(json.loads(files[listed]), layout)).encode() for files in (now, before)
            )
        assert now == before, layout

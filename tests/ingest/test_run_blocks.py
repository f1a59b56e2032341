"""`strata run` / `el` / `job add` with a block name that is not in the project: close names and `strata add`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, snapshot, write_project

PROJECT = """
    plugins:
      extractors:
        - {name: tap-github, executable: /bin/true}
        - {name: tap-gitlab, executable: /bin/true}
      loaders:
        - {name: target-jsonl, executable: /bin/true}
      mappers:
        - name: meltano-map-transformer
          executable: /bin/true
          mappings: [{name: hash-emails, config: {}}]
      utilities:
        - {name: dbt, executable: /bin/true}
    jobs: [{name: nightly, tasks: [tap-github target-jsonl]}]
"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["run", "tap-githb", "target-jsonl"],
            (
                "block `tap-githb` is not a plugin, a mapping or a job in strata.yml; did you mean `tap-github`? "
                "Or add it with `strata add extractor tap-githb`"
            ),
        ),
        (
            ["el", "tap-github", "target-jsnl"],
            (
                "block `target-jsnl` is not a plugin, a mapping or a job in strata.yml; did you mean `target-jsonl`? "
                "Or add it with `strata add loader target-jsnl`"
            ),
        ),
        (
            ["run", "nigthly"],
            (
                "block `nigthly` is not a plugin, a mapping or a job in strata.yml; did you mean `nightly`? "
                "Or add it with `strata add extractor|loader|mapper nigthly`"
            ),
        ),
        (
            ["run", "tap-github", "hash-emals", "target-jsonl"],
            "did you mean `hash-emails`?",
        ),
        (
            ["run", "tap-github", "target-jsonl", "features:buld"],
            "did you mean `features:build`?",
        ),
        (
            ["run", "tap-stripe", "target-jsonl"],
            (
                "block `tap-stripe` is not a plugin, a mapping or a job in strata.yml; add it with "
                "`strata add extractor tap-stripe`, or see `strata job list` for jobs"
            ),
        ),
        # a utility alone runs as Meltano runs it (tests/ingest/test_transformers.py); inside a pipeline it cannot
        (
            ["run", "tap-github", "dbt", "target-jsonl"],
            "strata: error: `tap-github` has no loader before `dbt`; end each pipeline with a loader\n",
        ),
        (
            ["job", "add", "weekly", "--tasks", "tap-gitlb target-jsonl"],
            "did you mean `tap-gitlab`? Or add it with `strata add extractor tap-gitlb`",
        ),
    ],
)
def test_an_unknown_block_suggests_close_names_and_strata_add(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    write_project(tmp_path, PROJECT)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata(*args)
    assert result.code == 2
    assert expected in result.err
    assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before

"""``annotations``, ``requires`` and ``venv.backend`` wherever Meltano 4.4.1's schema allows them (issue 12, item 13).

``annotations`` are for other tools: accepted everywhere Meltano's JSON schema has them and
ignored; ``requires`` is accepted and not acted on; ``venv.backend`` takes both of Meltano's
values (strata builds every venv with uv either way). An edit keeps them all byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, changed_lines, run_strata

ANNOTATED = """\
version: 1
annotations: {owner: {team: data}}
venv:
  backend: BACKEND
environments:
- name: dev
  annotations: {tier: low}
  config:
    plugins:
      utilities:
      - name: shout
        annotations: {note: env-level}
plugins:
  utilities:
  - name: shout
    namespace: shout
    executable: echo
    annotations: {catalog: {owner: me}}
    requires:
      files:
      - name: files-shout
        variant: meltano
        annotations: {why: demo}
    settings:
    - name: word
      annotations: {ui: text}
    commands:
      hello:
        args: hello from a command
        annotations: {docs: none}
        container_spec:
          image: busybox
          annotations: {k: v}
  mappers:
  - name: mapper-x
    executable: mapper-x
    mappings:
    - name: first
      config: {}
      annotations: {x: 1}
jobs:
- name: greet
  tasks: [shout:hello]
  annotations: {slack: "#data"}
schedules:
- name: greet-daily
  job: greet
  interval: '@daily'
  annotations: {pager: none}
"""


@pytest.mark.parametrize("backend", ["uv", "virtualenv"])
def test_annotations_requires_and_venv_backend_load_run_and_survive_edits(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "meltano.yml"
    text = ANNOTATED.replace("BACKEND", backend)
    path.write_text(text)
    listed = strata("job", "list")
    assert listed.code == 0, listed.err
    assert listed.err == ""
    done = run_strata("invoke", "shout:hello", cwd=tmp_path)
    assert done.code == 0, done.err
    assert done.out == "hello from a command\n"
    assert done.err.count("\n") == 1  # only the warning that container_spec is ignored
    assert "container_spec" in done.err
    assert strata("config", "set", "shout", "word", "hi").code == 0
    assert changed_lines(text, path.read_text()) == ["+    config:\n", "+      word: hi\n"]

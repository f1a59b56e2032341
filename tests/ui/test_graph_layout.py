"""The page's graph in a real browser (headless Chromium): every box holds its text, every box is inside the picture."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from tests.helpers import run_strata, wait_for, write_project
from tests.ui.conftest import start_ui

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

FEATURES = """
import polars as pl
import strata as st


class Docs(st.Feature, spec=st.FeatureSpec("docs", id_columns=["doc"], fields=["body"])):
    pass


class Embedding(st.Feature, spec=st.FeatureSpec("paragraph_embeddings_wide", id_columns=["doc"], deps=[Docs],
        fields=[st.FieldSpec("normalised_vector_w", deps=[st.FieldDep(Docs, ["body"])]), "WWWWWWWWWWWWWWWWWWW"])):
    batch_size = 1

    def compute(self, inputs):
        docs = inputs[Docs]
        if "boom" in docs["doc"].to_list():
            raise ValueError("cannot embed boom")
        lengths = pl.col("body").str.len_chars()
        return docs.select("doc", lengths.alias("normalised_vector_w"), lengths.alias("WWWWWWWWWWWWWWWWWWW"))
"""

OVERFLOW = """
const found = [];
const svg = document.querySelector("svg.graph");
const view = svg.viewBox.baseVal;
for (const node of svg.querySelectorAll("a.node")) {
  const box = node.querySelector("rect").getBBox();
  if (box.x < 0 || box.y < 0 || box.x + box.width > view.width || box.y + box.height > view.height) {
    found.push([node.dataset.feature, "box outside the picture", box.x, box.width, view.width]);
  }
  for (const text of node.querySelectorAll("text")) {
    const b = text.getBBox();
    if (b.x < box.x || b.y < box.y || b.x + b.width > box.x + box.width || b.y + b.height > box.y + box.height) {
      found.push([node.dataset.feature, text.textContent, b.x, b.width, box.x, box.width]);
    }
  }
  const texts = [...node.querySelectorAll("g.field")].map(g => [...g.querySelectorAll("text")].map(t => t.getBBox()));
  for (const [name, count] of texts) {
    if (name.x + name.width > count.x) found.push([node.dataset.feature, "field name runs into its count"]);
  }
}
return found;
"""


def _docs(project: Project, bodies: dict[str, str]) -> None:
    frame = pl.DataFrame({"doc": list(bodies), "body": list(bodies.values())})
    frame = frame.with_columns(strata_dv__body=pl.Series([sample_hash("md5", [b]) for b in bodies.values()]))
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("docs", frame)


def test_every_text_of_the_graph_stays_inside_its_box(tmp_path: Path, browser: WebDriver) -> None:
    """Long words (``60 samples · 3 to add · 5 to recompute · 1 to remove``, wide names) widen the box."""
    root = tmp_path / "wide"
    root.mkdir()
    (root / "feats.py").write_text(textwrap.dedent(FEATURES))
    write_project(root, "version: 1\nfeatures: {entrypoints: [feats]}\n")
    project = Project(root)
    bodies = {f"d{i}": f"body {i}" for i in range(60)}
    _docs(project, bodies)
    assert run_strata("build", cwd=root).code == 0
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("docs", pl.DataFrame({"doc": ["d0"]}))
    _docs(project, {**{f"d{i}": f"new body {i}" for i in range(1, 6)}, "d60": "x", "d61": "y", "boom": "z"})
    server = start_ui(root)
    try:
        browser.get(server.url)
        wait_for(lambda: browser.find_elements("css selector", "svg.graph a.node"), "the graph")
        subtitle = browser.find_element("css selector", 'a.node[data-feature="paragraph_embeddings_wide"] text.sub')
        shown = str(subtitle.text)
        found: Any = browser.execute_script(OVERFLOW)
    finally:
        server.stop()
    assert shown == "60 samples · 3 to add · 5 to recompute · 1 to remove", shown
    assert found == []

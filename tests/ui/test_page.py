"""The page of `strata ui` in a real browser (headless Chromium): the demo's graph, a run's log, a sample's lineage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from strata.history import RunHistory
from strata.project.project import Project
from tests.helpers import run_strata, wait_for
from tests.ui.conftest import Demo, Server
from tests.ui.test_graph_layout import OVERFLOW

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.network  # the demo installs tap-jsonl from PyPI


def _open(browser: WebDriver, ui: Server, path: str = "") -> None:
    browser.get(ui.url + path)
    wait_for(lambda: browser.find_elements("id", "main"), f"the page {path or '/'}")


def wait_for_element(browser: WebDriver, css: str) -> Any:
    wait_for(lambda: browser.find_elements("css selector", css), css)
    return browser.find_element("css selector", css)


def _text(browser: WebDriver, css: str) -> str:
    """The text of the first element matching ``css`` now ("" while the page swaps its content in)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(browser.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _text_of(element: Any, css: str) -> str:
    return str(element.find_element("css selector", css).text)


def _fields(browser: WebDriver, feature: str) -> dict[str, str]:
    """What the graph's box of ``feature`` shows per field (``5 stale``, ``in sync``)."""
    box = browser.find_element("css selector", f'a.node[data-feature="{feature}"]')
    return {
        g.get_attribute("data-field") or "": g.find_element("css selector", "text.count").text
        for g in box.find_elements("css selector", "g.field")
    }


def test_the_graph_shows_the_demo_features_and_what_its_source_change_made_stale(
    ui: Server, browser: WebDriver, tmp_path: Path
) -> None:
    _open(browser, ui)
    nodes = browser.find_elements("css selector", "svg.graph a.node")
    assert [n.get_attribute("data-feature") for n in nodes] == ["articles", "clean", "embedding"]
    assert _fields(browser, "articles") == dict.fromkeys(["title", "body", "tags", "views"], "in sync")  # as render's
    assert _fields(browser, "clean") == {"text": "5 stale", "headline": "in sync"}  # articles.body of 5 changed
    assert _fields(browser, "embedding") == {"vector": "in sync"}  # stale once the new clean.text is written
    assert "stale" in (nodes[1].get_attribute("class") or "").split()
    assert "articles.body (5)" in browser.find_element("css selector", "table.features").text
    assert browser.execute_script(OVERFLOW) == []  # every text inside its box, every box inside the picture
    browser.save_screenshot(str(tmp_path / "graph.png"))

    nodes[1].click()  # the feature's page: its fields, sample counts and causes
    wait_for(lambda: browser.find_elements("css selector", "table.fields"), "the page of clean")
    assert browser.find_element("tag name", "h1").text == "clean"
    assert browser.find_element("id", "counts").text == "60 samples: 0 to add, 5 to recompute, 0 to remove"
    rows = [r.text for r in browser.find_elements("css selector", "table.fields tbody tr")]
    assert rows == ["text 1 articles.body 5 stale articles.body (5)", "headline 1 articles.title in sync"]
    assert "clean: 60 added" in browser.find_element("tag name", "main").text  # its first build, from the history
    browser.save_screenshot(str(tmp_path / "feature.png"))
    assert (tmp_path / "graph.png").stat().st_size > 10_000


def test_each_edge_of_the_graph_names_the_upstream_fields_read_as_graph_render_does(
    ui: Server, demo: Demo, browser: WebDriver, tmp_path: Path
) -> None:
    _open(browser, ui)
    shown = {}
    for edge in browser.find_elements("css selector", "svg.graph g.link"):
        label = edge.find_element("css selector", "text.edge-label")
        assert label.is_displayed()
        shown[edge.get_attribute("data-up"), edge.get_attribute("data-down")] = label.text
    rendered = run_strata("graph", "render", "--format", "dot", "--no-status", cwd=demo.root)
    assert rendered.code == 0, rendered.err
    drawn = {(up, down): label for up, down, label in re.findall(r'"(.+)" -> "(.+)" \[label="(.+)"\];', rendered.out)}
    assert (
        shown
        == drawn
        == {
            ("articles", "clean"): "body, title",
            ("articles", "embedding"): "tags",  # past clean: its curve dips below the boxes
            ("clean", "embedding"): "text",
        }
    )
    for edge in browser.find_elements("css selector", "svg.graph g.link"):  # each label in the gap between its boxes
        box = edge.find_element("css selector", "text.edge-label").rect
        up, down = (
            browser.find_element("css selector", f'a.node[data-feature="{edge.get_attribute(end)}"] rect').rect
            for end in ("data-up", "data-down")
        )
        assert up["x"] + up["width"] <= box["x"]
        assert box["x"] + box["width"] <= down["x"]
    browser.save_screenshot(str(tmp_path / "edges.png"))


def test_a_run_opens_with_its_status_records_and_log(ui: Server, browser: WebDriver, tmp_path: Path) -> None:
    _open(browser, ui, "runs")
    rows = browser.find_elements("css selector", "table.runs tbody tr")
    assert len(rows) >= 3  # the demo's two runs and the fixture's ingest
    ingest = next(r for r in rows if r.text.endswith("tap-jsonl target-strata"))  # the newest ingest-only run
    assert "success" in ingest.text
    assert f"articles {60}" in ingest.text  # records per stream
    ingest.find_element("css selector", "td a").click()
    log = wait_for_element(browser, "pre#log")
    assert "stream articles -> feature articles: 60 records, 0 added, " in log.text  # target-strata's line
    assert browser.find_element("css selector", "h1 .badge").text == "success"
    browser.save_screenshot(str(tmp_path / "run.png"))


def test_searching_a_sample_id_shows_its_lineage(ui: Server, browser: WebDriver, tmp_path: Path) -> None:
    _open(browser, ui)
    search = browser.find_element("css selector", "form.search")
    feature = search.find_element("name", "feature")
    feature.clear()
    feature.send_keys("embedding")
    search.find_element("name", "id").send_keys("3")
    search.find_element("css selector", "button").click()
    wait_for(lambda: browser.find_elements("css selector", "section.step"), "the lineage of sample 3")
    steps = browser.find_elements("css selector", "section.step")
    assert [s.get_attribute("data-feature") for s in steps] == ["articles", "clean", "embedding"]
    assert [_text_of(s, "h2 .badge") for s in steps] == ["present", "stale", "up to date"]
    assert "id=3: up to date upstream not in sync: clean stale" in browser.find_element("tag name", "main").text
    fields = {
        r.find_element("css selector", "td").text: r.text for r in steps[1].find_elements("css selector", "tbody tr")
    }
    assert "upstream field articles.body changed in `articles` id=3 (changed)" in fields["text"]  # one of the 5 bodies
    assert "stale" in fields["text"]
    assert "up to date" in fields["headline"]
    browser.save_screenshot(str(tmp_path / "why.png"))

    _open(browser, ui, "sample?feature=embedding&id=9999")
    assert _text(browser, "p.error") == (
        "no sample id=9999 in `embedding` nor its upstreams (`articles`, `clean`) in store `local`; "
        "check the ids, and that this is the store that holds them"
    )
    _open(browser, ui, "sample?feature=nope&id=3")
    assert (
        "no feature `nope` in the graph (features: articles, clean, embedding)"
        in browser.find_element("css selector", "p.error").text
    )


def test_the_page_refreshes_itself_while_a_run_goes_on(
    ui: Server, demo: Demo, browser: WebDriver, tmp_path: Path
) -> None:
    _open(browser, ui)  # the graph read once while nothing runs (whatever test ran before on this worker)
    _open(browser, ui, "runs")
    with RunHistory.open(Project.find(demo.root)) as history:
        run = history.start("dev:manual", None, ["features:build"])
        try:
            wait_for(lambda: "running" in _text(browser, "#live"), "the live line to show the run")
            wait_for(lambda: run.run_id[:8] in _text(browser, "table.runs tbody tr"), "the run, in place")
            assert "running" in _text(browser, "table.runs tbody tr")
            browser.save_screenshot(str(tmp_path / "running.png"))
            _open(browser, ui)  # the graph, while the store may be written: what it read last, said so
            assert f"run {run.run_id[:8]} is running: staleness as read at" in _text(browser, "p.note")
            assert _fields(browser, "clean") == {"text": "5 stale", "headline": "in sync"}
            _open(browser, ui, "runs")
        finally:
            run.finish("success")
    wait_for(lambda: "idle" in _text(browser, "#live"), "the live line to go idle")
    wait_for(lambda: "success" in _text(browser, "table.runs tbody tr"), "the run's end, in place")
    assert int(browser.find_element("tag name", "body").get_attribute("data-refreshed") or 0) >= 1


def test_the_demo_ends_with_the_one_command_that_opens_its_page(demo: Demo) -> None:
    last = demo.out.splitlines()[-1]
    assert last == f"see its graph, runs and any sample's lineage in your browser: strata -C {demo.root} ui"


def test_the_state_page_lists_the_state_ids_and_links_their_runs(ui: Server, browser: WebDriver) -> None:
    _open(browser, ui, "state")
    rows = browser.find_elements("css selector", "table.states tbody tr")
    assert [r.find_element("css selector", "td").text for r in rows] == ["dev:tap-jsonl-to-target-strata"]
    rows[0].find_element("css selector", "a").click()
    wait_for(lambda: _text(browser, "h1") == "Runs of dev:tap-jsonl-to-target-strata", "the runs of that state id")
    assert len(browser.find_elements("css selector", "table.runs tbody tr")) == 3  # the demo's two and one ingest

"""`strata ui` as a server: GET only, loopback, escaping, no secret shown, and bad input as one line."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.history import RunHistory
from strata.project.project import Project
from tests.helpers import Cli, run_strata, wait_for, write_project
from tests.ui.conftest import Demo, Server, start_ui

if TYPE_CHECKING:
    from collections.abc import Iterator

    from selenium.webdriver.remote.webdriver import WebDriver

SCRIPT = "<script>document.title='pwned'</script>"
IMAGE = "<img src=x onerror=\"document.title='pwned'\">"
PASSWORD = "s3cr3t-Passw0rd"
PG_PASSWORD = "pg-Secr3t-pw"

FEATURES = f"""
import polars as pl
import strata as st


class Docs(st.Feature, spec=st.FeatureSpec("docs", id_columns=["doc"], fields=["body"],
                                           description={SCRIPT!r})):
    pass


class Parsed(st.Feature, spec=st.FeatureSpec("parsed", id_columns=["doc"], deps=[Docs], description={IMAGE!r},
        fields=[st.FieldSpec("words", deps=[st.FieldDep(Docs, ["body"])])])):
    batch_size = 1

    def compute(self, inputs):
        docs = inputs[Docs]
        if any("<" in d for d in docs["doc"].to_list()):
            raise ValueError("cannot parse " + {SCRIPT!r})
        return docs.select("doc", pl.col("body").str.len_chars().alias("words"))
"""

PROJECT = f"""\
version: 1
features: {{entrypoints: [feats], store: local}}
plugins:
  extractors:
    - name: tap-leaky
      executable: tap-leaky
      settings: [{{name: password, kind: password}}]
      config: {{password: {PASSWORD}}}
stores:
  local: {{type: duckdb, path: .strata/metadata.duckdb}}
  pg: {{type: postgres, uri: "postgresql://admin:{PG_PASSWORD}@127.0.0.1:9/features"}}
"""

DOCS = ["a", "b", SCRIPT, IMAGE]


def _get(url: str, method: str = "GET", host: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})  # noqa: S310 - a local test server
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose feature descriptions, sample ids, errors, streams and log lines are markup, with secrets."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "feats.py").write_text(textwrap.dedent(FEATURES))
    write_project(root, PROJECT)
    body = [f"text of {d}" for d in DOCS]
    frame = pl.DataFrame({"doc": DOCS, "body": body, "strata_dv__body": [sample_hash("md5", [b]) for b in body]})
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("docs", frame)
    built = run_strata("build", cwd=root)
    assert built.code == 1, built.err  # the two samples with markup in their ids fail, and are recorded
    log = root / ".strata" / "logs" / "leaky.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"tap-leaky | connecting with {PASSWORD}\ntap-leaky | {SCRIPT}\n")
    with RunHistory.open(project) as history:
        run = history.start("dev:tap-leaky-to-target-strata", "dev", ["tap-leaky", "target-strata"], log)
        run.set_records({SCRIPT: 3})
        run.finish("failed", f"tap-leaky failed: password {PASSWORD} refused {SCRIPT}")
    return root


@pytest.fixture(scope="module")
def hostile_ui(hostile: Path) -> Iterator[Server]:
    server = start_ui(hostile)
    yield server
    server.stop()


PAGES = ["", "feature?key=parsed", "feature?key=docs", "runs", "errors", "state", "api/live"]


def _run_id(root: Path) -> str:
    with RunHistory.open(Project(root)) as history:
        return history.list(limit=1)[0].run_id


def test_every_value_is_escaped_and_no_secret_is_shown(hostile: Path, hostile_ui: Server) -> None:
    pages = [*PAGES, f"run?id={_run_id(hostile)}", f"feature?key={SCRIPT}", f"sample?feature=parsed&id={SCRIPT}"]
    for page in pages:
        status, text, headers = _get(hostile_ui.url + quote(page, safe="?=&"))
        assert status in (200, 404), (page, status, text)
        assert "<script>document" not in text, page  # escaped wherever it shows
        assert "<img src=x" not in text, page
        assert PASSWORD not in text, page
        assert PG_PASSWORD not in text, page
        assert "script-src 'self'" in headers["content-security-policy"]
    _, errors, _ = _get(hostile_ui.url + "errors")
    assert errors.count("cannot parse &lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;") == 2
    _, run, _ = _get(hostile_ui.url + f"run?id={_run_id(hostile)}")
    assert "tap-leaky | connecting with (redacted)" in run  # the run's plugin secrets, as `strata runs show`
    assert "password (redacted) refused" in run


def test_hostile_text_runs_no_script_in_the_browser(
    hostile: Path, hostile_ui: Server, browser: WebDriver, tmp_path: Path
) -> None:
    for page in ["", "feature?key=parsed", "errors", "runs", f"run?id={_run_id(hostile)}"]:
        browser.get(hostile_ui.url + page)
        wait_for(lambda: browser.find_elements("id", "main"), page)
        assert browser.title != "pwned", page
        assert "pwned" not in str(browser.execute_script("return document.title"))
    browser.get(hostile_ui.url + "errors")
    wait_for(lambda: browser.find_elements("css selector", "table.failures"), "the build errors")
    rows = browser.find_elements("css selector", "table.failures tbody tr")
    assert sorted(r.find_elements("css selector", "td")[2].text for r in rows) == sorted([SCRIPT, IMAGE])
    assert all("cannot parse <script>" in r.text for r in rows)  # shown as text, with since when and which run
    browser.save_screenshot(str(tmp_path / "errors.png"))


def test_the_page_changes_nothing_it_answers_get_only(hostile: Path, hostile_ui: Server) -> None:
    for page in [*PAGES, "sample?feature=parsed&id=a"]:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert _get(hostile_ui.url + page, method)[0] == 405, (page, method)
    assert _get(hostile_ui.url + "static/ui.js")[0] == 200
    assert _get(hostile_ui.url + "static/..%2Fapp.py")[0] == 404


def test_on_loopback_it_answers_only_loopback_host_names(hostile_ui: Server) -> None:
    assert hostile_ui.url.startswith("http://127.0.0.1:")
    assert _get(hostile_ui.url, host="localhost")[0] == 200
    assert _get(hostile_ui.url, host="attacker.example")[0] == 400  # a rebound DNS name reads nothing


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("127.0.0.2", "127.0.0.2"), ("::1", "[::1]")],
)
def test_a_loopback_host_still_answers_only_loopback_host_names_without_a_warning(
    hostile: Path, host: str, address: str
) -> None:
    """`--host 127.0.0.1` serves this machine only, as no --host does: a DNS name rebound to it reads nothing."""
    server = start_ui(hostile, "--host", host)
    try:
        assert server.url.startswith(f"http://{address}:")
        own = _get(server.url, host=server.url.split("/")[2])[0]  # the bound address itself, port and all
        named = _get(server.url, host="localhost")[0]
        rebound = _get(server.url, host="attacker.example")[0]
    finally:
        code, err = server.stop()
    assert (own, named, rebound) == (200, 200, 400)
    assert (code, err) == (0, "")  # no warning: loopback


def test_a_store_that_cannot_be_opened_is_a_message_on_the_page(hostile: Path) -> None:
    server = start_ui(hostile, "--store", "pg")
    try:
        status, text, _ = _get(server.url)
    finally:
        server.stop()
    assert status == 200
    assert "PostgreSQL store `pg`: the connection failed while connecting: connection failed" in text
    assert PG_PASSWORD not in text
    assert 'data-feature="parsed"' in text  # the graph is drawn, without staleness


def test_a_port_in_use_is_one_line(hostile: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_strata("ui", "--port", str(port), cwd=hostile, timeout=60)
    assert done.code == 1
    assert done.err == (
        f"strata: error: port {port} on 127.0.0.1 is in use; "
        "stop what listens there, or choose another with --port (0 picks a free one)\n"
    )


def test_an_unknown_store_is_one_line(strata: Cli, hostile: Path) -> None:
    done = strata("-C", str(hostile), "ui", "--store", "nope")
    assert done.code == 2
    assert done.err == "strata: error: no store named `nope`; stores in strata.yml: local, pg\n"


def test_another_host_warns_in_one_line(hostile: Path) -> None:
    server = start_ui(hostile, "--host", "0.0.0.0")  # noqa: S104 - what the warning is about
    try:
        assert server.url.startswith("http://127.0.0.1:")  # 0.0.0.0 is every interface: this machine's is printed
        port = server.url.rsplit(":", 1)[1].strip("/")
        assert _get(f"http://127.0.0.1:{port}/", host="my-machine.local")[0] == 200  # any Host header then
    finally:
        code, err = server.stop()
    assert err.splitlines()[0] == (
        "strata: warning: serving on 0.0.0.0: anyone who can reach this machine can read the page "
        "(there is no login); leave out --host to serve on 127.0.0.1 only"
    )
    assert code == 0


@pytest.mark.parametrize(
    ("host", "address", "bound"),
    [("0.0.0.0", "127.0.0.1", "0.0.0.0"), ("::", "[::1]", "[::]")],  # noqa: S104 - what is tested
)
def test_a_wildcard_host_prints_an_address_a_browser_can_open(
    hostile: Path, host: str, address: str, bound: str
) -> None:
    """`--host 0.0.0.0` (or `::`) listens on every interface: it prints this machine's address, and says so."""
    server = start_ui(hostile, "--host", host)
    try:
        port = server.url.rsplit(":", 1)[1].strip("/")
        assert server.line == (
            f"strata ui: http://{address}:{port}/ (listening on every interface, {bound}:{port}; "
            "read-only; Ctrl-C stops)\n"
        )
        assert _get(server.url)[0] == 200  # the printed address opens the page
    finally:
        code, err = server.stop()
    assert err.splitlines()[0] == (
        f"strata: warning: serving on {host}: anyone who can reach this machine can read the page "
        "(there is no login); leave out --host to serve on 127.0.0.1 only"
    )
    assert code == 0


def test_without_host_it_serves_loopback_and_stops_cleanly(hostile: Path) -> None:
    server = start_ui(hostile)
    assert server.url.startswith("http://127.0.0.1:")
    code, err = server.stop()
    assert (code, err) == (0, "")


def test_while_a_build_holds_the_store_the_page_says_so_and_keeps_its_last_reading(
    hostile: Path, hostile_ui: Server
) -> None:
    from strata.build.lock import build_lock
    from strata.features.project import store_config

    _, before, _ = _get(hostile_ui.url)
    failed = '<span class="badge failed">2 failed</span>'  # parsed.words's badge: counted as `graph render` does
    assert failed in before  # the two samples whose compute failed are failed, not stale
    with build_lock(store_config(Project(hostile))):
        _, live, _ = _get(hostile_ui.url + "api/live")
        assert f"build running (pid {os.getpid()})" in live
        _, during, _ = _get(hostile_ui.url)
    assert f"a build is running on store `local` (pid {os.getpid()}): staleness as read at" in during
    assert failed in during  # what it read last, without opening the store the build writes
    _, after, _ = _get(hostile_ui.url + "api/live")
    assert "build running" not in after


def test_the_page_of_a_new_project_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "new"
    (root / "feats.py").parent.mkdir()
    (root / "feats.py").write_text(textwrap.dedent(FEATURES))
    write_project(root, "version: 1\nfeatures: {entrypoints: [feats]}\n")
    before = _files(root)
    server = start_ui(root)
    try:
        pages = {page: _get(server.url + page) for page in ["", "runs", "errors", "state", "api/live", "run?id=abc"]}
    finally:
        server.stop()
    assert {page: answer[0] for page, answer in pages.items()} == dict.fromkeys(pages, 200) | {"run?id=abc": 404}
    assert "no run with id `abc`; this project has no run history yet" in pages["run?id=abc"][1]
    assert "no runs yet" in pages["runs"][1]
    assert "0 samples" in pages[""][1]
    assert _files(root) == before  # no system database, no store file, no state directory


def _files(root: Path) -> list[Path]:
    """What a project holds, less caches (Python's bytecode, the parsed project file every command keeps)."""
    caches = ("__pycache__", "cache")
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not set(caches) & set(p.parts))


GONE_FEATURES = """
import polars as pl
import strata as st


class Docs(st.Feature, spec=st.FeatureSpec("docs", id_columns=["doc"], fields=["body"])):
    pass


class Parsed(st.Feature, spec=st.FeatureSpec("parsed", id_columns=["doc"], deps=[Docs],
        fields=[st.FieldSpec("words", deps=[st.FieldDep(Docs, ["body"])])])):
    batch_size = 1

    def compute(self, inputs):
        docs = inputs[Docs]
        if "boom" in docs["doc"].to_list():
            raise ValueError("cannot parse boom")
        return docs.select("doc", pl.col("body").str.len_chars().alias("words"))
"""


def _project(root: Path, features: str, bodies: dict[str, str]) -> Project:
    """A project of ``features`` whose root `docs` holds ``bodies`` (doc -> body), as ingest writes it."""
    root.mkdir()
    (root / "feats.py").write_text(textwrap.dedent(features))
    write_project(
        root,
        "version: 1\nfeatures: {entrypoints: [feats], store: local}\n"
        "stores:\n  local: {type: duckdb, path: .strata/metadata.duckdb}\n",
    )
    _docs(Project(root), bodies)
    return Project(root)


def _docs(project: Project, bodies: dict[str, str]) -> None:
    frame = pl.DataFrame({"doc": list(bodies), "body": list(bodies.values())})
    frame = frame.with_columns(strata_dv__body=pl.Series([sample_hash("md5", [b]) for b in bodies.values()]))
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("docs", frame)


def test_a_failed_sample_deleted_upstream_is_no_build_error_on_the_page(tmp_path: Path) -> None:
    """A sample that failed, then left its upstream, is nothing to build: the page agrees with `graph render`."""
    project = _project(tmp_path / "gone", GONE_FEATURES, {"a": "x", "boom": "y"})
    root = project.root
    assert run_strata("build", cwd=root).code == 1  # boom fails, and is recorded
    server = start_ui(root)
    try:
        _, failing, _ = _get(server.url)
        with make_store(project, graph=load_graph(project)) as store:
            store.delete("docs", pl.DataFrame({"doc": ["boom"]}))
        _, graph, _ = _get(server.url)  # before any build: boom is no longer to compute
        _, errors, _ = _get(server.url + "errors")
        _, feature, _ = _get(server.url + "feature?key=parsed")
        again = run_strata("build", cwd=root)
        _, errors_after, _ = _get(server.url + "errors")
    finally:
        server.stop()
    assert "1 failed" in failing
    rendered = run_strata("graph", "render", "--format", "mermaid", cwd=root)
    assert "failed" not in rendered.out.split("classDef failed", 1)[1].split("\n", 1)[1]  # render: nothing failed
    assert "1 failed" not in graph
    assert "cannot parse boom" not in errors
    assert "cannot parse boom" not in feature
    assert again.code == 0, again.err
    assert "cannot parse boom" not in errors_after
    with RunHistory.open(project) as history:
        assert history.failures() == []  # the build forgot the failure of a sample it never computes again


SLOW_FEATURES = """
import fcntl
import os
import time

import polars as pl
import strata as st


def _until_a_build_holds(lock):
    \"\"\"Wait (at most 30 s) until a build holds ``lock``, the store's build lock: it opens the store next.\"\"\"
    deadline = time.monotonic() + 30
    with open(lock) as file:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(file, fcntl.LOCK_UN)
            except BlockingIOError:
                return
            time.sleep(0.02)


class Docs(st.Feature, spec=st.FeatureSpec("docs", id_columns=["doc"], fields=["body"])):
    pass


class Parsed(st.Feature, spec=st.FeatureSpec("parsed", id_columns=["doc"], deps=[Docs],
        fields=[st.FieldSpec("words", deps=[st.FieldDep(Docs, ["body"])])])):

    @classmethod
    def load_input(cls, upstream):
        lock = os.environ.get("SLOW_READ_UNTIL_BUILD")
        if lock:  # the page's process only: its status read goes on while a build starts
            _until_a_build_holds(lock)
            time.sleep(0.5)  # and a little after: the build meets the store held open
        return upstream[Docs.key()]

    def compute(self, inputs):
        return inputs[Docs].select("doc", pl.col("body").str.len_chars().alias("words"))
"""


def test_a_build_started_while_the_page_reads_the_store_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page holds the DuckDB file open (read-only) while it reads; a build started then waits, not fails."""
    import threading

    project = _project(tmp_path / "slow", SLOW_FEATURES, {"a": "x", "b": "y"})
    root = project.root
    assert run_strata("build", cwd=root).code == 0
    _docs(project, {"a": "x", "b": "changed"})
    monkeypatch.setenv("SLOW_READ_UNTIL_BUILD", str(root / ".strata" / "metadata.duckdb.build.lock"))
    server = start_ui(root)
    monkeypatch.delenv("SLOW_READ_UNTIL_BUILD")
    answers: list[tuple[int, str, dict[str, str]]] = []
    try:
        reading = threading.Thread(target=lambda: answers.append(_get(server.url)))
        reading.start()
        wait_for(lambda: _reads_store(server), "the page to open the store")
        built = run_strata("build", cwd=root, timeout=120)
        reading.join(timeout=60)
    finally:
        server.stop()
    assert built.code == 0, built.err
    assert [status for status, _, _ in answers] == [200]
    assert "1 stale" in answers[0][1]  # the page read its status while the build waited


def _reads_store(server: Server) -> bool:
    """Whether the page's process has the store file open (Linux: its open files in /proc)."""
    opened = []
    for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            opened.append(str(fd.readlink()))
    return any(name.endswith("metadata.duckdb") for name in opened)


def test_the_graph_names_samples_to_remove_in_the_words_of_strata_status(tmp_path: Path) -> None:
    """A feature's line on the graph counts what `strata status` counts: to add, to recompute, to remove."""
    project = _project(tmp_path / "words", GONE_FEATURES, {"a": "x", "c": "z"})
    root = project.root
    assert run_strata("build", cwd=root).code == 0
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("docs", pl.DataFrame({"doc": ["c"]}))
    server = start_ui(root)
    try:
        _, graph, _ = _get(server.url)
    finally:
        server.stop()
    assert "2 samples · 1 to remove" in graph
    status = run_strata("status", "parsed", "--json", cwd=root)
    assert [f["removed"] for f in json.loads(status.out)["features"] if f["feature"] == "parsed"] == [1]


def _graph_fields(browser: WebDriver, feature: str) -> dict[str, tuple[str, str, str]]:
    """Per field of ``feature``'s box on the graph: its class, what it shows, and its tooltip."""
    box = browser.find_element("css selector", f'a.node[data-feature="{feature}"]')
    return {
        g.get_attribute("data-field") or "": (
            (g.get_attribute("class") or "").replace("field", "").strip(),
            g.find_element("css selector", "text.count").text,
            g.find_element("css selector", "title").get_attribute("textContent") or "",
        )
        for g in box.find_elements("css selector", "g.field")
    }


def test_a_failed_sample_is_counted_failed_on_the_page_as_graph_render_counts_it(
    tmp_path: Path, browser: WebDriver
) -> None:
    """The page's per-field counts are `graph render`'s: a sample whose build failed is failed, not stale."""
    project = _project(tmp_path / "failing", GONE_FEATURES, {"a": "x", "b": "y", "boom": "z"})
    root = project.root
    assert run_strata("build", cwd=root).code == 1  # boom fails, and is recorded
    _docs(project, {"a": "x", "b": "changed", "boom": "z"})  # b is stale: its body changed
    rendered = run_strata("graph", "render", "--format", "text", cwd=root)
    counts = run_strata("--json", "graph", "render", "--format", "text", cwd=root)
    server = start_ui(root)
    try:
        browser.get(server.url)
        wait_for(lambda: browser.find_elements("css selector", "svg.graph a.node"), "the graph")
        graph = _graph_fields(browser, "parsed")
        box = browser.find_element("css selector", 'a.node[data-feature="parsed"]').get_attribute("class")
        browser.get(server.url + "feature?key=parsed")
        wait_for(lambda: browser.find_elements("css selector", "table.fields"), "the page of parsed")
        row = browser.find_element("css selector", "table.fields tbody tr").text
    finally:
        server.stop()
    assert "  words  v1  <- docs.body  [1 in sync, 1 stale, 1 failed: docs.body 1, new 1]" in rendered.out.splitlines()
    words = json.loads(counts.out)["status"]["parsed"]["fields"]["words"]
    assert (words["state"], words["in_sync"], words["stale"], words["failed"]) == ("failed", 1, 1, 1)
    assert graph == {"words": ("failed", "1 stale, 1 failed", "words: 1 in sync, 1 stale, 1 failed")}
    assert (box or "").split() == ["node", "failed"]
    assert row == "words 1 docs.body 1 stale, 1 failed docs.body (1), new (1)"


LINKED_FEATURES = """
import polars as pl
import strata as st


class Pages(st.Feature, spec=st.FeatureSpec("pages", id_columns=["site", "path"], fields=["html"])):
    pass


class Parsed(st.Feature, spec=st.FeatureSpec("parsed", id_columns=["site", "path"], deps=[Pages],
        fields=[st.FieldSpec("words", deps=[st.FieldDep(Pages, ["html"])])])):
    batch_size = 1

    def compute(self, inputs):
        pages = inputs[Pages]
        if any("," in p for p in pages["path"].to_list()):
            raise ValueError("cannot parse a path with a comma")
        return pages.select("site", "path", pl.col("html").str.len_chars().alias("words"))


class Video(st.Feature, spec=st.FeatureSpec("video", id_columns=["sample_uid"], fields=["count"])):
    pass


class Frames(st.Feature, spec=st.FeatureSpec("frames", id_columns=["sample_uid", "frame"],
        deps=[st.FeatureDep(Video, st.Lineage.expansion(["sample_uid"]))],
        fields=[st.FieldSpec("pixels", deps=[st.FieldDep(Video, ["count"])])])):
    batch_size = 1

    def compute(self, inputs):
        videos = inputs[Video]
        if "v,1" in videos["sample_uid"].to_list():
            raise ValueError("cannot split video v,1")
        rows = [(v, f, f) for v, n in zip(videos["sample_uid"], videos["count"]) for f in range(n)]
        return pl.DataFrame(rows, schema={"sample_uid": pl.String, "frame": pl.Int64, "pixels": pl.Int64},
                            orient="row")
"""


def _linked_project(root: Path) -> Project:
    """:data:`LINKED_FEATURES` in stores `local` and `second`, built in `local`: two samples fail there."""
    root.mkdir()
    (root / "feats.py").write_text(LINKED_FEATURES)
    write_project(
        root,
        "version: 1\nfeatures: {entrypoints: [feats], store: local}\nstores:\n"
        "  local: {type: duckdb, path: .strata/metadata.duckdb}\n  second: {type: duckdb, path: .strata/second.duckdb}\n",
    )
    project = Project(root)
    html = ["<p>", "<i>"]
    pages = pl.DataFrame({"site": ["s1", "s1"], "path": ["/a", "/a,b"], "html": html})
    pages = pages.with_columns(strata_dv__html=pl.Series([sample_hash("md5", [h]) for h in html]))
    videos = pl.DataFrame({"sample_uid": ["v0", "v,1"], "count": [2, 3]})
    videos = videos.with_columns(strata_dv__count=pl.Series([sample_hash("md5", [str(c)]) for c in [2, 3]]))
    for name in ("local", "second"):
        with make_store(project, name, graph=load_graph(project)) as store:
            store.write_changed("pages", pages)
            store.write_changed("video", videos)
    assert run_strata("build", cwd=root).code == 1  # parsed s1,"/a,b" and frames of video "v,1" fail in local
    return project


def _sample_links(page: str) -> list[str]:
    """The ``/sample`` links of a page, unescaped."""
    import html
    import re

    return [html.unescape(href) for href in re.findall(r'href="(/sample\?[^"]*)"', page)]


def test_the_build_errors_page_shows_the_failures_of_its_store_only(tmp_path: Path) -> None:
    """A failure of store `local` is not one of `second` (whose why links would read `second`), and the page says so."""
    root = _linked_project(tmp_path / "two").root
    server = start_ui(root, "--store", "second")
    try:
        _, second, _ = _get(server.url + "errors")
    finally:
        server.stop()
    server = start_ui(root)
    try:
        _, local, _ = _get(server.url + "errors")
    finally:
        server.stop()
    assert "cannot parse a path with a comma" in local
    assert "cannot parse a path with a comma" not in second
    assert "cannot split video" not in second
    assert "build errors of store `second`" in second
    assert "build errors of store `local`" in local


def test_a_failed_sample_links_to_a_why_that_reads_its_ids_back(tmp_path: Path) -> None:
    """A value with a comma is quoted as `strata why` reads it; an expansion's failure (a parent) links to the parent."""
    root = _linked_project(tmp_path / "linked").root
    server = start_ui(root)
    try:
        _, errors, _ = _get(server.url + "errors")
        links = _sample_links(errors)
        answers = {link: _get(server.url + link.lstrip("/")) for link in links}
    finally:
        server.stop()
    assert sorted(links) == sorted(
        [
            "/sample?" + "&".join([f"feature={f}", "id=" + quote(i, safe="")])
            for f, i in [("parsed", 'site=s1,path="/a,b"'), ("video", 'sample_uid="v,1"')]
        ]
    ), links
    for link, (code, page, _) in answers.items():
        assert code == 200, (link, page)
        assert 'class="error"' not in page, (link, page)
    parsed = next(page for link, (_, page, _) in answers.items() if "parsed" in link)
    assert "site=s1,path=&quot;/a,b&quot;: " in parsed  # the sample's heading: the word it was asked with
    assert "its last build failed (since " in parsed  # the lineage names the failure, as strata why does
    video = next(page for link, (_, page, _) in answers.items() if "video" in link)
    assert "sample_uid=&quot;v,1&quot;: " in video
    assert '<a href="/feature?key=frames">frames</a></td><td><a href="/sample?feature=video&amp;id=' in errors
    assert '">v,1 (parent video)</a>' in errors  # says it is the parent's why


def test_a_long_log_says_it_shows_only_its_last_lines(demo: Demo, tmp_path: Path) -> None:
    """A run's log past the page's 2000 lines: the page says how many it shows of how many, and where the rest is."""
    import shutil

    from strata.history import RunHistory
    from strata.project.project import Project

    root = tmp_path / "copy"
    shutil.copytree(demo.root, root)
    with RunHistory.open(Project(root)) as history:  # the newest run with a log (other tests may add runs)
        run, path = next((r, p) for r in history.list() if (p := history.log_file(r)) is not None and p.is_file())
    with path.open("a", encoding="utf-8") as log:
        log.writelines(f"line {i}\n" for i in range(3000))
    total = len(path.read_text(encoding="utf-8").splitlines())
    server = start_ui(root)
    try:
        code, page, _ = _get(f"{server.url}run?id={run.id}")
    finally:
        server.stop()
    assert code == 200, page
    assert f"the last 2000 of its {total} lines; the whole log is {path}" in page
    assert "line 2999" in page
    assert "line 999\n" not in page

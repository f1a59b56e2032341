"""The pages of ``strata ui`` as HTML strings, from the plain data of :mod:`strata.ui.data`.

Every value (feature keys, sample ids, run ids, state ids, log lines, errors) is user data and
goes through :func:`esc` (text and attributes alike); links are built with :func:`link`, whose
query values are URL-quoted and then escaped. No inline script or style: the page's
Content-Security-Policy allows only the package's own ``/static/`` files.
"""

from __future__ import annotations

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from strata.ui import svg
from strata.views.why import behind_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from strata.views.graph import FeatureState

NAV = (
    ("graph", "/", "Graph"),
    ("runs", "/runs", "Runs"),
    ("errors", "/errors", "Build errors"),
    ("state", "/state", "State"),
)


def esc(value: Any) -> str:
    """``value`` as HTML text or attribute value: ``& < > " '`` escaped; None as ``-``."""
    return "-" if value is None else escape(str(value), quote=True)


def link(path: str, text: Any, css: str = "", **query: Any) -> str:
    """``<a href="path?query">text</a>`` with every part escaped."""
    href = path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
    kind = f' class="{esc(css)}"' if css else ""
    return f'<a href="{esc(href)}"{kind}>{esc(text)}</a>'


def table(head: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """A table whose cells are HTML already (escape values with :func:`esc` or :func:`link`)."""
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{esc(css)}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def notice(text: str | None, css: str = "note") -> str:
    """A line above the content: a note, or an error (``css="error"``)."""
    return f'<p class="{esc(css)}" role="status">{esc(text)}</p>' if text else ""


def layout(title: str, active: str, body: str, live: dict[str, Any] | None, features: Sequence[str] = ()) -> str:
    """A whole page: header with navigation, sample search and the live indicator, then ``body``."""
    current = ' class="active"'
    nav = "".join(
        f'<a href="{esc(href)}"{current if name == active else ""}>{esc(text)}</a>' for name, href, text in NAV
    )
    options = "".join(f'<option value="{esc(key)}"></option>' for key in features)
    token = esc((live or {}).get("token", ""))
    chosen = esc(features[-1] if features else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strata · {esc(title)}</title>
<link rel="stylesheet" href="/static/ui.css">
<script src="/static/ui.js" defer></script>
</head>
<body data-token="{token}">
<header>
<a class="brand" href="/">strata</a>
<nav>{nav}</nav>
<form class="search" action="/sample" method="get">
<input name="feature" list="feature-keys" placeholder="feature" aria-label="feature" value="{chosen}">
<datalist id="feature-keys">{options}</datalist>
<input name="id" placeholder="sample id" aria-label="sample id" required>
<button type="submit">why</button>
</form>
<span id="live" class="live">{live_text(live)}</span>
</header>
<main id="main">
{body}
</main>
</body>
</html>
"""


def live_text(live: dict[str, Any] | None) -> str:
    """The live indicator: what runs now, or idle."""
    if live is None:
        return ""
    parts = [
        f"run {esc(r['run_id'][:8])} running ({esc(sum(r['records'].values()))} records, {esc(r['duration'])})"
        for r in live["running"]
    ]
    if live.get("building"):
        parts.append(f"build running ({esc(live['building'])})")
    return ('<span class="dot busy"></span>' + "; ".join(parts)) if parts else '<span class="dot"></span>idle'


def error_page(title: str, active: str, text: str, live: dict[str, Any] | None, features: Sequence[str] = ()) -> str:
    """A page that could not be read: the one-line reason instead of its content."""
    return layout(title, active, f"<h1>{esc(title)}</h1>{notice(text, 'error')}", live, features)


# -- graph -----------------------------------------------------------------------------------


def graph_body(data: dict[str, Any]) -> str:
    """The graph (SVG), then a table of every feature and field with its staleness."""
    rows = []
    for feature in data["features"]:
        for index, name in enumerate(feature["fields"]):
            rows.append(
                [
                    link(svg.feature_href(feature["key"]), feature["key"]) if index == 0 else "",
                    esc(svg.subtitle(feature)) if index == 0 else "",
                    esc(name),
                    _staleness(feature.get("status"), name),
                    esc(svg.field_causes(feature.get("status"), name)),
                ]
            )
    return (
        f'<h1>Feature graph</h1><p class="meta">store: {esc(data["store"])}</p>'
        + notice(data.get("note"))
        + (
            f'<div class="graph-box">{svg.render(data["features"], data["edges"])}</div>'
            if data["features"]
            else notice("no features: name the modules that define them in features.entrypoints of strata.yml")
        )
        + table(["feature", "samples", "field", "staleness", "causes"], rows, "features")
    )


# -- one feature -------------------------------------------------------------------------------


def feature_body(data: dict[str, Any]) -> str:
    """A feature's definition, its staleness per field with causes, its failed samples and latest builds."""
    feature, status = data["feature"], data["status"]
    key = feature["key"]
    fields = [
        [
            esc(f["key"]),
            esc(f["code_version"]),
            esc(", ".join(f["inputs"]) or "(root)"),
            _staleness(status, f["key"]),
            esc(svg.field_causes(status, f["key"])),
        ]
        for f in feature["fields"]
    ]
    deps = [
        [link(svg.feature_href(d["feature"]), d["feature"]), esc(d["lineage"]), esc(", ".join(d["on"]))]
        for d in feature["deps"]
    ]
    counts = "status not read" if status is None else _counts(status)
    parts = [
        f'<h1>{esc(key)}</h1><p class="meta">{esc(feature["description"] or "")}</p>',
        f'<p class="meta">store: {esc(data["store"])} · <span id="counts">{esc(counts)}</span></p>',
        notice(data.get("note")),
        "<h2>Fields</h2>",
        table(["field", "code version", "inputs", "staleness", "causes"], fields, "fields"),
        "<h2>Upstreams</h2>" + (table(["feature", "lineage", "on"], deps) if deps else "<p>none: a root feature</p>"),
        "<h2>Downstream</h2><p>"
        + (", ".join(link(svg.feature_href(k), k) for k in feature["downstream"]) or "none")
        + "</p>",
        "<h2>Failed samples</h2>" + _failures(data["failures"], with_feature=False),
        "<h2>Latest builds</h2>"
        + (
            table(
                ["run", "started", "what it did"],
                [
                    [link("/run", b["run_id"][:8], id=b["run_id"]), esc(b["started"]), esc(b["summary"])]
                    for b in data["builds"]
                ],
            )
            if data["builds"]
            else "<p>none in the run history</p>"
        ),
        _search(key),
    ]
    return "".join(parts)


def _counts(status: dict[str, Any]) -> str:
    """``200 samples: 0 to add, 5 to recompute, 1 to remove`` in the feature's unit (parents of an expansion)."""
    state: FeatureState = status["state"]
    if status["root"]:
        return state.samples_text()
    counts = (("added", "to add"), ("changed", "to recompute"), ("removed", "to remove"))
    return f"{state.samples_text()}: " + ", ".join(state.count_text(status[key], words) for key, words in counts)


def _staleness(status: dict[str, Any] | None, name: str) -> str:
    """A field's badge: ``5 stale``, ``1 stale, 1 failed``, ``in sync`` (:func:`strata.ui.svg.field_cell`)."""
    shown, css, _ = svg.field_cell(status, name)
    return f'<span class="badge {esc(css)}">{esc(shown)}</span>'


def _search(feature: str, sample: str = "") -> str:
    return (
        '<form class="why" action="/sample" method="get"><h2>Why is a sample stale?</h2>'
        f'<input type="hidden" name="feature" value="{esc(feature)}">'
        f'<input name="id" placeholder="sample id" aria-label="sample id of {esc(feature)}" '
        f'value="{esc(sample)}" required>'
        '<button type="submit">why</button></form>'
    )


def _failures(failures: list[dict[str, Any]], *, with_feature: bool = True) -> str:
    if not failures:
        return "<p>none</p>"
    head = [*(["store", "feature"] if with_feature else []), "sample", "error", "since", "run"]
    rows = [
        [
            *([esc(f["store"]), link(svg.feature_href(f["feature"]), f["feature"])] if with_feature else []),
            _why_link(f),
            f'<span class="error-text">{esc(f["error"])}</span>',
            esc(f["since"]),
            link("/run", f["run_id"][:8], id=f["run_id"]) if f.get("run_id") else "-",
        ]
        for f in failures
    ]
    return table(head, rows, "failures")


def _why_link(failure: dict[str, Any]) -> str:
    """The failed sample linked to the why explaining it (:func:`strata.ui.data.why_of`): an expansion's parent's."""
    why = failure.get("why")
    if why is None:
        return esc(failure["sample"])
    feature, word, text = why
    return link("/sample", text, feature=feature, id=word)


# -- runs, errors, state -------------------------------------------------------------------------


def runs_body(data: dict[str, Any]) -> str:
    """The latest runs: status, start, duration, records per stream."""
    rows = [
        [
            link("/run", r["run_id"][:8], id=r["run_id"]),
            link("/runs", r["state_id"], state_id=r["state_id"]),
            f'<span class="badge {esc(r["status"])}">{esc(r["status"])}</span>',
            esc(r["started"]),
            esc(r["duration"]),
            esc(", ".join(f"{s} {n}" for s, n in sorted(r["records"].items())) or "0"),
            esc(" ".join(r["blocks"])),
        ]
        for r in data["runs"]
    ]
    title = "Runs" + (f" of {data['state_id']}" if data.get("state_id") else "")
    return f"<h1>{esc(title)}</h1>" + (
        table(["run", "state id", "status", "started", "duration", "records per stream", "blocks"], rows, "runs")
        if rows
        else "<p>no runs yet</p>"
    )


def run_body(data: dict[str, Any]) -> str:
    """One run: what it was, what it built, and its log."""
    run = data["run"]
    facts = [
        ("run", run["run_id"]),
        ("state id", run["state_id"]),
        ("environment", run["environment"]),
        ("blocks", " ".join(run["blocks"])),
        ("status", run["status"]),
        ("started", run["started"]),
        ("duration", run["duration"]),
        ("records", ", ".join(f"{s} {n}" for s, n in sorted(run["records"].items())) or "0"),
        ("error", run["error"]),
        ("log file", data["log_file"]),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    builds = "".join(f"<li>{esc(line)}</li>" for line in data["builds"])
    if data["log"] is None:
        log = notice("this run has no log file" if data["log_file"] is None else f"log missing: {data['log_file']}")
    else:
        log = notice(data.get("log_cut")) + f'<pre id="log" class="log">{esc(data["log"])}</pre>'
    return (
        f'<h1>Run {esc(run["run_id"][:8])} <span class="badge {esc(run["status"])}">{esc(run["status"])}</span></h1>'
        f'<table class="facts">{rows}</table>'
        + (f"<h2>Builds</h2><ul>{builds}</ul>" if builds else "")
        + f"<h2>Log</h2>{log}"
    )


def errors_body(data: dict[str, Any]) -> str:
    """Samples whose compute failed: which, why, since when."""
    where = f'<p class="meta">build errors of store `{esc(data["store"])}` (the page\'s, `--store`)</p>'
    return "<h1>Build errors</h1>" + where + notice(data.get("note")) + _failures(data["failures"])


def state_body(data: dict[str, Any]) -> str:
    """State ids with stored state."""
    rows = [[link("/runs", s["state_id"], state_id=s["state_id"]), esc(s["updated_at"])] for s in data["states"]]
    return f'<h1>State</h1><p class="meta">backend: {esc(data["backend"])}</p>' + (
        table(["state id", "updated"], rows, "states") if rows else "<p>no state stored</p>"
    )


# -- one sample --------------------------------------------------------------------------------

SHORT = 12
"""Characters of a data version shown (the JSON below has them whole)."""
STATUS_CLASS = {"present": "ok", "up to date": "ok", "stale": "stale", "to add": "stale", "to remove": "stale"}


def sample_body(feature: str, sample: str, data: dict[str, Any]) -> str:
    """The ``why`` view: per asked sample, its lineage from the roots down to ``feature``, field by field."""
    parts = [f"<h1>Why: {esc(feature)} {esc(sample)}</h1>", f'<p class="meta">store: {esc(data.get("store"))}</p>']
    parts.append(notice(data.get("note")))
    for found in data.get("samples", []):
        behind = behind_text((n["feature"], n["status"]) for n in found["lineage"][:-1])
        note = f" <small>upstream not in sync: {esc(behind)}</small>" if behind else ""
        parts.append(f"<h2>{esc(_ids(found['ids']))}: {_status(found['status'])}{note}</h2>")
        parts += [_node(node) for node in found["lineage"]]
    parts.append("<details><summary>JSON (as `strata why --json`)</summary>")
    parts.append(f'<pre class="json">{esc(json.dumps(data, indent=2, default=str))}</pre></details>')
    parts.append(_search(feature, sample))
    return "".join(parts)


def _ids(ids: dict[str, Any]) -> str:
    """A sample's ids as ``strata why`` prints them and reads them back (:func:`strata.views.why.id_word`)."""
    from strata.views.why import id_word

    return id_word(ids)


def _status(status: str) -> str:
    return f'<span class="badge {esc(STATUS_CLASS.get(status, "absent"))}">{esc(status)}</span>'


def _short(version: str | None) -> str:
    return "-" if version is None else esc(version[:SHORT])


def _node(node: dict[str, Any]) -> str:
    """One feature on the way: its status, where its row comes from, its fields with their causes."""
    facts = [f"written {esc(node['written_at'])}" if node.get("written_at") else "no row"]
    if node.get("source"):
        facts.append(f"from stream {esc(node['source']['stream'])}, record {esc(_ids(node['source']['key']))}")
    reads = [
        f"{esc(up['feature'])} "
        + esc(", ".join(_ids(i) for i in up["ids"]))
        + (f" (of {esc(up['total'])})" if up["total"] > len(up["ids"]) else "")
        for up in node.get("upstreams", [])
    ]
    if reads:
        facts.append("reads " + "; ".join(reads))
    whole = "".join(f"<li>{esc(c['text'])}</li>" for c in node.get("causes", []))
    rows = [
        [
            esc(f["field"]),
            _status("stale" if f["stale"] else "up to date"),
            _short(f["stored"]),
            _short(f["expected"]),
            esc(f["code_version"])
            + ("" if f["code_version"] == f["expected_code_version"] else f" → {esc(f['expected_code_version'])}"),
            "<br>".join(esc(c["text"]) for c in f["causes"]),
            link("/run", f["run"][:8], id=f["run"]) if f.get("run") else "",
        ]
        for f in node["fields"]
    ]
    title = f"{link(svg.feature_href(node['feature']), node['feature'])} {esc(_ids(node['ids']))}"
    return (
        f'<section class="step" data-feature="{esc(node["feature"])}"><h2>{title} {_status(node["status"])}</h2>'
        f'<p class="meta">{" · ".join(facts)}</p>'
        + (f"<ul>{whole}</ul>" if whole else "")
        + table(
            ["field", "state", "stored", "expected", "code version", "causes", "last changed by run"], rows, "lineage"
        )
        + "</section>"
    )

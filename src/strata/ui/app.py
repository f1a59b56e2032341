"""The Starlette application of ``strata ui``: GET-only pages, a live endpoint and the package's assets.

Each page reads through :mod:`strata.ui.data` under the source's lock (one request at a time),
in Starlette's thread pool. A failure becomes its one-line reason on the page (status 200 for
a store that cannot be read, 404 for a feature, run or sample that does not exist); nothing
shows a traceback. Every response carries a Content-Security-Policy that allows only the
package's own script and style, so even text that escaped escaping could not run.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from strata.errors import FeatureNotFoundError, RunNotFoundError, SampleNotFoundError, StrataError
from strata.ui import data, html

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ASSETS = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""Host names accepted on loopback (and the bound address): a page elsewhere cannot reach it by DNS rebinding."""


def create_app(source: data.Source, *, hosts: Sequence[str] | None = LOOPBACK_NAMES) -> Starlette:
    """The application serving ``source``, answering requests for the Host names ``hosts`` only (None: any)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Route

    pages: list[tuple[str, Callable[[Request], Response]]] = [
        ("/", lambda r: _page(source, r, "Graph", "graph", lambda: html.graph_body(data.graph_page(source)))),
        ("/feature", lambda r: _feature(source, r)),
        (
            "/runs",
            lambda r: _page(
                source, r, "Runs", "runs", lambda: html.runs_body(data.runs_page(source, _arg(r, "state_id") or None))
            ),
        ),
        (
            "/run",
            lambda r: _page(source, r, "Run", "runs", lambda: html.run_body(data.run_page(source, _arg(r, "id")))),
        ),
        (
            "/errors",
            lambda r: _page(source, r, "Build errors", "errors", lambda: html.errors_body(data.errors_page(source))),
        ),
        ("/state", lambda r: _page(source, r, "State", "state", lambda: html.state_body(data.state_page(source)))),
        ("/sample", lambda r: _sample(source, r)),
        ("/api/live", lambda _: _live(source)),
        ("/static/{name}", _asset),
    ]
    routes = [Route(path, endpoint, methods=["GET"]) for path, endpoint in pages]
    allowed = ["*"] if hosts is None else list(hosts)
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)])


def _arg(request: Request, name: str) -> str:
    return str(request.query_params.get(name, "")).strip()


def _features(source: data.Source) -> list[str]:
    """Feature keys for the search box; none when the graph cannot be read (the page says why)."""
    from strata.features.project import load_graph

    try:
        return [str(k) for k in load_graph(source.project()).topological_order()]
    except StrataError:
        return []


def _live_or_none(source: data.Source) -> dict[str, Any] | None:
    try:
        return data.live(source)
    except StrataError:
        return None


def _page(source: data.Source, request: Request, title: str, active: str, body: Callable[[], str]) -> Response:
    """Render ``body`` into the layout; a failure shows as its one line (404 for what does not exist)."""
    from starlette.responses import HTMLResponse

    del request
    with source.lock:
        live = _live_or_none(source)
        features = _features(source)
        try:
            text = html.layout(title, active, body(), live, features)
            status = 200
        except (FeatureNotFoundError, RunNotFoundError, SampleNotFoundError) as exc:
            text, status = html.error_page(title, active, data.message(exc), live, features), 404
        except StrataError as exc:
            text, status = html.error_page(title, active, data.message(exc), live, features), 200
        except Exception as exc:  # noqa: BLE001 - the page shows one line, never a traceback
            text, status = html.error_page(title, active, data.message(exc), live, features), 500
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _feature(source: data.Source, request: Request) -> Response:
    key = _arg(request, "key")
    return _page(source, request, key or "Feature", "graph", lambda: html.feature_body(data.feature_page(source, key)))


def _sample(source: data.Source, request: Request) -> Response:
    feature, sample = _arg(request, "feature"), _arg(request, "id")

    def body() -> str:
        return html.sample_body(feature, sample, data.sample_page(source, feature, sample))

    return _page(source, request, f"why {feature} {sample}", "graph", body)


def _live(source: data.Source) -> Response:
    from starlette.responses import JSONResponse

    with source.lock:
        try:
            answer: dict[str, Any] = data.live(source)
            answer["html"] = html.live_text(answer)
        except StrataError as exc:
            answer = {"error": data.message(exc), "running": [], "token": "", "html": ""}
    return JSONResponse(answer, headers=HEADERS)


def _asset(request: Request) -> Response:
    from starlette.responses import PlainTextResponse, Response

    name = str(request.path_params["name"])
    if name not in ASSETS:
        return PlainTextResponse("not found", status_code=404, headers=HEADERS)
    body = resources.files("strata.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=HEADERS)

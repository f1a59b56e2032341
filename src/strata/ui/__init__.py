"""``strata ui``: a read-only local web page of the graph, its staleness, runs, build errors and state.

- :mod:`strata.ui.data`: what each page shows, as plain data, read through the functions the CLI
  uses (``views.graph.status``, the run history, the state backend); no web library;
- :mod:`strata.ui.svg`: the graph as inline SVG, laid out by topological depth (no ``dot``);
- :mod:`strata.ui.html`: the pages, server-rendered, every value HTML-escaped;
- :mod:`strata.ui.app`: the Starlette application (GET only) and its live endpoint;
- :mod:`strata.ui.serve`: binding the port (loopback by default) and running uvicorn.

Starlette and uvicorn are imported by :mod:`strata.ui.app` and :mod:`strata.ui.serve` only, so
no other command pays for them. The CSS and JavaScript are package files under ``static/``.
"""

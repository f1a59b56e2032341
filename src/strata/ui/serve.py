"""Serve the page: bind the port first (a port in use is one line), then run uvicorn on that socket."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
from typing import TYPE_CHECKING

from strata.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator

    from strata.ui.data import Source

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) reaches this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), or one line saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot serve on host `{host}`: {exc.strerror}", "give an address of this machine with --host"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RuntimeFailure(
                f"port {port} on {host} is in use",
                "stop what listens there, or choose another with --port (0 picks a free one)",
            ) from None
        raise RuntimeFailure(
            f"cannot serve on {host}:{port}: {exc.strerror}", "choose another --host or --port"
        ) from None
    sock.setblocking(False)  # noqa: FBT003 - the socket API's flag
    return sock


READY = "strata ui: "
"""How the line that gives the page's address starts (``strata ui: http://127.0.0.1:8765/ …``)."""


def started(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The address a ``strata ui`` started as ``process`` (stdout a text pipe) prints once it answers; None if not.

    For scripts and tests that serve a page in a subprocess; waits at most ``timeout`` seconds.
    """
    line = ready_line(process, timeout)
    return None if line is None else page_address(line)


def ready_line(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The whole line of :func:`started` (``strata ui: http://… (…)``), or None if none came in ``timeout`` seconds."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=timeout)
    line = process.stdout.readline() if ready else ""
    return line if line.startswith(READY + "http://") else None


def page_address(line: str) -> str:
    """The address in the line ``strata ui`` prints once it answers: ``http://127.0.0.1:8765/``."""
    return line.split()[2]


def _address(sock: socket.socket) -> str:
    """The bound address as a Host header names it: ``127.0.0.2``, ``[::1]``, ``0.0.0.0``."""
    host = str(sock.getsockname()[0])
    return f"[{host}]" if ":" in host else host


def is_wildcard(sock: socket.socket) -> bool:
    """Whether ``sock`` listens on every interface (bound to ``0.0.0.0`` or ``::``)."""
    return ipaddress.ip_address(str(sock.getsockname()[0])).is_unspecified


def url(sock: socket.socket) -> str:
    """``http://127.0.0.1:8765/``: the page's address, one a browser on this machine opens.

    On every interface (``0.0.0.0``, ``::``), no browser opens the bound address: this
    machine's loopback one of the same family is given instead.
    """
    host = _address(sock)
    if is_wildcard(sock):
        host = "[::1]" if sock.family == socket.AF_INET6 else LOOPBACK
    return f"http://{host}:{sock.getsockname()[1]}/"


def where(sock: socket.socket) -> str:
    """What the page's address line adds after it: ``listening on every interface, 0.0.0.0:8765; `` or nothing."""
    return f"listening on every interface, {_address(sock)}:{sock.getsockname()[1]}; " if is_wildcard(sock) else ""


def serve(source: Source, sock: socket.socket, *, ready: Callable[[], None]) -> None:
    """Answer on ``sock`` until interrupted (Ctrl-C or SIGTERM); ``ready`` is called once it is ready to answer.

    On a loopback address only requests naming this machine (``localhost``, a loopback address,
    the bound one) are answered: a web page elsewhere cannot read it through a DNS name rebound
    to 127.0.0.1. On any other address every Host name is (``strata ui`` warns).
    """
    import uvicorn

    from strata.ui.app import LOOPBACK_NAMES, create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """Stop on Ctrl-C or SIGTERM and return (uvicorn's own raises the signal again after stopping).

            The address is printed once the handlers are in place: whoever reads it may stop the server at once.
            """
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                ready()
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    address = _address(sock)
    app = create_app(source, hosts=[*LOOPBACK_NAMES, address] if is_loopback(address) else None)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    server = Server(config)
    server.run(sockets=[sock])

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
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=timeout)
    line = process.stdout.readline() if ready else ""
    return line.split()[2] if line.startswith(READY + "http://") else None


def _address(sock: socket.socket) -> str:
    """The bound address as a Host header names it: ``127.0.0.2``, ``[::1]``."""
    host = str(sock.getsockname()[0])
    return f"[{host}]" if ":" in host else host


def url(sock: socket.socket) -> str:
    """``http://127.0.0.1:8765/`` for the bound socket."""
    return f"http://{_address(sock)}:{sock.getsockname()[1]}/"


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

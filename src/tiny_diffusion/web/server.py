"""Serving the app with uvicorn on a socket bound here first, so a port in use (or a bad address) is one line, and
port 0 picks a free port; a host other than the loopback is served only when asked, with a warning."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from ..errors import UsageError
from .app import create_app

__all__ = ["serve", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except (OSError, OverflowError) as e:
        raise UsageError(f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which on Ctrl-C also ends the open event streams at once (else it waits for them)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def serve(runs_dir: Path, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``runs_dir`` on ``host``:``port`` until Ctrl-C (SIGINT) or SIGTERM, then stop the training, if any
    (it keeps its checkpoint)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UsageError(f"{runs_dir} is not a folder of runs")
    if port < 0 or port > 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {port}")
    sock = _bind(host, port)
    loopback = host in LOOPBACK
    if not loopback:
        print(
            f"tiny-diffusion: warning: serving on {host}: anyone who can reach this machine can see the runs and "
            "start trainings",
            file=sys.stderr,
            flush=True,
        )
    bound = sock.getsockname()[1]
    hosts = ["127.0.0.1", "localhost", "[::1]"] if loopback else None  # against DNS rebinding
    app = create_app(runs_dir, hosts=hosts)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, lifespan="on")
    server = _Server(config, on_exit=app.state.closing.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {runs_dir}/ at http://{shown}:{bound}/ (Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])

"""A real `tiny-diffusion serve` in a subprocess, for the command's tests and the browser's; the app in a thread
of the test's own process, with uvicorn; and training targets that fail, for the playground's trainer."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Server:
    """`python -m tiny_diffusion serve RUNS_DIR --port 0 ...` in its own process group; ``url`` from its first line."""

    def __init__(self, runs: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "tiny_diffusion", "serve", str(runs), "--port", "0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        line = self.process.stdout.readline()
        assert line.startswith("serving "), line + self.process.stderr.read()
        self.url = line.split(" at ")[1].split()[0].rstrip("/")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT to the server and its training process; the exit code and stderr."""
        os.killpg(self.process.pid, signal.SIGINT)
        _, err = self.process.communicate(timeout=90)
        return self.process.returncode, err

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()


@contextmanager
def servers(runs: Path) -> Iterator[Callable[..., Server]]:
    """start(*args) -> a Server of ``runs``; every one started is killed on the way out if still running."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        started.append(Server(runs, *args))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.close()


@contextmanager
def app_in_a_thread(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        app.state.closing.set()
        server.should_exit = True
        thread.join(30)
        sock.close()


def crash(values, out, send):
    """A training process that fails inside (as a bug would)."""
    raise RuntimeError("the model fell over")


def die(values, out, send):
    """A training process that dies without a word (killed, out of memory)."""
    os._exit(3)

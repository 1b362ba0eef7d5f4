"""A real `tiny-diffusion serve` in a subprocess, for the command's tests and the browser's."""

import json
import os
import signal
import subprocess
import sys
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

"""`tiny-diffusion serve` as a command: without the web extra, on a port in use, on another interface, and
stopped by Ctrl-C (SIGINT to its process group, as a terminal sends it), also in the middle of a training."""

import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from serving import SRC, servers

from conftest import TINY_POINTS
from tiny_diffusion.cli import main


def test_without_the_web_extra_it_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi fails, as without the extra
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == 'tiny-diffusion: error: tiny-diffusion serve needs the web extra: pip install "tiny-diffusion[web]"\n'


pytest.importorskip("fastapi", reason="the web app needs the web extra: pip install 'tiny-diffusion[web]'")
pytest.importorskip("uvicorn", reason="the web app needs the web extra: pip install 'tiny-diffusion[web]'")


@pytest.fixture
def server_of(tmp_path):
    with servers(tmp_path / "runs") as start:
        yield start


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_ctrl_c_stops_the_server_cleanly(server_of, host, warned):
    server = server_of("--host", host)
    assert b"Playground" in server.get("/playground")
    code, err = server.interrupt()
    assert code in (0, 130) and "Traceback" not in err, err
    assert err.splitlines()[-1] == "tiny-diffusion: stopped serving"
    assert ("tiny-diffusion: warning: serving on 0.0.0.0" in err) == warned


def test_ctrl_c_during_a_training_keeps_its_checkpoint(server_of, tmp_path):
    server = server_of()
    settings = {**TINY_POINTS, "num_epochs": 5000}
    assert server.post("/api/training", {"dataset": "moons", "settings": settings})["name"] == "moons"
    with urllib.request.urlopen(server.url + "/api/training/events", timeout=60) as events:
        for line in events:
            if line.strip() == b"event: snapshot":  # training has begun
                break
    code, err = server.interrupt()
    assert code in (0, 130) and "Traceback" not in err, err
    assert list((tmp_path / "runs" / ".moons.partial" / "checkpoints").glob("step-*.safetensors"))


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tiny_diffusion", "serve", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.startswith(f"tiny-diffusion: error: cannot listen on 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1

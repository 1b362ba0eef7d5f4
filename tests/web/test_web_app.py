"""The web app through FastAPI's TestClient: the list of runs, the files served (and the many refused), the
playground's checks of what it is sent, and real trainings in their own process, streamed as server-sent events."""

import asyncio
import builtins
import contextlib
import fnmatch
import io
import json
import os
import re
import shutil
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs the web extra: pip install 'tiny-diffusion[web]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from serving import crash, die  # noqa: E402

import tiny_diffusion as td  # noqa: E402
from conftest import TINY_POINTS, single_thread  # noqa: E402
from tiny_diffusion.cli import main  # noqa: E402
from tiny_diffusion.data.files import load_point_file  # noqa: E402
from tiny_diffusion.web import app as web_app  # noqa: E402
from tiny_diffusion.web.app import MAX_BODY_BYTES, create_app  # noqa: E402
from tiny_diffusion.web.training import Job, Trainer  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SECRET = "TOP SECRET: nothing outside the runs folder is served"
SETTINGS = dict(TINY_POINTS)  # the playground's allow-list holds every tiny setting


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """tmp/secret.txt beside tmp/runs/, which holds a trained run (moons, with a metrics.json), a copy of it whose
    loss.png and metrics.json are links to the secret (linked), a link to a run outside (outside-run), an
    unfinished run, and a plain file."""
    tmp = tmp_path_factory.mktemp("web")
    (tmp / "secret.txt").write_text(SECRET)
    runs = tmp / "runs"
    with single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", td.SettingWarning)  # the tiny runs' T = 20 draws one
        td.train(TINY_POINTS, dataset="moons", out=runs / "moons", progress=False)
    (runs / "moons" / "metrics.json").write_text(json.dumps({"w2": 0.125, "mmd": 0.0042, "note": "text"}))
    shutil.copytree(runs / "moons", runs / "linked")
    for name in ("loss.png", "metrics.json"):
        (runs / "linked" / name).unlink()
        (runs / "linked" / name).symlink_to(tmp / "secret.txt")
    shutil.copytree(runs / "moons", tmp / "elsewhere")
    (runs / "outside-run").symlink_to(tmp / "elsewhere")
    shutil.copytree(runs / "moons", runs / ".moons2.partial")
    (runs / "notes.txt").write_text("not a run")
    return tmp


@pytest.fixture
def client(folder):
    with TestClient(create_app(folder / "runs"), raise_server_exceptions=False) as client:
        yield client


def test_the_list_shows_the_runs_their_figures_and_metrics(client, folder):
    runs = {run["name"]: run for run in client.get("/api/runs").json()}
    assert set(runs) == {"moons", "linked"}  # not the link to a run outside, the unfinished run or the file
    assert runs["moons"]["figures"] == ["samples.png", "frames.png", "loss.png"]
    assert runs["linked"]["figures"] == ["samples.png", "frames.png"]  # its loss.png leaves the folder
    assert runs["moons"]["metrics"] == {"w2": 0.125, "mmd": 0.0042}
    assert runs["linked"]["metrics"] == {}
    assert runs["moons"]["epochs"] == TINY_POINTS["num_epochs"] and runs["moons"]["dataset"] == "moons"
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<img src="/runs/moons/files/samples.png"' in page.text and "0.0042" in page.text
    assert "outside-run" not in page.text and SECRET not in page.text
    assert runs["moons"]["page"] and not runs["linked"]["page"]  # its page would read the links
    assert 'href="/runs/linked/page"' not in page.text


def test_a_run_s_card_shows_what_diagnose_and_nfe_wrote_into_it(tmp_path):
    runs = tmp_path / "runs"
    with single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", td.SettingWarning)
        td.train(TINY_POINTS, dataset="moons", out=runs / "moons", progress=False)
    with single_thread(), contextlib.redirect_stdout(io.StringIO()):
        assert main(["diagnose", str(runs / "moons"), "--steps", "3", "--per-step", "16"]) == 0
        assert main(["nfe", str(runs / "moons"), "--samplers", "euler", "--steps", "2", "--num-samples", "20"]) == 0
    with TestClient(create_app(runs), raise_server_exceptions=False) as client:
        (run,) = client.get("/api/runs").json()
        assert run["figures"] == ["samples.png", "frames.png", "loss.png", "diagnose.png", "nfe.png"]
        assert '<img src="/runs/moons/files/nfe.png"' in client.get("/").text
        figure, table = client.get("/runs/moons/files/nfe.png"), client.get("/runs/moons/files/nfe.json")
        assert figure.status_code == 200 and figure.content[:4] == b"\x89PNG"
        assert table.status_code == 200 and table.json()["rows"][0]["sampler"] == "euler"


@pytest.mark.parametrize("path", ["/", "/playground", "/static/playground.js", "/static/style.css"])
def test_the_app_s_pages_work_offline(client, path):
    """No CDN, no font or script from elsewhere: every address in the app's own pages is on this server."""
    response = client.get(path)
    assert response.status_code == 200 and response.content
    assert not re.search(r"(https?:)?//[a-z]", response.text.replace("://127.0.0.1", ""))  # no absolute URL


def test_a_non_editable_install_ships_the_app_s_files():
    """pyproject's package-data for tiny_diffusion.web covers every file under web/static/."""
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    folder = root / "src" / "tiny_diffusion" / "web"
    files = [p.relative_to(folder).as_posix() for p in (folder / "static").iterdir()]
    assert {"playground.html", "playground.js", "style.css"} <= {Path(f).name for f in files}
    assert all(any(fnmatch.fnmatch(f, g) for g in patterns["tiny_diffusion.web"]) for f in files)


def test_a_runs_interactive_page_is_served(client):
    page = client.get("/runs/moons/page")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.lstrip().lower().startswith("<!doctype html") and "Tiny Diffusion: moons" in page.text
    assert '<a class="page" href="/runs/moons/page">' in client.get("/").text


@pytest.mark.parametrize("name", ["samples.png", "frames.png", "loss.png", "config.json", "history.csv"])
def test_a_runs_files_are_served_as_they_are(client, folder, name):
    response = client.get(f"/runs/moons/files/{name}")
    assert response.status_code == 200
    assert response.content == (folder / "runs" / "moons" / name).read_bytes()
    assert response.headers["x-content-type-options"] == "nosniff"


REFUSED = [
    "/runs/../secret.txt",
    "/runs/moons/files/../../../secret.txt",
    "/runs/moons/files/..%2f..%2f..%2fsecret.txt",
    "/runs/moons/files/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "/runs/moons/files/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/runs/%2e%2e/files/secret.txt",
    "/runs/..%2f..%2f/files/secret.txt",
    "/runs/moons%2f..%2f..%2f/files/secret.txt",
    "/runs/moons/files/%2fetc%2fpasswd",
    "/runs/moons/files//etc/passwd",
    "/runs/%2Fetc/files/passwd",
    "/runs/moons/files/..%5c..%5c..%5csecret.txt",
    "/runs/moons/files/..\\..\\..\\secret.txt",
    "/runs/moons/files/model.safetensors",  # not a kind that is served
    "/runs/moons/files/samples.npy",
    "/runs/moons/files/SAMPLES.PNG",
    "/runs/moons/files/samples.png%00.txt",
    "/runs/moons%00/files/samples.png",
    "/runs/linked/files/loss.png",  # a link that leaves the runs folder
    "/runs/linked/files/metrics.json",
    "/runs/outside-run/files/samples.png",  # a run folder that is a link to one outside
    "/runs/.moons2.partial/files/config.json",  # an unfinished run is not listed
    "/runs/notes.txt/files/samples.png",
    "/runs/nothing/files/samples.png",
    "/runs/moons/page/../../secret.txt",
    "/runs/linked/page",  # its page would read files outside
    "/runs/outside-run/page",
    "/runs/%2e%2e/page",
    "/runs/..%2fruns%2fmoons/page",
    "/static/..%2fapp.py",
    "/static/%2e%2e%2f__init__.py",
    "/static/../web/app.py",
    "/static/playground.js%00",
    "/secret.txt",
    "/%2e%2e/secret.txt",
]


@pytest.mark.parametrize("path", REFUSED)
def test_paths_outside_the_listed_runs_are_refused(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert SECRET not in response.text and "Traceback" not in response.text
    assert list(response.json()) == ["error"] and "\n" not in response.json()["error"]


def test_nothing_outside_the_runs_folder_is_opened(client, folder, monkeypatch):
    """Every file the app opens in the test's folder while answering is inside runs/ (the secret never)."""
    opened = []
    real_open = builtins.open

    def watched(file, *args, **kw):
        if isinstance(file, (str, os.PathLike)):
            opened.append(Path(file).resolve())
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", watched)
    for path in ["/", "/api/runs", "/runs/moons/files/samples.png", "/runs/moons/files/metrics.json", *REFUSED]:
        client.get(path)
    mine = [p for p in opened if p.is_relative_to(folder.resolve())]
    assert mine and all(p.is_relative_to((folder / "runs").resolve()) for p in mine)
    assert (folder / "secret.txt").resolve() not in opened


def _post(client, body, **kw):
    return client.post("/api/training", content=body if isinstance(body, (str, bytes)) else json.dumps(body), **kw)


JSON = {"Content-Type": "application/json"}
POINTS = np.random.default_rng(0).normal(size=(40, 2)).round(3).tolist()
BAD_REQUESTS = [
    ("not json", "{not json", JSON, 400),
    ("plain text", json.dumps({"points": POINTS}), {"Content-Type": "text/plain"}, 415),  # no cross-site form post
    ("a list", [1, 2], JSON, 400),
    ("unknown field", {"points": POINTS, "out": "/tmp/x"}, JSON, 400),
    ("setting not allowed", {"points": POINTS, "settings": {"device": "cuda"}}, JSON, 400),
    ("setting not allowed 2", {"points": POINTS, "settings": {"dataset": "/etc/passwd"}}, JSON, 400),
    ("epochs as text", {"points": POINTS, "settings": {"num_epochs": "ten"}}, JSON, 400),
    ("epochs a bool", {"points": POINTS, "settings": {"num_epochs": True}}, JSON, 400),
    ("too many epochs", {"points": POINTS, "settings": {"num_epochs": 10**9}}, JSON, 400),
    ("NaN learning rate", json.dumps({"points": POINTS, "settings": {"learning_rate": float("nan")}}), JSON, 400),
    ("settings not an object", {"points": POINTS, "settings": [1]}, JSON, 400),
    ("TrainConfig refuses", {"points": POINTS, "settings": {"train_batch_size": 512, "num_samples": 100}}, JSON, 400),
    ("unknown schedule", {"points": POINTS, "settings": {"beta_schedule": "zigzag"}}, JSON, 400),
    ("unknown method", {"points": POINTS, "settings": {"method": "score"}}, JSON, 400),
    ("too few points", {"points": POINTS[:9]}, JSON, 400),
    ("too many points", {"points": [[i % 7, i % 11] for i in range(20_001)]}, JSON, 400),
    ("points of text", {"points": [["a", "b"]] * 20}, JSON, 400),
    ("points of three", {"points": [[1, 2, 3]] * 20}, JSON, 400),
    ("points on a line", {"points": [[i, 0] for i in range(20)]}, JSON, 400),
    ("points and dataset", {"points": POINTS, "dataset": "moons"}, JSON, 400),
    ("neither", {"settings": {}}, JSON, 400),
    ("unknown dataset", {"dataset": "../../secret.txt"}, JSON, 400),
    ("an image set", {"dataset": "mnist5k"}, JSON, 400),
    ("a 3-D set", {"dataset": "sphere"}, JSON, 400),
    ("name with a path", {"points": POINTS, "name": "../escape"}, JSON, 400),
    ("name absolute", {"points": POINTS, "name": "/tmp/escape"}, JSON, 400),
    ("name taken", {"points": POINTS, "name": "moons"}, JSON, 409),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, JSON, 400),
    ("too large", {"points": POINTS, "name": "x" * MAX_BODY_BYTES}, JSON, 413),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_training_requests_are_refused_in_one_line(client, folder, case):
    _, body, headers, status = case
    response = _post(client, body, headers=headers)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    assert client.app.state.trainer.job is None  # nothing started
    assert not (folder / "runs" / ".playground").exists()


def test_a_body_without_length_over_the_limit_is_refused(client):
    chunks = (b"x" * 100_000 for _ in range(12))  # streamed: no Content-Length to go by
    response = client.post("/api/training", content=chunks, headers=JSON)
    assert response.status_code == 413 and "kB" in response.json()["error"]


def test_nothing_running_is_said_in_one_line(client):
    assert client.post("/api/training/stop").status_code == 409
    assert client.get("/api/training/events").status_code == 404
    assert client.get("/api/training").json() == {"error": "no training has been started"}
    assert client.delete("/api/runs").status_code == 405


@pytest.mark.parametrize(
    "host, status",
    [
        ("127.0.0.1:8000", 200),
        ("localhost", 200),
        ("[::1]:8000", 200),
        ("evil.example", 400),
        ("127.0.0.1.nip.io", 400),
    ],
)
def test_a_loopback_server_answers_only_its_own_names(folder, host, status):
    with TestClient(create_app(folder / "runs", hosts=["127.0.0.1", "localhost", "[::1]"])) as client:
        response = client.get("/api/runs", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert response.json() == {
            "error": "this server answers requests addressed to 127.0.0.1 or localhost or [::1] only"
        }


def test_a_bug_is_an_error_of_one_line_without_its_traceback(client, monkeypatch):
    def broken(root):
        raise RuntimeError("details that stay in the log")

    monkeypatch.setattr(web_app, "list_runs", broken)
    response = client.get("/api/runs")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); the server's log has the details"}


def test_a_late_stream_catches_up_with_the_latest_snapshot_then_follows_live():
    job = Job("late", process=None)
    job.events = [{"kind": "started"}, *({"kind": "snapshot", "epoch": e} for e in (1, 2, 3))]
    closing = threading.Event()

    async def read(first: int) -> list[str]:
        lines = []
        async for message in web_app._stream(job, first, closing):
            lines.append(message)
            if not job.finished and len(lines) == 2:  # caught up: the rest arrives live
                job.events += [{"kind": "snapshot", "epoch": 4}, {"kind": "snapshot", "epoch": 5}, {"kind": "done"}]
        return lines

    messages = asyncio.run(read(0))
    ids = [int(m.split("\n")[0].removeprefix("id: ")) for m in messages]
    assert ids == [0, 3, 4, 5, 6]  # started, the latest of the three snapshots, then every one as it comes
    assert json.loads(messages[1].split("data: ")[1]) == {"kind": "snapshot", "epoch": 3}
    assert [int(m.split("\n")[0][4:]) for m in asyncio.run(read(5))] == [5, 6]  # a reconnection: after its last


# ---------------------------------------------------------------- real trainings, each in its own process


def _events(client) -> list[dict]:
    """The server-sent events of the latest training, read to its end: id, event and data of each."""
    events, current = [], {}
    with client.stream("GET", "/api/training/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    for event in events:
        assert json.loads(event["data"])["kind"] == event["event"]
    return [json.loads(event["data"]) for event in events]


@pytest.fixture
def empty_runs(tmp_path):
    return tmp_path / "runs"


def test_drawn_points_train_live_and_the_run_joins_the_list(empty_runs, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with TestClient(create_app(empty_runs)) as client:
        started = _post(client, {"points": POINTS, "settings": SETTINGS, "name": "mine"}, headers=JSON)
        assert started.status_code == 202 and started.json()["name"] == "mine"
        second = _post(client, {"dataset": "moons", "settings": SETTINGS}, headers=JSON)
        assert second.status_code == 409 and "running already" in second.json()["error"]
        events = _events(client)
        kinds = [event["kind"] for event in events]
        assert kinds[0] == "started" and kinds[-1] == "done" and kinds.count("snapshot") == 2, kinds
        snapshots = [event for event in events if event["kind"] == "snapshot"]
        steps_per_epoch = TINY_POINTS["num_samples"] // TINY_POINTS["train_batch_size"]
        assert [s["epoch"] for s in snapshots] == [1, 2]
        assert [s["step"] for s in snapshots] == [steps_per_epoch, 2 * steps_per_epoch]
        assert np.shape(snapshots[-1]["samples"]) == (TINY_POINTS["eval_batch_size"], 2)
        assert snapshots[-1]["loss"]["step"] == list(range(1, 2 * steps_per_epoch + 1))
        run = empty_runs / "mine"
        np.testing.assert_allclose(snapshots[-1]["loss"]["value"], np.load(run / "loss.npy"), rtol=1e-6)
        np.testing.assert_allclose(snapshots[-1]["samples"], np.load(run / "frames.npy")[-1], atol=1e-4)
        assert [r["name"] for r in client.get("/api/runs").json()] == ["mine"]
        np.testing.assert_allclose(load_point_file(empty_runs / ".playground" / "mine.csv"), POINTS)
        assert td.TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"]).dataset == str(
            (empty_runs / ".playground" / "mine.csv").resolve()
        )
        again = _post(client, {"points": POINTS, "settings": SETTINGS}, headers=JSON)  # one done: the next may start
        assert again.status_code == 202 and again.json()["name"] == "drawing"
        assert _events(client)[-1]["kind"] == "done"


def test_a_flow_run_trains_live_from_the_playground_and_its_page_is_served(empty_runs, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with TestClient(create_app(empty_runs)) as client:
        assert "flow" in client.get("/api/playground").json()["choices"]["method"]
        settings = {**SETTINGS, "method": "flow"}
        started = _post(client, {"dataset": "moons", "settings": settings, "name": "flowing"}, headers=JSON)
        assert started.status_code == 202, started.text
        events = _events(client)
        assert events[-1]["kind"] == "done" and [e["kind"] for e in events].count("snapshot") == 2
        assert td.Diffusion.load(empty_runs / "flowing").is_flow
        page = client.get("/runs/flowing/page")
        assert page.status_code == 200 and '"method":"flow"' in page.text


def test_stopping_a_training_keeps_its_checkpoint(empty_runs, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with TestClient(create_app(empty_runs)) as client:
        settings = {**SETTINGS, "num_epochs": 5000}
        assert _post(client, {"dataset": "moons", "settings": settings}, headers=JSON).status_code == 202
        with client.stream("GET", "/api/training/events") as response:
            for line in response.iter_lines():
                if line == "event: snapshot":
                    break
        assert client.post("/api/training/stop").status_code == 202
        final = _events(client)[-1]
        assert final["kind"] == "interrupted" and "resume with" in final["message"], final
    assert list((empty_runs / ".moons.partial" / "checkpoints").glob("step-*.json"))
    assert not (empty_runs / "moons").exists()


@pytest.mark.parametrize(
    "target, message",
    [(crash, "RuntimeError: the model fell over"), (die, "the training process stopped (exit code 3)")],
)
def test_a_crashed_training_is_reported_and_the_server_serves_on(empty_runs, target, message):
    with TestClient(create_app(empty_runs, trainer=Trainer(empty_runs, target=target))) as client:
        assert _post(client, {"points": POINTS, "settings": SETTINGS}, headers=JSON).status_code == 202
        events = _events(client)
        assert events[-1]["kind"] == "error" and message in events[-1]["message"]
        assert client.get("/").status_code == 200
        assert client.get("/api/training").json()["state"] == "error"
        assert _post(client, {"points": POINTS, "settings": SETTINGS, "name": "next"}, headers=JSON).status_code == 202

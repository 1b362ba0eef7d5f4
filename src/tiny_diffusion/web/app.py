"""The web app (FastAPI): the list of runs, their pages and files, the playground and its live training.

Pages and files: GET / (the runs, with figures and metrics), /runs/NAME/page (the run's interactive page,
``viz.page``), /runs/NAME/files/FILE (its figures and small text files: ``runs.SERVED``), /playground, and
/static/FILE (the app's own CSS and JS). The playground's API: GET /api/playground (datasets, settings, limits),
POST /api/training (start; 409 while one runs), GET /api/training/events (server-sent events of the latest
training), POST /api/training/stop. Every error is a JSON object {"error": one line}, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from ..choices import BETA_SCHEDULES, METHODS
from ..errors import UsageError
from ..viz.page import render_html
from .listing import render_runs
from .playground import DATASET_NAMES, DEFAULTS, MAX_POINTS, MIN_POINTS, SETTINGS, Taken, parse_request
from .runs import SERVED, find_run, list_runs, run_file, self_contained
from .training import Busy, Job, Trainer

__all__ = ["create_app", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1_000_000  # a request body: 20,000 drawn points take about 800 kB of JSON
KEEP_ALIVE_SECONDS = 15.0  # an event stream sends a comment this often, so proxies and browsers keep it open
# the app's own files (package data, a few kB), read once
STATIC = {
    path.name: path.read_bytes() for path in resources.files(__package__).joinpath("static").iterdir() if path.is_file()
}
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html", ".png": "image/png"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def create_app(runs_dir: str | Path, *, trainer: Trainer | None = None, hosts: list[str] | None = None) -> FastAPI:
    """The app serving ``runs_dir``. ``trainer`` runs the playground's trainings (default: ``Trainer(runs_dir)``);
    ``hosts``: the host names a request may be addressed to (the server's own, against DNS rebinding), None for
    any."""
    root = Path(runs_dir)
    trainer = trainer or Trainer(root)
    closing = threading.Event()  # set when the server stops: event streams end

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        closing.set()
        await asyncio.to_thread(trainer.shutdown)

    app = FastAPI(title="Tiny Diffusion", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.closing, app.state.trainer = closing, trainer
    _add_error_handlers(app)

    @app.middleware("http")
    async def limits(request: Request, call_next: Any) -> Response:
        if hosts is not None and _host_name(request.headers.get("host", "")) not in hosts:
            return _error(400, f"this server answers requests addressed to {' or '.join(hosts)} only")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _error(413, f"the request body is over {MAX_BODY_BYTES // 1000} kB")
        response: Response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/", response_class=HTMLResponse)
    def runs_page() -> HTMLResponse:
        return HTMLResponse(render_runs(root, list_runs(root)))

    @app.get("/api/runs")
    def runs_json() -> list[dict[str, Any]]:
        return [run.to_dict() for run in list_runs(root)]

    @app.get("/runs/{name}/files/{filename}")
    def run_files(name: str, filename: str) -> FileResponse:
        path = run_file(root, name, filename)
        if path is None:
            raise HTTPException(404, f"no file {filename[:60]!r} in a run {name[:60]!r} here")
        return FileResponse(path, media_type=SERVED[filename])

    @app.get("/runs/{name}/page", response_class=HTMLResponse)
    def run_page(name: str) -> HTMLResponse:
        run = find_run(root, name)
        if run is None or not self_contained(run):  # the page reads every file of the run
            raise HTTPException(404, f"no run {name[:60]!r} here (or one with links to files outside it)")
        return HTMLResponse(render_html(run))

    @app.get("/playground", response_class=HTMLResponse)
    def playground() -> Response:
        return Response(STATIC["playground.html"], media_type="text/html")

    @app.get("/static/{filename}")
    def static(filename: str) -> Response:
        if filename not in STATIC:
            raise HTTPException(404, f"no file {filename[:60]!r} here")
        return Response(STATIC[filename], media_type=MEDIA_TYPES.get(Path(filename).suffix, "text/plain"))

    @app.get("/api/playground")
    def playground_settings() -> dict[str, Any]:
        return {
            "datasets": list(DATASET_NAMES),
            "defaults": DEFAULTS,
            "bounds": {name: bounds for name, bounds in SETTINGS.items() if bounds is not None},
            "choices": {"method": list(METHODS), "beta_schedule": list(BETA_SCHEDULES)},
            "points": {"min": MIN_POINTS, "max": MAX_POINTS},
        }

    @app.post("/api/training", status_code=202)
    async def start(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send the request as JSON (Content-Type: application/json)")
        body = await _read_body(request)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            raise HTTPException(400, "the request body is not valid JSON") from None
        try:  # in a thread: starting a process takes a moment, and the event streams go on meanwhile
            job = await asyncio.to_thread(lambda: trainer.start(parse_request(parsed, root)))
        except (Taken, Busy) as e:
            raise HTTPException(409, str(e)) from None
        return {"name": job.name, "events": "/api/training/events"}

    @app.get("/api/training")
    def status() -> dict[str, Any]:
        job = trainer.job
        if job is None:
            raise HTTPException(404, "no training has been started")
        return {"name": job.name, "state": job.state, "events": len(job.events)}

    @app.post("/api/training/stop", status_code=202)
    def stop() -> dict[str, Any]:
        if not trainer.stop():
            raise HTTPException(409, "no training is running")
        return {"stopping": trainer.job.name if trainer.job else None}

    @app.get("/api/training/events")
    def events(request: Request) -> StreamingResponse:
        job = trainer.job
        if job is None:
            raise HTTPException(404, "no training has been started")
        last = request.headers.get("last-event-id", "")
        first = int(last) + 1 if last.isdigit() else 0  # a browser reconnecting says what it has seen
        return StreamingResponse(
            _stream(job, first, closing),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app


def _host_name(header: str) -> str:
    """The name of a Host header without its port: localhost:8000 -> localhost, [::1]:8000 -> [::1]."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0]


async def _read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it is over MAX_BODY_BYTES (a body without Content-Length too)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the request body is over {MAX_BODY_BYTES // 1000} kB")
    return bytes(body)


async def _stream(job: Job, first: int, closing: threading.Event) -> AsyncIterator[str]:
    """The job's events from number ``first`` on, as server-sent events (id, event kind, JSON data), as they come;
    the stream ends after the final event, or when the server stops. Of the snapshots already taken when the stream
    opens only the latest is sent: each holds the whole loss curve, so a page opened late catches up at once."""
    sent, quiet_since = first, time.monotonic()
    latest = max((i for i, event in enumerate(list(job.events)) if event["kind"] == "snapshot"), default=-1)
    while not closing.is_set():
        while sent < len(job.events):
            event = job.events[sent]
            if event["kind"] != "snapshot" or sent >= latest:
                yield f"id: {sent}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
            sent, quiet_since = sent + 1, time.monotonic()
        if job.finished and sent >= len(job.events):
            return
        if time.monotonic() - quiet_since > KEEP_ALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(0.1)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as {"error": one line}: a bad request, a missing page, a setting refused, or a bug (whose
    traceback goes to the server's log, never to the browser)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        where = ".".join(str(part) for part in errors[0].get("loc", ())) if errors else "request"
        return _error(422, f"{where}: {errors[0].get('msg', 'invalid') if errors else 'invalid'}")

    @app.exception_handler(UsageError)
    async def usage_error(request: Request, e: UsageError) -> JSONResponse:
        return _error(400, str(e))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(e).__name__}); the server's log has the details")

"""The list of runs as an HTML page: one card per run with its numbers, figures and metrics. Every name and
value from the disk is escaped."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from .runs import RunInfo

__all__ = ["render_runs", "page_head"]


def page_head(title: str) -> str:
    """The start of every page of the app: its stylesheet and the links between pages."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{escape(title)}</title>\n<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n'
        '<header><strong>Tiny Diffusion</strong> <nav><a href="/">Runs</a> <a href="/playground">Playground</a>'
        "</nav></header>\n<main>\n"
    )


def render_runs(root: Path, runs: list[RunInfo]) -> str:
    """The page listing ``runs`` of the folder ``root``, each linked to its interactive page."""
    cards = "\n".join(_card(run) for run in runs)
    if not runs:
        cards = (
            f'<p class="empty">No runs in {escape(str(root))} yet: train one with <code>tiny-diffusion train --out '
            f'{escape(str(root))}/NAME</code>, or in the <a href="/playground">playground</a>.</p>'
        )
    count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
    heading = f"<h1>Runs <small>{count} in {escape(str(root))}</small></h1>"
    return f"{page_head('Runs')}{heading}\n{cards}\n</main>\n</body>\n</html>\n"


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _card(run: RunInfo) -> str:
    base = f"/runs/{quote(run.name, safe='')}"
    title = escape(run.name)
    link = f' <a class="page" href="{base}/page">interactive page</a>' if run.page else ""
    facts = (
        f"<dl><dt>dataset</dt><dd>{escape(run.dataset)}</dd><dt>epochs</dt><dd>{_number(run.epochs, 'd')}</dd>"
        f"<dt>final loss</dt><dd>{_number(run.final_loss, '.4g')}</dd>"
        f"<dt>training</dt><dd>{_number(run.seconds, '.1f')} s</dd></dl>"
    )
    figures = "".join(
        f'<a href="{base}/files/{name}"><img src="{base}/files/{name}" alt="{title}: {escape(name)}" loading="lazy">'
        "</a>"
        for name in run.figures
    )
    metrics = ""
    if run.metrics:
        items = "".join(f"<dt>{escape(k)}</dt><dd>{v:.4g}</dd>" for k, v in run.metrics.items())
        metrics = f'<dl class="metrics" title="metrics.json"><dt class="source">metrics.json</dt>{items}</dl>'
    return (
        f'<section class="run" id="run-{title}"><h2>{title}{link}</h2>{facts}'
        f'<div class="figures">{figures}</div>{metrics}</section>'
    )

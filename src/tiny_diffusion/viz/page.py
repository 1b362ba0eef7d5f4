"""The interactive page of a run: one self-contained HTML file (``export_html``) that opens from disk or any static
host with no network access, every script, style and weight inside it.

A point run's page draws samples live in the browser with the run's own network: a hand-written JavaScript forward
pass of the MLP (``page/network.js``) walks the same samplers as ``core/samplers.py`` (``page/samplers.js``) over the
same float32 schedule coefficients, exported here (a flow run's: the fixed-step samplers of ``core/flow.py``). An
image run's page shows a reverse process drawn here, in Python, as a grid of digits under a time slider.
``window.tinyDiffusion.sample({...})`` is the page's hook for scripts and tests (see docs/page.md).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import flow
from ..diffusion import Diffusion, resolve_sampling
from ..errors import UsageError
from ..models import LabelConditioned, PointMLP

__all__ = ["render_html", "export_html", "page_data", "SCRIPTS", "PAGE_SAMPLER", "PAGE_STEPS", "PAGE_FLOW_SAMPLERS"]

# the page's files (package data in viz/page/), in the order the scripts are joined into one <script>
SCRIPTS = ("rng.js", "simd.js", "network.js", "samplers.js", "workers.js", "plot.js", "page.js")
PAGE_SAMPLER = "dpmpp-2m"  # the page's first draw: the best sampler at few calls (docs/concepts.md, `nfe`)
PAGE_STEPS = 20  # and its number of steps
# a flow run's samplers on the page (page/samplers.js, FLOW_SAMPLERS): the fixed-step ones; the adaptive ode is
# Python's alone, and a run that samples with it is drawn with midpoint on the page
PAGE_FLOW_SAMPLERS = ("euler", "heun", "midpoint")
LOSS_POINTS = 1000  # the loss curve is averaged down to at most this many points
FORWARD_POINTS = 1000  # training points the forward process noises
IMAGE_STATES = 21  # states of an image run's reverse process under the slider
IMAGES_PER_ROW = 8  # digits per row of an image run's grid (one row per class, or two rows)
SNAPSHOT_IMAGES = 16  # images of each training snapshot shown

# the schedule's coefficients the samplers read, exported as the float32 values the Python samplers use
SCHEDULE = (
    "alphas_cumprod",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "posterior_variance",
)


def export_html(run_dir: str | Path, out: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the page of ``run_dir`` to ``out`` (default: RUN_DIR/page.html) and return its path; an existing file
    is only replaced with ``overwrite``."""
    from ..runs.files import write_atomic

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} does not exist")
    out = Path(out) if out is not None else run_dir / "page.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the page's file must end in .html, got {out}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    write_atomic(out, render_html(run_dir).encode())
    return out


def render_html(run_dir: str | Path | Diffusion) -> str:
    """The whole HTML document of a run's page (a run directory, or a model loaded from one)."""
    model = run_dir if isinstance(run_dir, Diffusion) else Diffusion.load(run_dir)
    data = page_data(model)
    files = resources.files(__package__).joinpath("page")
    script = "\n".join(f"// ---- {name}\n{files.joinpath(name).read_text()}" for name in SCRIPTS)
    template = files.joinpath("page.html").read_text()
    if "</script" in script.lower():  # the page's own files: a bug, not bad input
        raise AssertionError("a script of the page holds </script>")
    parts = {
        "<!-- TITLE -->": html.escape(f"Tiny Diffusion: {model.config.dataset_name}"),  # in <title> and <h1>
        "/* STYLE */": files.joinpath("page.css").read_text(),
        "/* DATA */": _script_safe(json.dumps(data, separators=(",", ":"))),
        "/* SCRIPT */": f'(() => {{\n"use strict";\n{script}\n}})();',
    }
    # one pass over the template: what is put in is never searched for placeholders again
    return re.sub("|".join(map(re.escape, parts)), lambda found: parts[found.group(0)], template)


def _script_safe(text: str) -> str:
    """JSON that can sit inside <script>: '<' only occurs inside strings, where \\u003c reads the same."""
    return text.replace("<", "\\u003c")


def _floats(values: np.ndarray | torch.Tensor) -> str:
    """float32 values, little-endian, base64: how every array travels (the page reads it as a Float32Array)."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def _bytes(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.uint8).tobytes()).decode()


def page_data(model: Diffusion) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values: the run's settings, schedule, data units, training record,
    and the network's weights (points) or a precomputed reverse process (images)."""
    run_dir = model.run_dir
    if run_dir is None:
        raise UsageError("this model has no run directory: the page shows a run's training record too")
    config = model.config
    run_sampling = model.sampling
    data: dict[str, Any] = {
        "name": config.dataset_name,
        "kind": "images" if config.is_images else "points",
        "method": config.method,
        "shape": list(model.shape),
        "T": None if model.is_flow else len(model.schedule),  # a flow run's time is continuous, from 1 to 0
        "target": config.target,
        "classes": list(model.classes),
        "guidance": config.guidance,
        "run": {"sampler": run_sampling.sampler, "steps": run_sampling.steps, "eta": run_sampling.eta},
        "settings": {k: v for k, v in config.to_dict().items() if v is not None},
        "loss": _loss_curve(run_dir),
        "snapshots": _snapshots(model, run_dir),
    }
    if config.is_images:
        data["images"] = _image_process(model)
        return data
    if model.is_flow:
        data["timeScale"] = flow.TIME_SCALE  # the network sees t * timeScale
    else:
        data["schedule"] = {name: _floats(getattr(model.schedule, name)) for name in SCHEDULE}
    data.update(
        # in the model's coordinates, as the samplers clip: None when the run does not clip
        clip=[model.data_min.tolist(), model.data_max.tolist()] if config.clip_sample else None,
        shift=model.shift.tolist(),
        scale=model.scale.tolist(),
        default=_default_sampling(model),
        network=_network(model.network),
        guide=None if model.guide is None else _network(model.guide),  # an autoguided run's second network
        forward=_forward_points(model, run_dir),
    )
    return data


def _default_sampling(model: Diffusion) -> dict[str, Any]:
    """The page's first draw: PAGE_SAMPLER in PAGE_STEPS steps (fewer when T is smaller), deterministic (eta is
    DDIM's alone; ``resolve_sampling`` decides); a flow run's own sampler and steps where the page has it, else
    midpoint in its default steps."""
    if model.is_flow:
        own = model.sampling
        how = own if own.sampler in PAGE_FLOW_SAMPLERS else resolve_sampling(model.config, "midpoint")
    else:
        how = resolve_sampling(model.config, PAGE_SAMPLER, min(PAGE_STEPS, len(model.schedule)))
    return {"sampler": how.sampler, "steps": how.steps, "eta": how.eta}


def _network(network: nn.Module) -> dict[str, Any]:
    """A point run's MLP (its model, or its guide), weights and embeddings, as ``page/network.js`` reads them."""
    labels = None
    if isinstance(network, LabelConditioned):
        labels = {"weight": _floats(network.labels.weight), "null": network.null_label}
        network = network.denoiser
    if not isinstance(network, PointMLP):
        raise UsageError(f"the page draws with a point run's MLP; this run's network is {type(network).__name__}")
    first, *rest = network.joint
    blocks = [layer.linear for layer in rest if not isinstance(layer, (nn.GELU, nn.Linear))]
    last = rest[-1]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    return {
        "inputs": [_embedding(e) for e in network.input_embeddings],
        "time": _embedding(network.time_embedding),
        "first": _linear(first),
        "blocks": [_linear(b) for b in blocks],
        "last": _linear(last),
        "labels": labels,
    }


def _linear(layer: nn.Linear) -> dict[str, Any]:
    return {
        "in": layer.in_features,
        "out": layer.out_features,
        "weight": _floats(layer.weight),  # (out, in), as torch stores it
        "bias": _floats(layer.bias),
    }


def _embedding(embedding: nn.Module) -> dict[str, Any]:
    """An embedding by kind (models/embeddings.py), with the values its forward pass reads."""
    kind = type(embedding).__name__.removesuffix("Embedding").lower()
    found: dict[str, Any] = {"kind": kind, "size": embedding.size_out}
    if kind == "sinusoidal":
        found["freqs"] = _floats(embedding.freqs)  # already times the scale
    elif kind == "learnable":
        found.update(weight=_floats(embedding.linear.weight[:, 0]), bias=_floats(embedding.linear.bias))
        found["divisor"] = embedding.size
    elif kind == "linear":
        found["factor"] = embedding.factor
    elif kind not in ("identity", "zero"):
        raise UsageError(f"the page cannot embed with {type(embedding).__name__}")
    return found


def _forward_points(model: Diffusion, run_dir: Path) -> dict[str, Any]:
    """The x0 the page's forward process noises, in the model's coordinates: the run's training set, drawn again
    from its settings, or the run's own samples where the data cannot be drawn here (a point file moved away)."""
    from ..data.prepare import training_data

    try:
        points, source = training_data(model.config).x, "training points"
    except UsageError:
        samples = np.load(run_dir / "samples.npy", allow_pickle=False)
        points, source = (samples - model.shift.numpy()) / model.scale.numpy(), "the run's samples"
    chosen = np.linspace(0, len(points) - 1, min(FORWARD_POINTS, len(points))).astype(int)
    return {"points": _floats(points[chosen]), "source": source}


def _loss_curve(run_dir: Path) -> dict[str, Any]:
    """The training loss per optimiser step, averaged over runs of ``every`` steps to at most LOSS_POINTS."""
    losses = np.load(run_dir / "loss.npy", allow_pickle=False).astype(np.float64)
    every = max(1, math.ceil(len(losses) / LOSS_POINTS))
    kept = len(losses) // every * every
    binned = losses[:kept].reshape(-1, every).mean(axis=1) if kept else losses
    return {"values": _floats(binned), "every": every, "steps": len(losses)}


def _snapshots(model: Diffusion, run_dir: Path) -> dict[str, Any]:
    """The samples drawn during training (frames.npy) and their epochs: points in the data's units, or the first
    SNAPSHOT_IMAGES images of each as uint8."""
    from ..runs.files import training_snapshots

    frames, epochs = training_snapshots(run_dir)
    if model.config.is_images:
        shown = frames[:, :SNAPSHOT_IMAGES]
        return {"epochs": epochs, "images": _bytes(_to_uint8(shown)), "count": int(shown.shape[1])}
    return {"epochs": epochs, "points": _floats(frames), "count": int(frames.shape[1])}


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] pixels as 0..255, channels last: (..., C, H, W) -> (..., H, W, C)."""
    pixels = np.clip(np.rint((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8)
    return np.moveaxis(pixels, -3, -1)


def _image_process(model: Diffusion) -> dict[str, Any]:
    """The reverse process of a grid of digits with the run's own sampler, IMAGE_STATES states evenly spaced: a row
    per class of a conditional run, else two rows; uint8 (states, rows, cols, H, W, C)."""
    from .processes import evenly_spaced

    how = model.sampling
    total = how.steps or len(model.schedule)  # the steps the sampler walks (resolve_sampling checked them)
    rows = len(model.classes) or 2
    labels = np.repeat(np.arange(rows), IMAGES_PER_ROW) if model.classes else None
    chosen = evenly_spaced(total, min(IMAGE_STATES, total + 1))
    every = math.gcd(*chosen)
    drawn = model.draw(rows * IMAGES_PER_ROW, how, seed=0, labels=labels, record_every=every)
    kept = [i for i, done in enumerate(range(0, total + 1, every)) if done in chosen]
    states = _to_uint8(drawn.states[kept])  # (K, N, H, W, C)
    return {
        "states": _bytes(states),
        "timesteps": [float(drawn.timesteps[i]) if model.is_flow else int(drawn.timesteps[i]) for i in kept],
        "rows": rows,
        "cols": IMAGES_PER_ROW,
        "sampling": {"sampler": how.sampler, "steps": how.steps, "eta": how.eta},
        "rowLabels": list(model.classes),
    }

"""The original tiny-diffusion's eight ablation studies, re-run with its settings and values, each checked against
what the original's README concluded from its pictures.

The base configuration is the original's ``ddpm.py`` defaults; the values of each study are the ones its ``vis.ipynb``
trained (github.com/tanelp/tiny-diffusion). A run that several studies share (the base appears in six of them) is
trained once, under ``OUT/runs``; each study writes its grid and tables under ``OUT/STUDY``, and ``OUT/findings.md``
sets every study's numbers beside the original's conclusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import UsageError
from ..runs.files import write_atomic
from .ablation import StudyRow, ensure_runs, run_study

__all__ = ["ORIGINAL", "STUDIES", "Study", "StudyResult", "reproduce", "base_config", "SCORES"]

# the original's training settings; clip_sample=False because it did not clip x0; its timesteps were uniform and
# it drew every snapshot by DDPM's T steps
ORIGINAL = dict(
    train_batch_size=32,
    num_epochs=200,
    learning_rate=1e-3,
    lr_schedule="constant",
    warmup_steps=0,
    num_timesteps=50,
    beta_schedule="linear",
    hidden_size=128,
    hidden_layers=3,
    embedding_size=128,
    time_embedding="sinusoidal",
    input_embedding="sinusoidal",
    clip_sample=False,
    timestep_sampling="uniform",
    snapshot_sampler="ddpm",
)
QUICK_EPOCHS = 20  # --quick: a tenth of the original's 200 epochs
COLUMNS = 10  # snapshots per grid row, as in the original's figures

Scores = dict[Any, float]  # value -> a score, higher is better


@dataclass(frozen=True)
class Study:
    """One of the original's studies: the setting, its values, and its conclusion as a check on the scores."""

    param: str
    values: tuple[Any, ...]
    finding: str  # the original README's conclusion, in short
    claim: str  # the measurable form of it, as checked here
    check: Callable[[Scores], bool]


def shape_score(metrics: dict[str, float]) -> float:
    """Sharpness: F1 of precision@0.1 (samples on the shape) and recall@0.1 (the shape covered), each divided by
    what a second draw of the data scores. 1.0 is as good as the data."""
    p = metrics["precision@0.1"] / metrics["precision@0.1_floor"]
    r = metrics["recall@0.1"] / metrics["recall@0.1_floor"]
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def fit_score(metrics: dict[str, float]) -> float:
    """Where the mass is: the data-vs-data W2 floor over the samples' W2. 1.0 is as good as the data.

    The two scores see different faults. With the original's 50 steps x_T keeps 78% of the signal
    (sqrt(alphas_cumprod[-1]) = 0.78), so sampling from pure noise spreads every run out: W2 is dominated by
    that and barely sees sharpness, which is what the original judged most of its figures by.
    """
    return metrics["w2_floor"] / metrics["w2"]


SCORES: dict[str, Callable[[dict[str, float]], float]] = {"shape": shape_score, "fit": fit_score}


def _similar(scores: Scores, tolerance: float = 1.25) -> bool:
    """Every value scores at least 1 / ``tolerance`` of the best: 'the setting does not matter'."""
    return tolerance * min(scores.values()) >= max(scores.values())


STUDIES = (
    Study(
        "learning_rate",
        (1e-2, 1e-3, 1e-4, 1e-5),
        "sensitive to the learning rate; 1e-3 works",
        "1e-3 beats 1e-2 and 1e-5",
        lambda s: s[1e-3] > s[1e-2] and s[1e-3] > s[1e-5],
    ),
    Study(
        "dataset",
        ("moons", "dino", "line", "circle"),
        "the line, the simplest shape, comes out worst (fuzzy corners)",
        "line scores lowest",
        lambda s: min(s, key=s.get) == "line",
    ),
    Study(
        "num_timesteps",
        (5, 10, 25, 50, 100, 250),
        "a longer diffusion process gives better output",
        "250 beats 50, and 50 beats 5",
        lambda s: s[250] > s[50] > s[5],
    ),
    Study(
        "beta_schedule",
        ("linear", "quadratic"),
        "the quadratic schedule is no better",
        "quadratic does not beat linear",
        lambda s: s["quadratic"] <= s["linear"],
    ),
    Study(
        "hidden_size",
        (16, 32, 64, 128, 256, 512),
        "capacity is not the bottleneck: similar results for every size",
        "every size scores at least 0.8 of the best",
        _similar,
    ),
    Study(
        "hidden_layers",
        (1, 2, 3, 4, 5),
        "capacity is not the bottleneck: similar results for every depth",
        "every depth scores at least 0.8 of the best",
        _similar,
    ),
    Study(
        "time_embedding",
        ("learnable", "sinusoidal", "linear", "zero"),
        "timestep information helps; how it is encoded does not matter",
        "zero scores lowest; the other three at least 0.8 of the best",
        lambda s: min(s, key=s.get) == "zero" and _similar({k: v for k, v in s.items() if k != "zero"}),
    ),
    Study(
        "input_embedding",
        ("learnable", "sinusoidal", "linear", "identity"),
        "sinusoidal input embeddings help, as for Fourier features",
        "sinusoidal beats the other three",
        lambda s: max(s, key=s.get) == "sinusoidal",
    ),
)
STUDY_NAMES = tuple(study.param for study in STUDIES)


def base_config(*, quick: bool, device: str = "auto") -> TrainConfig:
    """The original's configuration; ``quick`` trains a tenth of the epochs. Snapshots give COLUMNS grid columns."""
    epochs = QUICK_EPOCHS if quick else ORIGINAL["num_epochs"]
    return TrainConfig(
        **{
            **ORIGINAL,
            "num_epochs": epochs,
            "save_images_step": epochs // COLUMNS,
            "device": device,
            "experiment_name": "reproduce",
        }
    )


@dataclass
class StudyResult:
    """A study's runs as measured, and the scores its finding is checked by."""

    study: Study
    rows: list[StudyRow]

    def scores(self, score: str) -> Scores:
        return {row.value: SCORES[score](row.metrics) for row in self.rows}

    def agrees(self, score: str) -> bool:
        """Whether the original's finding holds when the values are ranked by ``score``."""
        return bool(self.study.check(self.scores(score)))


def _run_dir(root: Path, base: TrainConfig, param: str, value: Any) -> Path:
    """Where the run of ``param = value`` lives; the base configuration's run is shared by every study."""
    return root / ("original" if getattr(base, param) == value else f"{param}={value}")


def reproduce(
    out: str | Path, base: TrainConfig, *, only: Sequence[str] | None = None, jobs: int = 1, progress: bool = True
) -> list[StudyResult]:
    """Run the studies (all, or those named in ``only``) from ``base`` (normally ``base_config()``); write each
    study's figure and tables, and findings.md."""
    unknown = sorted(set(only or ()) - set(STUDY_NAMES))
    if unknown:
        raise UsageError(f"unknown study {unknown[0]!r}; choose from {', '.join(STUDY_NAMES)}")
    studies = [s for s in STUDIES if only is None or s.param in only]
    out = Path(out)
    plan = [
        (s, [(replace(base, **{s.param: v}), _run_dir(out / "runs", base, s.param, v)) for v in s.values])
        for s in studies
    ]
    # every run first, in parallel when asked; then the studies find them complete
    ensure_runs([run for _, runs in plan for run in runs], jobs=jobs, progress=progress)
    results = [
        StudyResult(
            s, run_study(base, s.param, s.values, out / s.param, run_dirs=[d for _, d in runs], progress=progress)
        )
        for s, runs in plan
    ]
    write_atomic(out / "findings.md", findings_table(results, epochs=base.num_epochs).encode())
    return results


def findings_table(results: Sequence[StudyResult], *, epochs: int) -> str:
    """Markdown: per study, both scores of each value, the original's finding and whether each score agrees."""
    lines = [
        f"Original configuration, {epochs} epochs, one seed. Scores are relative to a second draw of the data "
        "(1.0 = as good as the data; higher is better): *shape* = F1 of precision@0.1 and recall@0.1 "
        "(sharpness), *fit* = W2 floor / W2 (where the mass is).",
        "",
        "| study | shape per value | fit per value | original's finding | checked as | agrees by shape | "
        "agrees by fit |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        cells = [", ".join(f"{value}: {score:.2f}" for value, score in result.scores(name).items()) for name in SCORES]
        verdicts = ["yes" if result.agrees(name) else "no" for name in SCORES]
        lines.append(
            f"| {result.study.param} | {' | '.join(cells)} | {result.study.finding} | {result.study.claim} | "
            f"{' | '.join(verdicts)} |"
        )
    return "\n".join(lines) + "\n"

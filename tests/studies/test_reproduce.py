"""`reproduce`: the original's studies share their base run, write one grid and table each, and a findings table."""

import csv

import numpy as np
import pytest

from conftest import TINY_POINTS, tiny
from tiny_diffusion.cli.main import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import UsageError
from tiny_diffusion.studies.ablation import ensure_runs
from tiny_diffusion.studies.reproduce import ORIGINAL, STUDIES, base_config, reproduce

TINY = tiny(TINY_POINTS, eval_batch_size=60, hidden_layers=3, device="cpu")
BY_PARAM = {study.param: study for study in STUDIES}


def test_studies_share_the_base_run_and_write_a_grid_a_table_and_findings(tmp_path):
    results = reproduce(tmp_path, TrainConfig(**TINY), only=["hidden_layers", "beta_schedule"], progress=False)
    assert [r.study.param for r in results] == ["beta_schedule", "hidden_layers"]  # in the original's order
    # linear and hidden_layers=3 are the base: one shared run, not two
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "beta_schedule=quadratic",
        "hidden_layers=1",
        "hidden_layers=2",
        "hidden_layers=4",
        "hidden_layers=5",
        "original",
    ]
    for result in results:
        table = list(csv.DictReader((tmp_path / result.study.param / "results.csv").open()))
        assert len(table) == len(result.study.values)
        assert all(np.isfinite(float(row[key])) for row in table for key in ("w2", "precision@0.1", "recall@0.1"))
        assert (tmp_path / result.study.param / "grid.png").stat().st_size > 0
        for score in ("shape", "fit"):
            assert all(np.isfinite(v) and v >= 0 for v in result.scores(score).values())
    findings = (tmp_path / "findings.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in findings if line.startswith("| ") and "---" not in line][1:] == [
        "| beta_schedule",
        "| hidden_layers",
    ]


def test_a_second_reproduction_trains_nothing(tmp_path):
    reproduce(tmp_path, TrainConfig(**TINY), only=["beta_schedule"], progress=False)
    weights = tmp_path / "runs" / "original" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    reproduce(tmp_path, TrainConfig(**TINY), only=["beta_schedule"], progress=False)
    assert weights.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "param,scores,agrees",
    [
        ("learning_rate", {1e-2: 0.2, 1e-3: 0.6, 1e-4: 0.3, 1e-5: 0.1}, True),
        ("learning_rate", {1e-2: 0.7, 1e-3: 0.6, 1e-4: 0.3, 1e-5: 0.1}, False),
        ("num_timesteps", {5: 0.2, 10: 0.3, 25: 0.3, 50: 0.4, 100: 0.5, 250: 0.8}, True),
        ("num_timesteps", {5: 0.5, 10: 0.3, 25: 0.3, 50: 0.4, 100: 0.5, 250: 0.8}, False),
        ("hidden_size", {16: 0.5, 32: 0.55, 64: 0.6, 128: 0.6, 256: 0.6, 512: 0.6}, True),
        ("hidden_size", {16: 0.4, 32: 0.55, 64: 0.6, 128: 0.6, 256: 0.6, 512: 0.6}, False),
        ("time_embedding", {"learnable": 0.6, "sinusoidal": 0.55, "linear": 0.5, "zero": 0.2}, True),
        ("time_embedding", {"learnable": 0.6, "sinusoidal": 0.55, "linear": 0.2, "zero": 0.3}, False),
        ("dataset", {"moons": 0.9, "dino": 0.6, "line": 0.5, "circle": 0.9}, True),
        ("beta_schedule", {"linear": 0.6, "quadratic": 0.7}, False),
    ],
)
def test_each_finding_is_checked_in_the_direction_the_original_states(param, scores, agrees):
    assert BY_PARAM[param].check(scores) is agrees


def test_the_base_is_the_originals_configuration_and_quick_trains_a_tenth():
    full, quick = base_config(quick=False), base_config(quick=True)
    assert {key: getattr(full, key) for key in ORIGINAL} == ORIGINAL
    assert quick.num_epochs * 10 == full.num_epochs
    assert full.num_epochs // full.save_images_step == quick.num_epochs // quick.save_images_step == 10


def test_runs_train_in_parallel_processes(tmp_path):
    runs = [(TrainConfig(**{**TINY, "seed": seed}), tmp_path / f"seed{seed}") for seed in (0, 1)]
    assert ensure_runs(runs, jobs=2, progress=False) == {tmp_path / "seed0", tmp_path / "seed1"}
    assert all((tmp_path / f"seed{seed}" / "samples.npy").is_file() for seed in (0, 1))
    assert ensure_runs(runs, jobs=2, progress=False) == set()


def test_a_failing_run_in_a_worker_reaches_the_caller_as_a_usage_error(tmp_path):
    diverging = TrainConfig(**{**TINY, "learning_rate": 1e30, "num_epochs": 3})
    with pytest.raises(UsageError, match="diverged"):
        ensure_runs([(TrainConfig(**TINY), tmp_path / "ok"), (diverging, tmp_path / "bad")], jobs=2, progress=False)
    assert not (tmp_path / "bad").exists()


def test_reproduce_refuses_an_unknown_study_and_a_bad_job_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["reproduce", "--only", "colour", "--out", str(tmp_path / "r")])
    assert exit.value.code == 2 and "invalid choice: 'colour'" in capsys.readouterr().err
    assert main(["reproduce", "--jobs", "0", "--quick", "--out", str(tmp_path / "r")]) == 2
    assert "--jobs must be positive" in capsys.readouterr().err
    assert not (tmp_path / "r" / "runs").exists()

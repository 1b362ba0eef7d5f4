"""Checkpoints: state that round-trips exactly through safetensors + JSON, training that carries on with the same
bits from any step, records that catch every corrupted file, and the fallback to the checkpoint before."""

import signal

import numpy as np
import pytest
import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.schedule import NoiseSchedule
from tiny_diffusion.core.training import Diverged, TrainState, train
from tiny_diffusion.errors import UsageError
from tiny_diffusion.models import build_model
from tiny_diffusion.runs.checkpoints import (
    Checkpointer,
    CheckpointPolicy,
    checkpoint_steps,
    flatten,
    load_latest_checkpoint,
    read_checkpoint,
    resume_state,
    save_checkpoint,
    unflatten,
)
from tiny_diffusion.runs.integrity import Corrupt
from tiny_diffusion.runs.interrupts import Interrupted, Signals

pytestmark = pytest.mark.usefixtures("one_thread")  # the same thread count for every run compared, and fast

POINTS = dict(
    num_samples=96,
    train_batch_size=32,
    num_epochs=3,
    num_timesteps=20,
    embedding_size=8,
    hidden_size=16,
    hidden_layers=1,
    warmup_steps=2,
)  # 3 steps per epoch, 9 in all
IMAGES = dict(
    dataset="digits8",
    model="seed-cnn",
    channels=4,
    num_samples=96,
    train_batch_size=32,
    num_epochs=3,
    num_timesteps=20,
    sample_steps=5,
)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True, "x"], "c": (1, (2, 3))},
        {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 7: {}},  # an optimizer's state: integer keys
        {
            "generator": torch.Generator().manual_seed(1).get_state(),
            "order": torch.randperm(5),
            "flags": torch.tensor([True, False]),
            "none": None,
        },
        [torch.zeros(0), {"nested": {"deeper": torch.arange(4, dtype=torch.int16)}}],
    ],
)
def test_flatten_round_trips_every_value_and_type(value):
    tensors = {}
    flat = flatten(value, tensors)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    _assert_same(unflatten(flat, tensors), value)


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def test_flatten_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="cannot checkpoint a object"):
        flatten({"x": object()}, {})


def _start(config: TrainConfig, shape) -> tuple[TrainState, torch.Tensor]:
    torch.manual_seed(config.seed)
    data = torch.from_numpy(
        np.random.default_rng(0).uniform(-1, 1, size=(config.num_samples, *shape)).astype(np.float32)
    )
    model = build_model(config, shape=shape)
    generator = torch.Generator().manual_seed(config.seed)
    return TrainState.start(model, config, generator=generator, num_samples=len(data)), data


class Stop(Exception):
    pass


def _train(config, shape, folder, *, every=0, stop_at=None, resume=False):
    """Train (resuming from ``folder`` if asked); checkpoint every ``every`` steps; stop after step ``stop_at``."""
    state, data = _start(config, shape)
    step = resume_state(folder, state, report=lambda line: None)[0] if resume else 0
    saver = Checkpointer(folder, CheckpointPolicy(every, 0, keep=2), signals=None, extra=dict, saved_step=step)

    def checkpoint(state):
        saver(state)
        if state.step == stop_at:
            raise Stop

    result = train(state, NoiseSchedule(config.num_timesteps), data, config, checkpoint=checkpoint, progress=False)
    return result, step


# 3 steps per epoch: a checkpoint mid-epoch (step 4), at an epoch's end (6: the snapshot and the next permutation
# are still to come), after every step, or none before the stop (training starts again)
@pytest.mark.parametrize(
    "changes,shape,stop_at,every",
    [
        ({}, (2,), 5, 2),
        ({}, (2,), 7, 3),
        ({}, (2,), 4, 5),
        ({"ema_decay": 0.9, "grad_clip": 0.0, "lr_schedule": "constant"}, (2,), 8, 1),
        ({"min_snr_gamma": 5.0, "target": "v"}, (2,), 5, 4),
        ({"ema_decay": 0.99}, (1, 8, 8), 5, 2),  # BatchNorm statistics and their EMA copy
        ({"precision": "bf16"}, (2,), 5, 2),
        ({"precision": "fp16"}, (1, 8, 8), 7, 3),  # the loss scaler's state (fp16 autocast runs on a CPU too)
    ],
)
def test_training_resumed_from_a_checkpoint_ends_with_the_same_bits(tmp_path, changes, shape, stop_at, every):
    config = TrainConfig.from_dict({**(IMAGES if len(shape) == 3 else POINTS), **changes}).validate()
    whole, _ = _train(config, shape, tmp_path / "whole")
    with pytest.raises(Stop):
        _train(config, shape, tmp_path / "cut", every=every, stop_at=stop_at)  # work after the checkpoint is lost
    resumed, step = _train(config, shape, tmp_path / "cut", resume=True)
    assert step == stop_at // every * every  # the newest checkpoint before the stop (0: none, start again)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert len(resumed.epoch_seconds) == config.num_epochs


def test_the_fp16_loss_scaler_resumes_where_it_stopped(tmp_path):
    config = TrainConfig.from_dict({**POINTS, "precision": "fp16"}).validate()
    with pytest.raises(Stop):
        _train(config, (2,), tmp_path, every=5, stop_at=5)
    state, _ = _start(config, (2,))
    assert resume_state(tmp_path, state, report=lambda line: None)[0] == 5
    # five steps without an overflow: the scale is where it began, five steps on its way to growing
    assert state.scaler.state_dict() == {
        "scale": 2.0**16,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 5,
    }


def _checkpoints(folder, steps, keep=5):
    for step in steps:
        save_checkpoint(folder, step, {"step": step, "weights": torch.full((3,), float(step))}, keep=keep)


def test_only_the_newest_checkpoints_are_kept_and_leftovers_of_a_killed_writer_go(tmp_path):
    (tmp_path / ".step-00000009.safetensors.x1y2.safetensors").write_bytes(b"half")  # a temporary file
    (tmp_path / "step-00000011.safetensors").write_bytes(b"tensors without their record")
    _checkpoints(tmp_path, [2, 4, 6], keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000004.json",
        "step-00000004.safetensors",
        "step-00000006.json",
        "step-00000006.safetensors",
    ]
    assert read_checkpoint(tmp_path, 6)["weights"].tolist() == [6.0, 6.0, 6.0]


def _flip(path, where):
    data = bytearray(path.read_bytes())
    data[where % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "tensors byte flipped": lambda d: _flip(d / "step-00000006.safetensors", 100),
    "tensors header flipped": lambda d: _flip(d / "step-00000006.safetensors", 10),
    "tensors truncated": lambda d: (d / "step-00000006.safetensors").write_bytes(
        (d / "step-00000006.safetensors").read_bytes()[:-7]
    ),
    "tensors missing": lambda d: (d / "step-00000006.safetensors").unlink(),
    "record byte flipped": lambda d: _flip(d / "step-00000006.json", 40),
    "record whitespace changed": lambda d: (d / "step-00000006.json").write_bytes(
        (d / "step-00000006.json").read_bytes().replace(b"\n", b"\t", 1)
    ),
    "record truncated": lambda d: (d / "step-00000006.json").write_bytes((d / "step-00000006.json").read_bytes()[:-30]),
    "record empty": lambda d: (d / "step-00000006.json").write_bytes(b""),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_reported_in_one_line_and_the_one_before_is_used(tmp_path, corrupt):
    _checkpoints(tmp_path, [2, 4, 6])
    CORRUPTIONS[corrupt](tmp_path)
    with pytest.raises(Corrupt) as caught:
        read_checkpoint(tmp_path, 6)
    assert "step-00000006" in str(caught.value) and "\n" not in str(caught.value)
    reports = []
    step, state = load_latest_checkpoint(tmp_path, report=reports.append)
    assert step == 4 and state["weights"].tolist() == [4.0, 4.0, 4.0]
    assert len(reports) == 1 and "fell back" in reports[0] and "\n" not in reports[0]
    assert checkpoint_steps(tmp_path) == [4, 2]  # the corrupt one is gone, so it never crowds out good ones


def test_no_intact_checkpoint_means_starting_from_the_beginning(tmp_path):
    _checkpoints(tmp_path, [2])
    _flip(tmp_path / "step-00000002.safetensors", 50)
    reports = []
    assert load_latest_checkpoint(tmp_path, report=reports.append) is None and len(reports) == 1


def test_a_signal_saves_the_step_and_stops_with_the_shells_exit_code(tmp_path):
    state, data = _start(TrainConfig(**POINTS), (2,))
    signals = Signals(received=signal.SIGTERM)
    saver = Checkpointer(tmp_path, CheckpointPolicy(0, 0), signals=signals, extra=lambda: {"frames": None})
    with pytest.raises(Interrupted) as caught:
        train(state, NoiseSchedule(20), data, TrainConfig(**POINTS), checkpoint=saver, progress=False)
    assert caught.value.exit_code == 143 and "step 1 of 9" in str(caught.value)
    assert checkpoint_steps(tmp_path) == [1]
    assert read_checkpoint(tmp_path, 1)["run"] == {"frames": None}


def test_a_state_that_is_not_finite_is_never_saved(tmp_path):
    config = TrainConfig(**{**POINTS, "learning_rate": 1e30, "warmup_steps": 0})
    state, data = _start(config, (2,))
    saver = Checkpointer(tmp_path, CheckpointPolicy(steps=1, seconds=0), signals=None, extra=dict)
    with pytest.raises(Diverged, match=r"diverged at step \d+ of 9 \(epoch \d\): loss .*learning-rate"):
        train(state, NoiseSchedule(20), data, config, checkpoint=saver, progress=False)
    for step in checkpoint_steps(tmp_path):  # every checkpoint written holds finite weights only
        saved = read_checkpoint(tmp_path, step)["train"]
        assert all(torch.isfinite(v).all() for v in saved["model"].values())
        assert torch.isfinite(saved["losses"]).all()


def test_a_checkpoint_of_another_device_or_settings_is_refused_in_one_line(tmp_path):
    state, data = _start(TrainConfig(**POINTS), (2,))
    saved = state.state_dict()
    with pytest.raises(UsageError, match="written on cuda.*--device cuda"):
        state.load_state_dict({**saved, "device": "cuda"})
    ema_state, _ = _start(TrainConfig(**POINTS, ema_decay=0.9), (2,))
    with pytest.raises(UsageError, match="does not match the run's settings"):
        ema_state.load_state_dict(saved)


@pytest.mark.parametrize(
    "every,steps,seconds", [("200", 200, 0.0), ("30s", 0, 30.0), ("1.5S", 0, 1.5), ("0", 0, 0.0), ("0s", 0, 0.0)]
)
def test_the_interval_is_steps_or_seconds(every, steps, seconds):
    policy = CheckpointPolicy.parse(every, keep=3)
    assert (policy.steps, policy.seconds, policy.keep) == (steps, seconds, 3)


@pytest.mark.parametrize(
    "policy,saved",
    [
        (CheckpointPolicy(steps=5, seconds=0), [5, 10]),
        (CheckpointPolicy(steps=0, seconds=2.0), [3, 6, 9]),  # a step takes 0.75 s: 2.25 s between checkpoints
        (CheckpointPolicy(steps=0, seconds=0), []),
    ],
)
def test_checkpoints_come_when_due(policy, saved):
    done, last = [], 0.0
    for step in range(1, 11):
        if policy.due(step, step * 0.75 - last):
            done.append(step)
            last = step * 0.75
    assert done == saved


@pytest.mark.parametrize(
    "every,keep,message",
    [
        ("-1", 2, "checkpoint-every"),
        ("-5s", 2, "checkpoint-every"),
        ("infs", 2, "checkpoint-every"),
        ("nans", 2, "checkpoint-every"),
        ("10m", 2, "steps .*or of seconds"),
        ("200", 0, "keep-checkpoints"),
    ],
)
def test_policy_refuses_nonsense(every, keep, message):
    with pytest.raises(UsageError, match=message):
        CheckpointPolicy.parse(every, keep)

"""Class conditioning: labelled datasets, prompts, the label-conditioned wrapper and classifier-free guidance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_diffusion.config import PRESETS, TrainConfig
from tiny_diffusion.data import DATASETS, get_dataset
from tiny_diffusion.data.prompts import parse_prompt
from tiny_diffusion.errors import UsageError
from tiny_diffusion.models import IMAGE_MODELS, LabelConditioned, PointMLP, build_model, guided

DIGITS = tuple(str(d) for d in range(10))
SHAPES = ("dino", "ring", "bar", "blobs")


# ---------------------------------------------------------------- labelled data


@pytest.mark.parametrize("name", ["random", "blobs"])
def test_labelled_draw_is_the_plain_draw_with_its_labels(name):
    dataset = get_dataset(name)
    points, labels = dataset.sample_labelled(2000, seed=5)
    np.testing.assert_array_equal(points, dataset.sample(2000, seed=5))
    assert labels.dtype == np.int64 and set(labels) == set(range(len(dataset.classes)))
    # each class is one compact part: its points sit far closer to their own centre than the parts are apart
    centres = np.stack([points[labels == k].mean(axis=0) for k in range(len(dataset.classes))])
    nearest = np.linalg.norm(points[:, None] - centres[None], axis=-1).argmin(axis=1)
    assert (nearest == labels).mean() > 0.97


def test_unlabelled_datasets_refuse_a_labelled_draw_listing_the_labelled_ones():
    with pytest.raises(UsageError, match="dataset dino has no labels.*random"):
        DATASETS["dino"].sample_labelled(10)


def test_a_long_table_gives_one_label_per_sub_dataset(tmp_path):
    path = tmp_path / "dozen.tsv"
    rows = ["dataset\tx\ty"] + [
        f"{name}\t{k + i / 10}\t{-k}" for k, name in enumerate(["star", "dino", "dots"]) for i in range(5)
    ]
    path.write_text("\n".join(rows) + "\n")
    dataset = get_dataset(str(path), labelled=True)
    assert dataset.classes == ("star", "dino", "dots")
    points, labels = dataset.sample_labelled(300, seed=0)
    np.testing.assert_array_equal(points[:, 1], -labels)  # y = -k holds each row's class
    with pytest.raises(UsageError, match="several datasets .*--conditional"):
        get_dataset(str(path))  # unlabelled, the table still needs --subset


def test_a_table_without_a_dataset_column_has_no_labels(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("x,y\n1,2\n3,4\n")
    with pytest.raises(UsageError, match="no 'dataset' column"):
        get_dataset(str(path), labelled=True)


# ---------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "prompt, labels",
    [
        ("7", [7]),
        ("seven", [7]),
        (" Seven ", [7]),
        ("0", [0]),
        ("zero", [0]),
        ("2024", [2, 0, 2, 4]),
        ("007", [0, 0, 7]),
    ],
)
def test_digit_prompts(prompt, labels):
    assert parse_prompt(prompt, DIGITS) == labels


@pytest.mark.parametrize("prompt, labels", [("dino", [0]), ("RING", [1]), ("blobs", [3])])
def test_shape_prompts(prompt, labels):
    assert parse_prompt(prompt, SHAPES) == labels


@pytest.mark.parametrize(
    "prompt, classes, known",
    [
        ("cat", DIGITS, "a digit 0-9, its name"),
        ("", DIGITS, "a digit 0-9"),
        ("-3", DIGITS, "a digit 0-9"),
        ("٣", DIGITS, "a digit 0-9"),  # an Arabic-Indic three: a digit to Python, not a class here
        ("1234567890123", DIGITS, "at most 12"),
        ("7", SHAPES, "dino, ring, bar, blobs"),
        ("star", SHAPES, "dino, ring, bar, blobs"),
    ],
)
def test_unknown_prompts_fail_listing_the_known_ones(prompt, classes, known):
    with pytest.raises(UsageError, match=known):
        parse_prompt(prompt, classes)


# ---------------------------------------------------------------- the conditioned model


def _conditioned(name: str) -> tuple[LabelConditioned, torch.Tensor]:
    torch.manual_seed(0)
    if name == "mlp":
        denoiser, x = PointMLP(2, embedding_size=8, hidden_size=16, hidden_layers=1), torch.randn(6, 2)
    else:
        denoiser, x = IMAGE_MODELS[name](1, channels=4, embedding_size=8), torch.randn(6, 1, 8, 8)
    model = LabelConditioned(denoiser, num_classes=3)
    with torch.no_grad():  # move every weight off its initial value (the U-Net starts as the zero function)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval(), x


@pytest.mark.parametrize("name", ["mlp", *sorted(IMAGE_MODELS)])
def test_the_label_changes_the_output_and_none_means_no_label(name):
    model, x = _conditioned(name)
    t = torch.full((len(x),), 4)
    with torch.no_grad():
        outputs = [model(x, t, torch.full((len(x),), k)) for k in range(4)]
        unconditional = model(x, t)
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(outputs[i], outputs[j])
    torch.testing.assert_close(unconditional, outputs[3])  # index num_classes is "no label"


@pytest.mark.parametrize("name", ["mlp", *sorted(IMAGE_MODELS)])
def test_guidance_mixes_conditional_and_unconditional_outputs(name):
    model, x = _conditioned(name)
    t, labels = torch.full((len(x),), 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        cond, uncond = model(x, t, labels), model(x, t)
        torch.testing.assert_close(guided(model, labels, 0.0)(x, t), cond)
        for w in (1.0, 3.0):
            torch.testing.assert_close(guided(model, labels, w)(x, t), cond + w * (cond - uncond), atol=1e-5, rtol=1e-4)


def test_the_mlp_without_a_label_is_unchanged_by_the_conditioning_input():
    torch.manual_seed(0)
    mlp = PointMLP(2, embedding_size=8, hidden_size=16, hidden_layers=2)
    x, t = torch.randn(5, 2), torch.arange(5)
    zero = torch.zeros(5, mlp.cond_size)
    torch.testing.assert_close(mlp(x, t, cond=zero), mlp(x, t))
    assert not torch.allclose(mlp(x, t, cond=torch.ones(5, mlp.cond_size)), mlp(x, t))


def test_build_model_wraps_conditional_runs_only():
    plain = TrainConfig.from_dict({"dataset": "random"}).validate()
    conditional = TrainConfig.from_dict({"dataset": "random", "conditional": True}).validate()
    assert isinstance(build_model(plain, shape=(2,)), PointMLP)
    model = build_model(conditional, shape=(2,), num_classes=4)
    assert isinstance(model, LabelConditioned) and model.labels.num_embeddings == 5


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("dataset, kind", [("dino", "points"), ("mnist5k", "images")])
def test_the_study_preset_sets_its_values_under_the_flags(dataset, kind):
    config = TrainConfig.from_dict({"dataset": dataset, "preset": "study"}).validate()
    for key, value in PRESETS["study"][kind].items():
        assert getattr(config, key) == value
    assert config.num_epochs == 25 and config.learning_rate == 2e-4
    assert TrainConfig.from_dict({"dataset": dataset, "preset": "study", "num_epochs": 3}).num_epochs == 3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"preset": "fast"}, "unknown preset 'fast'; choose from study"),
        ({"cond_drop": 1.0}, "cond_drop must be in"),
        ({"cond_drop": -0.1}, "cond_drop must be in"),
        ({"guidance": -1.0}, "guidance must be >= 0"),
        ({"conditional": True, "guidance": 2.0, "cond_drop": 0.0}, "guidance needs the unconditional model"),
    ],
)
def test_bad_conditioning_settings_fail_in_one_line(values, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig.from_dict(values).validate()

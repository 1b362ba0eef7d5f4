"""The names the command line offers before it imports torch are the names the registries hold; and asking for
help imports no torch."""

import subprocess
import sys

import pytest

from tiny_diffusion import choices
from tiny_diffusion.core import flow, noise_levels, objectives, precision, samplers, schedule, training
from tiny_diffusion.models import MODELS, embeddings, images


@pytest.mark.parametrize(
    "names,registry",
    [
        (choices.BETA_SCHEDULES, schedule.BETA_SCHEDULES),
        (choices.METHODS, training.METHODS),
        (choices.SAMPLERS, samplers.SAMPLERS),
        (choices.FLOW_SAMPLERS, flow.INTEGRATORS),
        (choices.TARGETS, objectives.TARGETS),
        (choices.TIMESTEP_SAMPLINGS, noise_levels.TIMESTEP_SAMPLINGS),
        (choices.PRECISIONS, precision.PRECISIONS),
        (choices.TIME_EMBEDDINGS, embeddings.TIME_EMBEDDINGS),
        (choices.INPUT_EMBEDDINGS, embeddings.INPUT_EMBEDDINGS),
        (choices.IMAGE_MODELS, images.IMAGE_MODELS),
        (choices.MODELS, ("mlp", *images.IMAGE_MODELS)),
        (MODELS, choices.MODELS),
    ],
    ids=[
        "beta_schedules",
        "methods",
        "samplers",
        "flow_samplers",
        "targets",
        "timestep_samplings",
        "precisions",
        "time_embeddings",
        "input_embeddings",
        "image_models",
        "models",
        "build_model",
    ],
)
def test_every_choice_names_exactly_what_its_registry_holds(names, registry):
    assert tuple(names) == tuple(registry)


def test_the_ode_tolerances_that_help_states_are_the_samplers_own():
    assert choices.ODE_TOLERANCES == {"ddpm": samplers.ODE_RTOL, "flow": flow.ODE_RTOL}
    assert (samplers.ODE_ATOL, flow.ODE_ATOL) == (samplers.ODE_RTOL, flow.ODE_RTOL)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["sample", "--help"],
        ["plot", "reverse", "--help"],
        ["train", "--num-epochs", "abc"],
    ],
)
def test_help_and_flag_errors_import_no_torch(argv):
    code = (
        "import sys\nfrom tiny_diffusion.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip().splitlines()[-1] == "False", shown.stderr

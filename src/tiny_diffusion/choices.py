"""The names a setting can take, kept apart from what they name so that the command line (its flags, ``--help``)
and the settings' validation start without importing torch. Each registry holds exactly these names
(tests/cli/test_choices.py checks it): the methods, beta schedules, samplers (of each method), targets, precisions,
embeddings and models."""

BETA_SCHEDULES = ("linear", "quadratic", "cosine", "sigmoid")  # core.schedule.BETA_SCHEDULES
METHODS = ("ddpm", "flow")  # how noise becomes data: diffusion (core.samplers) or flow matching (core.flow)
SAMPLERS = ("ddpm", "ddim", "dpmpp-2m", "euler", "heun", "ode")  # core.samplers.SAMPLERS
FLOW_SAMPLERS = ("euler", "heun", "midpoint", "ode")  # core.flow.INTEGRATORS
TARGETS = ("noise", "x0", "previous", "v")  # core.objectives
TIMESTEP_SAMPLINGS = ("uniform", "log-normal")  # core.noise_levels.TIMESTEP_SAMPLINGS
PRECISIONS = ("fp32", "bf16", "fp16")  # core.precision.PRECISIONS
TIME_EMBEDDINGS = ("sinusoidal", "learnable", "linear", "zero")  # models.embeddings.TIME_EMBEDDINGS
INPUT_EMBEDDINGS = ("sinusoidal", "learnable", "linear", "identity")  # models.embeddings.INPUT_EMBEDDINGS
IMAGE_MODELS = ("seed-cnn", "unet")  # models.images.IMAGE_MODELS
MODELS = ("mlp", *IMAGE_MODELS)  # models.build_model
DEVICES = ("auto", "cpu", "cuda", "mps")  # core.devices.resolve_device


def samplers_of(method: str) -> tuple[str, ...]:
    """The samplers a run of ``method`` can use."""
    return FLOW_SAMPLERS if method == "flow" else SAMPLERS


# a run's sampler when none is given (flow: docs/concepts.md#flow-matching measures euler, heun and midpoint)
DEFAULT_SAMPLERS = {"ddpm": "ddpm", "flow": "midpoint"}
ALL_SAMPLERS = tuple(dict.fromkeys((*SAMPLERS, *FLOW_SAMPLERS)))  # what --sampler accepts before the method is known
# the ode sampler's rtol and atol when none are given, by method (core.samplers.ODE_RTOL, core.flow.ODE_RTOL)
ODE_TOLERANCES = {"ddpm": 1e-3, "flow": 1e-5}

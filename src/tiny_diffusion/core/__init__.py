"""The diffusion core: noise schedules, samplers, training targets and the training loop. Tensors in, tensors out:
no files, no command line."""

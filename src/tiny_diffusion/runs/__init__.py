"""Everything a run leaves on disk: the run directory, checkpoints, the unfinished run beside it, manifests, the lock,
and the signals that stop training cleanly."""

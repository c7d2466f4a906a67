"""Training internals: window sampling, checkpoints, the optimisation loop and whole-clip evaluation."""

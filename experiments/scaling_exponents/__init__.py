"""Scaling exponents across parameterizations and optimizers (Everett et al. 2024):
alignment probes (and, later, the experiment pipeline)."""

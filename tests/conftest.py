import jax

# No accidental broadcasting may hide: rank promotion raises in every test.
jax.config.update("jax_numpy_rank_promotion", "raise")

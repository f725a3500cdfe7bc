import jax

# No accidental broadcasting may hide: rank promotion raises in every test.
jax.config.update("jax_numpy_rank_promotion", "raise")
# No implicit dtype promotion either: every loss must pick its compute dtype
# explicitly, so it accepts float16/bfloat16/float32/float64 under strict promotion.
jax.config.update("jax_numpy_dtype_promotion", "strict")

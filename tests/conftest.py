import os

# The suite compiles hundreds of small programs: LLVM's optimisation passes cost
# more than they save at these sizes (about 30% of the suite's compile time).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

# No accidental broadcasting may hide: rank promotion raises in every test.
jax.config.update("jax_numpy_rank_promotion", "raise")
# No implicit dtype promotion either: every loss must pick its compute dtype
# explicitly, so it accepts float16/bfloat16/float32/float64 under strict promotion.
jax.config.update("jax_numpy_dtype_promotion", "strict")

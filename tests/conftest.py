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


# The few slow tests: each starts fresh interpreters (8 simulated devices, the
# examples' smoke runs, a wheel built and installed into a new venv).
# `pytest -m "not slow"` is the quick run; CI runs everything.
_SLOW_FILES = ("test_sharded.py", "test_embedding_sharded.py", "test_large_vocab_sharded.py",
               "test_self_supervised_sharded.py", "test_examples.py")
_SLOW_TESTS = ("test_sdist_and_wheel_build_check_and_install",)


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if item.path.name in _SLOW_FILES or getattr(item, "originalname", "") in _SLOW_TESTS or \
                item.path.name.startswith("test_distillation_fused_sharded"):
            item.add_marker(pytest.mark.slow)

import gc
import os

# The suite compiles thousands of small programs, so XLA's compile time is most of
# its run time. At these sizes LLVM's optimisation passes cost more than they save,
# and XLA:CPU's older elemental emitters compile a fusion in about a third of the
# time of the MLIR fusion emitters (measured: 65 -> 22 ms for one value-and-grad
# program; the suite's CPU time drops by 2.4x). Subprocesses (examples, devices)
# inherit these flags through the environment.
_FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
                       "--xla_cpu_parallel_codegen_split_count=1")
_flags = os.environ.get("XLA_FLAGS", "")
for _flag in _FAST_COMPILE_FLAGS:
    if _flag.split("=")[0] not in _flags:
        _flags = (_flags + " " + _flag).strip()
os.environ["XLA_FLAGS"] = _flags
# Source locations (a traceback per operation) are written into every lowered
# program for profilers and dumps; the suite reads neither, and building them is
# about a tenth of its lowering and compile time. Subprocesses inherit this too.
os.environ.setdefault("JAX_TRACEBACK_IN_LOCATIONS_LIMIT", "0")
os.environ.setdefault("JAX_INCLUDE_FULL_TRACEBACKS_IN_LOCATIONS", "false")

import jax  # noqa: E402
import pytest  # noqa: E402

from tests.lowering import reuse_mlir_context  # noqa: E402

reuse_mlir_context()

# Tracing allocates millions of short-lived Python objects; with the default thresholds the cyclic
# garbage collector walks the whole heap (JAX, NumPy, torch, ...) thousands of times per run. Objects
# alive now are frozen out of its walks and it runs less often: about 8% less CPU (measured on the
# segmentation and classification files).
gc.freeze()
gc.set_threshold(100_000, 50, 1000)

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


# Files whose tests are independent programs (no compiled program or eager operation to share) stay
# spread over the workers test by test; every other file runs on one worker (--dist loadgroup), where
# its tests share compiled programs and the eager operations' compiled kernels.
_SPREAD_FILES = ("test_examples.py",)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in _SLOW_FILES or getattr(item, "originalname", "") in _SLOW_TESTS or \
                item.path.name.startswith("test_distillation_fused_sharded"):
            item.add_marker(pytest.mark.slow)
        if item.path.name not in _SPREAD_FILES and not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))

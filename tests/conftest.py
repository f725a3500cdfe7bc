import functools
import gc
import inspect
import os
import re

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


# Slow tests, left out of the quick run `pytest -m "not slow"` (CI and the README's `pytest` run all):
# * tests that start fresh interpreters (8 simulated devices, the examples' smoke runs, a wheel built
#   and installed into a new venv);
# * peer runs: tests that import a peer library (torch, Keras, rax, MONAI, PML, sacrebleu, ...) through
#   `pytest.importorskip`, directly or through a helper of their module, and run it. Their NumPy
#   transcriptions of the same formulas stay in the quick run;
# * Pallas kernels run in interpret mode (test_kernels.py), hypothesis properties (many drawn examples),
#   programs compiled at production sizes (the Gemma-2 memory plan, bfloat16 weights walked in groups,
#   every loss at XLA:CPU's YNN fusion sizes in tests/test_nan_propagation.py)
#   and the doctests (the documentation's examples);
# * the invariants suite's "jit" check: its eager (op-by-op) run compiles one program per operation and
#   shape, about a fifth of the suite's time; and its "where" check, which compiles the sliced inputs'
#   program as well (20 s of the quick run's 230 s of test time; the quick run keeps "all_masked",
#   which runs the same masked program, and every family's own where tests);
# * two compile-bound tests of 1.8-3 s each whose property the quick run checks elsewhere: the
#   `checked` settings on every registered loss (test_toolkit's other `checked` tests) and 256x256
#   half-precision segmentation (the invariants' 16-bit edge check at the specs' sizes);
# * the memory plans of the guarded divergences compiled at 2048 and 4096 rows (production sizes, as
#   the Gemma-2 plan above) and the text metrics' eager-vs-jit check (op by op, as the invariants' "jit");
# * a few parametrizations marked in place (`pytest.param(..., marks=pytest.mark.slow)`), each a variant
#   of a test whose other variants stay in the quick run.
_SLOW_FILES = ("test_sharded.py", "test_embedding_sharded.py", "test_large_vocab_sharded.py",
               "test_self_supervised_sharded.py", "test_examples.py", "test_kernels.py")
_SLOW_TESTS = ("test_sdist_and_wheel_build_check_and_install",
               "test_gemma_shape_bfloat16_memory_at_most_a_twentieth_of_naive",
               "test_bfloat16_weights_never_copied_whole", "test_bfloat16_weights_walked_in_groups_equal_unfused",
               "test_bfloat16_weight_walked_in_groups_equals_naive", "test_bfloat16_weights_cast_chunk_by_chunk",
               "test_only_the_listed_losses_drop_a_nan_under_xla_cpu_ynn_fusions",
               "test_the_listed_losses_keep_a_nan_with_ynn_fusions_off",
               "test_checked_masked_and_padded_settings_do_not_crash",
               "test_256x256_half_precision_finite_and_accurate",
               "test_guarded_recomputation_needs_no_more_memory_than_optax",
               "test_metric_jit_equals_eager_and_vmap_equals_batched")
_SLOW_INVARIANTS = ("jit", "where")


# Files whose tests are independent programs (no compiled program or eager operation to share) stay
# spread over the workers test by test; every other file runs on one worker (--dist loadgroup), where
# its tests share compiled programs and the eager operations' compiled kernels.
_SPREAD_FILES = ("test_examples.py",)


_PEERS = ("torch", "keras", "rax", "monai", "pytorch_metric_learning", "sacrebleu", "rouge_score",
          "transformers", "skimage")
_PEER_IMPORT = re.compile(r"importorskip\(\s*[\"'](?:%s)\b" % "|".join(_PEERS))
_MODULE_PEER_IMPORT = re.compile(r"^\w+\s*=\s*pytest\.importorskip\(\s*[\"'](?:%s)\b" % "|".join(_PEERS), re.M)
_CALLED = re.compile(r"\b([A-Za-z_]\w*)\(")


@functools.lru_cache(maxsize=None)
def _source(obj):
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


@functools.lru_cache(maxsize=None)
def _module_imports_a_peer(module):
    return bool(_MODULE_PEER_IMPORT.search(_source(module)))


def _imports_a_peer(fn, module, depth=3):
    """Whether ``fn`` or a function of ``module`` it calls (``depth`` levels) imports a peer library."""
    source = _source(fn)
    if _PEER_IMPORT.search(source):
        return True
    if depth == 0:
        return False
    for name in set(_CALLED.findall(source)):
        helper = vars(module).get(name)
        if inspect.isfunction(helper) and helper is not fn and helper.__module__ == module.__name__ \
                and _imports_a_peer(helper, module, depth - 1):
            return True
    return False


def _is_peer_run(item):
    module, fn = getattr(item, "module", None), getattr(item, "function", None)
    if module is None or fn is None:
        return False
    return _module_imports_a_peer(module) or _imports_a_peer(fn, module)


def _invariant_check(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("check") if callspec is not None else None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in _SLOW_FILES or getattr(item, "originalname", "") in _SLOW_TESTS or \
                item.path.name.startswith("test_distillation_fused_sharded") or _is_peer_run(item) or \
                getattr(getattr(item, "function", None), "is_hypothesis_test", False) or \
                isinstance(item, pytest.DoctestItem) or \
                (item.path.name == "test_invariants.py" and _invariant_check(item) in _SLOW_INVARIANTS):
            item.add_marker(pytest.mark.slow)
        if item.path.name not in _SPREAD_FILES and not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # Everything alive now (thousands of compiled programs) is frozen out of the collector's walks:
    # pytest's clean-up calls gc.collect() several times, which otherwise walked that whole heap for
    # about ten seconds at the end of a full run.
    gc.freeze()

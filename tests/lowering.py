"""Test-suite speed: how the suite's processes lower programs (see ``reuse_mlir_context``).

Used by ``tests/conftest.py`` and by the multi-device subprocesses of
``tests/devices.py``.
"""

import os


def reuse_mlir_context(uses: int = 256) -> None:
    """Lowers up to ``uses`` programs in one MLIR context instead of a new one each.

    JAX builds a fresh MLIR context (every dialect registered again) for each
    program it lowers, and the caches tied to a context start empty each time.
    The suite lowers tens of thousands of small programs: reusing the context
    cut its CPU time by a quarter (11m23 -> 8m40 user, 2 cores). The programs
    do not depend on it. Only the suite does this (``make_ir_context`` is
    private to JAX: if it is gone, nothing is changed);
    ``JAXLOSS_TESTS_FRESH_MLIR_CONTEXT=1`` turns it off.
    """
    try:
        from jax._src.interpreters import mlir
    except ImportError:
        return
    make = getattr(mlir, "make_ir_context", None)
    if make is None or os.environ.get("JAXLOSS_TESTS_FRESH_MLIR_CONTEXT"):
        return
    state: dict = {"context": None, "uses": 0}

    def reused():
        if state["context"] is None or state["uses"] >= uses:
            state["context"], state["uses"] = make(), 0
        state["uses"] += 1
        return state["context"]

    mlir.make_ir_context = reused

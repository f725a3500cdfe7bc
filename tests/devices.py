"""Runs a script in a fresh interpreter with simulated CPU devices.

XLA reads ``--xla_force_host_platform_device_count`` once, when JAX starts, so
multi-device tests run their script in a subprocess with the flag set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_with_devices(script: str, *argv: str, devices: int = 8, timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs ``python -c script *argv`` from the repository root on ``devices`` CPU devices."""
    flags = os.environ.get("XLA_FLAGS", "")  # the suite's fast-compile flags (tests/conftest.py), plus the devices
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}".strip(),
           "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = "import tests.lowering; tests.lowering.reuse_mlir_context()\n" + script  # as the suite's own processes
    return subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)

"""A NaN input reaches the loss value, also at the sizes where XLA:CPU fuses reductions with YNNPACK.

``tests/nan_scan.py`` grows every spec to at least 8192 elements and poisons one
element of each batched float input. XLA:CPU (jaxlib 0.10) evaluates
``maximum``/``minimum`` and max/min reductions inside its YNN reduction fusions
without NaN propagation (also in optax's losses; openxla/xla#21461 reports the
reduction case), so a NaN that reaches the value only through such a maximum
(the hinge-style margins) is dropped under ``jit``. The first test pins the list
of losses that do so, so that no other loss joins it unnoticed; the second shows
that with those fusions off (``--xla_cpu_experimental_ynn_fusion_type=``, the
workaround on the conventions page) the listed losses keep the NaN too (every
other loss already keeps it with the fusions on). ``nll_loss`` reads
only the label's log-probability, as torch's does, so a NaN elsewhere in a row
is not read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import nan_scan
from tests.devices import ROOT

NOT_READ = {"nll_loss": [0]}
# Losses whose NaN input reaches the value only through a maximum/minimum that XLA:CPU's YNN fusions
# evaluate without NaN propagation (listed on docs/conventions.md, "Masking and NaN").
# The four optax also has keep optax's program (a NaN-keeping select costs an extra pass, 1.27-1.33x on hinge);
# the losses optax does not have floor with _numerics.floor_keeping_nan instead.
DROPPED_BY_YNN_FUSIONS = {"batch_hard_triplet_loss", "hinge_loss", "lovasz_hinge_loss", "multiclass_hinge_loss",
                          "multiclass_perceptron_loss", "perceptron_loss"}


def test_only_the_listed_losses_drop_a_nan_under_xla_cpu_ynn_fusions():
    dropped = nan_scan.scan()
    assert {k: v for k, v in dropped.items() if k in NOT_READ} == NOT_READ
    unexpected = sorted(set(dropped) - set(NOT_READ) - DROPPED_BY_YNN_FUSIONS)
    assert not unexpected, f"a NaN input gives a finite value under jit: {unexpected} ({dropped})"


def test_the_listed_losses_keep_a_nan_with_ynn_fusions_off():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_experimental_ynn_fusion_type="
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    names = ",".join(sorted(DROPPED_BY_YNN_FUSIONS | set(NOT_READ)))
    run = subprocess.run([sys.executable, "-m", "tests.nan_scan", names], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == NOT_READ

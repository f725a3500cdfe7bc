"""The benchmark harness's statistics (``benchmarks/harness.py``) against textbook values; the table's peers."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

_HARNESS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "harness.py"
_REPORT = _HARNESS.parent / "report.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("benchmarks_harness", _HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n,rank", [(6, 1), (10, 2), (20, 6), (40, 14)])
def test_paired_ratio_interval_is_the_sign_test_interval(harness, n, rank):
    # Ranks of the 95% sign-test interval of a median: the largest k with P(Binomial(n, 1/2) < k) <= 0.025,
    # worked by hand: n = 6: 1/64 = 0.016 (k = 1); n = 10: 11/1024 = 0.011, 56/1024 = 0.055 (k = 2);
    # n = 20: P(<= 5) = 0.021, P(<= 6) = 0.058 (k = 6); n = 40: P(<= 13) = 0.019, P(<= 14) = 0.040 (k = 14).
    ours = list(np.arange(1.0, n + 1.0))
    lo, hi = harness.paired_ratio_interval(ours, [1.0] * n)
    assert (lo, hi) == (rank, n + 1 - rank)


def test_paired_ratio_interval_pairs_samples_by_repeat(harness):
    # The machine slows down over the run; pairing by repeat cancels the drift.
    drift = np.linspace(1.0, 3.0, 20)
    lo, hi = harness.paired_ratio_interval(list(1.05 * drift), list(drift))
    assert lo == pytest.approx(1.05) and hi == pytest.approx(1.05)
    assert harness.paired_ratio_interval([1.0] * 5, [1.0] * 5) is None


def test_paired_ratio_interval_covers_the_true_ratio(harness):
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        a, b = rng.lognormal(0.0, 0.1, 20), rng.lognormal(0.0, 0.1, 20)
        lo, hi = harness.paired_ratio_interval(list(a), list(b))
        hits += lo <= 1.0 <= hi
    assert 0.92 <= hits / 400 <= 0.99  # 95.9% nominal for n = 20


def test_pooled_timings_concatenate_the_rounds_samples(harness):
    # Rounds (`run.py --rounds`): a row's later samples join the first round's, in order, and the summary
    # is recomputed from all of them: median of 1, 2, 3, 10, 20, 30 is 6.5, minimum 1; the batch stays.
    first = harness.timing_from_samples([3.0, 1.0, 2.0], batch=7)
    later = harness.timing_from_samples([30.0, 10.0, 20.0], batch=9)
    both = harness.pooled(dict(first, value=0.5), later)
    assert both["samples_s"] == [3.0, 1.0, 2.0, 30.0, 10.0, 20.0]
    assert (both["median_s"], both["min_s"], both["samples"], both["batch"], both["value"]) == (6.5, 1.0, 6, 7, 0.5)


def test_each_round_verdict_splits_the_pooled_samples_by_round(harness, monkeypatch):
    # Two rounds of 20 paired samples each. 1.10x optax in both rounds is slow in each round. 1.10x in the
    # first round and 0.98x/1.06x alternating in the second is slow beyond the pooled samples' noise (the
    # sign-test interval of 40 ratios runs from rank 14, a 1.06, to rank 27, a 1.10) but not in the second
    # round alone (ranks 6 and 15 of its 20 ratios: 0.98 and 1.06).
    monkeypatch.syspath_prepend(str(_HARNESS.parent))
    spec = importlib.util.spec_from_file_location("benchmarks_report", _REPORT)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    optax = list(np.linspace(1.0, 2.0, 40))

    def row(factors):
        ours = [f * t for f, t in zip(factors, optax)]
        return {"fwd": {"jaxloss": {"samples_s": ours, "median_s": float(np.median(ours))},
                        "optax": {"samples_s": optax, "median_s": float(np.median(optax))}}}

    both = row([1.10] * 40)
    first_only = row([1.10] * 20 + [0.98, 1.06] * 10)
    assert report.beyond_noise(both, "fwd") and report.beyond_noise_each_round(both, "fwd", 2)
    assert report.beyond_noise(first_only, "fwd") and not report.beyond_noise_each_round(first_only, "fwd", 2)
    assert report.beyond_noise_each_round(both, "fwd", 1) is None  # one round: no per-round verdict
    assert report.beyond_noise_each_round(both, "fwd", 3) is None  # 40 samples do not split into 3 rounds


class _Compiled:
    def __init__(self, text):
        self.text = text

    def as_text(self):
        return self.text


def test_hlo_profile_counts_materialised_broadcasts(harness):
    # An entry fusion that only broadcasts (XLA:CPU's wrapped_broadcast) of 512x128 = 65536 elements counts;
    # one of 512 elements (a row vector) and the fused computation's own broadcast do not.
    text = """HloModule m
%wrapped_broadcast_computation (p: f32[]) -> f32[512,128] {
  %p = f32[] parameter(0)
  ROOT %b = f32[512,128]{1,0} broadcast(%p), dimensions={}
}
ENTRY %main (a: f32[512,128]) -> f32[512] {
  %a = f32[512,128]{1,0} parameter(0)
  %c = f32[] constant(1e-06)
  %wrapped_broadcast = f32[512,128]{1,0} fusion(%c), kind=kLoop, calls=%wrapped_broadcast_computation
  %wrapped_broadcast.1 = f32[512]{0} fusion(%c), kind=kLoop, calls=%wrapped_broadcast_computation.1
  ROOT %r = f32[512]{0} fusion(%a, %wrapped_broadcast, %wrapped_broadcast.1), kind=kCustom, calls=%f
}
"""
    profile = harness.hlo_profile(_Compiled(text))
    assert profile["broadcasts"] == 1 and profile["kernels"] == 3


def test_cases_drop_a_row_whose_peer_the_installed_optax_lacks(monkeypatch):
    import optax

    spec = importlib.util.spec_from_file_location("benchmarks_cases", _HARNESS.parent / "cases.py")
    cases = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmarks_cases", cases)  # dataclasses look their module up there
    spec.loader.exec_module(cases)
    names = {case.name for case in cases.build_cases()}
    assert {"dice_loss/binary", "generalized_dice_loss", "cosine_similarity"} <= names
    # An older optax (the package allows 0.2.4) without binary_dice_loss: the row goes, the others stay.
    monkeypatch.delattr(optax.losses, "binary_dice_loss")
    fewer = {case.name for case in cases.build_cases()}
    assert fewer == names - {"dice_loss/binary"}

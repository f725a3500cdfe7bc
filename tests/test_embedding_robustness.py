"""NaN propagation and empty batches for every embedding loss (issue 11, items 4 and 5).

* One NaN in an unmasked input must give NaN (a diverged model shows in the
  logs), never a healthy-looking finite number; the same NaN at a masked
  example contributes exactly 0 to the value and to every gradient.
* A batch of size 0 gives 0.0 with zero gradients for ``"mean"`` and
  ``"sum"``, and an empty array for ``"none"`` (an empty denominator, as the
  contract's reduction rules say), never "zero-size array to reduction".

Every loss is called under ``jax.jit`` (one program per loss, option set and
shape): the suite's cost is XLA compilation, and eager calls compile each
primitive on their own.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import embedding as E


_B, _D, _C = 6, 4, 5
_LABELS = np.array([0, 0, 1, 1, 2, 2], np.int32)


def _x(rng, b=_B):
    return rng.normal(size=(b, _D)).astype(np.float32)


def _labels(b=_B):
    return _LABELS[:b] if b <= _B else np.arange(b, dtype=np.int32) % 3


# name: (loss(*args, **kw), make_args(rng, batch) -> args, positions of inputs with the batch on axis 0)
LOSSES = {
    "cosine_distance": (E.cosine_distance, lambda r, b: (_x(r, b), _x(r, b)), (0, 1)),
    "triplet_margin_loss": (E.triplet_margin_loss, lambda r, b: (_x(r, b), _x(r, b), _x(r, b)), (0, 1, 2)),
    "triplet_margin_with_distance_loss": (E.triplet_margin_with_distance_loss,
                                          lambda r, b: (_x(r, b), _x(r, b), _x(r, b)), (0, 1, 2)),
    "ntxent_loss": (E.ntxent_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
    "supervised_contrastive_loss": (E.supervised_contrastive_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
    "info_nce_loss": (E.info_nce_loss, lambda r, b: (_x(r, b), _x(r, b)), (0, 1)),
    "clip_loss": (E.clip_loss, lambda r, b: (_x(r, b), _x(r, b)), (0, 1)),
    "siglip_loss": (lambda u, v, **k: E.siglip_loss(u, v, logit_scale=10.0, logit_bias=-10.0, **k),
                    lambda r, b: (_x(r, b), _x(r, b)), (0, 1)),
    "arcface_loss": (E.arcface_loss, lambda r, b: (_x(r, b), _x(r, _C), np.arange(b, dtype=np.int32) % _C), (0, 2)),
    "cosface_loss": (E.cosface_loss, lambda r, b: (_x(r, b), _x(r, _C), np.arange(b, dtype=np.int32) % _C), (0, 2)),
    "circle_loss": (E.circle_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
    "batch_hard_triplet_loss": (E.batch_hard_triplet_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
}

# Losses of the second metric-learning part (issue 13), added to the same checks when present.
_SECOND = {
    "multi_similarity_loss": (lambda: E.multi_similarity_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
    "lifted_structure_loss": (lambda: E.lifted_structure_loss, lambda r, b: (_x(r, b), _labels(b)), (0, 1)),
    "npairs_loss": (lambda: E.npairs_loss, lambda r, b: (_x(r, b), _x(r, b)), (0, 1)),
    "proxy_nca_loss": (lambda: E.proxy_nca_loss,
                       lambda r, b: (_x(r, b), _x(r, _C), np.arange(b, dtype=np.int32) % _C), (0, 2)),
    "soft_triple_loss": (lambda: (lambda e, c, y, **k: E.soft_triple_loss(e, c, y, centers_per_class=2, **k)),
                         lambda r, b: (_x(r, b), _x(r, 2 * _C), np.arange(b, dtype=np.int32) % _C), (0, 2)),
    "sub_center_arcface_loss": (lambda: (lambda e, c, y, **k: E.sub_center_arcface_loss(e, c, y, sub_centers=2, **k)),
                                lambda r, b: (_x(r, b), _x(r, 2 * _C), np.arange(b, dtype=np.int32) % _C), (0, 2)),
}
for _name, (_get, _make, _pos) in _SECOND.items():
    if hasattr(E, _name):
        LOSSES[_name] = (_get(), _make, _pos)

# proxy_anchor_loss is reduced over proxies: its unreduced values are [C], not [B].
PER_PROXY = {}
if hasattr(E, "proxy_anchor_loss"):
    PER_PROXY["proxy_anchor_loss"] = (E.proxy_anchor_loss,
                                      lambda r, b: (_x(r, b), _x(r, _C), np.arange(b, dtype=np.int32) % _C), (0, 2))


def _float_positions(args):
    return [i for i, a in enumerate(args) if np.issubdtype(np.asarray(a).dtype, np.floating)]


def _with_nan(args, i, row):
    a = np.array(args[i])
    a[row, 1] = np.nan
    return tuple(a if j == i else x for j, x in enumerate(args))


@functools.cache
def _three_reductions(name):
    """The loss's "mean", "sum" and "none" values as one compiled program."""
    fn = {**LOSSES, **PER_PROXY}[name][0]
    return jax.jit(lambda *args: (fn(*args), fn(*args, reduction="sum"), fn(*args, reduction="none")))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_nan_in_unmasked_input_gives_nan(name):
    _, make, batched = LOSSES[name]
    args = make(np.random.default_rng(0), _B)
    reductions = _three_reductions(name)
    assert np.isfinite(float(reductions(*args)[0]))
    for i in _float_positions(args):
        row = 2 if i in batched else 1  # a class center / proxy row, or example 2
        mean, total, none = reductions(*_with_nan(args, i, row))
        assert np.isnan(float(mean)), (name, i)
        assert np.isnan(float(total)), (name, i)
        none = np.asarray(none)
        if i in batched:
            assert np.isnan(none[2]), (name, i, none)  # at least the poisoned example itself
        else:
            assert np.any(np.isnan(none)), (name, i, none)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_nan_at_masked_example_contributes_nothing(name):
    fn, make, batched = LOSSES[name]
    args = make(np.random.default_rng(1), _B)
    floats = [i for i in _float_positions(args) if i in batched]
    bad = args
    for i in floats:
        bad = _with_nan(bad, i, 2)
    where = np.arange(_B) != 2
    sliced = tuple(np.delete(a, 2, axis=0) if j in batched else a for j, a in enumerate(args))

    def f(*xs):
        full = list(bad)
        for i, x in zip(floats, xs):
            full[i] = x
        return fn(*full, where=where)

    def masked_and_sliced(xs, sliced):  # one program
        return jax.value_and_grad(f, argnums=tuple(range(len(floats))))(*xs), fn(*sliced)

    (value, grads), expected = jax.jit(masked_and_sliced)([jnp.asarray(bad[i]) for i in floats], sliced)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    for g in grads:
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.all(g[2] == 0), (name, g)


@pytest.mark.parametrize("name", sorted(LOSSES) + sorted(PER_PROXY))
def test_empty_batch_gives_zero_with_zero_gradients(name):
    fn, make, batched = {**LOSSES, **PER_PROXY}[name]
    args = make(np.random.default_rng(2), 0)
    floats = _float_positions(args)

    def f(*xs, reduction):
        full = list(args)
        for i, x in zip(floats, xs):
            full[i] = x
        return fn(*full, reduction=reduction)

    def all_reductions(*xs):
        argnums = tuple(range(len(floats)))
        return ({reduction: jax.value_and_grad(functools.partial(f, reduction=reduction), argnums=argnums)(*xs)
                 for reduction in ("mean", "sum")}, f(*xs, reduction="none"))

    reduced, none = jax.jit(all_reductions)(*[jnp.asarray(args[i]) for i in floats])
    for reduction, (value, grads) in reduced.items():
        assert float(value) == 0.0, (name, reduction, value)
        for g in grads:
            assert np.all(np.asarray(g) == 0), (name, reduction)
    expected = (0,) if name not in PER_PROXY else (_C,)
    assert none.shape == expected and np.all(np.asarray(none) == 0), (name, none)

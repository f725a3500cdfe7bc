"""Invariant-suite inputs for the embedding losses (``jaxloss.embedding``).

Inputs are built so finite differences in float64 stay away from kinks: the
hinge of every margin loss is either clearly active or clearly inactive, and
random embeddings make ties in the batch-hard max/min improbable. Labels that
the losses compare with ``==`` (torch's ``{-1, +1}`` labels) are integers so the
gradient check does not differentiate through a comparison. The batch-global
losses mask with ``where`` by removing an example both as anchor and as
candidate, so the where-equals-slicing check applies to them unchanged.
"""

from __future__ import annotations

import numpy as np

import jaxloss.embedding  # noqa: F401  (registers the losses)
from tests.specs import Spec

_B, _D = 6, 4


def _unit(rng: np.random.Generator, shape) -> np.ndarray:
    v = rng.normal(size=shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _sign_labels(n: int) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int32)


def _cosine_pair(rng):
    return rng.normal(size=(_B, _D)), rng.normal(size=(_B, _D))


def _cosine_embedding(rng):
    # cos(x1, x2) near +-0.9 (never near the margin 0): x2 = s * x1 + small noise.
    x1 = rng.normal(size=(_B, _D))
    s = np.where(rng.uniform(size=(_B, 1)) < 0.5, -1.0, 1.0)
    return x1, s * x1 + 0.3 * rng.normal(size=(_B, _D)), _sign_labels(_B)


def _hinge_embedding(rng):
    # Distances away from the margin 1.0 on both sides.
    near = rng.uniform(0.1, 0.8, size=(_B, 3))
    far = rng.uniform(1.2, 3.0, size=(_B, 3))
    pick = (np.arange(_B * 3).reshape(_B, 3) % 2) == 0
    labels = np.where(rng.uniform(size=(_B, 3)) < 0.5, -1, 1).astype(np.int32)
    return np.where(pick, near, far), labels


def _triplets(rng):
    # d(a, p) = 0.5; d(a, n) alternates 1.0 (loss 0.5) and 3.0 (loss 0): no hinge kink.
    a = rng.normal(size=(_B, _D))
    p = a + 0.5 * _unit(rng, (_B, _D))
    r = np.where(np.arange(_B) % 2 == 0, 1.0, 3.0)[:, None]
    return a, p, a + r * _unit(rng, (_B, _D))


def _siamese(rng):
    # d alternates 0.5 and 2.0 around the margin 1.0; labels alternate similar/dissimilar.
    x1 = rng.normal(size=(_B, _D))
    r = np.where(np.arange(_B) % 4 < 2, 0.5, 2.0)[:, None]
    labels = (np.arange(_B) % 2).astype(np.float64)
    return x1, x1 + r * _unit(rng, (_B, _D)), labels


def _pairs_of_views(rng):
    # One positive per anchor, so the optax pair-mean of ntxent_loss is the anchor mean.
    return rng.normal(size=(_B, _D)), np.array([0, 0, 1, 1, 2, 2], np.int32)


def _classes(rng):
    return rng.normal(size=(8, _D)), np.array([0, 0, 0, 1, 1, 2, 2, 2], np.int32)


def _class_pairs(rng):
    return rng.normal(size=(8, 3)), np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)


def _two_towers(rng):
    return rng.normal(size=(_B, _D)), rng.normal(size=(_B, _D))


def _centers(rng):
    # 5 class centers for a batch of 6: class_centers has no batch axis, so masking an
    # example slices only embeddings and labels.
    return rng.normal(size=(_B, _D)), rng.normal(size=(5, _D)), np.array([0, 1, 2, 3, 4, 0], np.int32)


SPECS = {
    "cosine_distance": Spec(_cosine_pair),
    "cosine_embedding_loss": Spec(_cosine_embedding),
    "hinge_embedding_loss": Spec(_hinge_embedding),
    "triplet_margin_loss": Spec(_triplets),
    "triplet_margin_with_distance_loss": Spec(_triplets, {"margin": 1.0}),
    "contrastive_loss": Spec(_siamese),
    "batch_hard_triplet_loss": Spec(_class_pairs, {"margin": 0.2}),
    "ntxent_loss": Spec(_pairs_of_views, {"temperature": 0.5}),
    "supervised_contrastive_loss": Spec(_classes, {"temperature": 0.5}),
    "info_nce_loss": Spec(_two_towers, {"temperature": 0.5}),
    "clip_loss": Spec(_two_towers, {"temperature": 0.5}),
    "siglip_loss": Spec(_two_towers, {"logit_scale": 10.0, "logit_bias": -5.0}),
    "arcface_loss": Spec(_centers, {"scale": 16.0, "margin": 0.5}),
    "cosface_loss": Spec(_centers, {"scale": 16.0, "margin": 0.35}),
    "circle_loss": Spec(_class_pairs, {"gamma": 16.0, "margin": 0.4}),
}


# ----------------------------------------- metric learning, second part (PML)
def _metric_batch(rng):
    # Random embeddings in 3 classes: ties in the log-sum-exps and hinges are improbable.
    return rng.normal(size=(_B, _D)), np.array([0, 0, 1, 1, 2, 2], np.int32)


def _lifted_batch(rng):
    # The outer [.]_+ is active for every anchor (its argument stays clearly positive).
    return 0.3 * rng.normal(size=(_B, _D)) + np.array([1.0, 0.0, 0.0, 0.0]), np.array([0, 0, 1, 1, 2, 2], np.int32)


def _proxies(rng):
    # 4 proxies for a batch of 6 (no batch axis on the proxies).
    return rng.normal(size=(_B, _D)), rng.normal(size=(4, _D)), np.array([0, 1, 2, 3, 0, 1], np.int32)


def _sub_centers(rng):
    # 4 classes x 2 centers = 8 rows (not the batch size 6). The embeddings sit near one sub-center
    # of their class so the max over sub-centers has no near-tie.
    centers = rng.normal(size=(8, _D))
    labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
    return centers[2 * labels] + 0.1 * rng.normal(size=(_B, _D)), centers, labels


_PROXY_ANCHOR_WHERE = ("where masks examples [B] while the unreduced values are per proxy [C]; "
                       "tests/test_embedding_metric.py checks where == slicing, NaN at masked examples "
                       "and the all-masked value")

SPECS.update({
    "multi_similarity_loss": Spec(_metric_batch, {"alpha": 2.0, "beta": 10.0, "base": 0.5}),
    "lifted_structure_loss": Spec(_lifted_batch),
    "npairs_loss": Spec(_two_towers),
    "proxy_nca_loss": Spec(_proxies, {"softmax_scale": 2.0}),
    "proxy_anchor_loss": Spec(_proxies, {"margin": 0.1, "alpha": 8.0},
                              skip={"where": _PROXY_ANCHOR_WHERE, "all_masked": _PROXY_ANCHOR_WHERE}),
    "soft_triple_loss": Spec(_sub_centers, {"centers_per_class": 2, "la": 8.0, "gamma": 0.5}),
    "sub_center_arcface_loss": Spec(_sub_centers, {"sub_centers": 2, "scale": 8.0, "margin": 0.3}),
})

"""Specs for the ranking and recommendation losses (``jaxloss.ranking``)."""

from __future__ import annotations

import numpy as np

import jaxloss.ranking  # noqa: F401  (registers the losses)
from tests.specs import Spec

BATCH, NEGATIVES, LIST_SIZE = 4, 3, 5


def _sampled(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Smooth in every input: no kinks to keep away from.
    return rng.normal(size=(BATCH,)), rng.normal(size=(BATCH, NEGATIVES))


def _margin_pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # |x1 - x2| >= 0.3 and margin 0.1 keep -y (x1 - x2) + margin at least 0.2 from the kink.
    x2 = rng.normal(size=(6,))
    gap = rng.uniform(0.3, 1.5, size=(6,)) * rng.choice([-1.0, 1.0], size=(6,))
    labels = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    return x2 + gap, x2, labels


def _lists(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Distinct labels per list (finite differences never cross a tie, which
    # would switch a pair or the ListMLE order), and scores k * 0.37 + noise so
    # that no score difference is within 0.09 of the hinge's kink at 1.
    labels = np.stack([rng.permutation(LIST_SIZE) for _ in range(BATCH)]).astype(np.float64)
    scores = np.stack([rng.permutation(LIST_SIZE) for _ in range(BATCH)]) * 0.37
    scores = scores + rng.uniform(-0.01, 0.01, size=scores.shape) - 0.7
    return scores, labels


def _soft_labels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Labels inside (0, 1): pointwise_sigmoid_loss clips labels to [0, 1], kinks at the ends.
    return rng.normal(size=(BATCH, LIST_SIZE)), rng.uniform(0.05, 0.95, size=(BATCH, LIST_SIZE))


_PAIR_MEAN = ("'mean' averages over the valid pairs (y_i > y_j, both items valid), as rax's reduce_fn=jnp.mean, "
              "not over all list_size**2 positions of the unreduced array, whose invalid pairs are 0; "
              "tests/test_ranking.py checks the sum, the weighted values and this mean instead")

SPECS = {
    "bpr_loss": Spec(_sampled),
    "top1_loss": Spec(_sampled),
    "bpr_max_loss": Spec(_sampled, kwargs={"regularization": 0.5}),
    "top1_max_loss": Spec(_sampled),
    "margin_ranking_loss": Spec(_margin_pairs, kwargs={"margin": 0.1}),
    "ranking_softmax_loss": Spec(_lists),
    "listmle_loss": Spec(_lists),
    "pairwise_hinge_loss": Spec(_lists, skip={"reduction": _PAIR_MEAN}),
    "pairwise_logistic_loss": Spec(_lists, skip={"reduction": _PAIR_MEAN}),
    "approx_ndcg_loss": Spec(_lists, kwargs={"temperature": 0.8}),
    "poly1_softmax_loss": Spec(_lists, kwargs={"epsilon": 0.5}),
    "unique_softmax_loss": Spec(_lists),
    "pointwise_sigmoid_loss": Spec(_soft_labels),
    "pointwise_mse_loss": Spec(_lists),
    # Every pair of valid items counts (i = j included), so with every item valid
    # the "mean" is the plain mean of the list_size**2 positions.
    "pairwise_mse_loss": Spec(_lists, kwargs={"lambdaweight": "labeldiff"}),
    # Scores k * 0.37 + noise against integer label gaps keep s_i - s_j at least
    # 0.09 from the kink at y_i - y_j; ranks (dcg weights) never change under
    # finite differences since scores are 0.35 apart.
    "pairwise_qr_loss": Spec(_lists, kwargs={"tau": 0.3}, skip={"reduction": _PAIR_MEAN}),
    "pairwise_soft_zero_one_loss": Spec(_lists, kwargs={"lambdaweight": "dcg"}, skip={"reduction": _PAIR_MEAN}),
}

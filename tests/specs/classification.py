"""Example inputs for the classification losses."""

import numpy as np

import jaxloss.classification  # noqa: F401  (registers the losses)
from tests.specs import Spec

B, C = 6, 4


def _logits(rng):
    return rng.normal(size=(B, C)) * 2.0


def _int_labels(rng):
    return rng.integers(0, C, size=(B,)).astype(np.int32)


def _distribution(rng):
    raw = rng.uniform(0.1, 1.0, size=(B, C))
    return raw / raw.sum(-1, keepdims=True)


def _binary(rng):
    return rng.integers(0, 2, size=(B, C)).astype(np.float64)


def _sign(rng):
    return 2.0 * rng.integers(0, 2, size=(B, C)) - 1.0


def _log_distribution(rng):
    return np.log(_distribution(rng))


def _margin_scores(rng):
    # Scores on a grid of well-separated values keep hinges away from their kinks.
    return rng.permutation(np.arange(B * C)).reshape(B, C) * 0.37 - 4.1



def _target_lists(rng):
    # torch's layout: the target classes of each row, then -1 (entries after it are not read).
    rows = []
    for _ in range(B):
        k = int(rng.integers(1, C))
        row = list(rng.permutation(C)[:k]) + [-1] * (C - k)
        if k < C - 1:
            row[k + 1] = int(rng.integers(0, C))  # after the first -1: ignored
        rows.append(row)
    return np.array(rows, np.int32)


SPECS = {
    "sigmoid_binary_cross_entropy": Spec(lambda r: (_logits(r), _binary(r)),
                                         kwargs={"label_smoothing": 0.1}),
    "binary_cross_entropy": Spec(lambda r: (r.uniform(0.05, 0.95, size=(B, C)), _binary(r))),
    "sigmoid_focal_loss": Spec(lambda r: (_logits(r), _binary(r))),
    "softmax_cross_entropy": Spec(lambda r: (_logits(r), _distribution(r)), kwargs={"label_smoothing": 0.1}),
    "softmax_cross_entropy_with_integer_labels": Spec(
        lambda r: (_logits(r), _int_labels(r)),
        # class_weights change the "mean" denominator (torch), which check_loss's reduction check does not
        # model; they are covered against torch in tests/test_classification.py.
        kwargs={"label_smoothing": 0.1, "z_loss_weight": 1e-3}),
    "z_loss": Spec(lambda r: (_logits(r),)),
    "nll_loss": Spec(lambda r: (_log_distribution(r), _int_labels(r)), skip={
        "nan": "as torch nll_loss, only log p of the label's class enters the formula; a NaN in another class "
               "of the row is not read (a diverged log_softmax upstream makes the whole row NaN, which is)"}),
    "softmax_focal_loss": Spec(lambda r: (_logits(r), _distribution(r)), kwargs={"alpha": 0.25}),
    "softmax_focal_loss_with_integer_labels": Spec(lambda r: (_logits(r), _int_labels(r)),
                                                   kwargs={"alpha": np.array([0.25, 0.5, 0.75, 1.0])}),
    "poly_loss_cross_entropy": Spec(lambda r: (_logits(r), _distribution(r))),
    "hinge_loss": Spec(lambda r: (_margin_scores(r) / 4.0, _sign(r))),
    "squared_hinge_loss": Spec(lambda r: (_margin_scores(r) / 4.0, _sign(r))),
    "multiclass_hinge_loss": Spec(lambda r: (_margin_scores(r) / 8.0, _int_labels(r))),
    "multi_margin_loss": Spec(lambda r: (_margin_scores(r) / 8.0, _int_labels(r)),
                              kwargs={"p": 2, "class_weights": np.array([1.0, 2.0, 0.5, 1.5])}),
    "soft_margin_loss": Spec(lambda r: (_logits(r), _sign(r))),
    "multilabel_soft_margin_loss": Spec(lambda r: (_logits(r), _binary(r)),
                                        kwargs={"class_weights": np.array([1.0, 2.0, 0.5, 1.5])}),
    "sparsemax_loss": Spec(lambda r: (_logits(r), _binary(r))),
    "perceptron_loss": Spec(lambda r: (_margin_scores(r) / 4.0, _sign(r))),
    "multiclass_perceptron_loss": Spec(lambda r: (_margin_scores(r) / 8.0, _int_labels(r))),
    "multiclass_sparsemax_loss": Spec(lambda r: (_logits(r), _int_labels(r))),
    "generalized_cross_entropy": Spec(lambda r: (_logits(r), _int_labels(r)), kwargs={"q": 0.7}),
    "multilabel_margin_loss": Spec(lambda r: (_margin_scores(r) / 8.0, _target_lists(r)), skip={
        "labels": "-1 is torch's end-of-targets marker (an empty list gives 0), not an out-of-range label; "
                  "C, 255 and 2**32 - 1 give NaN, tested in tests/test_classification_parity.py"}),
    "convex_kl_divergence": Spec(lambda r: (_log_distribution(r), 2.0 * _distribution(r))),
    "kl_divergence": Spec(lambda r: (_log_distribution(r), _distribution(r))),
    "kl_divergence_with_log_targets": Spec(lambda r: (_log_distribution(r), _log_distribution(r))),
    "jensen_shannon_divergence": Spec(lambda r: (_log_distribution(r), _log_distribution(r))),
}

"""The benchmark table: every jaxloss loss that optax or PyTorch also has.

Each :class:`Case` names a registered jaxloss loss, a generator of NumPy inputs
at three sizes, the indices of the inputs that are differentiated (the same
for every implementation), and the peer implementations with their argument
adaptation. Every implementation returns the *mean* loss as a scalar, so
forward and forward+backward do the same work: jaxloss with
``reduction="mean"`` (the default), optax followed by ``jnp.mean`` (optax
returns unreduced values), torch with its default ``reduction="mean"`` or an
explicit ``.mean()``.

Peers are written here against their documented public APIs; nothing is
copied from those libraries.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

SIZES = ("small", "medium", "large")

# Sizes per input kind. Elementwise losses: [rows, 128]; class losses: [N, C];
# embeddings: [N, D]; segmentation: [B, H, W, C]; ranking lists: [N, L]; CTC: (B, T, K, max labels).
_ELEMENTWISE = {"small": (32, 128), "medium": (2048, 128), "large": (32768, 128)}
_CLASSES = {"small": (128, 10), "medium": (1024, 1000), "large": (8192, 1000)}
_EMBED = {"small": (64, 32), "medium": (512, 128), "large": (4096, 256)}
_SEGMENT = {"small": (2, 16, 16, 4), "medium": (8, 64, 64, 8), "large": (16, 128, 128, 8)}
_SEGMENT_BINARY = {k: (*v[:3], 1) for k, v in _SEGMENT.items()}  # one foreground channel
# A model's single output as a [rows, 1] column (Keras' binary classifier, a value head): XLA:CPU's reduction
# fusions are slow on a minor axis of one element, which jaxloss's reduction works around.
_COLUMN = {"small": (1024, 1), "medium": (32768, 1), "large": (1048576, 1)}
_COLUMN_NOTE = ("[rows, 1] inputs (a model's single output); jaxloss's reduction computes values with a last axis "
                "of 1 or 2 elements apart from the sum (_numerics.reduction_input)")
_LISTS = {"small": (32, 16), "medium": (1024, 64), "large": (8192, 128)}
_CTC = {"small": (8, 50, 20, 10), "medium": (16, 100, 30, 20), "large": (32, 200, 40, 50)}
# multilabel_margin_loss compares every target with every non-target class: [N, C] with C small.
_MULTILABEL_LISTS = {"small": (128, 10), "medium": (1024, 32), "large": (4096, 64)}


@dataclasses.dataclass(frozen=True)
class Case:
    """One loss to time: jaxloss against optax and/or torch on identical inputs."""

    name: str                         # row label (a registered jaxloss name, maybe with a variant)
    make: Callable[[str, np.random.Generator], tuple[np.ndarray, ...]]
    diff: tuple[int, ...]             # input indices differentiated in forward+backward
    ours: Callable[..., Any]
    optax: Callable[..., Any] | None = None
    torch: Callable[..., Any] | None = None
    size_of: dict = dataclasses.field(default_factory=dict)  # size name -> shape tuple (for the report)
    note: str = ""


# ---------------------------------------------------------------- input makers
def _f32(x):
    return np.asarray(x, np.float32)


def _pair(size, rng, table=_ELEMENTWISE):
    shape = table[size]
    return _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape))


def _pair_positive_targets(size, rng):  # Poisson NLL on log-rates: counts as targets
    shape = _ELEMENTWISE[size]
    return _f32(rng.normal(size=shape) * 0.5), _f32(rng.poisson(2.0, size=shape))


def _gaussian(size, rng):
    shape = _ELEMENTWISE[size]
    return _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape)), _f32(rng.uniform(0.5, 2.0, size=shape))


def _logits_binary(size, rng, table=_ELEMENTWISE):
    shape = table[size]
    return _f32(rng.normal(size=shape) * 2), _f32(rng.integers(0, 2, size=shape))


def _probabilities_binary(size, rng):
    shape = _ELEMENTWISE[size]
    return _f32(rng.uniform(0.01, 0.99, size=shape)), _f32(rng.integers(0, 2, size=shape))


def _scores_sign(size, rng):
    shape = _ELEMENTWISE[size]
    return _f32(rng.normal(size=shape)), _f32(rng.choice([-1.0, 1.0], size=shape))


def _logits_int(size, rng):
    n, c = _CLASSES[size]
    return _f32(rng.normal(size=(n, c)) * 2), rng.integers(0, c, size=n).astype(np.int32)


def _logits_dist(size, rng):
    n, c = _CLASSES[size]
    t = rng.uniform(size=(n, c))
    return _f32(rng.normal(size=(n, c)) * 2), _f32(t / t.sum(-1, keepdims=True))


def _logits_onehot(size, rng):
    n, c = _CLASSES[size]
    return _f32(rng.normal(size=(n, c)) * 2), _f32(np.eye(c)[rng.integers(0, c, size=n)])


def _log_probs_int(size, rng):
    x, y = _logits_int(size, rng)
    return _f32(x - np.log(np.exp(x).sum(-1, keepdims=True))), y


def _log_probs_dist(size, rng):
    x, t = _logits_dist(size, rng)
    return _f32(x - np.log(np.exp(x).sum(-1, keepdims=True))), t


def _log_probs_log_targets(size, rng):
    log_p, t = _log_probs_dist(size, rng)
    return log_p, _f32(np.log(t))


def _multilabel(size, rng):
    n, c = _CLASSES[size]
    return _f32(rng.normal(size=(n, c))), _f32(rng.integers(0, 2, size=(n, c)))


def _target_lists(size, rng):
    """Scores and torch-layout target lists: the target classes of each row, then -1 padding."""
    n, c = _MULTILABEL_LISTS[size]
    k = rng.integers(1, c // 2 + 1, size=n)
    order = np.argsort(rng.uniform(size=(n, c)), axis=-1)
    labels = np.where(np.arange(c)[None] < k[:, None], order, -1).astype(np.int32)
    return _f32(rng.normal(size=(n, c))), labels


def _vectors2(size, rng):
    n, d = _EMBED[size]
    return _f32(rng.normal(size=(n, d))), _f32(rng.normal(size=(n, d)))


def _vectors2_sign(size, rng):
    a, b = _vectors2(size, rng)
    return a, b, _f32(rng.choice([-1.0, 1.0], size=a.shape[0]))


def _vectors3(size, rng):
    n, d = _EMBED[size]
    return tuple(_f32(rng.normal(size=(n, d))) for _ in range(3))


def _embeddings_labels(size, rng):
    n, d = _EMBED[size]
    return _f32(rng.normal(size=(n, d))), np.repeat(np.arange(n // 2), 2).astype(np.int32)


def _distances_sign(size, rng):
    shape = _ELEMENTWISE[size]
    return _f32(rng.uniform(0, 2, size=shape)), _f32(rng.choice([-1.0, 1.0], size=shape))


def _ranking_pairs(size, rng):
    shape = _ELEMENTWISE[size]
    return _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape)), _f32(rng.choice([-1.0, 1.0], size=shape))


def _lists(size, rng):
    n, length = _LISTS[size]
    return _f32(rng.normal(size=(n, length))), _f32(rng.integers(0, 3, size=(n, length)))


def _segment(size, rng):
    b, h, w, c = _SEGMENT[size]
    return _f32(rng.normal(size=(b, h, w, c))), _f32(np.eye(c)[rng.integers(0, c, size=(b, h, w))])


def _segment_binary(size, rng):  # one foreground channel: [B, H, W, 1]
    shape = _SEGMENT_BINARY[size]
    return _f32(rng.normal(size=shape)), _f32(rng.integers(0, 2, size=shape))


def _ctc(size, rng):
    batch, frames, classes, max_labels = _CTC[size]
    logits = rng.normal(size=(batch, frames, classes))
    frame_lengths = rng.integers(frames // 2, frames + 1, size=batch)
    label_lengths = rng.integers(1, max_labels + 1, size=batch)
    logit_paddings = (np.arange(frames)[None] >= frame_lengths[:, None])
    labels = rng.integers(1, classes, size=(batch, max_labels)).astype(np.int32)
    label_paddings = (np.arange(max_labels)[None] >= label_lengths[:, None])
    return _f32(logits), _f32(logit_paddings), labels, _f32(label_paddings)


# ------------------------------------------------------------ torch adapters
# Imported lazily: torch is an optional peer and the benchmark runs without it.
def _F():
    import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
    return F


def _torch_ctc(logits, logit_paddings, labels, label_paddings):
    F = _F()
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # [T, B, K]
    input_lengths = (1 - logit_paddings).sum(-1).long()
    target_lengths = (1 - label_paddings).sum(-1).long()
    return F.ctc_loss(log_probs, labels, input_lengths, target_lengths, blank=0, reduction="none",
                      zero_infinity=False).mean()


def _optax_mean(fn, **kw):
    return lambda *a: jnp.mean(fn(*a, **kw))


def _optax_mean_of(name, **kw):
    """``_optax_mean`` of ``optax.losses.<name>``; ``None`` where the installed optax lacks it (added after 0.2.4)."""
    fn = getattr(optax.losses, name, None)
    return None if fn is None else _optax_mean(fn, **kw)


# ------------------------------------------------------------------- the table
def _case(name, make, diff, kinds, *, optax_fn=None, torch_fn=None, ours=None, note=""):
    fn = ours or getattr(jaxloss, name)
    return Case(name=name, make=make, diff=diff, ours=fn, optax=optax_fn, torch=torch_fn,
                size_of={s: kinds[s] for s in SIZES}, note=note)


def build_cases() -> list[Case]:
    ol = optax.losses
    cases = [
        # regression, elementwise [rows, 128]
        _case("squared_error", _pair, (0,), _ELEMENTWISE, optax_fn=_optax_mean(ol.squared_error),
              torch_fn=lambda p, t: _F().mse_loss(p, t)),
        _case("l2_loss", _pair, (0,), _ELEMENTWISE, optax_fn=_optax_mean(ol.l2_loss)),
        _case("absolute_error", _pair, (0,), _ELEMENTWISE, torch_fn=lambda p, t: _F().l1_loss(p, t)),
        _case("huber_loss", _pair, (0,), _ELEMENTWISE, optax_fn=_optax_mean(ol.huber_loss, delta=1.0),
              torch_fn=lambda p, t: _F().huber_loss(p, t, delta=1.0)),
        _case("smooth_l1_loss", _pair, (0,), _ELEMENTWISE, torch_fn=lambda p, t: _F().smooth_l1_loss(p, t, beta=1.0)),
        _case("log_cosh", _pair, (0,), _ELEMENTWISE, optax_fn=_optax_mean(ol.log_cosh)),
        _case("poisson_nll_loss", _pair_positive_targets, (0,), _ELEMENTWISE,
              torch_fn=lambda p, t: _F().poisson_nll_loss(p, t, log_input=True, full=False, eps=1e-8)),
        _case("gaussian_nll_loss", _gaussian, (0, 2), _ELEMENTWISE,
              torch_fn=lambda p, t, v: _F().gaussian_nll_loss(p, t, v, full=False, eps=1e-6)),
        # binary, elementwise
        _case("sigmoid_binary_cross_entropy", _logits_binary, (0,), _ELEMENTWISE,
              optax_fn=_optax_mean(ol.sigmoid_binary_cross_entropy),
              torch_fn=lambda x, y: _F().binary_cross_entropy_with_logits(x, y)),
        _case("binary_cross_entropy", _probabilities_binary, (0,), _ELEMENTWISE,
              torch_fn=lambda p, y: _F().binary_cross_entropy(p, y)),
        # [rows, 1] columns
        _case("squared_error/column", functools.partial(_pair, table=_COLUMN), (0,), _COLUMN,
              ours=jaxloss.squared_error, optax_fn=_optax_mean(ol.squared_error),
              torch_fn=lambda p, t: _F().mse_loss(p, t), note=_COLUMN_NOTE),
        _case("huber_loss/column", functools.partial(_pair, table=_COLUMN), (0,), _COLUMN,
              ours=jaxloss.huber_loss, optax_fn=_optax_mean(ol.huber_loss, delta=1.0),
              torch_fn=lambda p, t: _F().huber_loss(p, t, delta=1.0), note=_COLUMN_NOTE),
        _case("log_cosh/column", functools.partial(_pair, table=_COLUMN), (0,), _COLUMN,
              ours=jaxloss.log_cosh, optax_fn=_optax_mean(ol.log_cosh), note=_COLUMN_NOTE),
        _case("sigmoid_binary_cross_entropy/column", functools.partial(_logits_binary, table=_COLUMN), (0,),
              _COLUMN, ours=jaxloss.sigmoid_binary_cross_entropy,
              optax_fn=_optax_mean(ol.sigmoid_binary_cross_entropy),
              torch_fn=lambda x, y: _F().binary_cross_entropy_with_logits(x, y), note=_COLUMN_NOTE),
        _case("sigmoid_focal_loss", _logits_binary, (0,), _ELEMENTWISE,
              optax_fn=_optax_mean(ol.sigmoid_focal_loss, alpha=0.25, gamma=2.0)),
        _case("hinge_loss", _scores_sign, (0,), _ELEMENTWISE, optax_fn=_optax_mean(ol.hinge_loss)),
        _case("perceptron_loss", _scores_sign, (0,), _ELEMENTWISE, ours=jaxloss.classification.perceptron_loss,
              optax_fn=_optax_mean(ol.perceptron_loss)),
        _case("sparsemax_loss", _logits_binary, (0,), _ELEMENTWISE, ours=jaxloss.classification.sparsemax_loss,
              optax_fn=_optax_mean(ol.sparsemax_loss)),
        _case("soft_margin_loss", _scores_sign, (0,), _ELEMENTWISE, torch_fn=lambda s, y: _F().soft_margin_loss(s, y)),
        # multi-class [N, C]
        _case("softmax_cross_entropy", _logits_dist, (0,), _CLASSES, optax_fn=_optax_mean(ol.softmax_cross_entropy),
              torch_fn=lambda x, t: _F().cross_entropy(x, t)),
        _case("softmax_cross_entropy/safe", _logits_dist, (0,), _CLASSES, ours=jaxloss.softmax_cross_entropy,
              optax_fn=_optax_mean_of("safe_softmax_cross_entropy"),
              note="optax peer: safe_softmax_cross_entropy, the variant that, like jaxloss, gives 0 (not NaN) "
                   "for a -inf logit with zero label"),
        _case("softmax_cross_entropy_with_integer_labels", _logits_int, (0,), _CLASSES,
              optax_fn=_optax_mean(ol.softmax_cross_entropy_with_integer_labels),
              torch_fn=lambda x, y: _F().cross_entropy(x, y)),
        _case("nll_loss", _log_probs_int, (0,), _CLASSES, torch_fn=lambda lp, y: _F().nll_loss(lp, y)),
        _case("poly_loss_cross_entropy", _logits_onehot, (0,), _CLASSES,
              optax_fn=_optax_mean(ol.poly_loss_cross_entropy, epsilon=2.0)),
        _case("multiclass_hinge_loss", _logits_int, (0,), _CLASSES, optax_fn=_optax_mean(ol.multiclass_hinge_loss)),
        _case("multiclass_perceptron_loss", _logits_int, (0,), _CLASSES,
              ours=jaxloss.classification.multiclass_perceptron_loss,
              optax_fn=_optax_mean(ol.multiclass_perceptron_loss)),
        _case("multiclass_sparsemax_loss", _logits_int, (0,), _CLASSES,
              ours=jaxloss.classification.multiclass_sparsemax_loss,
              optax_fn=_optax_mean(ol.multiclass_sparsemax_loss)),
        _case("fenchel_young_loss/logsumexp", _logits_dist, (0,), _CLASSES,
              ours=jaxloss.make_fenchel_young_loss(jax.scipy.special.logsumexp),
              optax_fn=_optax_mean(ol.make_fenchel_young_loss(jax.scipy.special.logsumexp)),
              note="make_fenchel_young_loss(logsumexp) of each library"),
        _case("multilabel_margin_loss", _target_lists, (0,), _MULTILABEL_LISTS,
              ours=jaxloss.classification.multilabel_margin_loss,
              torch_fn=lambda s, y: _F().multilabel_margin_loss(s, y)),
        _case("multi_margin_loss", _logits_int, (0,), _CLASSES,
              torch_fn=lambda s, y: _F().multi_margin_loss(s, y, p=1, margin=1.0)),
        _case("multilabel_soft_margin_loss", _multilabel, (0,), _CLASSES,
              torch_fn=lambda x, y: _F().multilabel_soft_margin_loss(x, y)),
        _case("kl_divergence", _log_probs_dist, (0,), _CLASSES, optax_fn=_optax_mean(ol.kl_divergence),
              torch_fn=lambda lp, t: _F().kl_div(lp, t, reduction="batchmean")),
        _case("kl_divergence_with_log_targets", _log_probs_log_targets, (0,), _CLASSES,
              optax_fn=_optax_mean(ol.kl_divergence_with_log_targets),
              torch_fn=lambda lp, lt: _F().kl_div(lp, lt, reduction="batchmean", log_target=True)),
        _case("convex_kl_divergence", _log_probs_dist, (0,), _CLASSES,
              ours=jaxloss.classification.convex_kl_divergence,
              optax_fn=_optax_mean(getattr(ol, "generalized_kl_divergence", None) or ol.convex_kl_divergence),
              note="optax 0.2.8 calls it generalized_kl_divergence"),
        # embeddings [N, D]
        _case("cosine_distance", _vectors2, (0, 1), _EMBED, optax_fn=_optax_mean(ol.cosine_distance, epsilon=1e-8),
              torch_fn=lambda a, b: (1.0 - _F().cosine_similarity(a, b, dim=-1, eps=1e-8)).mean(),
              note="torch: 1 - cosine_similarity (no torch loss of that name)"),
        _case("cosine_similarity", _vectors2, (0, 1), _EMBED,
              ours=lambda p, t: jaxloss.cosine_similarity(p, t, epsilon=1e-8),
              optax_fn=_optax_mean_of("cosine_similarity", epsilon=1e-8),
              torch_fn=lambda a, b: _F().cosine_similarity(a, b, dim=-1, eps=1e-8).mean()),
        _case("cosine_embedding_loss", _vectors2_sign, (0, 1), _EMBED,
              torch_fn=lambda a, b, y: _F().cosine_embedding_loss(a, b, y, margin=0.0)),
        _case("hinge_embedding_loss", _distances_sign, (0,), _ELEMENTWISE,
              torch_fn=lambda d, y: _F().hinge_embedding_loss(d, y, margin=1.0)),
        _case("triplet_margin_loss", _vectors3, (0, 1, 2), _EMBED,
              optax_fn=_optax_mean(ol.triplet_margin_loss, margin=1.0, norm_degree=2, eps=1e-6),
              torch_fn=lambda a, p, n: _F().triplet_margin_loss(a, p, n, margin=1.0, p=2.0, eps=1e-6)),
        _case("ntxent_loss", _embeddings_labels, (0,), _EMBED,
              optax_fn=lambda x, y: ol.ntxent(x, y, temperature=0.07)),
        # ranking
        _case("margin_ranking_loss", _ranking_pairs, (0, 1), _ELEMENTWISE,
              torch_fn=lambda a, b, y: _F().margin_ranking_loss(a, b, y, margin=0.0)),
        _case("ranking_softmax_loss", _lists, (0,), _LISTS, optax_fn=lambda s, y: ol.ranking_softmax_loss(s, y)),
        # segmentation [B, H, W, C]
        _case("dice_loss", _segment, (0,), _SEGMENT,
              ours=lambda x, t: jaxloss.dice_loss(x, t, activation="softmax", smooth=2.0),
              optax_fn=_optax_mean(ol.dice_loss, smooth=1.0, apply_softmax=True, reduction="none", axis=(1, 2)),
              note="optax dice_loss per (example, class), averaged; jaxloss smooth=2 is optax's smooth=1 "
                   "(optax's Tversky form with alpha = beta = 1/2 adds smooth to both halves of the ratio)"),
        _case("dice_loss/binary", _segment_binary, (0,), _SEGMENT_BINARY,
              ours=lambda x, t: jaxloss.dice_loss(x, t, activation="sigmoid", smooth=2.0),
              optax_fn=_optax_mean_of("binary_dice_loss", smooth=1.0),
              note="optax peer: binary_dice_loss (one foreground channel, sigmoid); smooth as for dice_loss"),
        _case("generalized_dice_loss", _segment, (0,), _SEGMENT,
              ours=lambda x, t: jaxloss.generalized_dice_loss(x, t, activation="softmax", smooth=1.0),
              optax_fn=_optax_mean_of("multiclass_generalized_dice_loss", smooth=1.0, apply_softmax=True),
              note="optax peer: multiclass_generalized_dice_loss; different definitions (MONAI's per-example "
                   "class weights inside one ratio, optax's batch-wide weights on per-class Dice losses)"),
        # sequences
        _case("ctc_loss", _ctc, (0,), _CTC, optax_fn=_optax_mean(ol.ctc_loss), torch_fn=_torch_ctc,
              note="torch: log_softmax + [T, B, K] layout + lengths from paddings inside the timed call"),
    ]
    return [case for case in cases if case.optax or case.torch]  # a peer missing from an older optax drops its row


# Shared by the explanations of the two losses whose rare guarded branch runs in row blocks.
_GUARDED_IN_BLOCKS = (
    " Session 7: the rare guarded recomputation runs in row blocks of 16384 elements "
    "(`_numerics.guarded_in_blocks`), so the compiled program has no [N, C] temporary of its own (8192x1000: "
    "forward temporaries 62.5 MiB -> 0.2 MiB, forward+backward memory 1.50x -> 1.00x optax's). Before, "
    "that temporary made XLA:CPU's per-call temporary buffer larger than glibc's 32 MiB mmap ceiling, so "
    "every call mapped it afresh and faulted in 31 MiB of pages: forward+backward then measured "
    "1.18-1.62x optax, or 0.73x when optax's own buffers happened to be mapped afresh too (glibc's "
    "adaptive threshold follows the allocation history), which is why this row swung between runs. A "
    "batch with -inf logits (the guarded branch) became faster too: 8192x1000 forward 31 -> 14 ms.")


# Why a loss is slower than its optax counterpart, when the cause is the contract
# rather than an inefficiency (issue 6, item 6). Keyed by case name; printed in
# the results file next to every flagged row.
EXPLANATIONS: dict[str, str] = {
    "squared_error": (
        "Forward: the same optimised program as optax's (see the kernel columns); any ratio away from 1 is noise. "
        "Forward+backward (session 12): with a last axis of more than 2 elements the derivative is read from "
        "the inputs again (`regression._squared_difference`, `_numerics.elementwise`), so the value fuses into "
        "the YNN reduction and the gradient is one pass, where optax writes p - t out and reads it twice "
        "(3 vs 4 kernels): 2048x128 0.65-0.84x in scratch A/B runs, 512x512 0.80x, [2^18] 0.83x. A [N, 1] "
        "column keeps optax's program (the other form measured 1.4x there), and so does the small row "
        "(below 2^14 elements both forms measured the same)."),
    "l2_loss": (
        "Forward: the same optimised program as optax's; any ratio away from 1 is noise. Forward+backward: "
        "as squared_error (session 12), 2048x128 0.73-0.79x in scratch A/B runs."),
    "huber_loss": (
        "Forward: one multiply/compare more per element than optax's select-based formula (a min-based form "
        "that is smooth at |r| = delta); was ~1.2x forward before this commit used plain |r| instead of "
        "the sign-based |r| (same gradients). Forward+backward is at parity or faster."),
    "hinge_loss": (
        "Forward: the same optimised program as optax's (`_relu` is now a plain maximum with a scalar 0). "
        "Backward: relu's convention (gradient 0 at the kink, where maximum's is 0.5) lives in a custom JVP "
        "whose step function is (sign + |sign|) / 2 rather than a select, which XLA:CPU fuses into optax's "
        "kernel count and memory (a select cost one more launch and an [N] buffer). Forward+backward at "
        "32768x128 (1.01-1.27x over three runs, min-of-repeats 1.03-1.09): the same four kernels and memory "
        "traffic as optax's; XLA:CPU places the maximum inside the YNN reduction of the stored 1 - y s "
        "(optax: in the pass that stores it), and the gradient pass has no divide (optax's has one). "
        "(x > 0) as the step function was tried: the compare's result is materialised, 2.8x. Session 5, "
        "at 2048x128 (1.07x as is, 95% interval 1.04-1.09): ceil(clip(x, 0, 1)) measured 1.27-1.33x. "
        "where(x > 0, dx, 0) measured 1.29-1.31x: XLA merges its zeros with the forward maximum's and "
        "writes them out as an [N, D] array. Session 7: the step function is sign(max(x, 0)), read from the "
        "maximum the value computes, so XLA:CPU stores that maximum once for the reduction and the backward "
        "as optax does: 2048x128 forward+backward 1.06-1.09x -> 1.00-1.01x in scratch A/B runs (60 repeats). "
        "Session 12, from 2^14 elements (medium and large rows; small is the program above): 'sum'/'mean' are "
        "0 - reduce(min(y s - 1, 0)) (`_reduce_hinge`), the same numbers. XLA:CPU's YNN reduction runs a "
        "minimum against 0 after subtracting a constant faster than a maximum after a subtract from one "
        "(forward 0.87-0.95x optax), and the derivative's step is spelled from y * (-s) + 1 with its zero "
        "behind an optimization barrier, so CSE shares nothing between value and gradient: the value fuses "
        "into the YNN reduction and the gradient is one pass over the inputs, where optax (and the form "
        "above) writes the [N, D] hinge for its reduction and reads it back: forward+backward 0.78-0.81x "
        "(2048x128) and 0.79-0.81x (32768x128) in scratch A/B runs of 60 repeats."),
    "softmax_cross_entropy": (
        "Contract, 0 log 0 = 0: a -inf (masked) logit with zero label weight adds 0 to the value and "
        "every gradient (optax: NaN); a positive weight gives a huge finite value; NaN propagates. Issue "
        "15: on CPU the value is optax's unguarded formula; only a batch with a non-finite row is "
        "recomputed (lax.cond) with -inf shifted logits replaced by the lowest finite float (a select). "
        "The [N, C] passes are optax's; the extra kernels are [N]-sized, and the memory column counts the "
        "guarded branch's temporary. The former floor (one maximum per element) cost 1.0-1.2x forward and "
        "turned a NaN logit into a finite number under jit. 8192x1000 forward, two runs: 1.02-1.03x (min "
        "1.03-1.05x), 8 vs 2 kernels: the [N, C] fast pass alone (optax's program) measured 0.98-1.00x, so the "
        "remaining ~3% was the per-row finiteness test, its reductions and the conditional. Session 5: the "
        "test is now the finiteness of the rows' sum behind an optimization barrier (without the barrier "
        "XLA:CPU computed the [N, C] pass twice, 1.3x): 6 vs 2 kernels at 8192x1000. Scratch runs with "
        "30 repeats: softmax_cross_entropy 1.03x forward, kl_divergence_with_log_targets 1.03 -> 1.00x. "
        "What is left is the launches of the [N]-sized sum, the conditional and the final reduction. "
        "Session 6: with a sum/mean reduction and no weights the test is the finiteness of the reduced "
        "scalar itself (`_reduce_unless_nonfinite`): optax's one YNN fusion, its division, plus an is-finite "
        "test and the conditional on a scalar (4 vs 2 kernels at 8192x1000; the conditional alone costs "
        "~15 us, 0.8% of a 1.7 ms reduction). Scratch A/B, 30 repeats: 8192x1000 forward 1.02x, "
        "1024x1000 1.00x, forward+backward 0.78-0.98x. The benchmark also stopped timing torch in the same "
        "rotation (its spinning threads had slowed the JAX call after it): 8192x1000 forward 1.10 -> 1.01x."
        + _GUARDED_IN_BLOCKS + (
        " Session 12: the custom JVP's log-probabilities were shifted - lse, the same HLO as the value's, so "
        "CSE shared them and XLA:CPU wrote the [N, C] array out for the value's reduction and the gradient "
        "(optax keeps them inside its YNN reduction); the JVP now subtracts lse behind an optimization "
        "barrier below 4096 rows: 1024x1000 forward+backward 1.03-1.06x -> 0.92-0.96x optax in scratch A/B "
        "runs, 2048x1000 0.91-1.07x -> 0.75-0.81x, 1024x8192 0.84-0.88x -> 0.70x. From 4096 rows XLA:CPU "
        "computes the log-probabilities once in a YNN fusion for both, which the barrier split (8192x1000 "
        "0.80-0.84x -> 0.83-0.85x), so there the program is the previous one (compared as HLO). Spelling the "
        "JVP's subtraction -(lse - shifted) instead shared lse's [N, C] broadcast: 2x at 8192x1000.")),
    "softmax_cross_entropy_with_integer_labels": (
        "Contract: labels outside [0, C) give NaN (a bounds test and a select per row: the scattered gradient "
        "row comes from an [N] select instead of optax's broadcast constant, 4 KiB more at 1024 rows) and a "
        "shift by the stop-gradient max keeps lse - x_y exact at logits of 1e4. The [N, C] passes are the same "
        "as optax's in both modes (forward one kernel fewer); ratios above 1 are noise on equal passes."
        " Label smoothing and z-loss weights that are concrete zeros (the defaults) drop their terms at "
        "trace time, so the gradient pass is one multiply per element like optax's (the zero terms had "
        "left a -0 + g add): 12 vs 14 kernels at N=8192, V=32768, measured 0.98x forward and 0.99x "
        "forward+backward there."),
    "kl_divergence": (
        "Contract: 0 log 0 = 0 on both sides, finite gradients at zero targets and at -inf "
        "log-predictions with zero target (optax's gradient is NaN there), +inf for a positive target at "
        "p = 0. Issue 15: the guards are now built without selects (a floor min(t * -max, 0) * max that "
        "is -inf for t > 0 and finite at t = 0, and log(max(t, tiny))), with the derivative conventions in "
        "a custom JVP (`_kl_values`): fewer kernels and less memory than optax in both modes. Session 12, "
        "below 4096 elements (the select version): the select and the logarithm are written without a "
        "constant (t - t == t, selecting t itself; log |t|), so XLA:CPU emits the loop fusion as one "
        "contiguous vectorised loop instead of the broadcast-taking emitter's strided gathers (see "
        "kl_divergence_with_log_targets): 128x10 0.84-0.89x optax forward and forward+backward, was "
        "0.98-1.03x."),
    "kl_divergence_with_log_targets": (
        "Contract: a zero target (log t = -inf, or an exp that underflows) adds exactly 0 to value and "
        "gradients, also at log p = -inf (optax: NaN); a positive target at log p = -inf gives +inf "
        "(scipy's rel_entr, tested); NaN propagates. Issue 15: on CPU the value is optax's unguarded "
        "sum(exp(log t) (log t - log p)) (one fused reduction, 3 operations per element). Every edge case "
        "shows up as a non-finite row, and only then a lax.cond recomputes the batch with one select per "
        "element (`_numerics.unless_nonfinite`; custom_vmap keeps the condition scalar under vmap). The extra "
        "kernels are [N]-sized (the finiteness test and the conditional). The memory column counts the "
        "guarded branch's [N, C] temporary, which is not written for batches without edge cases. Below "
        "4096 elements the select version is one XLA loop fusion. The former select-free floors did 8 "
        "operations per element (1.6-2.1x forward) and lost a NaN log p under jit (+inf). 8192x1000 forward, two "
        "runs: 0.99-1.03x (min 1.04-1.05x), 8 vs 2 kernels, the same [N, C] pass as optax's plus the [N]-sized "
        "finiteness test and conditional (see softmax_cross_entropy for the rejected sum test). Session 6: "
        "the scalar-reduction guard of softmax_cross_entropy (a conditional on the reduced value); with "
        "torch out of the optax rotation, 8192x1000 forward went 1.39 -> 1.03x in a re-run of the row."
        + _GUARDED_IN_BLOCKS + (
        " Session 8, 128x10 forward (below the 4096-element threshold, one loop fusion): optax's unguarded "
        "formula measured 0.99-1.01x and the guarded one 1.08-1.13x, with or without its NaN test, in scratch A/B "
        "runs of 40 repeats: the select is the whole gap. No select-free form keeps the contract: floors on log t "
        "and log p turn the +inf of a positive target at p = 0 into a finite number, and without the floor on log "
        "p a zero target at log p = -inf gives 0 * inf = NaN. Session 9, same size: it is the select "
        "together with the exponential. A select without the exponential measured 0.92x, the exponential "
        "without a select 0.98-1.02x, and any select or maximum "
        "next to it 1.07-1.18x (on the input, on the product, on exp = 0, a floor with maximum, or the "
        "exponential behind an optimization barrier): about 5 us of a 48 us call. The dumped LLVM IR shows "
        "two code generators: the select-free fusion is a 148-line compute module, every select fusion a "
        "1260-line kernel module; both have an 8-wide polynomial exponential, and a select without the "
        "exponential takes the kernel path too and is fast. Not followed further. Session 12: what sends a "
        "fusion to the kernel-module emitter is a broadcast (every scalar constant in an elementwise op is one; "
        "a maximum with 0, a multiply by 2.0 or a select on t == 0 all did it, a compare of two inputs does "
        "not), and that emitter vectorises the [128, 10] loop across rows with gathers 10 elements apart. The "
        "guard is now written without a constant: t - t == t is t == 0 for every float (_numerics.is_zero), "
        "and the zero it selects is t itself; the fusion is the 148-line compute module again: 1.12-1.16x -> "
        "1.00-1.05x in scratch runs, 1.00x in the row. From 4096 elements the custom JVP takes exp(log t) "
        "behind an optimization barrier, so CSE does not share the [N, C] exponential with the value and "
        "XLA:CPU no longer writes it out for both (optax does): 1024x1000 forward+backward 0.71-0.87x, "
        "8192x1000 0.88-0.90x optax in scratch A/B runs.")),
    "poly_loss_cross_entropy": (
        "Issue 15: the cross-entropy and 1 - p_t now come from one custom JVP (`_xent_and_one_minus_pt`) over "
        "the same floored shifted logits, so e^s and its sum are computed once (before, 1 - p_t was computed "
        "apart and added a second [N, C] exponential and two reductions: 12 vs 10 forward kernels at 1024x1000). "
        "Forward: optax's kernel count and memory, plus the floor (one maximum per element) and a sum(q) reduction "
        "fused into the same pass; forward+backward: fewer kernels than optax at half its memory. Session 6: "
        "the floor's maximum lost a NaN logit inside XLA:CPU's YNN fusions (2.1e35 under jit), so the value "
        "is now guarded as softmax_cross_entropy's (optax's unguarded pass, a conditional on the reduced "
        "scalar); the derivative pass keeps the floor (computing the values apart there measured 1.09x "
        "forward+backward at 1024x1000 instead of 0.83x; taking them there from an unfloored log-sum-exp, to "
        "keep a NaN also in value_and_grad, 1.26-1.35x at 8192x1000). Re-measured: 8192x1000 1.00x forward, "
        "0.99x forward+backward. Session 13: the forward value is optax's formula over the log-probabilities, "
        "-sum(q log p) and sum(q (1 - exp(log p))): two sums, at most one [N, C] intermediate. The form before "
        "shared the log-sum-exp's exponential (sum(q) - sum(q e^s) / sum(e^s)), and XLA:CPU either wrote out "
        "the shifted logits and their exponential (two [N, C] arrays; 32 MiB at 2048x2048, past glibc's mmap "
        "threshold) or fused it all into one YNN reduction with three sums and a division per row (8192x1000). "
        "Forward 8192x1000 0.97-1.01x -> 0.50-0.54x optax, 1024x8192 1.00-1.05x -> 0.66x, 128x10 7 -> 5 kernels "
        "(2-9% faster in five A/B runs); 1024x1000 0.83-0.89x -> 0.89-0.96x (scratch runs). The same in the "
        "custom JVP's value, sum(q (1 - p)) instead of sum(q) - sum(q p): XLA:CPU wrote one [N, C] array "
        "fewer (value and gradient temporaries 62.5 -> 31.3 MiB at 8192x1000) and forward+backward went "
        "from 0.96-1.01x to 0.75-0.78x optax there (1024x1000 0.84-0.86x either way)."),
    "multiclass_hinge_loss": (
        "Contract: out-of-range labels give NaN, now as an [N] factor (1 or NaN) on the per-example values "
        "instead of a NaN one-hot row (a select per [N, C] element). The label's score is a gather whose "
        "tangent is the one-hot dot product (`_label_score`: an elementwise select backward, no scatter), so "
        "the forward reads [N, C] once for the margin's max (optax: the max and a one-hot dot product); the "
        "extra kernels at 8192x1000 (5 vs 4 forward, 10 vs 8 forward+backward) are [N]-sized. Measured "
        "0.37-0.64x forward and 0.76-0.84x forward+backward at medium/large, 0.94-0.98x small (same kernels)."),
    "multiclass_sparsemax_loss": (
        "jaxloss sorts each row once and takes the Fenchel-Young gradient p - e_y from a custom JVP of the "
        "simplex projection; optax vmaps a per-row projection. Scores relative to the label's keep the "
        "value exact at magnitude 1e4. Session 7: the loss itself has a custom JVP with the Fenchel-Young "
        "gradient p - e_y (`_sparsemax_fenchel_young`); the backward had run the projection's JVP (support "
        "mask, its mean, a select per element) on top of p: 8192x1000 forward+backward memory 187.6 -> "
        "127.3 MiB (optax 156.5 MiB), time 1.01 -> 0.97-0.99x in scratch A/B runs (the sort dominates). "
        "Session 13: no sort. The threshold comes from Michelot's iteration (`_simplex_threshold`: average the "
        "support, drop the entries at or below it, repeat; exact; 6-16 passes on the distributions tried, a sort "
        "after 64), one fused pass over the scores each: 1024x1000 122 -> 7.7 ms, 0.06x optax forward and "
        "forward+backward, 8192x1000 0.08-0.09x, 128x10 0.62x."),
    "convex_kl_divergence": ("Shares kl_divergence's guards, custom JVP and scalar-reduction guard, plus "
                             "sum(p - t). The small size (128x10) is below the 4096-element threshold of "
                             "the guard: one select-carrying XLA loop fusion, ~1.02-1.04x in scratch runs."),
    "multilabel_margin_loss": (
        "jaxloss compares every target with every class at once ([N, C, C] pairs, memory quadratic in C); "
        "torch loops over the targets of each row. Session 14: from 2^22 pairs the gradient counts each "
        "score's pairs with a positive hinge in two select-free fused reductions (`_pair_counts`) instead of "
        "autodiff through the selected pairs, which wrote out two [N, C, C] arrays: 4096x64 forward+backward "
        "43 -> 13 ms (1.55 -> 0.50x torch), memory 132 -> 21 MiB. The small size's forward+backward (3.4x "
        "torch, 0.13 ms) is XLA:CPU's launch cost: 17 kernels against torch's one eager call."),
    "linear_softmax_cross_entropy": (
        "the fused path does four matrix products where the naive one does three. The backward recomputes "
        "each tile's logits, since the softmax needs the whole vocabulary's log-sum-exp first. The naive "
        "path writes and reads the [N, V] logits instead. Measured 0.985, 1.027, 1.035 and 1.075x naive in "
        "four full runs. Session 5 tried Liger's scheme (row blocks over the whole vocabulary, gradients "
        "computed in the forward pass, three products): 1.26x naive (interval 1.22-1.29) at 0.072x the "
        "memory. Adding each 64-row block's h^T dz into the float32 [D, V] weight-gradient accumulator "
        "reads and writes all 64 MiB of it 128 times, and larger blocks break the 0.05x memory budget. "
        "Session 6: the forward tile gathers the label's logit instead of a select over the whole tile "
        "(XLA:CPU wrote that select out and read it back) and skips the logit sum without label "
        "smoothing: 1.01 -> 0.95x naive in a scratch A/B, memory unchanged. Tried and not kept: h^T "
        "transposed once so that the weight-gradient product runs in YNN instead of Eigen (its left operand "
        "is transposed): -2.5% time but 16 MiB more (0.056x naive memory); transposed per tile: 1.16x. "
        "Session 13 (a freshly started VM): 0.790 in the full run, with a wide interval (0.59-1.05). The naive "
        "path's 2.1 GiB of temporaries are above glibc's 32 MiB mmap ceiling (harness.fix_allocator), so "
        "every call maps them afresh and faults their pages in, as a training loop with glibc's defaults "
        "does; the fused path's 38 MiB of temporaries are reused from the heap. What a page fault costs "
        "depends on the machine: in scratch runs there the naive path took 7.3 s (fused 3.8-4.0 s), and "
        "with no mmap at all (--allocator no-mmap: no faults after warm-up) 4.32 s against fused 3.78 s "
        "(0.87x, 7 repeats); the earlier runs' 0.99-1.08x were on machines where the naive path took "
        "3.6-3.7 s. The tile products are the same on both (about 1 s per full-size product on 2 cores)."),
    "cosine_distance": (
        "Issue 15: for a positive epsilon (the default 1e-8) each clipped norm is at least sqrt(epsilon), so "
        "the cosine is a plain <p, t> / sqrt(max(|p|^2, eps) max(|t|^2, eps)) with no select; XLA:CPU fuses it "
        "into optax's kernel count (2 at 4096x256, was 11) and fewer kernels than optax backward. epsilon = 0 "
        "keeps the guarded division (zero vectors). Large forward (1.09-1.12x, min 1.09-1.11x in three runs): "
        "both programs are one YNN fusion of three row reductions over p and t (2 vs 2 kernels, 4 B); jaxloss's "
        "reduces p*t, p*p and t*t and divides per row, optax's reduces p*p and t*t, scales every element by "
        "both rsqrt's and then reduces the product, two multiplies more per element, yet runs ~5% faster in "
        "YNN at this size. optax's formula as jaxloss's forward measured 0.99-1.02x at 4096x256 but 1.0x "
        "(6 -> 8 kernels) at 512x128, where jaxloss's is 0.82-0.86x, and 5 vs 3 kernels at 64x32, so it was "
        "not adopted; forward+backward is 0.50-0.56x at 4096x256 (14 vs 22 kernels). Session 5 tried two "
        "more forms of the row reductions at 4096x256: einsum dot products, and an optimization barrier "
        "on the three sums. Both compiled to the same 2-kernel program, 1.14x (interval 1.11-1.17). "
        "Session 6: the order depends on the row count, not the size: three reductions measured 1.23x at "
        "4096x128, 1.04x at 4096x256 and 1.08x at 8192x256, but 0.79-0.90x at 2048x256 and below. From "
        "4096 rows the value now normalises first (optax's order: 0.98-1.00x there); the derivatives are "
        "always the three reductions' (a custom JVP), so forward+backward stays ~0.5x."),
    "triplet_margin_loss": (
        "The p = 2 distance is `embedding._shifted_distance`: a plain sqrt of the fused sum of squares with the "
        "zero-vector convention in a custom JVP (session 4: no double-where splitting the forward into reductions "
        "and selects). Remaining difference, by definition: torch adds epsilon to every difference element "
        "(`a - p + eps`, one add per element), optax adds it once to the sum. Session 8 found the cause of the "
        "1.15-1.25x rows, which earlier sessions had put on YNN not taking scalar constants (it does: a single "
        "distance fuses with its epsilon): (1) XLA's CSE merged the two distances' epsilon broadcasts, and a "
        "broadcast shared by two YNN reduction fusions is written out as an [N, D] array (512x128 forward: 6 vs 5 "
        "kernels); each distance now gets its own epsilon, the second and third behind optimization barriers "
        "(equal values, distinct to CSE): 1.27 -> 1.07x in a scratch A/B, 5 kernels like optax. (2) Under "
        "value_and_grad XLA wrote out each difference a - p + eps for the forward's reduction and recomputed it "
        "from a, p, n in the backward anyway (7 reads against optax's 4, plus 2 writes); the JVP now spells the "
        "difference -((p - a) - eps), bit-identical but a different HLO, so nothing is shared and nothing written: "
        "11 vs 16 kernels at 4096x256, forward+backward 1.16 -> 0.83x; 512x128 1.16 -> 1.06x (its inputs fit in "
        "cache, so the recomputed differences cost more than optax's written ones). Tried and not kept: "
        "(a + eps) - p, which rounds epsilon onto the float32 grid of the inputs (two identical vectors with "
        "|x| >= 32 get distance 0 where torch gives sqrt(D) eps): equality with torch comes first; optimization "
        "barriers on the differences (session 6, 1.15-1.18x); a hand-written custom VJP, a stacked [2, N, D] array, "
        "the squared norm expanded as sum(d^2) + eps (2 sum(d) + D eps) (two reductions, 1.49x medium forward), "
        "epsilon as a [D] or [N, 1] array (session 7, all within noise or worse: they kept the shared broadcast)."),
    "ntxent_loss": (
        "jaxloss masks the [N, N] similarity matrix with a log-sum-exp over negatives (batch-global contract, "
        "axis_name support); optax builds the full exponentiated matrix instead, which is why jaxloss's backward "
        "needs ~1% of optax's memory. Session 8: (1) the label counts (positives per anchor, any negative) come "
        "from one sort of the labels and a running count (`embedding._same_label_counts`) instead of [N, N] "
        "comparisons that XLA:CPU wrote out as integer arrays and reduced in windows (19 ms of label work at "
        "N = 4096, 0.8 ms now); (2) cosine logits lie in [-1/t, 1/t], so for a concrete t >= 0.031 (float32) "
        "the log-sum-exp is shifted by 1/t (`embedding._cosine_logit_bound`) and the pass for the maximum goes; "
        "(3) with that shift the pair term softplus(lse_neg - s) is log(e^(lse_neg - b) + e^(s - b)) - (s - b), "
        "both exponentials in [e^(-2/t), N]: exp, add, log, subtract per pair instead of softplus's max, abs, "
        "exp, log1p and NaN select. Forward 512x128 1.10-1.12 -> 0.83x, 4096x256 1.00-1.03 -> 0.85x in scratch "
        "A/B runs; forward+backward 3.4 -> 1.9 ms at 512x128, 249 -> 174 ms at 4096x256. A smaller or traced "
        "temperature keeps the maximum's pass and softplus. Tried before and not kept: a select-free softplus "
        "with the positive mask as a multiply; the label masks as a 0/1 pair weight and a lowest-float bias "
        "written once behind an optimization barrier (session 5: 1.04x at 512x128 but 1.11-1.13x at 4096x256 "
        "and twice the memory)."),
    "ranking_softmax_loss": (
        "Different masking structure (rax semantics for lists without valid items). Session 7: without "
        "where/segments the derivatives are written out in a custom JVP (sum(y) softmax(s) - y; "
        "`_softmax_xent_unmasked`): through the masked log-softmax the backward scaled the labels by the "
        "mean's cotangent before summing them, an [N, n] array XLA:CPU wrote out (8192x128 "
        "forward+backward memory 12.0 -> 4.1 MiB, optax 8.1 MiB; 1.06x -> 0.85-0.88x in scratch A/B runs). "
        "softmax(s) as exp(s - m) / sum was tried: 0.81x medium but 0.95x large. Session 9: the JVP's value is "
        "sum(y) log_total - sum(y shifted), so the [N, n] log-softmax is no longer written out for the value's "
        "reduction, and an unmasked list's log-sum-exp drops its empty-list guard (the sum is at least 1): "
        "value and gradient 0.90 -> 0.72x (1024x64) and 0.76 -> 0.61x (8192x128), forward 0.97 -> 0.67x "
        "(8192x128: 2 kernels instead of 5) in scratch A/B runs. The 1024x64 forward+backward ratio had "
        "read 1.07-1.17x in some processes: optax's time, not ours, is bimodal per process there "
        "(0.20-0.21 ms in about one process in seven, 0.26-0.29 ms otherwise; jaxloss 0.245-0.26 ms)."),
    "dice_loss": (
        "The same loss: optax's Dice is a Tversky index with alpha = beta = 1/2, which equals MONAI's Dice "
        "(jaxloss) with smooth_nr = smooth_dr = 2 x optax's smooth, so the row runs jaxloss with smooth=2 "
        "against optax's smooth=1 and the values agree (before session 9 both ran smooth=1, two different "
        "numbers). The [B, H, W, C] passes are the same as optax's. Session 7: "
        "the segmentation losses keep the spatial axes ([B, H, W, C]) and sum over them, as optax does, instead "
        "of flattening to [B, HW, C]: the same kernels, but XLA:CPU's fused softmax backward with the sums over "
        "a 16384-long middle axis ran 10% slower (large forward+backward 1.09-1.10x -> 0.99x in scratch A/B "
        "runs of 40 repeats; medium within noise either way), and the small size lost its reduce-window "
        "(6 -> 4 forward kernels)."),
    "dice_loss/binary": (
        "optax's binary_dice_loss against jaxloss's dice_loss with a sigmoid on one foreground channel, the "
        "same loss (smooth as for dice_loss; values agree): the same kernel counts and memory as optax's "
        "(sigmoid, three pixel sums, one fused backward); ratios above 1 are within the noise of equal passes."),
    "generalized_dice_loss": (
        "Different definitions: jaxloss is MONAI's GeneralizedDiceLoss (one ratio per example, "
        "1 - 2 sum_c w_c I_c / sum_c w_c (P_c + T_c) with w_c = 1/T_c^2 of that example and absent classes "
        "given the largest weight); optax's multiclass_generalized_dice_loss weights its per-class Dice losses "
        "by batch-wide 1/(T_c^2 + 1e-7), normalised, so the values differ. The [B, H, W, C] passes are the same "
        "fusions as optax's (softmax, pixel sums, one fused backward; optax has one pixel sum more); jaxloss has "
        "more [B, C]-sized kernels (19 vs 17 forward+backward). Session 9: the first run of this row measured "
        "1.11x and 1.15x forward+backward (8x64x64x8, 16x128x128x8). The absent-class rule had been written as "
        "raw weights, their maximum and two selects; it is now the weight of the smallest present volume (one "
        "minimum, one select), the same numbers: 0.99-1.01x and 0.94-1.03x in scratch A/B runs. Why the old "
        "[B, C]-sized form cost ~100 us (such kernels take ~1.5 us each in isolation) is not isolated."),
    "softmax_cross_entropy/safe": (
        "optax's safe_softmax_cross_entropy is the optax variant with jaxloss's convention at a -inf logit "
        "with zero label (0, not NaN); jaxloss's softmax_cross_entropy is the same call as in the "
        "softmax_cross_entropy row."),
    "ctc_loss": (
        "Same dynamic programme; jaxloss's backward is a hand-written custom_vjp (beta recursion), optax "
        "differentiates the forward scan."),
    "sigmoid_binary_cross_entropy": (
        "Session 9: without pos_weight the value is x (1/2 - y) + |x|/2 + log1p(e^-|x|) (the stable form of "
        "y softplus(-x) + (1 - y) softplus(x)), with no array of ones for 1 - y and no maximum with 0 for "
        "XLA:CPU to share between fusions and write out: forward 4 -> 2 kernels; in scratch A/B runs "
        "2048x128 forward 0.92 -> 0.27x optax, 32768x128 1.06 -> 0.17x. The 13:48 run then showed the "
        "gradient through |x| writing out a broadcast (7 kernels, 32768x128 value and gradient 1.03x), so the "
        "derivatives are written out (`_bce_with_logits`, custom JVP: sigmoid(x) - y and -x, symbolic zeros "
        "for an undifferentiated argument): 3 kernels, value and gradient 0.34-0.36x (2048x128) and "
        "0.20-0.23x (32768x128) in scratch A/B runs."),
    "sigmoid_focal_loss": (
        "Fewer kernels and less memory than optax's in both modes; a ratio above 1 is noise. Session 9: the "
        "cross-entropy part is written x (1/2 - y) + |x|/2 + log1p(e^-|x|) and the alpha factor "
        "(1 - alpha) + (2 alpha - 1) y, so no [N, D] array of ones or zeros is shared between fusions "
        "(XLA:CPU had written one out, then the other): forward 6 -> 3 kernels; 2048x128 forward 0.42x "
        "(the 13:00 run) -> 0.20x (scratch A/B), 32768x128 0.37 -> 0.10x, value and gradient 0.46 -> 0.28x."),
    "sparsemax_loss": (
        "Same kernel count and memory as optax in both modes; the element formula is written with a clamp "
        "instead of optax's select. Session 5 measured small and medium forward+backward at 1.04x with "
        "95% intervals 1.00-1.06 and 1.02-1.05, so the gap is real but small. optax's own expression, "
        "sparse_plus(where(labels, -logits, logits)), was tried. It is not differentiable in the labels "
        "(the float64 finite-difference check fails), and it turns a NaN label into a finite loss where "
        "the contract propagates NaN. (1 - 2y) x keeps both, so it was not adopted. Session 7: the "
        "derivative is a custom JVP, (clip(x, -1, 1) + 1) / 2 (the sparse sigmoid), where differentiating "
        "the selects and the clip had written out their tie rules (6 compares, 6 selects and 2 divides per "
        "element): 2048x128 forward+backward 1.03-1.05x -> 0.97x in scratch A/B runs. Session 12: sparse_plus "
        "with one select, x if x >= 1 else (max(x, -1) + 1)^2 / 4, where optax's has two: forward 0.95-0.97x "
        "optax at 2048x128 and 32768x128 in scratch A/B runs (the previous form 0.99-1.02x). The value still "
        "has a select, so XLA:CPU writes it out for its YNN reduction, as optax's; a select-free form "
        "(max/min only) would fuse but drop a NaN inside the YNN fusion."),
    "perceptron_loss": (
        "Forward: the same program as optax's. Backward: the step function of relu's convention is "
        "sign(max(x, 0)) instead of a select, same kernel count at half optax's memory (other step "
        "functions: see hinge_loss). Session 12, from 2^14 elements: 0 - reduce(min(y s, 0)) with the "
        "derivative spelled apart, as for hinge_loss: forward 0.87-0.96x, forward+backward 0.76-0.81x optax "
        "in scratch A/B runs."),
    "multiclass_perceptron_loss": (
        "Contract: out-of-range labels give NaN, as an [N] factor on the per-example values (not a NaN "
        "one-hot row). The label's score is a gather with a one-hot tangent (`_label_score`), so the forward's "
        "only [N, C] pass is the max (optax materialises a one-hot and reduces its product: 32 MiB at "
        "8192x1000, jaxloss 64 KiB); the extra kernels (4 vs 3 forward, 9 vs 7 forward+backward at 8192x1000) "
        "are [N]-sized. Measured 0.18-0.35x forward and 0.68-0.91x forward+backward at medium/large."),
    "log_cosh": (
        "Fixed in this commit: the forward was r + softplus(-2r) - log 2, which XLA:CPU split into two "
        "kernels with an [N] temporary; now |r| + log1p(exp(-2|r|)) - log 2 fuses into the reduction."),
}

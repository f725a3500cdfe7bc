"""Learning to rank on synthetic queries: pointwise, pairwise (with and without lambda weights) and listwise losses.

Each query has up to 20 candidate documents (lists are padded; ``where`` marks
the real ones) described by 12 features. A hidden, nonlinear relevance function
of the features, plus noise, gives each document a graded label 0-4 within its
query. The same small MLP scorer is trained with seven ``jaxloss.ranking``
losses, one run each from the same initialisation:

* pointwise: ``pointwise_mse_loss`` (regress the grade),
* pairwise: ``pairwise_logistic_loss`` (RankNet), the same with
  ``lambdaweight="dcg"`` (LambdaRank) and ``pairwise_hinge_loss``,
* listwise: ``ranking_softmax_loss``, ``listmle_loss``, ``approx_ndcg_loss``.

It prints NDCG@10 (``jaxloss.ranking.ndcg_metric``) and MRR of the first
highly relevant document (grade >= 3, ``jaxloss.ranking.mrr_metric``) on
held-out queries, next to a random ranking and the oracle (the hidden relevance
function itself), and saves a figure.

Run from the repository root::

    python examples/learning_to_rank.py            # about a minute on two CPU cores
    python examples/learning_to_rank.py --smoke    # a few steps, for CI
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from jaxloss import ranking  # noqa: E402

SEED = 0
FEATURES, LIST_SIZE, MIN_LIST = 12, 20, 8
HIDDEN = 32

LOSSES = {
    "pointwise MSE": (ranking.pointwise_mse_loss, {}),
    "RankNet (pairwise logistic)": (ranking.pairwise_logistic_loss, {}),
    "LambdaRank (logistic + dcg lambdaweight)": (ranking.pairwise_logistic_loss, {"lambdaweight": "dcg"}),
    "pairwise hinge": (ranking.pairwise_hinge_loss, {}),
    "softmax (ListNet)": (ranking.ranking_softmax_loss, {}),
    "ListMLE": (ranking.listmle_loss, {}),
    "ApproxNDCG": (ranking.approx_ndcg_loss, {}),
}


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-queries", type=int, default=600)
    parser.add_argument("--test-queries", type=int, default=300)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--smoke", action="store_true", help="a few steps on a few queries, for CI")
    parser.add_argument("--output", default=os.path.join("outputs", "learning_to_rank.png"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_queries, args.test_queries, args.steps = 32, 32, 20
    return args


def make_queries(rng: np.random.Generator, num_queries: int, projection: np.ndarray):
    """Features ``[Q, L, F]``, graded labels ``[Q, L]`` in 0..4, valid-document mask, hidden relevance."""
    x = rng.normal(size=(num_queries, LIST_SIZE, FEATURES))
    # A query-specific shift, so that only the order within a query carries signal.
    x = x + rng.normal(scale=0.5, size=(num_queries, 1, FEATURES))
    # The hidden relevance: linear part, an interaction and a saturating bump.
    h = x @ projection  # [Q, L, 3]
    relevance = h[..., 0] + 0.8 * h[..., 1] * h[..., 2] + 1.5 * np.tanh(2.0 * h[..., 2])
    noisy = relevance + rng.normal(scale=0.5, size=relevance.shape)
    lengths = rng.integers(MIN_LIST, LIST_SIZE + 1, size=num_queries)
    valid = np.arange(LIST_SIZE)[None, :] < lengths[:, None]
    # Grades by within-query quantiles of the noisy relevance: few 4s, many 0s.
    labels = np.zeros(noisy.shape, np.float32)
    for q in range(num_queries):
        v = noisy[q, valid[q]]
        cuts = np.quantile(v, [0.4, 0.65, 0.85, 0.95])
        labels[q, valid[q]] = np.searchsorted(cuts, v)
    return (x.astype(np.float32), labels, valid, relevance.astype(np.float32))


def init_mlp(key):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (FEATURES, HIDDEN)) / np.sqrt(FEATURES), "b1": jnp.zeros(HIDDEN),
            "w2": jax.random.normal(k2, (HIDDEN,)) / np.sqrt(HIDDEN), "b2": jnp.zeros(())}


def score(params, x):
    """Documents ``[..., F]`` to scores ``[...]``."""
    hidden = jax.nn.gelu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def evaluate(scores, labels, valid):
    """Mean NDCG@10 and MRR of the first document with grade >= 3, over queries."""
    ndcg = ranking.ndcg_metric(scores, labels, topn=10, where=valid)
    mrr = ranking.mrr_metric(scores, (labels >= 3).astype(jnp.float32), where=valid)
    return float(jnp.mean(ndcg)), float(jnp.mean(mrr))


def train(loss_fn, options, data, test, args):
    x, labels, valid, _ = (jnp.asarray(a) for a in data)
    optimizer = optax.adam(args.learning_rate)
    params = init_mlp(jax.random.PRNGKey(SEED))  # the same initialisation for every loss
    opt_state = optimizer.init(params)

    def objective(p):
        return loss_fn(score(p, x), labels, where=valid, **options)

    @jax.jit
    def run(params, opt_state):
        def step(carry, _):
            p, s = carry
            value, grads = jax.value_and_grad(objective)(p)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        chunk = max(args.steps // 10, 1)
        (params, opt_state), values = jax.lax.scan(step, (params, opt_state), None, length=chunk)
        return params, opt_state, values

    test_x, test_labels, test_valid, _ = (jnp.asarray(a) for a in test)
    curve = []
    for _ in range(max(args.steps // max(args.steps // 10, 1), 1)):
        params, opt_state, values = run(params, opt_state)
        curve.append(evaluate(score(params, test_x), test_labels, test_valid)[0])
    return params, np.array(curve), float(values[-1])


def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    projection = rng.normal(size=(FEATURES, 3)) / np.sqrt(FEATURES)
    data = make_queries(rng, args.train_queries, projection)
    test = make_queries(rng, args.test_queries, projection)
    test_x, test_labels, test_valid, test_relevance = (jnp.asarray(a) for a in test)
    print(f"{args.train_queries} training and {args.test_queries} held-out queries, up to {LIST_SIZE} documents "
          f"each ({int(data[2].sum())} training documents), {FEATURES} features, grades 0-4")

    results = {
        "random": evaluate(jnp.asarray(rng.normal(size=test_labels.shape), jnp.float32), test_labels, test_valid),
        "oracle (hidden relevance)": evaluate(test_relevance, test_labels, test_valid),
    }
    curves = {}
    for name, (loss_fn, options) in LOSSES.items():
        params, curve, final_loss = train(loss_fn, options, data, test, args)
        results[name] = evaluate(score(params, test_x), test_labels, test_valid)
        curves[name] = curve
        print(f"  trained {name:<42} final loss {final_loss:9.4f}")

    width = max(len(n) for n in results) + 2
    print(f"\n{'ranking':<{width}}{'NDCG@10':>9}{'MRR':>9}")
    for name, (ndcg, mrr) in results.items():
        print(f"{name:<{width}}{ndcg:>9.4f}{mrr:>9.4f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    steps = (np.arange(len(next(iter(curves.values())))) + 1) * max(args.steps // 10, 1)
    for name, curve in curves.items():
        axes[0].plot(steps, curve, marker="o", ms=3, label=name)
    axes[0].axhline(results["random"][0], c="gray", ls="--", lw=1, label="random")
    axes[0].axhline(results["oracle (hidden relevance)"][0], c="purple", ls="--", lw=1, label="oracle")
    axes[0].set(title="held-out NDCG@10 during training", xlabel="step", ylabel="NDCG@10")
    axes[0].legend(fontsize=7)
    names = list(results)
    pos = np.arange(len(names))
    axes[1].barh(pos - 0.2, [results[n][0] for n in names], 0.4, label="NDCG@10")
    axes[1].barh(pos + 0.2, [results[n][1] for n in names], 0.4, label="MRR (grade >= 3)")
    axes[1].set_yticks(pos, names, fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set(title="held-out metrics after training", xlim=(0, 1))
    axes[1].legend(fontsize=8)
    fig.suptitle("Learning to rank on synthetic graded queries (jaxloss.ranking)")
    fig.tight_layout()
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    print(f"\nfigure: {output}\ntotal time {time.time() - t0:.1f}s")
    return {name: {"ndcg@10": ndcg, "mrr": mrr} for name, (ndcg, mrr) in results.items()}


if __name__ == "__main__":
    main()

"""Metric learning on scikit-learn's digits with jaxloss embedding losses (Flax NNX + Optax).

Trains a small MLP to embed 8x8 digit images in 2-D and in 32-D with any of
the metric-learning losses of ``jaxloss.embedding``, prints recall@1 on
held-out digits (the fraction of test images whose nearest other test image
has the same class), and plots the 2-D embedding of the held-out digits
coloured by class (or, with ``--loss all``, recall@1 per loss)::

    python examples/metric_learning_digits.py --loss supcon
    python examples/metric_learning_digits.py --loss batch_hard --steps 400
    python examples/metric_learning_digits.py --loss all      # the README table
    python examples/metric_learning_digits.py --smoke         # every loss, 3 steps

Batches hold P=10 classes x K=8 images ("PK sampling", Hermans et al. 2017),
so every anchor has positives and negatives in its batch. Class centers,
proxies and sub-centers are ordinary parameters of the model.
"""

from __future__ import annotations

import sys
import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

from jaxloss import embedding  # noqa: E402

LOSSES = ("triplet", "batch_hard", "contrastive", "supcon", "circle", "arcface", "cosface", "multi_similarity",
          "lifted_structure", "npairs", "proxy_nca", "proxy_anchor", "soft_triple", "sub_center_arcface")
EUCLIDEAN = ("triplet", "batch_hard", "contrastive")  # the others compare L2-normalised embeddings: cosine
NUM_CLASSES, PER_CLASS = 10, 8
# Rows of the learned center matrix per class: one class center / proxy, SoftTriple's 10 centers
# (pytorch-metric-learning's default) or sub-center ArcFace's 3 sub-centers.
CENTERS_PER_CLASS = {"soft_triple": 10, "sub_center_arcface": 3}


class Embedder(nnx.Module):
    """MLP 64 -> 128 -> 128 -> dim, plus class centers / proxies for the losses that learn them."""

    def __init__(self, dim: int, centers_per_class: int, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(64, 128, rngs=rngs)
        self.hidden2 = nnx.Linear(128, 128, rngs=rngs)
        self.out = nnx.Linear(128, dim, rngs=rngs)
        self.centers = nnx.Param(jax.random.normal(rngs.params(), (NUM_CLASSES * centers_per_class, dim)))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.hidden1(x))
        x = nnx.relu(self.hidden2(x))
        return self.out(x)


def loss_value(model: Embedder, loss: str, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
    e = model(x)
    centers = model.centers[...]
    if loss == "batch_hard":
        return embedding.batch_hard_triplet_loss(e, y, margin=0.5)
    if loss == "supcon":
        return embedding.supervised_contrastive_loss(e, y, temperature=0.1)
    if loss == "circle":
        return embedding.circle_loss(e, y, gamma=32.0)
    if loss == "arcface":
        return embedding.arcface_loss(e, centers, y, scale=16.0, margin=0.3)
    if loss == "cosface":
        return embedding.cosface_loss(e, centers, y, scale=16.0, margin=0.2)
    # The losses of the second part with pytorch-metric-learning's defaults, except the ArcFace
    # scale and margin (64 and 0.5 are tuned for 512-D face embeddings, not 2-D digits).
    if loss == "multi_similarity":
        return embedding.multi_similarity_loss(e, y)
    if loss == "lifted_structure":
        return embedding.lifted_structure_loss(e, y)
    if loss == "proxy_nca":
        return embedding.proxy_nca_loss(e, centers, y)
    if loss == "proxy_anchor":
        return embedding.proxy_anchor_loss(e, centers, y)
    if loss == "soft_triple":
        return embedding.soft_triple_loss(e, centers, y)
    if loss == "sub_center_arcface":
        return embedding.sub_center_arcface_loss(e, centers, y, scale=16.0, margin=0.3)
    if loss == "npairs":
        # Row p * K + k is image k of class p: 4 N-pair problems of 10 (anchor, positive) pairs,
        # one pair per class each (images 2j and 2j + 1 of every class).
        grid = e.reshape(NUM_CLASSES, PER_CLASS // 2, 2, -1)
        return jnp.mean(jax.vmap(embedding.npairs_loss, in_axes=1)(grid[:, :, 0], grid[:, :, 1]))
    # Triplets and pairs from the PK batch.
    n = x.shape[0]
    k_pos, k_neg, k_lab = jax.random.split(key, 3)
    same_class = (jnp.arange(n) // PER_CLASS) * PER_CLASS
    positive = same_class + (jnp.arange(n) % PER_CLASS + jax.random.randint(k_pos, (n,), 1, PER_CLASS)) % PER_CLASS
    negative = (same_class + PER_CLASS * jax.random.randint(k_neg, (n,), 1, NUM_CLASSES)
                + jnp.arange(n) % PER_CLASS) % n
    if loss == "triplet":
        return embedding.triplet_margin_loss(e, e[positive], e[negative], margin=1.0)
    similar = jax.random.bernoulli(k_lab, 0.5, (n,))
    partner = jnp.where(similar, positive, negative)
    return embedding.contrastive_loss(e, e[partner], similar.astype(e.dtype), margin=2.0)


def recall_at_1(e: np.ndarray, y: np.ndarray, cosine: bool) -> float:
    if cosine:
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        dist = -e @ e.T
    else:
        dist = np.sum((e[:, None, :] - e[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(dist, np.inf)
    return float(np.mean(y[np.argmin(dist, axis=1)] == y))


def pk_batch(rng: np.random.Generator, by_class: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([rng.choice(idx, PER_CLASS, replace=False) for idx in by_class])


def train(loss: str, dim: int, steps: int, seed: int, data) -> tuple[Embedder, list[float]]:
    x_train, y_train = data
    by_class = [np.flatnonzero(y_train == c) for c in range(NUM_CLASSES)]
    model = Embedder(dim, CENTERS_PER_CLASS.get(loss, 1), nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y, key):
        value, grads = nnx.value_and_grad(lambda m: loss_value(m, loss, x, y, key))(model)
        optimizer.update(model, grads)
        return value

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    history = []
    for i in (bar := tqdm(range(steps), desc=f"{loss} {dim}-D", leave=False, disable=not sys.stderr.isatty())):
        idx = pk_batch(rng, by_class)
        value = step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), jax.random.fold_in(key, i))
        history.append(float(value))
        if i % 25 == 0:
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    return model, history


def _normalised(e: np.ndarray) -> np.ndarray:
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def plot_one(loss: str, results: dict, y_test: np.ndarray, path: Path) -> None:
    cosine = loss not in EUCLIDEAN
    fig, (ax_emb, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.8))
    dims = sorted(results)
    e2 = results[dims[0]][0][:, :2]
    if cosine:
        e2 = _normalised(e2)
    points = ax_emb.scatter(e2[:, 0], e2[:, 1], c=y_test, cmap="tab10", s=10, alpha=0.8)
    ax_emb.legend(*points.legend_elements(), title="digit", fontsize=7, loc="best")
    ax_emb.set_title(f"held-out digits, {dims[0]}-D embedding ({loss}{', normalised' if cosine else ''})")
    ax_emb.set_aspect("equal", adjustable="datalim")
    for dim, (_, history) in results.items():
        window = min(20, len(history))
        ax_loss.plot(np.convolve(history, np.ones(window) / window, mode="valid"), label=f"{dim}-D")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"{loss} loss ({window}-step mean)")
    ax_loss.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_table(table: dict, path: Path) -> None:
    losses = list(table)
    dims = sorted(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(dims)
    for j, dim in enumerate(dims):
        ax.bar(np.arange(len(losses)) + j * width, [table[name][dim] for name in losses], width, label=f"{dim}-D")
    ax.set_xticks(np.arange(len(losses)) + 0.4 - width / 2, losses, rotation=35, ha="right")
    ax.set_ylabel("recall@1, held-out digits")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, dict[int, float]]:
    """Trains and evaluates; returns ``{loss: {dim: recall@1}}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=LOSSES + ("all",), default=None,
                        help="the loss to train with, or 'all' (default: supcon; with --smoke: all)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="figure path (default: outputs/metric_learning_digits_<loss>.png)")
    parser.add_argument("--smoke", action="store_true", help="every loss (unless --loss), 3 steps, 8-D only")
    args = parser.parse_args(argv)
    loss_arg = args.loss or ("all" if args.smoke else "supcon")
    losses = LOSSES if loss_arg == "all" else (loss_arg,)
    steps, dims = (3, (8,)) if args.smoke else (args.steps, (2, 32))

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.3, random_state=args.seed,
                                                        stratify=digits.target)
    print(f"raw pixels: recall@1 = {recall_at_1(x_test, y_test, False):.3f} (Euclidean), "
          f"{recall_at_1(x_test, y_test, True):.3f} (cosine) on {len(y_test)} held-out digits")
    start = time.perf_counter()
    table: dict[str, dict[int, float]] = {}
    results = {}
    for loss in losses:
        cosine = loss not in EUCLIDEAN
        table[loss] = {}
        for dim in dims:
            model, history = train(loss, dim, steps, args.seed, (x_train, y_train))
            e_test = np.asarray(model(jnp.asarray(x_test)))
            results[dim] = (e_test, history)
            table[loss][dim] = recall_at_1(e_test, y_test, cosine)
            print(f"{loss:>18s} {dim:2d}-D: final loss {np.mean(history[-50:]):.4f}, "
                  f"recall@1 = {table[loss][dim]:.3f} on held-out digits")
    print(f"trained in {time.perf_counter() - start:.1f} s")
    if len(losses) > 1:
        print("\n| loss | " + " | ".join(f"recall@1 {d}-D" for d in dims) + " |")
        print("|---|" + "---:|" * len(dims))
        for loss, row in table.items():
            print(f"| `{loss}` | " + " | ".join(f"{row[d]:.3f}" for d in dims) + " |")

    path = args.output or Path("outputs") / f"metric_learning_digits_{loss_arg}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(losses) == 1:
        plot_one(losses[0], results, y_test, path)
    else:
        plot_table(table, path)
    print(f"figure: {path}")
    return table


if __name__ == "__main__":
    main()

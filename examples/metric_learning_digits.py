"""Metric learning on scikit-learn's digits with jaxloss embedding losses (Flax NNX + Optax).

Trains a small MLP to embed 8x8 digit images in 2-D and in 32-D with one of
five losses, prints recall@1 on held-out digits (the fraction of test images
whose nearest other test image has the same class), and plots the 2-D
embedding of the held-out digits coloured by class under ``outputs/``::

    python examples/metric_learning_digits.py --loss supcon
    python examples/metric_learning_digits.py --loss batch_hard --steps 400

Batches hold P=10 classes x K=8 images ("PK sampling", Hermans et al. 2017),
so every anchor has positives and negatives in its batch.
"""

from __future__ import annotations

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

LOSSES = ("triplet", "batch_hard", "contrastive", "supcon", "arcface")
COSINE = ("supcon", "arcface")  # losses on L2-normalised embeddings: evaluate with cosine
NUM_CLASSES, PER_CLASS = 10, 8


class Embedder(nnx.Module):
    """MLP 64 -> 128 -> 128 -> dim, plus class centers for ArcFace."""

    def __init__(self, dim: int, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(64, 128, rngs=rngs)
        self.hidden2 = nnx.Linear(128, 128, rngs=rngs)
        self.out = nnx.Linear(128, dim, rngs=rngs)
        self.centers = nnx.Param(jax.random.normal(rngs.params(), (NUM_CLASSES, dim)))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.hidden1(x))
        x = nnx.relu(self.hidden2(x))
        return self.out(x)


def loss_value(model: Embedder, loss: str, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
    e = model(x)
    if loss == "batch_hard":
        return embedding.batch_hard_triplet_loss(e, y, margin=0.5)
    if loss == "supcon":
        return embedding.supervised_contrastive_loss(e, y, temperature=0.1)
    if loss == "arcface":
        return embedding.arcface_loss(e, model.centers[...], y, scale=16.0, margin=0.3)
    # Triplets and pairs from the PK batch: row i of the batch is image k of class p.
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
    model = Embedder(dim, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y, key):
        value, grads = nnx.value_and_grad(lambda m: loss_value(m, loss, x, y, key))(model)
        optimizer.update(model, grads)
        return value

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    history = []
    for i in (bar := tqdm(range(steps), desc=f"{loss} {dim}-D", leave=False)):
        idx = pk_batch(rng, by_class)
        value = step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), jax.random.fold_in(key, i))
        history.append(float(value))
        if i % 25 == 0:
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    return model, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=LOSSES, default="supcon")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs"))
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.3, random_state=args.seed,
                                                        stratify=digits.target)
    cosine = args.loss in COSINE
    print(f"raw pixels: recall@1 = {recall_at_1(x_test, y_test, cosine):.3f} on {len(y_test)} held-out digits")
    start = time.perf_counter()
    results = {}
    for dim in (2, 32):
        model, history = train(args.loss, dim, args.steps, args.seed, (x_train, y_train))
        e_test = np.asarray(model(jnp.asarray(x_test)))
        results[dim] = (e_test, history)
        print(f"{args.loss:>11s} {dim:2d}-D: final loss {np.mean(history[-50:]):.4f}, "
              f"recall@1 = {recall_at_1(e_test, y_test, cosine):.3f} on held-out digits")
    print(f"trained in {time.perf_counter() - start:.1f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    fig, (ax_emb, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.8))
    e2 = results[2][0]
    if cosine:
        e2 = e2 / np.maximum(np.linalg.norm(e2, axis=1, keepdims=True), 1e-12)
    points = ax_emb.scatter(e2[:, 0], e2[:, 1], c=y_test, cmap="tab10", s=10, alpha=0.8)
    ax_emb.legend(*points.legend_elements(), title="digit", fontsize=7, loc="best")
    ax_emb.set_title(f"held-out digits, 2-D embedding ({args.loss}{', normalised' if cosine else ''})")
    ax_emb.set_aspect("equal", adjustable="datalim")
    for dim, (_, history) in results.items():
        smooth = np.convolve(history, np.ones(20) / 20, mode="valid")
        ax_loss.plot(smooth, label=f"{dim}-D")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"{args.loss} loss (20-step mean)")
    ax_loss.legend()
    fig.tight_layout()
    path = args.out / f"metric_learning_digits_{args.loss}.png"
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()

"""Anomaly detection with an autoencoder scored by ``jaxloss.reconstruction_error``.

A small Flax (NNX) autoencoder is trained on scikit-learn's 8x8 digits of a
few "normal" classes only (nothing is downloaded). Held-out images of *all*
classes are then scored by their per-image reconstruction error; digits of
the unseen classes should reconstruct worse. Prints the ROC-AUC (scikit-learn)
of the score for "unseen class = anomaly" and saves score histograms.

    python examples/anomaly_autoencoder.py                     # normal classes 0 1 2 3 4
    python examples/anomaly_autoencoder.py --normal 1 7 --kind bernoulli
    python examples/anomaly_autoencoder.py --smoke              # 2 epochs, for CI
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

from jaxloss.generative import reconstruction_error  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class AutoEncoder(nnx.Module):
    def __init__(self, hidden: int, code: int, rngs: nnx.Rngs):
        self.enc1 = nnx.Linear(64, hidden, rngs=rngs)
        self.enc2 = nnx.Linear(hidden, code, rngs=rngs)
        self.dec1 = nnx.Linear(code, hidden, rngs=rngs)
        self.dec2 = nnx.Linear(hidden, 64, rngs=rngs)

    def __call__(self, x):
        z = self.enc2(nnx.relu(self.enc1(x)))
        return self.dec2(nnx.relu(self.dec1(z)))  # pixel values, or logits for kind="bernoulli"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--normal", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="classes seen in training")
    parser.add_argument("--kind", default="squared", choices=["squared", "absolute", "bernoulli"])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--code", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/anomaly_autoencoder.png")
    parser.add_argument("--smoke", action="store_true", help="2 epochs: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 2
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=args.seed, stratify=y)
    normal = np.isin(y_train, args.normal)
    x_train = x_train[normal]
    anomalous = ~np.isin(y_test, args.normal)
    print(f"training on {len(x_train)} images of classes {args.normal}; "
          f"scoring {len(x_test)} held-out images ({anomalous.sum()} from unseen classes)")

    model = AutoEncoder(args.hidden, args.code, nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, batch):
        def loss_fn(model):
            return reconstruction_error(model(batch), batch, kind=args.kind)  # mean over the batch

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def scores(model, images):
        return reconstruction_error(model(images), images, kind=args.kind, reduction="none")  # [B]

    rng = np.random.default_rng(args.seed)
    steps_per_epoch = max(1, len(x_train) // args.batch_size)
    with tqdm(range(args.epochs), desc="autoencoder", unit="epoch", disable=None) as bar:  # no bar when redirected
        for _ in bar:
            order = rng.permutation(len(x_train))
            for i in range(steps_per_epoch):
                batch = x_train[order[i * args.batch_size:(i + 1) * args.batch_size]]
                loss = train_step(model, optimizer, jnp.asarray(batch))
            bar.set_postfix(loss=f"{float(loss):.3f}")

    s = np.asarray(scores(model, jnp.asarray(x_test)))
    auc = roc_auc_score(anomalous, s)
    print(f"ROC-AUC (unseen classes as anomalies, score = {args.kind} reconstruction error): {auc:.3f}")
    for c in range(10):
        tag = "normal " if c in args.normal else "anomaly"
        print(f"  class {c} ({tag}): mean score {s[y_test == c].mean():7.3f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(s.min(), np.quantile(s, 0.99), 40)
    ax[0].hist(s[~anomalous], bins=bins, alpha=0.6, density=True, label=f"seen classes {args.normal}")
    ax[0].hist(s[anomalous], bins=bins, alpha=0.6, density=True, label="unseen classes")
    ax[0].set_xlabel(f"reconstruction_error(kind={args.kind!r})")
    ax[0].set_ylabel("density")
    ax[0].set_title(f"held-out scores, ROC-AUC {auc:.3f}")
    ax[0].legend()
    ax[1].boxplot([s[y_test == c] for c in range(10)], showfliers=False)
    ax[1].set_xticks(range(1, 11), [str(c) for c in range(10)])
    ax[1].set_xlabel("digit class")
    ax[1].set_title("score by class")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    plt.close(fig)
    print(f"saved {shown(args.output)} ({time.time() - start:.1f} s)")
    return auc


if __name__ == "__main__":
    main()

"""Multi-task learning on scikit-learn's digits with learned uncertainty weights.

One Flax (NNX) network with a shared trunk and two heads: a classification head
(which digit, ``jaxloss.softmax_cross_entropy_with_integer_labels``) and a
regression head (the image's mean pixel intensity, 0-16, with Gaussian noise
added to the training targets, ``jaxloss.squared_error``). It is trained twice:

* with fixed equal weights, ``L_cls + L_reg``;
* with ``jaxloss.robust.uncertainty_weighted_sum([L_cls, L_reg], s)``, the
  log variances ``s`` learned with the network (Kendall et al. 2018).

    python examples/multitask.py
    python examples/multitask.py --target-noise 4.0 --epochs 40
    python examples/multitask.py --smoke         # 2 epochs, for CI

Prints test accuracy and test RMSE (against the clean targets) for both, and the
learned task variances; saves the training curves under ``outputs/``. The data
ship with scikit-learn; nothing is downloaded.
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
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss import robust  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TASKS = ("classification", "regression")


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class TwoHeadNet(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs):
        self.trunk1 = nnx.Linear(64, hidden, rngs=rngs)
        self.trunk2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.classify = nnx.Linear(hidden, 10, rngs=rngs)
        self.regress = nnx.Linear(hidden, 1, rngs=rngs)
        # s_k = log sigma_k^2 per task, initialised to 0 (weight 1); unused by the fixed scheme.
        self.log_variances = nnx.Param(jnp.zeros(len(TASKS)))

    def __call__(self, x):
        h = nnx.relu(self.trunk2(nnx.relu(self.trunk1(x))))
        return self.classify(h), self.regress(h)[:, 0]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-noise", type=float, default=2.0,
                        help="std of the Gaussian noise on the training intensity targets (intensity units)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/multitask.png")
    parser.add_argument("--smoke", action="store_true", help="2 epochs: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 2
    return args


def load_data(noise: float, seed: int):
    digits = load_digits()
    intensity = digits.data.mean(axis=1).astype(np.float32)          # mean pixel intensity, 0-16
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te, i_tr, i_te = train_test_split(x, y, intensity, test_size=0.25, random_state=seed,
                                                          stratify=y)
    rng = np.random.default_rng(seed)
    noisy = (i_tr + noise * rng.normal(size=i_tr.shape)).astype(np.float32)
    return x_tr, y_tr, noisy, x_te, y_te, i_te


def train(scheme: str, args, data):
    x_tr, y_tr, i_tr, x_te, y_te, i_te = data
    model = TwoHeadNet(args.hidden, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y, target):
        def objective(model):
            logits, intensity = model(x)
            parts = jnp.stack([jaxloss.softmax_cross_entropy_with_integer_labels(logits, y),
                               jaxloss.squared_error(intensity, target)])
            if scheme == "uncertainty":
                total = robust.uncertainty_weighted_sum(parts, model.log_variances[...])
            else:
                total = jnp.sum(parts)  # fixed equal weights
            return total, parts

        (_, parts), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return parts

    @nnx.jit
    def evaluate(model, x):
        logits, intensity = model(x)
        return jnp.argmax(logits, -1), intensity

    rng = np.random.default_rng(args.seed)
    steps = int(np.ceil(len(y_tr) / args.batch_size))
    history = {"cls": [], "reg": [], "acc": [], "rmse": [], "var": []}
    bar = tqdm(range(args.epochs), desc=f"{scheme:>11}", unit="epoch", disable=None)  # no bar when redirected
    for _ in bar:
        order = rng.permutation(len(y_tr))
        parts = []
        for i in range(steps):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            parts.append(np.asarray(train_step(model, optimizer, x_tr[idx], y_tr[idx], i_tr[idx])))
        pred, intensity = evaluate(model, x_te)
        acc = float(np.mean(np.asarray(pred) == y_te))
        rmse = float(np.sqrt(np.mean((np.asarray(intensity) - i_te) ** 2)))
        cls, reg = np.mean(parts, axis=0)
        history["cls"].append(cls)
        history["reg"].append(reg)
        history["acc"].append(acc)
        history["rmse"].append(rmse)
        history["var"].append(np.exp(np.asarray(model.log_variances[...])))
        bar.set_postfix(acc=f"{acc:.3f}", rmse=f"{rmse:.3f}")
    return history


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    data = load_data(args.target_noise, args.seed)
    x_tr, y_tr, i_tr, x_te, y_te, i_te = data
    print(f"digits: {len(y_tr)} training images, {len(y_te)} test images; intensity targets std "
          f"{i_te.std():.2f}, training noise std {args.target_noise}")
    results = {scheme: train(scheme, args, data) for scheme in ("fixed", "uncertainty")}

    print(f"\n{'weighting':<22}{'test accuracy':>15}{'test RMSE':>12}   task weights exp(-s)")
    for scheme, h in results.items():
        weights = "1, 1" if scheme == "fixed" else ", ".join(f"{1 / v:.3f}" for v in h["var"][-1])
        name = "fixed equal weights" if scheme == "fixed" else "uncertainty_weighted"
        print(f"{name:<22}{h['acc'][-1]:>15.4f}{h['rmse'][-1]:>12.4f}   {weights}")
    var = results["uncertainty"]["var"][-1]
    print(f"learned variances sigma^2 = exp(s): classification {var[0]:.4f}, regression {var[1]:.3f} "
          f"(the training targets' noise variance is {args.target_noise ** 2:.2f}; at the optimum "
          f"sigma^2 equals the task's loss)")

    epochs = np.arange(1, args.epochs + 1)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for scheme, h in results.items():
        axes[0].plot(epochs, h["cls"], label=scheme)
        axes[1].plot(epochs, h["reg"], label=scheme)
        axes[2].plot(epochs, h["acc"], label=scheme)
        axes[3].plot(epochs, h["rmse"], label=scheme)
    axes[0].set(xlabel="epoch", ylabel="cross entropy (train)", yscale="log", title="classification loss")
    axes[1].set(xlabel="epoch", ylabel="squared error (train, noisy)", title="regression loss")
    axes[2].set(xlabel="epoch", ylabel="test accuracy", title="classification")
    axes[3].set(xlabel="epoch", ylabel="test RMSE (clean)", title="regression")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    print(f"figure: {shown(args.output)}  ({time.perf_counter() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()

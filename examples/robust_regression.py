"""Robust regression on scikit-learn's diabetes data with corrupted targets.

A fraction of the *training* targets is replaced by gross errors; every model is
scored on clean held-out targets. A line and a small MLP (disease progression
against body-mass index) are fitted with MSE, MAE, Huber,
log-cosh, Barron's general loss at a fixed alpha, and Barron's adaptive loss,
whose alpha and scale are learned with the model by minimising
``jaxloss.robust.adaptive_robust_nll``.

    python examples/robust_regression.py                      # 20% outliers
    python examples/robust_regression.py --outliers 0.0       # clean data: the learned alpha rises above 2
    python examples/robust_regression.py --alpha -2 --scale 0.5
    python examples/robust_regression.py --smoke              # 100 steps per model, for CI

Prints each model's error on the clean test targets and the learned alpha, and
saves a figure (the fits, and rho and its derivative for several alphas) under
``outputs/``. The data ship with scikit-learn; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss import robust  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BMI = 2  # column of the body-mass index in load_diabetes


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outliers", type=float, default=0.2, help="fraction of training targets corrupted")
    parser.add_argument("--alpha", type=float, default=0.0, help="alpha of the fixed-alpha Barron loss")
    parser.add_argument("--scale", type=float, default=0.5, help="scale of the fixed Barron loss (target stds)")
    parser.add_argument("--delta", type=float, default=1.0, help="Huber delta (target stds)")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps per model")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate of the line (the MLP uses 0.3x)")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the MLP weights, l2 / N * sum(w^2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", "--out", default="outputs/robust_regression.png", help="figure path")
    parser.add_argument("--smoke", action="store_true",
                        help="100 steps per model: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 100
    return args


# ------------------------------------------------------------------- data
def load(outliers: float, seed: int):
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed)
    rng = np.random.default_rng(seed)
    corrupted = rng.random(len(y_train)) < outliers
    # Gross errors: the target replaced by a value 3 to 6 standard deviations too high
    # (e.g. a unit or data-entry error), so the clean mean is pulled one way.
    noisy = y_train.copy()
    noisy[corrupted] = y_train[corrupted] + rng.uniform(3.0, 6.0, corrupted.sum()) * y_train.std()
    # Standardise the targets with robust statistics of what the learner sees.
    center = np.median(noisy)
    spread = 1.4826 * np.median(np.abs(noisy - center))
    return (x_train.astype(np.float32), ((noisy - center) / spread).astype(np.float32), corrupted,
            x_test.astype(np.float32), y_test, center, spread)


# ------------------------------------------------------------------- models
def init_line(key):
    return {"w": jnp.zeros((1,)), "b": jnp.zeros(())}


def apply_line(params, x):
    return x[:, BMI] * params["w"][0] + params["b"]


def init_mlp(key, hidden):
    k1, k2, k3 = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_normal()
    return {"w1": glorot(k1, (1, hidden)), "b1": jnp.zeros(hidden),
            "w2": glorot(k2, (hidden, hidden)), "b2": jnp.zeros(hidden),
            "w3": glorot(k3, (hidden, 1)) * 0.1, "b3": jnp.zeros(1)}


def apply_mlp(params, x):
    h = jnp.tanh(x[:, BMI:BMI + 1] @ params["w1"] + params["b1"])
    h = jnp.tanh(h @ params["w2"] + params["b2"])
    return (h @ params["w3"] + params["b3"])[:, 0]


# ------------------------------------------------------------------- losses
def make_losses(args):
    """name -> (loss(residual-params, predictions, targets), extra trainable parameters)."""
    def adaptive(extra, p, t):
        # alpha in (0, 4) and scale > 0 through smooth reparametrisations (Barron 2019, section 3).
        alpha = 4.0 * jax.nn.sigmoid(extra["alpha_logit"])
        scale = jax.nn.softplus(extra["scale_raw"]) + 1e-3
        return robust.adaptive_robust_nll(p - t, alpha=alpha, scale=scale)

    return {
        "MSE": (lambda e, p, t: jaxloss.squared_error(p, t), {}),
        "MAE": (lambda e, p, t: jaxloss.absolute_error(p, t), {}),
        "Huber": (lambda e, p, t: jaxloss.huber_loss(p, t, delta=args.delta), {}),
        "log-cosh": (lambda e, p, t: jaxloss.log_cosh(p, t), {}),
        f"Barron a={args.alpha:g}": (
            lambda e, p, t: robust.general_robust_loss(p - t, alpha=args.alpha, scale=args.scale), {}),
        # start at alpha = 1 (pseudo-Huber), scale = 1
        "adaptive Barron": (adaptive, {"alpha_logit": jnp.asarray(np.log(1 / 3)),
                                        "scale_raw": jnp.asarray(np.log(np.e - 1))}),
    }


def learned_alpha_scale(extra):
    return float(4.0 * jax.nn.sigmoid(extra["alpha_logit"])), float(jax.nn.softplus(extra["scale_raw"]) + 1e-3)


def fit(apply, params, extra, loss, x, y, steps, lr, l2, bar):
    opt = optax.adam(lr)
    state = opt.init((params, extra))

    def objective(both):
        model, ex = both
        penalty = sum(jnp.sum(jnp.square(w)) for k, w in model.items() if k.startswith("w"))
        return loss(ex, apply(model, x), y) + l2 / len(y) * penalty

    @jax.jit
    def run(both, state):
        def step(carry, _):
            both, state = carry
            value, grads = jax.value_and_grad(objective)(both)
            updates, state = opt.update(grads, state, both)
            return (optax.apply_updates(both, updates), state), value
        (both, state), values = jax.lax.scan(step, (both, state), None, length=100)
        return both, state, values[-1]

    both = (params, extra)
    for _ in range(steps // 100):
        both, state, value = run(both, state)
        bar.update(100)
    bar.set_postfix(loss=f"{float(value):.3f}")
    return both


# ------------------------------------------------------------------- figure
def plot(path, args, data, results, fits):
    x_train, y_train, corrupted, x_test, y_test, center, spread = data
    fig, axes = plt.subplots(1, 4, figsize=(22, 5))
    ax = axes[0]
    ax.scatter(x_train[~corrupted, BMI], y_train[~corrupted] * spread + center, s=8, c="0.6", label="train")
    ax.scatter(x_train[corrupted, BMI], y_train[corrupted] * spread + center, s=10, c="tab:red", marker="x",
               label="corrupted train")
    grid = np.linspace(x_train[:, BMI].min(), x_train[:, BMI].max(), 50).astype(np.float32)
    grid_x = np.zeros((50, 10), np.float32)
    grid_x[:, BMI] = grid
    for ax, model, apply in ((axes[0], "line", apply_line), (axes[1], "mlp", apply_mlp)):
        if ax is axes[1]:
            ax.scatter(x_test[:, BMI], y_test, s=8, c="0.6", label="clean test")
        for name, (params, _) in fits[model].items():
            ax.plot(grid, np.asarray(apply(params, grid_x)) * spread + center,
                    label=f"{name} (test MAE {results[model][name][0]:.1f})")
        ax.set(xlabel="body-mass index (standardised)", ylabel="disease progression", title=f"{model} fits")
        ax.legend(fontsize=7)

    @jax.jit
    def rho_and_influence(r, alpha):  # alpha traced: one compilation serves every alpha, -inf included
        def rho(v):
            return robust.general_robust_loss(v, alpha=alpha, scale=1.0, reduction="sum")

        return robust.general_robust_loss(r, alpha=alpha, scale=1.0, reduction="none"), jax.vmap(jax.grad(rho))(r)

    r = jnp.linspace(-6.0, 6.0, 401)
    for alpha in (-np.inf, -2.0, 0.0, 1.0, 2.0):
        values, influence = rho_and_influence(r, alpha)
        axes[2].plot(r, values, label=f"α={alpha:g}")
        axes[3].plot(r, influence, label=f"α={alpha:g}")
    axes[2].set(xlabel="residual x (c = 1)", ylabel="ρ(x, α, 1)", title="Barron's loss", ylim=(0, 5))
    axes[3].set(xlabel="residual x (c = 1)", ylabel="∂ρ/∂x", title="its derivative (influence)")
    axes[2].legend(fontsize=8)
    axes[3].legend(fontsize=8)
    fig.suptitle(f"diabetes, {args.outliers:.0%} of training targets corrupted")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    data = load(args.outliers, args.seed)
    x_train, y_train, corrupted, x_test, y_test, center, spread = data
    print(f"diabetes: {len(y_train)} training targets ({corrupted.sum()} corrupted), {len(y_test)} clean test targets")
    losses = make_losses(args)
    models = {"line": (init_line, apply_line), "mlp": (lambda k: init_mlp(k, args.hidden), apply_mlp)}
    results, fits = {}, {}
    # disable=None: no progress bar when the output is redirected to a file or a pipe.
    bar = tqdm(total=len(models) * len(losses) * (args.steps // 100) * 100, desc="training", unit="step",
               disable=None)
    for model_name, (init, apply) in models.items():
        results[model_name], fits[model_name] = {}, {}
        for loss_name, (loss, extra) in losses.items():
            params = init(jax.random.key(args.seed))
            bar.set_description(f"{model_name} / {loss_name}")
            line = model_name == "line"
            params, extra_fit = fit(apply, params, extra, loss, jnp.asarray(x_train), jnp.asarray(y_train),
                                    args.steps, args.lr if line else 0.3 * args.lr, 0.0 if line else args.l2, bar)
            pred = np.asarray(apply(params, jnp.asarray(x_test))) * spread + center
            results[model_name][loss_name] = (float(np.mean(np.abs(pred - y_test))),
                                              float(np.sqrt(np.mean((pred - y_test) ** 2))))
            fits[model_name][loss_name] = (params, extra_fit)
    bar.close()

    print(f"\nerror on clean held-out targets (disease progression units; test std {y_test.std():.1f})")
    print(f"{'loss':<18}" + "".join(f"{m + ' MAE':>11}{m + ' RMSE':>11}" for m in models))
    for loss_name in losses:
        row = "".join(f"{results[m][loss_name][0]:>11.2f}{results[m][loss_name][1]:>11.2f}" for m in models)
        print(f"{loss_name:<18}{row}")
    for model_name in models:
        alpha, scale = learned_alpha_scale(fits[model_name]["adaptive Barron"][1])
        print(f"adaptive Barron ({model_name}): learned alpha = {alpha:.3f}, scale = {scale:.3f} target stds "
              f"(= {scale * spread:.1f} units)")
    plot(args.output, args, data, results, fits)
    print(f"figure: {shown(args.output)}  ({time.time() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()

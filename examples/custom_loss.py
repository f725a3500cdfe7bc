"""Write your own loss with ``make_loss``, check it with ``check_loss``, train with ``combine``.

    python examples/custom_loss.py
    python examples/custom_loss.py --smoke      # 20 fitting steps, for CI

1. ``cauchy_loss`` is written as a plain elementwise function and turned into
   a jaxloss loss (reduction/weights/where, shape and dtype checks, dtype
   policy) by ``jaxloss.make_loss``.
2. ``jaxloss.testing.check_loss`` runs the whole contract on it: jit, vmap,
   float64 finite-difference gradients, edge cases, masking, dtypes, shapes.
3. A deliberately broken variant (``sqrt(|r|)``, whose gradient is infinite
   at zero residual) is caught, in plain words.
4. A linear model is fitted to data with outliers through
   ``jaxloss.combine(cauchy=..., mse=...)``, logging both parts, and the fit
   is drawn next to plain least squares (``outputs/custom_loss.png``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402
from jaxloss.testing import check_loss  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@jaxloss.make_loss
def cauchy_loss(predictions, targets, *, scale=1.0):
    """Cauchy (Lorentzian) loss ``log(1 + (r / scale)^2)``: bounded influence of outliers."""
    return jnp.log1p(jnp.square((predictions - targets) / scale))


@jaxloss.make_loss
def broken_sqrt_loss(predictions, targets):
    """sqrt(|r|): its derivative 1 / (2 sqrt|r|) is infinite at zero residual."""
    return jnp.sqrt(jnp.abs(predictions - targets))


def parse_args(argv=()):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="Adam steps of the fit")
    parser.add_argument("--output", default="outputs/custom_loss.png")
    parser.add_argument("--smoke", action="store_true",
                        help="20 fitting steps: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 20
    return args


def main(argv=()):
    """Runs the four parts; ``argv`` are command-line options (none by default, also when imported)."""
    args = parse_args(argv)
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))

    print("1. check_loss on cauchy_loss:")
    print(check_loss(cauchy_loss, p, t, scale=0.5))

    print("\n2. check_loss on a broken loss (sqrt of |residual|):")
    report = check_loss(broken_sqrt_loss, p, t, raise_on_failure=False)
    print(report)
    assert not report.ok

    print("\n3. training y = 2x - 1 with 20% gross outliers through combine(cauchy, mse):")
    x = rng.uniform(-1, 1, size=(256,)).astype(np.float32)
    y = (2.0 * x - 1.0 + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
    outliers = rng.random(x.shape) < 0.2
    y[outliers] += rng.normal(0.0, 10.0, size=outliers.sum()).astype(np.float32)

    objective = jaxloss.combine(cauchy=(cauchy_loss, 1.0), mse=(jaxloss.squared_error, 0.001))
    params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state):
        def loss_fn(params):
            return objective(params["w"] * x + params["b"], y)

        (total, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, total, parts

    bar = tqdm(range(args.steps), desc="fit", disable=None)  # no bar when output is redirected
    for _ in bar:
        params, opt_state, total, parts = step(params, opt_state)
        bar.set_postfix(total=f"{float(total):.3f}", cauchy=f"{float(parts['cauchy']):.3f}",
                        mse=f"{float(parts['mse']):.2f}")
    w, b = float(params["w"]), float(params["b"])
    print(f"fitted w = {w:.3f} (true 2), b = {b:.3f} (true -1)")
    least_squares = np.polyfit(x, y, 1)
    print(f"plain least squares on the same data: w = {least_squares[0]:.3f}, b = {least_squares[1]:.3f}")

    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.scatter(x[~outliers], y[~outliers], s=8, c="0.5", label="data")
    ax.scatter(x[outliers], y[outliers], s=12, c="tab:red", marker="x", label="gross outliers (20%)")
    grid = np.linspace(-1.0, 1.0, 2)
    ax.plot(grid, 2.0 * grid - 1.0, "k--", lw=1, label="true line 2x - 1")
    ax.plot(grid, w * grid + b, lw=2, label=f"combine(cauchy, mse): {w:.2f}x {b:+.2f}")
    ax.plot(grid, np.polyval(least_squares, grid), lw=2, label=f"least squares: {least_squares[0]:.2f}x "
            f"{least_squares[1]:+.2f}")
    ax.set(xlabel="x", ylabel="y", ylim=(-8, 8), title="a loss written with make_loss, fitted through combine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    print(f"figure: {shown(output)}")
    return {"w": w, "b": b, "least_squares": tuple(float(v) for v in least_squares)}


if __name__ == "__main__":
    main(sys.argv[1:])

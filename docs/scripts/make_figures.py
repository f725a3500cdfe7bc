"""Draws the docs' figures from jaxloss's own functions (values by the losses, slopes by ``jax.grad``).

Run by the MkDocs hook (``docs/scripts/hooks.py``) before every build whose
figures are missing or older than the library, or by hand::

    python docs/scripts/make_figures.py [OUT_DIR]        # default docs/figures

Writes the PNGs named in ``FIGURES``. Needs matplotlib (the ``examples`` extra).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

FIGURES = [
    "regression_losses.png",
    "robust_losses.png",
    "focal_vs_cross_entropy.png",
    "dice_vs_cross_entropy.png",
    "barron_family.png",
]


def _value_and_slope(loss, x, **kwargs):
    """Unreduced values of ``loss(x)`` and d loss / d x at every point, by ``vmap(grad)``."""
    scalar = lambda xi: loss(xi, **kwargs)  # noqa: E731 - one point in, one value out
    return np.asarray(jax.vmap(scalar)(x)), np.asarray(jax.vmap(jax.grad(scalar))(x))


def _alpha_sweep(fn, x, alphas):
    """``fn(x, alpha=a, scale=1)`` and its x-derivative for each ``a``, compiled once (alpha traced)."""
    scalar = lambda xi, a: fn(jnp.reshape(xi, (1,)), alpha=a, scale=1.0, reduction="sum")  # noqa: E731
    sweep = jax.jit(jax.vmap(jax.value_and_grad(scalar), in_axes=(0, None)))
    return [(f"alpha={a}", tuple(np.asarray(v) for v in sweep(x, jnp.float32(a)))) for a in alphas]


def _pair(fn, target, **kw):
    """An elementwise ``fn(predictions, targets)`` as a function of the residual ``prediction - target``."""
    return lambda r: fn(jnp.reshape(target + r, (1,)), jnp.full((1,), target), reduction="sum", **kw)


def _plot_pairs(plt, out, panels, title, xlabel):
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for row, (name, x, curves) in zip(axes, panels):
        for label, (value, slope) in curves:
            row[0].plot(x, value, label=label)
            row[1].plot(x, slope, label=label)
        row[0].set_title(f"{name}: loss", fontsize=10)
        row[1].set_title(f"{name}: derivative", fontsize=10)
        for ax in row:
            ax.axhline(0.0, color="0.7", lw=0.6)
            ax.axvline(0.0, color="0.7", lw=0.6)
            ax.set_xlabel(xlabel, fontsize=9)
            if len(curves) > 1:
                ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.6 * len(panels))))
    fig.savefig(out, dpi=80)
    plt.close(fig)


def regression(plt, out):
    import jaxloss

    r = jnp.linspace(-3.0, 3.0, 301)
    rp = jnp.linspace(-0.95, 3.0, 301)  # residuals keeping positive predictions for target 1
    one = lambda fn, target=0.0, **kw: _value_and_slope(_pair(fn, target, **kw), r)  # noqa: E731
    panels = [
        ("squared_error / l2_loss", r, [("squared_error", one(jaxloss.squared_error)),
                                        ("l2_loss", one(jaxloss.l2_loss))]),
        ("absolute_error", r, [("absolute_error", one(jaxloss.absolute_error))]),
        ("huber_loss", r, [(f"delta={d}", one(jaxloss.huber_loss, delta=d)) for d in (0.5, 1.0, 2.0)]),
        ("smooth_l1_loss", r, [(f"beta={b}", one(jaxloss.smooth_l1_loss, beta=b)) for b in (0.5, 1.0, 2.0)]),
        ("log_cosh", r, [("log_cosh", one(jaxloss.log_cosh))]),
        ("quantile_loss", r, [(f"quantile={q}", one(jaxloss.quantile_loss, quantile=q)) for q in (0.1, 0.5, 0.9)]),
        ("absolute_percentage_error (target 1)", rp,
         [("target 1", _value_and_slope(_pair(jaxloss.absolute_percentage_error, 1.0), rp))]),
        ("squared_log_error (target 1)", rp,
         [("target 1", _value_and_slope(_pair(jaxloss.squared_log_error, 1.0), rp))]),
        ("poisson_loss (target 1)", rp,
         [("target 1", _value_and_slope(_pair(jaxloss.poisson_loss, 1.0), rp))]),
        ("poisson_nll_loss (log rate, target 1)", r,
         [("target 1", _value_and_slope(_pair(jaxloss.poisson_nll_loss, 1.0), r))]),
    ]
    gauss = []
    for var in (0.25, 1.0, 4.0):
        fn = lambda res, v=var: jaxloss.gaussian_nll_loss(  # noqa: E731
            jnp.reshape(res, (1,)), jnp.zeros((1,)), jnp.full((1,), v), reduction="sum")
        gauss.append((f"variance={var}", _value_and_slope(fn, r)))
    panels.append(("gaussian_nll_loss", r, gauss))
    _plot_pairs(plt, out, panels, "jaxloss.regression: value and derivative against the residual",
                "residual (prediction - target)")


def robust(plt, out):
    import jaxloss

    r = jnp.linspace(-4.0, 4.0, 401)
    alphas = (2.0, 1.0, 0.0, -2.0, -np.inf)

    panels = [("general_robust_loss (scale 1)", r, _alpha_sweep(jaxloss.general_robust_loss, r, alphas)),
              # the likelihood is normalisable for alpha in [0, 4] only
              ("adaptive_robust_nll (scale 1)", r,
               _alpha_sweep(jaxloss.adaptive_robust_nll, r, (0.0, 1.0, 2.0, 3.0, 4.0)))]
    s = jnp.linspace(-3.0, 3.0, 301)
    uw = [(f"task loss {l}", _value_and_slope(
        lambda v, l=l: jaxloss.uncertainty_weighted_sum(jnp.array([l]), jnp.reshape(v, (1,))), s))
        for l in (0.5, 1.0, 2.0)]
    _plot_pairs(plt, out, panels, "jaxloss.robust: value and derivative against the residual",
                "residual")
    # uncertainty_weighted_sum is not a function of a residual: its own figure, against the log variance.
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    for label, (value, slope) in uw:
        axes[0].plot(s, value, label=label)
        axes[1].plot(s, slope, label=label)
    axes[0].set_title("uncertainty_weighted_sum: value", fontsize=10)
    axes[1].set_title("derivative w.r.t. the log variance", fontsize=10)
    for ax in axes:
        ax.set_xlabel("log variance s", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(pathlib.Path(out).with_name("uncertainty_weighted_sum.png"), dpi=80)
    plt.close(fig)


def focal(plt, out):
    import jaxloss

    p = jnp.linspace(0.01, 0.99, 197)
    logits = jnp.log(p) - jnp.log1p(-p)  # the logit whose sigmoid is the true-class probability
    ones = jnp.ones_like(p)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    ce = jaxloss.sigmoid_binary_cross_entropy(logits, ones, reduction="none")
    axes[0].plot(p, ce, "k", lw=2, label="cross-entropy")
    axes[1].plot(p, ce / ce, "k", lw=2, label="cross-entropy")
    for gamma in (0.5, 1.0, 2.0, 5.0):
        fl = jaxloss.sigmoid_focal_loss(logits, ones, alpha=None, gamma=gamma, reduction="none")
        axes[0].plot(p, fl, label=f"focal, gamma={gamma}")
        axes[1].plot(p, fl / ce, label=f"focal, gamma={gamma}")
    axes[0].set_title("loss against the true-class probability", fontsize=10)
    axes[1].set_title("focal / cross-entropy: the down-weighting", fontsize=10)
    for ax in axes:
        ax.set_xlabel("true-class probability p_t", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("sigmoid_focal_loss (alpha=None) vs sigmoid_binary_cross_entropy")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def dice(plt, out):
    import jaxloss

    n = 1000  # pixels of one image; one image per foreground fraction, as a batch
    fractions = np.geomspace(0.002, 0.5, 60)
    fg = np.round(fractions * n).astype(int)
    pixel = np.arange(n)[None, :]
    labels = jnp.asarray(pixel < fg[:, None], jnp.int32)                      # [B, n]
    # A confident prediction (0.9 / 0.1) that misses every foreground pixel ...
    miss = jnp.full(labels.shape, 0.1)
    # ... and one that finds half of them.
    half = jnp.where(pixel < (fg // 2)[:, None], 0.9, 0.1)
    rows = {}
    for key, p_fg in (("all background", miss), ("half the foreground found", half)):
        probs = jnp.stack([1.0 - p_fg, p_fg], axis=-1)                            # [B, n, 2]
        d = jaxloss.dice_loss(probs, labels, activation=None, include_background=False, reduction="none")
        ce = jaxloss.nll_loss(jnp.log(probs), labels, reduction="none").mean(axis=-1)
        rows[key] = np.stack([np.asarray(d), np.asarray(ce)], axis=-1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, (key, vals) in zip(axes, rows.items()):
        ax.semilogx(fractions, vals[:, 0], label="dice_loss (foreground class)")
        ax.semilogx(fractions, vals[:, 1], label="cross-entropy (mean over pixels)")
        ax.set_title(f"prediction: {key}", fontsize=10)
        ax.set_xlabel("foreground fraction of the image", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Dice vs cross-entropy: the same mistake, scored against the object's size")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def barron(plt, out):
    import jaxloss

    x = jnp.linspace(-6.0, 6.0, 481)
    alphas = (-np.inf, -8.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0)
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for k, (a, (_, (value, slope))) in enumerate(zip(alphas, _alpha_sweep(jaxloss.general_robust_loss, x, alphas))):
        colour = cmap(k / (len(alphas) - 1))
        axes[0].plot(x, value, color=colour, label=f"alpha={a}")
        axes[1].plot(x, slope, color=colour, label=f"alpha={a}")
    axes[0].set_ylim(0, 4)
    axes[0].set_title("rho(x, alpha, c=1)", fontsize=10)
    axes[1].set_title("d rho / d x", fontsize=10)
    for ax in axes:
        ax.set_xlabel("x", fontsize=9)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Barron's general robust loss over alpha (general_robust_loss)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(out_dir: str | pathlib.Path = pathlib.Path(__file__).resolve().parents[1] / "figures") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for draw, name in zip((regression, robust, focal, dice, barron), FIGURES):
        draw(plt, out_dir / name)


FIGURES.append("uncertainty_weighted_sum.png")  # drawn by robust()

if __name__ == "__main__":
    main(*sys.argv[1:2])

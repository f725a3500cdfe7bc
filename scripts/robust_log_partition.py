"""Regenerates and checks ``jaxloss/data/robust_log_partition.npz``.

The table holds the log partition function of Barron's distribution,

    log Z(alpha) = log \\int_{-inf}^{inf} exp(-rho(x, alpha, 1)) dx,

on a uniform grid over alpha in [0, 4], computed with ``scipy.integrate.quad``
in float64. ``jaxloss.robust.adaptive_robust_nll`` interpolates it with a cubic
Hermite spline.

log Z has a weak singularity at alpha = 2: d rho / d alpha diverges there like
-(x^2 / 4) log|alpha - 2| (the |alpha - 2| in Barron's formula), so

    log Z(alpha) = R(alpha) + S(alpha),   S(alpha) = (alpha - 2) log|alpha - 2| / 4,

with R continuously differentiable (E[x^2] = 1 under the Gaussian at alpha = 2
gives the coefficient 1/4). The table stores R and its slope dR/dalpha (central
finite differences of quadratures, one-sided at alpha = 0 where Z(alpha < 0)
is infinite); the library adds S back analytically.

Usage::

    python scripts/robust_log_partition.py            # regenerate the table
    python scripts/robust_log_partition.py --check    # compare the shipped table with quad

Run from the repository root. ``--check`` exits non-zero if the interpolated
table is off by more than 1e-6 (relative) anywhere on a fine grid that includes
every midpoint between knots and points within 1e-3 of alpha = 2.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from scipy import integrate

TABLE = pathlib.Path(__file__).resolve().parent.parent / "jaxloss" / "data" / "robust_log_partition.npz"
ALPHA_MIN, ALPHA_MAX = 0.0, 4.0
NUM_INTERVALS = 1024         # knot spacing 1/256
FD_STEP = 1e-5               # finite-difference step for the slopes


def rho(x: np.ndarray, alpha: float) -> np.ndarray:
    """Barron's rho(x, alpha, c=1) in float64, straight from the paper's formula and limits."""
    z = np.square(np.asarray(x, np.float64))
    if alpha == 2.0:
        return 0.5 * z
    if alpha == 0.0:
        return np.log1p(0.5 * z)
    b = abs(alpha - 2.0)
    # (b / alpha) * ((z / b + 1) ** (alpha / 2) - 1), with expm1/log1p.
    return (b / alpha) * np.expm1(0.5 * alpha * np.log1p(z / b))


def log_partition(alpha: float) -> float:
    """log Z(alpha) by adaptive quadrature (the integrand is even: twice the half line)."""
    f = lambda x: np.exp(-rho(x, alpha))  # noqa: E731
    head, _ = integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-13, limit=500)
    tail, _ = integrate.quad(f, 1.0, np.inf, epsabs=0.0, epsrel=1e-13, limit=500)
    return float(np.log(2.0 * (head + tail)))


def singular_part(alpha: np.ndarray | float) -> np.ndarray:
    """S(alpha) = (alpha - 2) log|alpha - 2| / 4, with S(2) = 0."""
    d = np.asarray(alpha, np.float64) - 2.0
    safe = np.where(d == 0.0, 1.0, np.abs(d))
    return 0.25 * d * np.log(safe)


def smooth_part(alpha: float) -> float:
    return log_partition(alpha) - float(singular_part(alpha))


def build() -> dict[str, np.ndarray]:
    alphas = np.linspace(ALPHA_MIN, ALPHA_MAX, NUM_INTERVALS + 1)
    values = np.array([smooth_part(a) for a in alphas])
    slopes = np.empty_like(values)
    h = FD_STEP
    for i, a in enumerate(alphas):
        if a - h < ALPHA_MIN:  # second-order one-sided difference: Z is infinite for alpha < 0
            slopes[i] = (-3.0 * values[i] + 4.0 * smooth_part(a + h) - smooth_part(a + 2 * h)) / (2 * h)
        else:
            slopes[i] = (smooth_part(a + h) - smooth_part(a - h)) / (2 * h)
    return {"alpha_min": np.float64(ALPHA_MIN), "alpha_max": np.float64(ALPHA_MAX),
            "values": values, "slopes": slopes}


def interpolate(table: dict[str, np.ndarray], alpha: np.ndarray) -> np.ndarray:
    """NumPy cubic Hermite interpolation of the table (same scheme as the library)."""
    values, slopes = np.asarray(table["values"]), np.asarray(table["slopes"])
    lo, hi = float(table["alpha_min"]), float(table["alpha_max"])
    n = len(values) - 1
    step = (hi - lo) / n
    u = (np.clip(alpha, lo, hi) - lo) / step
    i = np.clip(np.floor(u).astype(int), 0, n - 1)
    t = u - i
    h00 = (1 + 2 * t) * (1 - t) ** 2
    h10 = t * (1 - t) ** 2
    h01 = t * t * (3 - 2 * t)
    h11 = t * t * (t - 1)
    smooth = h00 * values[i] + h10 * step * slopes[i] + h01 * values[i + 1] + h11 * step * slopes[i + 1]
    return smooth + singular_part(alpha)


def check(table: dict[str, np.ndarray], tolerance: float = 1e-6) -> float:
    n = len(table["values"]) - 1
    knots = np.linspace(ALPHA_MIN, ALPHA_MAX, n + 1)
    mids = 0.5 * (knots[1:] + knots[:-1])
    near_two = 2.0 + np.array([-1e-3, -1e-4, -1e-6, 1e-6, 1e-4, 1e-3])
    rng = np.random.default_rng(0)
    alphas = np.concatenate([knots[::8], mids, near_two, rng.uniform(ALPHA_MIN, ALPHA_MAX, 64)])
    exact = np.array([log_partition(a) for a in alphas])
    approx = interpolate(table, alphas)
    rel = np.abs(approx - exact) / np.abs(exact)
    worst = int(np.argmax(rel))
    print(f"checked {len(alphas)} alphas: max relative error {rel[worst]:.3g} at alpha={alphas[worst]:.6g} "
          f"(table {approx[worst]:.12g}, quad {exact[worst]:.12g})")
    closed = {0.0: np.log(np.pi * np.sqrt(2.0)), 2.0: 0.5 * np.log(2.0 * np.pi)}
    for a, value in closed.items():
        print(f"alpha={a}: table {interpolate(table, np.array([a]))[0]:.12g}, closed form {value:.12g}")
    return float(rel[worst])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="check the shipped table instead of rebuilding it")
    args = parser.parse_args(argv)
    if args.check:
        with np.load(TABLE) as data:
            table = {k: data[k] for k in data.files}
        return 0 if check(table) <= 1e-6 else 1
    table = build()
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(TABLE, **table)
    print(f"wrote {TABLE} ({len(table['values'])} knots)")
    return 0 if check(table) <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())

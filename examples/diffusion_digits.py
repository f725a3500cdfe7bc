"""A small diffusion model on scikit-learn's 8x8 digits, trained with ``jaxloss.diffusion.diffusion_loss``.

A Flax (NNX) MLP denoiser on the 64 pixels (scaled to ``[-1, 1]``) and a
sinusoidal embedding of the diffusion time is trained on the variance-
preserving cosine schedule ``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)``
with ``x_t = alpha x_0 + sigma noise``. ``--prediction-type`` picks what the
network outputs (``epsilon``: the noise, ``sample``: the clean image,
``v_prediction``: ``alpha noise - sigma x_0``) and ``--weighting`` how the
noise levels are weighted (``uniform``, ``min_snr`` of Hang et al. 2023 or
``edm`` of Karras et al. 2022). Samples are drawn with the deterministic DDIM
sampler from an exponential moving average of the weights and saved as a
grid. To judge them, a small classifier trained on the real digits
(scikit-learn's ``MLPClassifier``) labels every sample; the script prints how
many it labels as a digit with confidence ``>= --confidence``, against the
same count on held-out real digits, on pure noise images and on real digits
with their pixels shuffled. A plain digits classifier labels most noise
images confidently (an MLP is overconfident away from its data), so the judge
has an eleventh class, "not a digit", fitted on Gaussian and uniform noise
images; the shuffled digits, which it never saw, check that it rejects
images without a digit's structure rather than noise only::

    python examples/diffusion_digits.py                                    # epsilon, uniform
    python examples/diffusion_digits.py --prediction-type v_prediction --weighting min_snr
    python examples/diffusion_digits.py --prediction-type sample --weighting edm
    python examples/diffusion_digits.py --smoke                            # a few seconds, for CI
"""

from __future__ import annotations

import sys
import argparse
import os
import time
import warnings

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
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss.diffusion  # noqa: E402

PIXELS = 64
T_MIN, T_MAX = 1e-3, 1.0 - 1e-3  # keeps alpha and sigma away from 0


def schedule(t):
    """Variance-preserving cosine schedule: alpha**2 + sigma**2 = 1."""
    return jnp.cos(0.5 * jnp.pi * t), jnp.sin(0.5 * jnp.pi * t)


def time_embedding(t, dim: int):
    frequencies = jnp.exp(jnp.linspace(0.0, jnp.log(1000.0), dim // 2))
    angles = t[:, None] * frequencies[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class Denoiser(nnx.Module):
    def __init__(self, width: int, depth: int, time_dim: int, rngs: nnx.Rngs):
        self.time_dim = time_dim
        self.inp = nnx.Linear(PIXELS + time_dim, width, rngs=rngs)
        self.blocks = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])
        self.norms = nnx.List([nnx.LayerNorm(width, rngs=rngs) for _ in range(depth)])
        self.time = nnx.List([nnx.Linear(time_dim, width, rngs=rngs) for _ in range(depth)])
        self.out = nnx.Linear(width, PIXELS, rngs=rngs, kernel_init=nnx.initializers.zeros_init())

    def __call__(self, x_t, t):
        emb = time_embedding(t, self.time_dim)
        h = self.inp(jnp.concatenate([x_t, emb], axis=-1))
        for block, norm, time in zip(self.blocks, self.norms, self.time):
            h = h + block(nnx.silu(norm(h) + time(emb)))  # residual blocks conditioned on t
        return self.out(nnx.silu(h))


def to_estimates(output, x_t, alpha, sigma, prediction_type: str):
    """The network output as (clean image, noise) estimates, whatever it predicts."""
    a, s = alpha[:, None], sigma[:, None]
    if prediction_type == "epsilon":
        return (x_t - s * output) / a, output
    if prediction_type == "sample":
        return output, (x_t - a * output) / s
    return a * x_t - s * output, s * x_t + a * output  # v = alpha eps - sigma x0, alpha**2 + sigma**2 = 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prediction-type", default="epsilon", choices=("epsilon", "sample", "v_prediction"))
    parser.add_argument("--weighting", default="uniform", choices=("uniform", "min_snr", "edm"))
    parser.add_argument("--snr-gamma", type=float, default=5.0, help="gamma of min_snr")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.999, help="decay of the weights' moving average used to sample")
    parser.add_argument("--sampling-steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything, for CI")
    parser.add_argument("--output", default="outputs/diffusion_digits.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.sampling_steps, args.samples = 50, 10, 100
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.25,
                                                        random_state=args.seed, stratify=digits.target)
    data = jnp.asarray(2.0 * x_train - 1.0)  # [-1, 1]
    print(f"{len(x_train)} training images; prediction_type={args.prediction_type}, weighting={args.weighting}")

    model = Denoiser(args.width, args.depth, 32, nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.adam(optax.cosine_decay_schedule(args.learning_rate, args.steps, alpha=0.05))
    opt_state = optimizer.init(params)
    ema = params

    def apply(p, x_t, t):
        return nnx.merge(graphdef, p)(x_t, t)

    @jax.jit
    def train_step(params, opt_state, ema, key):
        k_idx, k_t, k_noise = jax.random.split(key, 3)
        samples = data[jax.random.randint(k_idx, (args.batch_size,), 0, data.shape[0])]
        t = jax.random.uniform(k_t, (args.batch_size,), minval=T_MIN, maxval=T_MAX)
        alphas, sigmas = schedule(t)
        noise = jax.random.normal(k_noise, samples.shape)

        def objective(p):
            x_t = alphas[:, None] * samples + sigmas[:, None] * noise
            return jaxloss.diffusion.diffusion_loss(
                apply(p, x_t, t), samples, noise, alphas, sigmas, prediction_type=args.prediction_type,
                weighting=args.weighting, snr_gamma=args.snr_gamma)

        loss, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: args.ema * e + (1.0 - args.ema) * p, ema, params)
        return params, opt_state, ema, loss

    @jax.jit
    def sample(p, key):
        """Deterministic DDIM from t = T_MAX down to 0 on an even grid of times."""
        times = jnp.linspace(T_MAX, 0.0, args.sampling_steps + 1)

        def body(x_t, ts):
            t, t_next = ts
            alpha, sigma = schedule(jnp.full((x_t.shape[0],), t))
            x0, eps = to_estimates(apply(p, x_t, jnp.full((x_t.shape[0],), t)), x_t, alpha, sigma,
                                   args.prediction_type)
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = (x_t - alpha[:, None] * x0) / sigma[:, None]  # consistent with the clipped x0
            alpha_next, sigma_next = schedule(t_next)
            return alpha_next * x0 + sigma_next * eps, None

        x_t = jax.random.normal(key, (args.samples, PIXELS))
        x_0, _ = jax.lax.scan(body, x_t, (times[:-1], times[1:]))
        return jnp.clip(x_0, -1.0, 1.0)

    key = jax.random.key(args.seed)
    losses = []
    bar = tqdm(range(args.steps), desc="diffusion", mininterval=0.5, disable=not sys.stderr.isatty())
    for i in bar:
        key, sub = jax.random.split(key)
        params, opt_state, ema, loss = train_step(params, opt_state, ema, sub)
        losses.append(float(loss))
        if i % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
    print(f"final training loss (mean of the last 200 steps): {np.mean(losses[-200:]):.4f}")

    key, k_sample, k_noise = jax.random.split(key, 3)
    samples = (np.asarray(sample(ema if args.steps >= 1000 else params, k_sample)) + 1.0) / 2.0  # [0, 1]
    noise_images = np.clip(np.asarray(jax.random.normal(k_noise, (args.samples, PIXELS))) * 0.5 + 0.5, 0.0, 1.0)

    # The judge: an MLP classifier on the real digits (same [0, 1] pixel scale) with an eleventh
    # class, "not a digit", fitted on noise images (without it, most noise is labelled confidently).
    rng = np.random.default_rng(args.seed)

    def noise(n):
        half = n // 2
        return np.concatenate([np.clip(rng.normal(0.5, 0.5, (half, PIXELS)), 0.0, 1.0),
                               rng.uniform(0.0, 1.0, (n - half, PIXELS))]).astype(np.float32)

    outliers = noise(len(x_train))
    judge = MLPClassifier(hidden_layer_sizes=(128,), max_iter=5 if args.smoke else 400, random_state=args.seed)
    with warnings.catch_warnings():
        if args.smoke:  # 5 iterations cannot converge, and the smoke run does not need them to
            warnings.simplefilter("ignore", ConvergenceWarning)
        judge.fit(np.concatenate([x_train, outliers]), np.concatenate([y_train, np.full(len(outliers), 10)]))
    shuffled = np.stack([rng.permutation(image) for image in x_test])
    judged = {}
    for name, images in (("diffusion samples", samples), ("held-out real digits", x_test),
                         ("pure noise", noise(args.samples)), ("shuffled real digits", shuffled)):
        probabilities = judge.predict_proba(images)[:, :10]  # the digit classes
        confident = probabilities.max(-1) >= args.confidence
        classes = np.bincount(probabilities.argmax(-1)[confident], minlength=10)
        judged[name] = float(confident.mean())
        print(f"{name:22s} {confident.mean():6.1%} labelled a digit with confidence >= {args.confidence} "
              f"(of {len(images)}); confident labels per class {classes.tolist()}")
    print(f"(the judge's accuracy on held-out real digits: {np.mean(judge.predict(x_test) == y_test):.4f})")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    cols = 16
    rows = max(1, min(8, len(samples) // cols))
    montage = np.ones((rows * 9 - 1, cols * 9 - 1))  # 8x8 tiles with one-pixel white gaps
    labels = judge.predict_proba(samples[: rows * cols])[:, :10]
    fig, (ax_grid, ax_loss) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 1]})
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        montage[i * 9:i * 9 + 8, j * 9:j * 9 + 8] = 1.0 - samples[k].reshape(8, 8)
        if labels[k].max() >= args.confidence:
            ax_grid.text(j * 9 + 7.4, i * 9 + 0.2, str(labels[k].argmax()), color="tab:red", fontsize=7,
                         ha="right", va="top")
    ax_grid.imshow(montage, cmap="gray", vmin=0, vmax=1)
    ax_grid.axis("off")
    ax_grid.set_title(f"{rows * cols} DDIM samples; red digit = the judge's label when confident", fontsize=10)
    smooth = 50 if len(losses) >= 50 else 1
    ax_loss.plot(np.convolve(losses, np.ones(smooth) / smooth, mode="valid"))
    ax_loss.set(yscale="log", xlabel="step", title="training loss")
    fig.suptitle(f"DDIM samples ({args.prediction_type}, {args.weighting}); digit = judge's label when "
                 f"confident: {judged['diffusion samples']:.0%} (noise {judged['pure noise']:.0%})", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"samples written to {args.output}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return {"confident_samples": judged["diffusion samples"], "confident_real": judged["held-out real digits"],
            "confident_noise": judged["pure noise"], "confident_shuffled": judged["shuffled real digits"],
            "final_loss": float(np.mean(losses[-200:]))}


if __name__ == "__main__":
    main()

"""A variational autoencoder on scikit-learn's digits, trained with ``jaxloss.elbo_loss``.

A small Flax (NNX) VAE with a Bernoulli decoder (pixel intensities in
``[0, 1]`` as Bernoulli means, decoder outputs as logits) and a diagonal
Gaussian encoder is trained on the 8x8 digits (nothing is downloaded) with
the negative ELBO: Bernoulli reconstruction term in log space plus
``beta`` times the closed-form KL to N(0, I). Prints the held-out negative
ELBO and saves a grid of reconstructions and samples from the prior.

    python examples/vae_digits.py
    python examples/vae_digits.py --beta 4 --latent 2
    python examples/vae_digits.py --smoke        # 2 epochs, for CI
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
from flax import nnx  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

from jaxloss.generative import elbo_loss, gaussian_kl_divergence  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class VAE(nnx.Module):
    def __init__(self, hidden: int, latent: int, rngs: nnx.Rngs):
        self.enc = nnx.Linear(64, hidden, rngs=rngs)
        self.mean = nnx.Linear(hidden, latent, rngs=rngs)
        self.log_variance = nnx.Linear(hidden, latent, rngs=rngs)
        self.dec1 = nnx.Linear(latent, hidden, rngs=rngs)
        self.dec2 = nnx.Linear(hidden, 64, rngs=rngs)

    def encode(self, x):
        h = nnx.relu(self.enc(x))
        return self.mean(h), self.log_variance(h)

    def decode(self, z):
        return self.dec2(nnx.relu(self.dec1(z)))  # Bernoulli logits

    def __call__(self, x, key):
        mean, log_variance = self.encode(x)
        z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)  # reparameterisation
        return self.decode(z), mean, log_variance


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (beta-VAE)")
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/vae_digits.png")
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
    x_train, x_test = train_test_split(x, test_size=0.2, random_state=args.seed, stratify=digits.target)

    model = VAE(args.hidden, args.latent, nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, batch, key):
        def loss_fn(model):
            logits, mean, log_variance = model(batch, key)
            return elbo_loss(logits, batch, mean, log_variance, likelihood="bernoulli", beta=args.beta)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def evaluate(model, images, key):
        logits, mean, log_variance = model(images, key)
        return (elbo_loss(logits, images, mean, log_variance, beta=1.0),
                gaussian_kl_divergence(mean, log_variance))

    rng = np.random.default_rng(args.seed)
    key = jax.random.key(args.seed)
    steps = max(1, len(x_train) // args.batch_size)
    # disable=None: no progress bar when the output is redirected to a file or a pipe.
    with tqdm(range(args.epochs), desc="vae", unit="epoch", mininterval=1.0, disable=None) as bar:
        for _ in bar:
            order = rng.permutation(len(x_train))
            for i in range(steps):
                key, sub = jax.random.split(key)
                batch = x_train[order[i * args.batch_size:(i + 1) * args.batch_size]]
                loss = train_step(model, optimizer, jnp.asarray(batch), sub)
            bar.set_postfix(neg_elbo=f"{float(loss):.2f}")

    key, sub = jax.random.split(key)
    test_elbo, test_kl = evaluate(model, jnp.asarray(x_test), sub)
    print(f"held-out negative ELBO {float(test_elbo):.2f} nats per image (KL term {float(test_kl):.2f} nats)")

    # Reconstructions (posterior means decoded) and samples from the prior.
    mean, _ = model.encode(jnp.asarray(x_test[:10]))
    recon = jax.nn.sigmoid(model.decode(mean))
    key, sub = jax.random.split(key)
    samples = jax.nn.sigmoid(model.decode(jax.random.normal(sub, (20, args.latent))))
    rows = [x_test[:10], np.asarray(recon), np.asarray(samples[:10]), np.asarray(samples[10:])]
    titles = ["held-out inputs", "reconstructions", "samples from N(0, I)", "more samples"]
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, axes = plt.subplots(4, 10, figsize=(10, 4.6))
    for r, (images, title) in enumerate(zip(rows, titles)):
        for c in range(10):
            axes[r, c].imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(title, loc="left", fontsize=9)
    fig.suptitle(f"VAE trained with jaxloss.elbo_loss (beta={args.beta}, latent={args.latent}); "
                 f"test -ELBO {float(test_elbo):.1f} nats")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    plt.close(fig)
    print(f"saved {shown(args.output)} ({time.time() - start:.1f} s)")
    return float(test_elbo)


if __name__ == "__main__":
    main()

"""Self-supervised pre-training on scikit-learn's digits with ``jaxloss.self_supervised``, judged by a linear probe.

A Flax (NNX) MLP encoder is pre-trained on pairs of augmented views of the
8x8 digits (random one-pixel shifts, contrast changes, Gaussian noise and
dropped pixels; the labels are never used) with one of five objectives,
chosen with ``--loss``:

* ``simsiam``: ``simsiam_loss``, predictor on top of the projector, stop-gradient on the other view;
* ``byol``: ``byol_loss`` against an exponential moving average (EMA) of the online network;
* ``barlow_twins``: ``barlow_twins_loss`` on the cross-correlation of the two views' projections;
* ``vicreg``: ``vicreg_loss`` (invariance, variance and covariance terms);
* ``dino``: ``dino_loss`` between the student and an EMA teacher, with ``dino_center_update``.

The projector and predictor standardise their hidden units over the batch
(batch normalisation in training mode, without running statistics), as the
papers' projectors do; the encoder does not, so its features are a plain
function of one image. After pre-training, a logistic-regression probe
(scikit-learn) is fitted on the frozen encoder's features of the training
images and scored on the test images, with every training label and with
``--few-labels`` labels per class; the same probe on the same encoder at its
random initialisation is the baseline (the raw pixels' score is printed for
context)::

    python examples/ssl_digits.py                    # vicreg (the default)
    python examples/ssl_digits.py --loss byol
    python examples/ssl_digits.py --loss dino --steps 3000
    python examples/ssl_digits.py --smoke            # a few seconds, for CI
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
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss.self_supervised as ssl  # noqa: E402

LOSSES = ("simsiam", "byol", "barlow_twins", "vicreg", "dino")


def batch_standardise(h, epsilon=1e-5):
    """BatchNorm1d(affine=False) in training mode: each unit standardised over the batch."""
    mean = jnp.mean(h, axis=0, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(jnp.var(h, axis=0, keepdims=True) + epsilon)


class Network(nnx.Module):
    """Encoder (the part that is kept), projector, predictor and DINO head."""

    def __init__(self, hidden: int, features: int, projection: int, prototypes: int, rngs: nnx.Rngs):
        self.enc1 = nnx.Linear(64, hidden, rngs=rngs)
        self.enc2 = nnx.Linear(hidden, features, rngs=rngs)
        self.proj1 = nnx.Linear(features, hidden, rngs=rngs)
        self.proj2 = nnx.Linear(hidden, projection, rngs=rngs)
        self.pred1 = nnx.Linear(projection, hidden, rngs=rngs)
        self.pred2 = nnx.Linear(hidden, projection, rngs=rngs)
        self.prototypes = nnx.Linear(projection, prototypes, use_bias=False, rngs=rngs)

    def encode(self, x):
        return self.enc2(nnx.relu(self.enc1(x)))

    def project(self, x):
        return self.proj2(nnx.relu(batch_standardise(self.proj1(self.encode(x)))))

    def predict(self, z):
        return self.pred2(nnx.relu(batch_standardise(self.pred1(z))))

    def dino_logits(self, x):
        z = self.project(x)
        return self.prototypes(z / jnp.linalg.norm(z, axis=-1, keepdims=True).clip(1e-6))


def augment(key, images):
    """Random one-pixel shift, contrast, Gaussian noise and 20% dropped pixels; images [B, 64] in [0, 1]."""
    b = images.shape[0]
    k_shift, k_contrast, k_noise, k_drop = jax.random.split(key, 4)
    padded = jnp.pad(images.reshape(b, 8, 8), ((0, 0), (1, 1), (1, 1)))
    offsets = jax.random.randint(k_shift, (b, 2), 0, 3)
    shifted = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1]), (8, 8)))(padded, offsets)
    x = shifted.reshape(b, 64) * jax.random.uniform(k_contrast, (b, 1), minval=0.6, maxval=1.2)
    x = x + 0.1 * jax.random.normal(k_noise, x.shape)
    return jnp.where(jax.random.bernoulli(k_drop, 0.8, x.shape), x, 0.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="vicreg", choices=LOSSES)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--features", type=int, default=128, help="width of the encoder's output (probed)")
    parser.add_argument("--projection", type=int, default=128)
    parser.add_argument("--prototypes", type=int, default=256, help="DINO output dimension K")
    parser.add_argument("--ema", type=float, default=0.99, help="EMA decay of the BYOL target / DINO teacher")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--few-labels", type=int, default=10, help="labels per class of the few-label probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything, for CI")
    parser.add_argument("--output", default="outputs/ssl_digits.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 20
    return args


def make_objective(name: str, graphdef):
    """(params, target params, center, view1, view2) -> (loss, teacher logits or None)."""

    def objective(params, target, center, v1, v2):
        net = nnx.merge(graphdef, params)
        if name == "simsiam":
            z1, z2 = net.project(v1), net.project(v2)
            return ssl.simsiam_loss(net.predict(z1), net.predict(z2), z1, z2), center
        if name == "byol":
            teacher = nnx.merge(graphdef, target)
            p1, p2 = net.predict(net.project(v1)), net.predict(net.project(v2))
            t1, t2 = teacher.project(v1), teacher.project(v2)  # a moving average: no gradient flows into it
            return 0.5 * (ssl.byol_loss(p1, t2) + ssl.byol_loss(p2, t1)), center
        if name == "barlow_twins":
            return ssl.barlow_twins_loss(net.project(v1), net.project(v2)), center
        if name == "vicreg":
            return ssl.vicreg_loss(net.project(v1), net.project(v2)), center
        teacher = nnx.merge(graphdef, target)
        student_logits = jnp.stack([net.dino_logits(v1), net.dino_logits(v2)])  # [2 crops, B, K]
        teacher_logits = jnp.stack([teacher.dino_logits(v1), teacher.dino_logits(v2)])  # [2 views, B, K]
        loss = ssl.dino_loss(student_logits, teacher_logits, center)
        return loss, ssl.dino_center_update(center, teacher_logits)

    return objective


def probe(features_train, y_train, features_test, y_test, labels_per_class: int | None, seed: int,
          max_iter: int = 2000) -> float:
    """Test accuracy of a logistic regression on standardised frozen features."""
    if labels_per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(y_train == c))[:labels_per_class] for c in range(10)])
        features_train, y_train = features_train[keep], y_train[keep]
    mean, std = features_train.mean(0), features_train.std(0) + 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=max_iter).fit((features_train - mean) / std, y_train)
    return float(clf.score((features_test - mean) / std, y_test))


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
    data = jnp.asarray(x_train)
    print(f"{len(x_train)} unlabelled training images, {len(x_test)} test images; loss: {args.loss}")

    model = Network(args.hidden, args.features, args.projection, args.prototypes, nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    initial = params
    target = params
    center = jnp.zeros((args.prototypes,))
    optimizer = optax.adamw(optax.cosine_decay_schedule(args.learning_rate, args.steps, alpha=0.05), weight_decay=1e-4)
    opt_state = optimizer.init(params)
    objective = make_objective(args.loss, graphdef)

    @jax.jit
    def train_step(params, target, center, opt_state, key):
        k_idx, k1, k2 = jax.random.split(key, 3)
        images = data[jax.random.randint(k_idx, (args.batch_size,), 0, data.shape[0])]
        v1, v2 = augment(k1, images), augment(k2, images)
        (loss, new_center), grads = jax.value_and_grad(objective, has_aux=True)(params, target, center, v1, v2)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        target = jax.tree.map(lambda t, p: args.ema * t + (1.0 - args.ema) * p, target, params)
        # The spread of the features over the batch: near 0 when the representation has collapsed.
        spread = jnp.mean(jnp.std(nnx.merge(graphdef, params).encode(images), axis=0))
        return params, target, new_center, opt_state, loss, spread

    key = jax.random.key(args.seed)
    history = {"loss": [], "spread": []}
    bar = tqdm(range(args.steps), desc=args.loss, mininterval=0.5, disable=not sys.stderr.isatty())
    for i in bar:
        key, sub = jax.random.split(key)
        params, target, center, opt_state, loss, spread = train_step(params, target, center, opt_state, sub)
        history["loss"].append(float(loss))
        history["spread"].append(float(spread))
        if i % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(history['loss'][-50:]):.4f}", spread=f"{float(spread):.3f}")

    def features(p, images):
        return np.asarray(nnx.merge(graphdef, p).encode(jnp.asarray(images)))

    # For DINO and BYOL the averaged network is the one the papers keep (the teacher / target).
    kept = target if args.loss in ("dino", "byol") else params
    results = {}
    for name, f_train, f_test in (
            ("pre-trained encoder", features(kept, x_train), features(kept, x_test)),
            ("random encoder", features(initial, x_train), features(initial, x_test)),
            ("raw pixels", x_train, x_test)):
        max_iter = 10 if args.smoke else 2000
        results[name] = {"all": probe(f_train, y_train, f_test, y_test, None, args.seed, max_iter),
                         "few": probe(f_train, y_train, f_test, y_test, args.few_labels, args.seed, max_iter)}
    print(f"\nlinear probe test accuracy ({args.loss}, {args.steps} steps):")
    print(f"  {'':22s} {'all ' + str(len(y_train)) + ' labels':>16s} {str(args.few_labels) + ' labels per class':>20s}")
    for name, r in results.items():
        print(f"  {name:22s} {r['all']:16.4f} {r['few']:20.4f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, (ax_loss, ax_probe) = plt.subplots(1, 2, figsize=(11, 4))
    smooth = 25 if len(history["loss"]) >= 25 else 1
    ax_loss.plot(np.convolve(history["loss"], np.ones(smooth) / smooth, mode="valid"), color="tab:blue")
    ax_loss.set(xlabel="step", ylabel=f"{args.loss} loss", title="pre-training (no labels)")
    ax_spread = ax_loss.twinx()
    ax_spread.plot(history["spread"], color="tab:orange", alpha=0.6)
    ax_spread.set_ylabel("feature std over the batch (0 = collapse)", color="tab:orange")
    names = list(results)
    width = 0.38
    for j, (key_, label) in enumerate((("all", "all labels"), ("few", f"{args.few_labels} labels per class"))):
        errors = [1.0 - results[n][key_] for n in names]  # error rates: the differences are a few points
        ax_probe.bar(np.arange(len(names)) + (j - 0.5) * width, errors, width, label=label)
        for i, e in enumerate(errors):
            ax_probe.text(i + (j - 0.5) * width, e + 0.002, f"{e:.1%}", ha="center", fontsize=8)
    ax_probe.set_xticks(np.arange(len(names)), names)
    ax_probe.set(ylabel="test error (1 - accuracy)", title="linear probe on frozen features")
    ax_probe.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"chart written to {args.output}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return results


if __name__ == "__main__":
    main()

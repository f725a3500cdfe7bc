"""Semantic segmentation of synthetic shapes with a Dice (or any segmentation) loss plus cross-entropy.

Each image is a noisy grey-scale 32x32 picture holding one to three shapes
(circles, squares, triangles) of random size, position and brightness; its
mask labels every pixel 0 (background), 1 (circle), 2 (square) or 3
(triangle). Brightness says nothing about the class: the network must look
at the outline. A small fully convolutional network (Flax NNX, dilated 3x3
convolutions, channels last) predicts per-pixel logits ``[B, H, W, 4]`` and is
trained with

    jaxloss.combine(<loss>=(segmentation loss, 1.0),
                    ce=(jaxloss.softmax_cross_entropy_with_integer_labels, 1.0))

on integer masks ``[B, H, W]``. The Dice-family losses pool their sums over
the batch (``batch_dice=True``; ``--per-image`` turns it off). The per-class
IoU on held-out images is printed and a grid of image / truth / prediction is
saved to ``outputs/segment_shapes.png``.

Run::

    python examples/segment_shapes.py                           # Dice + CE, under a minute on 2 CPU cores
    python examples/segment_shapes.py --loss lovasz_softmax_loss
    python examples/segment_shapes.py --loss generalized_dice_loss --steps 200

``--loss`` takes any segmentation loss of ``jaxloss.segmentation``;
``lovasz_hinge_loss`` (binary) is applied one class against the rest, on the
log-odds of each class.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import jaxloss
import jaxloss.segmentation as seg
from jaxloss.classification import softmax_cross_entropy_with_integer_labels

IMAGE_SIZE = 32
CLASS_NAMES = ("background", "circle", "square", "triangle")
NUM_CLASSES = len(CLASS_NAMES)


def one_vs_rest_lovasz_hinge(logits, labels, **kwargs):
    """``lovasz_hinge_loss`` per class on the log-odds ``z_c - logsumexp(z_{-c})``, averaged over classes."""
    losses = []
    for c in range(logits.shape[-1]):
        others = jnp.concatenate([logits[..., :c], logits[..., c + 1:]], axis=-1)
        log_odds = logits[..., c] - jax.nn.logsumexp(others, axis=-1)
        losses.append(seg.lovasz_hinge_loss(log_odds, (labels == c).astype(jnp.int32), **kwargs))
    return sum(losses) / len(losses)


POOLABLE = ("dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "generalized_dice_loss")
LOSSES = {
    "dice_loss": seg.dice_loss,
    "jaccard_loss": seg.jaccard_loss,
    "tversky_loss": seg.tversky_loss,
    "focal_tversky_loss": seg.focal_tversky_loss,
    "generalized_dice_loss": seg.generalized_dice_loss,
    "lovasz_softmax_loss": seg.lovasz_softmax_loss,
    "lovasz_hinge_loss": one_vs_rest_lovasz_hinge,
}


# ------------------------------------------------------------------- data
def make_images(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, noise: float = 0.2):
    """``n`` images ``[n, size, size, 1]`` (float32) and masks ``[n, size, size]`` (int32)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.zeros((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(1, NUM_CLASSES)
            r = rng.uniform(4.0, 8.0)                           # half the size of the shape
            cx, cy = rng.uniform(r, size - r, size=2)
            if kind == 1:                                        # circle
                inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
            elif kind == 2:                                      # axis-aligned square
                inside = (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
            else:                                                # upward triangle
                top, bottom = cy - r, cy + r
                half_width = r * (yy - top) / (bottom - top)
                inside = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
            images[i][inside] = rng.uniform(0.5, 1.0)
            masks[i][inside] = kind
    images += noise * rng.normal(size=images.shape).astype(np.float32)
    return images[..., None], masks


# ------------------------------------------------------------------ model
class ShapeSegmenter(nnx.Module):
    """Dilated 3x3 convolutions (receptive field 31 pixels) and a 1x1 classifier, channels last."""

    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.convs = nnx.List([
            nnx.Conv(c_in, width, (3, 3), kernel_dilation=d, padding="SAME", rngs=rngs)
            for c_in, d in ((1, 1), (width, 2), (width, 4), (width, 8))
        ])
        self.head = nnx.Conv(width, NUM_CLASSES, (1, 1), rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv in self.convs:
            x = nnx.gelu(conv(x))
        return self.head(x)                                        # [B, H, W, C] logits


def per_class_iou(predicted: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """IoU of each class over all held-out pixels (NaN for a class absent from both)."""
    ious = []
    for c in range(NUM_CLASSES):
        p, t = predicted == c, masks == c
        union = np.sum(p | t)
        ious.append(np.sum(p & t) / union if union else np.nan)
    return np.array(ious)


def save_grid(images, masks, predicted, path: str, rows: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"])
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows))
    for r in range(rows):
        for ax, picture, title in zip(axes[r], (images[r, ..., 0], masks[r], predicted[r]),
                                      ("image", "truth", "prediction")):
            if title == "image":
                ax.imshow(picture, cmap="gray")
            else:
                ax.imshow(picture, cmap=cmap, vmin=0, vmax=NUM_CLASSES - 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
    fig.suptitle("red circle, green square, blue triangle")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="dice_loss", choices=sorted(LOSSES),
                        help="segmentation loss combined with cross-entropy (default dice_loss)")
    parser.add_argument("--per-image", action="store_true",
                        help="Dice-family losses per image instead of pooled over the batch (batch_dice=True)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=24, help="channels of the hidden convolutions")
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument("--log-every", type=int, default=25, help="steps between loss updates on the bar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("outputs", "segment_shapes.png"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    train_images, train_masks = make_images(rng, args.train_images)
    test_images, test_masks = make_images(rng, args.test_images)

    seg_loss = LOSSES[args.loss]
    if args.loss in POOLABLE and not args.per_image:
        # Pool the overlap sums over the batch (MONAI batch=True, nnU-Net's "batch dice"): a class
        # absent from one image then no longer scores ~1 for a little probability mass on it.
        seg_loss = functools.partial(seg_loss, batch_dice=True)
    loss_fn = jaxloss.combine(**{args.loss: (seg_loss, 1.0)},
                              ce=(softmax_cross_entropy_with_integer_labels, 1.0))
    model = ShapeSegmenter(args.width, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    # One jitted step per iteration (state donated). A lax.scan over steps would
    # save the Python loop, but XLA:CPU runs convolutions inside a while loop
    # about 30 times slower than at top level.
    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state, images, masks):
        model, optimizer = nnx.merge(graphdef, state)

        def objective(model):
            return loss_fn(model(images), masks)                  # (total, {name: part})

        (_, parts), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), parts

    @jax.jit
    def predict(state, images):
        model, _ = nnx.merge(graphdef, state)
        return jnp.argmax(model(images), axis=-1)

    batches = np.random.default_rng(args.seed + 1)
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc=f"{args.loss} + ce")
    for step in bar:
        idx = batches.integers(0, len(train_images), size=args.batch_size)
        state, parts = train_step(state, train_images[idx], train_masks[idx])
        if step % args.log_every == 0 or step == args.steps:
            bar.set_postfix({name: f"{float(v):.4f}" for name, v in parts.items()})
    elapsed = time.perf_counter() - start

    predicted = np.asarray(predict(state, test_images))
    ious = per_class_iou(predicted, test_masks)
    print(f"\nper-class IoU on {args.test_images} held-out images after {args.steps} steps "
          f"({args.loss} + cross-entropy, seed {args.seed}, {elapsed:.1f} s):")
    for name, iou in zip(CLASS_NAMES, ious):
        print(f"  {name:>10}  {iou:.4f}")
    print(f"  {'mean':>10}  {np.nanmean(ious):.4f}")
    print(f"  pixel accuracy {np.mean(predicted == test_masks):.4f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    save_grid(test_images, test_masks, predicted, args.output)
    print(f"image / truth / prediction grid written to {os.path.abspath(args.output)}")


if __name__ == "__main__":
    main()

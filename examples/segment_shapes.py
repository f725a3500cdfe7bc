"""Semantic segmentation of synthetic shapes (or thin curves) with any segmentation loss of jaxloss.

Each image is a noisy grey-scale 32x32 picture holding one to three shapes
(circles, squares, triangles) of random size, position and brightness; its
mask labels every pixel 0 (background), 1 (circle), 2 (square) or 3
(triangle). Brightness says nothing about the class: the network must look
at the outline. A small fully convolutional network (Flax NNX, dilated 3x3
convolutions, channels last) predicts per-pixel logits ``[B, H, W, C]`` and is
trained with

    jaxloss.combine(<loss>=(segmentation loss, 1.0),
                    ce=(jaxloss.softmax_cross_entropy_with_integer_labels, 1.0))

on integer masks ``[B, H, W]`` (``dice_ce`` and ``dice_focal`` carry their own
cross-entropy / focal term and are used alone). The Dice-family losses pool
their sums over the batch (``batch_dice=True``; ``--per-image`` turns it
off). The per-class IoU on held-out images is printed and a grid of image /
truth / prediction is saved to ``outputs/segment_shapes.png``.

``--thin`` switches to thin-structure images: one to three faint, 1-pixel
wide random curves (vessels, cracks, roads) on a noisy background, two
classes. There the connectivity of the prediction matters more than its
overlap, which is what ``soft_cldice`` targets; the script then also prints
the mean absolute error in the number of connected curve pieces per image
(Betti-0 error; 0 means every curve is predicted unbroken) and the fraction
of images whose pieces are counted right.

Run::

    python examples/segment_shapes.py                           # Dice + CE, under a minute on 2 CPU cores
    python examples/segment_shapes.py --loss lovasz_softmax_loss
    python examples/segment_shapes.py --loss dice_ce            # MONAI DiceCELoss
    python examples/segment_shapes.py --thin --loss soft_cldice # clDice (+ Dice, as its authors) + CE
    python examples/segment_shapes.py --thin --loss dice        # the baseline it is compared with

``--loss`` takes any segmentation loss of ``jaxloss.segmentation`` by its
name, with or without the ``_loss`` suffix; ``lovasz_hinge_loss`` (binary) is
applied one class against the rest, on the log-odds of each class, and
``hausdorff_dt_loss`` and ``soft_cldice_loss`` read the softmax of the logits.
``--smoke`` runs a few steps on a few images (the test suite does).
"""

from __future__ import annotations

import sys
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
SHAPE_CLASSES = ("background", "circle", "square", "triangle")
THIN_CLASSES = ("background", "curve")


def one_vs_rest_lovasz_hinge(logits, labels, **kwargs):
    """``lovasz_hinge_loss`` per class on the log-odds ``z_c - logsumexp(z_{-c})``, averaged over classes."""
    losses = []
    for c in range(logits.shape[-1]):
        others = jnp.concatenate([logits[..., :c], logits[..., c + 1:]], axis=-1)
        log_odds = logits[..., c] - jax.nn.logsumexp(others, axis=-1)
        losses.append(seg.lovasz_hinge_loss(log_odds, (labels == c).astype(jnp.int32), **kwargs))
    return sum(losses) / len(losses)


def cldice_with_dice(logits, labels, **kwargs):
    """The clDice authors' ``soft_dice_cldice``: half soft Dice, half soft clDice (3 skeleton rounds)."""
    return 0.5 * seg.dice_loss(logits, labels, **kwargs) + 0.5 * seg.soft_cldice_loss(logits, labels, iterations=3)


POOLABLE = ("dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "generalized_dice_loss",
            "dice_ce_loss", "dice_focal_loss", "soft_cldice_loss")
COMPOUND = ("dice_ce_loss", "dice_focal_loss")          # their own cross-entropy / focal term: used alone
LOSSES = {
    "dice_loss": seg.dice_loss,
    "jaccard_loss": seg.jaccard_loss,
    "tversky_loss": seg.tversky_loss,
    "focal_tversky_loss": seg.focal_tversky_loss,
    "generalized_dice_loss": seg.generalized_dice_loss,
    "dice_ce_loss": seg.dice_ce_loss,
    "dice_focal_loss": seg.dice_focal_loss,
    "hausdorff_dt_loss": functools.partial(seg.hausdorff_dt_loss, activation="softmax"),
    "soft_cldice_loss": cldice_with_dice,
    "lovasz_softmax_loss": seg.lovasz_softmax_loss,
    "lovasz_hinge_loss": one_vs_rest_lovasz_hinge,
}


def loss_name(name: str) -> str:
    """``dice_ce`` -> ``dice_ce_loss``; full names pass through."""
    full = name if name.endswith("_loss") else f"{name}_loss"
    if full not in LOSSES:
        raise argparse.ArgumentTypeError(f"unknown loss {name!r}; choose from {', '.join(sorted(LOSSES))}")
    return full


# ------------------------------------------------------------------- data
def make_images(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, noise: float = 0.2):
    """``n`` images ``[n, size, size, 1]`` (float32) and masks ``[n, size, size]`` (int32)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.zeros((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(1, len(SHAPE_CLASSES))
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


def make_thin_images(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, noise: float = 0.25):
    """``n`` images of one to three faint 1-pixel curves ``[n, size, size, 1]`` and their masks ``[n, size, size]``."""
    images = np.zeros((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int32)
    t = np.linspace(0.0, 1.0, 8 * size)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            # A smooth random curve: a straight segment bent by two random sine waves.
            (x0, y0), (x1, y1) = rng.uniform(2, size - 2, size=(2, 2))
            bend = rng.uniform(-4.0, 4.0, size=2)
            phase = rng.uniform(0, np.pi, size=2)
            xs = x0 + (x1 - x0) * t + bend[0] * np.sin(np.pi * t * 2 + phase[0])
            ys = y0 + (y1 - y0) * t + bend[1] * np.sin(np.pi * t * 2 + phase[1])
            cols = np.clip(np.round(xs).astype(int), 0, size - 1)
            rows = np.clip(np.round(ys).astype(int), 0, size - 1)
            images[i, rows, cols] = rng.uniform(0.4, 0.8)
            masks[i, rows, cols] = 1
    images += noise * rng.normal(size=images.shape).astype(np.float32)
    return images[..., None], masks


def count_pieces(mask: np.ndarray) -> int:
    """Connected components of a boolean 2D mask (8-connectivity), by flood fill."""
    seen = np.zeros(mask.shape, bool)
    pieces = 0
    h, w = mask.shape
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        pieces += 1
        stack = [(r0, c0)]
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
    return pieces


# ------------------------------------------------------------------ model
class ShapeSegmenter(nnx.Module):
    """Dilated 3x3 convolutions (receptive field 31 pixels) and a 1x1 classifier, channels last."""

    def __init__(self, width: int, num_classes: int, *, rngs: nnx.Rngs):
        self.convs = nnx.List([
            nnx.Conv(c_in, width, (3, 3), kernel_dilation=d, padding="SAME", rngs=rngs)
            for c_in, d in ((1, 1), (width, 2), (width, 4), (width, 8))
        ])
        self.head = nnx.Conv(width, num_classes, (1, 1), rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv in self.convs:
            x = nnx.gelu(conv(x))
        return self.head(x)                                        # [B, H, W, C] logits


def per_class_iou(predicted: np.ndarray, masks: np.ndarray, num_classes: int) -> np.ndarray:
    """IoU of each class over all held-out pixels (NaN for a class absent from both)."""
    ious = []
    for c in range(num_classes):
        p, t = predicted == c, masks == c
        union = np.sum(p | t)
        ious.append(np.sum(p & t) / union if union else np.nan)
    return np.array(ious)


def save_grid(images, masks, predicted, path: str, num_classes: int, rows: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"][:num_classes])
    rows = min(rows, len(images))
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows), squeeze=False)
    for r in range(rows):
        for ax, picture, title in zip(axes[r], (images[r, ..., 0], masks[r], predicted[r]),
                                      ("image", "truth", "prediction")):
            if title == "image":
                ax.imshow(picture, cmap="gray")
            else:
                ax.imshow(picture, cmap=cmap, vmin=0, vmax=num_classes - 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
    fig.suptitle("red circle, green square, blue triangle" if num_classes == 4 else "red: curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="dice_loss", type=loss_name,
                        help=f"segmentation loss ({', '.join(sorted(LOSSES))}; the _loss suffix may be left "
                             "out); combined with cross-entropy unless it is dice_ce or dice_focal")
    parser.add_argument("--thin", action="store_true", help="thin 1-pixel curves (two classes) instead of shapes")
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
    parser.add_argument("--smoke", action="store_true", help="a few steps on a few images (a quick check)")
    parser.add_argument("--output", default=os.path.join("outputs", "segment_shapes.png"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.train_images, args.test_images, args.batch_size = 3, 16, 8, 4

    rng = np.random.default_rng(args.seed)
    make = make_thin_images if args.thin else make_images
    class_names = THIN_CLASSES if args.thin else SHAPE_CLASSES
    num_classes = len(class_names)
    train_images, train_masks = make(rng, args.train_images)
    test_images, test_masks = make(rng, args.test_images)

    seg_loss = LOSSES[args.loss]
    if args.loss in POOLABLE and not args.per_image:
        # Pool the overlap sums over the batch (MONAI batch=True, nnU-Net's "batch dice"): a class
        # absent from one image then no longer scores ~1 for a little probability mass on it.
        seg_loss = functools.partial(seg_loss, batch_dice=True)
    if args.loss in COMPOUND:
        loss_fn = jaxloss.combine(**{args.loss: (seg_loss, 1.0)})
    else:
        loss_fn = jaxloss.combine(**{args.loss: (seg_loss, 1.0)},
                                  ce=(softmax_cross_entropy_with_integer_labels, 1.0))
    model = ShapeSegmenter(args.width, num_classes, rngs=nnx.Rngs(args.seed))
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
    bar = tqdm(range(1, args.steps + 1), desc=args.loss + ("" if args.loss in COMPOUND else " + ce"),
               disable=not sys.stderr.isatty())
    for step in bar:
        idx = batches.integers(0, len(train_images), size=args.batch_size)
        state, parts = train_step(state, train_images[idx], train_masks[idx])
        if step % args.log_every == 0 or step == args.steps:
            bar.set_postfix({name: f"{float(v):.4f}" for name, v in parts.items()})
    elapsed = time.perf_counter() - start

    predicted = np.asarray(predict(state, test_images))
    ious = per_class_iou(predicted, test_masks, num_classes)
    data = "thin curves" if args.thin else "shapes"
    print(f"\nper-class IoU on {args.test_images} held-out images ({data}) after {args.steps} steps "
          f"({args.loss}{'' if args.loss in COMPOUND else ' + cross-entropy'}, seed {args.seed}, {elapsed:.1f} s):")
    for name, iou in zip(class_names, ious):
        print(f"  {name:>10}  {iou:.4f}")
    print(f"  {'mean':>10}  {np.nanmean(ious):.4f}")
    accuracy = float(np.mean(predicted == test_masks))
    print(f"  pixel accuracy {accuracy:.4f}")
    result = {"loss": args.loss, "iou": ious.tolist(), "mean_iou": float(np.nanmean(ious)), "pixel_accuracy": accuracy}
    if args.thin:
        true_pieces = np.array([count_pieces(m == 1) for m in test_masks])
        pred_pieces = np.array([count_pieces(p == 1) for p in predicted])
        betti_error = float(np.mean(np.abs(pred_pieces - true_pieces)))
        right = float(np.mean(pred_pieces == true_pieces))
        print(f"  connectivity: Betti-0 error {betti_error:.3f} pieces per image (0 = every curve unbroken), "
              f"pieces counted right in {100 * right:.1f}% of images")
        result.update(betti0_error=betti_error, pieces_right=right)

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    save_grid(test_images, test_masks, predicted, args.output, num_classes)
    print(f"image / truth / prediction grid written to {os.path.abspath(args.output)}")
    return result


if __name__ == "__main__":
    main()

"""Box regression on synthetic scenes: L1 against IoU, GIoU, DIoU and CIoU losses.

Each scene is a small grey-scale image with one bright rectangle on a noisy
background; a small MLP (Flax NNX) reads the pixels and predicts the
rectangle's box. The same network, initialisation, batches and step budget are
trained once per loss:

* ``l1``:   ``jaxloss.absolute_error`` on the normalised xyxy coordinates,
* ``iou``:  ``jaxloss.boxes.iou_loss``  (1 - IoU),
* ``giou``: ``jaxloss.boxes.giou_loss`` (Rezatofighi et al. 2019),
* ``diou``: ``jaxloss.boxes.diou_loss`` (Zheng et al. 2020),
* ``ciou``: ``jaxloss.boxes.ciou_loss`` (Zheng et al. 2020),

and the mean IoU on held-out scenes is printed for each, and plotted against
the training step to ``outputs/box_regression.png``.

Run::

    python examples/box_regression.py            # 1500 steps per loss, 5 losses
    python examples/box_regression.py --steps 200
    python examples/box_regression.py --smoke    # 20 steps on 256 scenes, for CI

The network predicts ``(cx, cy, w, h)`` through a sigmoid, so its boxes are
always valid, and ``jaxloss.boxes.box_convert`` turns them into xyxy.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

import jaxloss
from jaxloss.boxes import box_convert, box_iou, ciou_loss, diou_loss, giou_loss, iou_loss

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGE_SIZE = 20
LOSSES = {
    "l1": jaxloss.absolute_error,
    "iou": iou_loss,
    "giou": giou_loss,
    "diou": diou_loss,
    "ciou": ciou_loss,
}


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ------------------------------------------------------------------- data
def make_scenes(rng: np.random.Generator, n: int, size: int = IMAGE_SIZE, noise: float = 0.15,
                min_side: float = 0.15, max_side: float = 0.6):
    """``n`` images ``[n, size, size]`` with one rectangle each, and its xyxy box in [0, 1]."""
    wh = rng.uniform(min_side, max_side, size=(n, 2))
    xy = rng.uniform(0.0, 1.0 - wh)
    boxes = np.concatenate([xy, xy + wh], axis=-1)
    # Anti-aliased rendering: each pixel is the fraction of it the rectangle covers.
    edges = np.arange(size) / size
    def coverage(lo, hi):  # [n] x [n] -> [n, size]
        return np.clip(np.minimum(hi[:, None], edges + 1 / size) - np.maximum(lo[:, None], edges), 0.0, None) * size
    cover_x = coverage(boxes[:, 0], boxes[:, 2])
    cover_y = coverage(boxes[:, 1], boxes[:, 3])
    brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1))
    images = brightness * cover_y[:, :, None] * cover_x[:, None, :]
    images = images + noise * rng.normal(size=images.shape)
    return images.astype(np.float32), boxes.astype(np.float32)


# ------------------------------------------------------------------ model
class BoxRegressor(nnx.Module):
    """Pixels -> MLP -> (cx, cy, w, h) in (0, 1) -> xyxy."""

    def __init__(self, size: int, hidden: int, *, rngs: nnx.Rngs):
        self.hidden1 = nnx.Linear(size * size, hidden, rngs=rngs)
        self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, 4, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images.reshape(images.shape[0], -1)
        x = nnx.gelu(self.hidden1(x))
        x = nnx.gelu(self.hidden2(x))
        cxcywh = nnx.sigmoid(self.head(x))
        return box_convert(cxcywh, "cxcywh", "xyxy")


def train(loss_name: str, data, *, steps: int, batch_size: int, eval_every: int, seed: int,
          learning_rate: float, hidden: int):
    """Trains one model with one loss.

    Returns (eval steps, held-out mean IoU at each, [step, train loss] rows, final held-out IoUs).
    """
    train_images, train_boxes, test_images, test_boxes = data
    loss_fn = LOSSES[loss_name]
    model = BoxRegressor(IMAGE_SIZE, hidden, rngs=nnx.Rngs(seed))  # same init for every loss
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    # The model and optimizer as one pytree of arrays: `eval_every` steps run
    # inside one jitted lax.scan, with no Python between steps.
    graphdef, state = nnx.split((model, optimizer))

    def train_step(state, batch):
        model, optimizer = nnx.merge(graphdef, state)
        images, boxes = batch

        def objective(model):
            return loss_fn(model(images), boxes)  # reduction="mean"

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    @jax.jit
    def train_chunk(state, images, boxes):  # images [K, B, H, W], boxes [K, B, 4]
        return jax.lax.scan(train_step, state, (images, boxes))

    @jax.jit
    def held_out_iou(state, images, boxes):
        model, _ = nnx.merge(graphdef, state)
        return box_iou(model(images), boxes)

    def mean_iou(state, images, boxes):
        return float(jnp.mean(held_out_iou(state, images, boxes)))

    batches = np.random.default_rng(seed)  # same batch order for every loss
    eval_steps, ious, losses = [0], [mean_iou(state, test_images, test_boxes)], []
    bar = tqdm(total=steps, desc=f"{loss_name:>4}", leave=True, disable=None)  # no bar when redirected
    done = 0
    while done < steps:
        k = min(eval_every, steps - done)
        idx = batches.integers(0, len(train_images), size=(k, batch_size))
        state, chunk_losses = train_chunk(state, train_images[idx], train_boxes[idx])
        done += k
        losses.append((done, float(jnp.mean(chunk_losses))))
        eval_steps.append(done)
        ious.append(mean_iou(state, test_images, test_boxes))
        bar.update(k)
        bar.set_postfix(loss=f"{losses[-1][1]:.4f}", test_iou=f"{ious[-1]:.3f}")
    bar.close()
    final = np.asarray(held_out_iou(state, test_images, test_boxes))
    return np.array(eval_steps), np.array(ious), np.array(losses), final


def plot(results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_iou, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (steps, ious, losses, _) in results.items():
        ax_iou.plot(steps, ious, label=name)
        ax_loss.plot(losses[:, 0], losses[:, 1], label=name)
    ax_iou.set(xlabel="training step", ylabel="mean IoU on held-out scenes", title="Held-out mean IoU")
    ax_iou.grid(alpha=0.3)
    ax_iou.legend()
    ax_loss.set(xlabel="training step", ylabel="training loss (its own scale)", title="Training loss",
                yscale="log")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per loss (default 1500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--train-scenes", type=int, default=4096)
    parser.add_argument("--test-scenes", type=int, default=1024)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("outputs", "box_regression.png"))
    parser.add_argument("--smoke", action="store_true",
                        help="20 steps per loss on 256 scenes: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.eval_every, args.train_scenes, args.test_scenes = 20, 10, 256, 64

    rng = np.random.default_rng(args.seed)
    data = (*make_scenes(rng, args.train_scenes), *make_scenes(rng, args.test_scenes))
    start = time.perf_counter()
    results = {}
    for name in LOSSES:
        results[name] = train(name, data, steps=args.steps, batch_size=args.batch_size,
                              eval_every=args.eval_every, seed=args.seed,
                              learning_rate=args.learning_rate, hidden=args.hidden)

    print(f"\nmean IoU on {args.test_scenes} held-out scenes after {args.steps} steps "
          f"(batch {args.batch_size}, seed {args.seed}):")
    print("  loss  mean IoU  IoU>=0.5  IoU>=0.75  (best mean IoU during training)")
    for name, (_, ious, _, final) in results.items():
        print(f"  {name:>4}  {final.mean():8.4f}  {np.mean(final >= 0.5):8.3f}  {np.mean(final >= 0.75):9.3f}"
              f"  ({ious.max():.4f})")
    print(f"total training time {time.perf_counter() - start:.1f} s")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    plot(results, args.output)
    print(f"curves written to {shown(args.output)}")
    return {name: float(final.mean()) for name, (_, _, _, final) in results.items()}


if __name__ == "__main__":
    main()

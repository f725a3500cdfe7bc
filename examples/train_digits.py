"""Train a small Flax (NNX) MLP on scikit-learn's handwritten digits with a jaxloss loss.

The main job of jaxloss's foundation: a real training run on real data that
ships inside scikit-learn (1,797 8x8 images; nothing is downloaded).

    python examples/train_digits.py                              # softmax CE, >= 95% test accuracy
    python examples/train_digits.py --loss softmax_focal_loss_with_integer_labels
    python examples/train_digits.py --imbalance 0.1 --class-balanced
    python examples/train_digits.py --label-smoothing 0.1
    python examples/train_digits.py --smoke                      # 2 epochs, for CI

``--loss`` takes any registry name tagged ``integer_labels``
(``jaxloss.available(tag="integer_labels")``, aliases included).
"""

from __future__ import annotations

import argparse
import inspect
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
from sklearn.metrics import recall_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class MLP(nnx.Module):
    def __init__(self, hidden: int, num_classes: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def parse_args(argv=None):
    integer_losses = jaxloss.available(tag="integer_labels", aliases=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="softmax_cross_entropy_with_integer_labels", choices=integer_losses,
                        metavar="NAME", help=f"one of: {', '.join(integer_losses)}")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--imbalance", type=float, default=1.0,
                        help="keep only this fraction of the training images of classes 5-9")
    parser.add_argument("--class-balanced", action="store_true",
                        help="weight the loss with jaxloss.class_balanced_weights of the training counts")
    parser.add_argument("--beta", type=float, default=0.999, help="beta of class_balanced_weights")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/train_digits.png")
    parser.add_argument("--smoke", action="store_true", help="2 epochs: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 2
    return args


def load_data(imbalance: float, seed: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    if imbalance < 1.0:
        rng = np.random.default_rng(seed)
        keep = np.ones(len(y_train), bool)
        for c in range(5, 10):
            idx = np.flatnonzero(y_train == c)
            drop = rng.permutation(idx)[max(1, int(round(imbalance * len(idx)))):]
            keep[drop] = False
        x_train, y_train = x_train[keep], y_train[keep]
    return x_train, x_test, y_train, y_test


def make_loss_fn(name: str, label_smoothing: float, class_weights):
    """Adapts the chosen registry loss to (logits, labels) -> scalar."""
    loss = jaxloss.get(name)
    params = inspect.signature(loss).parameters
    kwargs = {}
    if label_smoothing:
        if "label_smoothing" not in params:
            raise SystemExit(f"--label-smoothing: {name} has no label_smoothing argument")
        kwargs["label_smoothing"] = label_smoothing
    if class_weights is not None:
        if "class_weights" in params:
            kwargs["class_weights"] = class_weights
        elif "alpha" in params:  # the focal losses weight classes through alpha
            kwargs["alpha"] = class_weights
        else:
            raise SystemExit(f"--class-balanced: {name} takes no class weights")
    takes_log_probabilities = next(iter(params)) == "log_probabilities"

    def loss_fn(logits, labels):
        if takes_log_probabilities:
            logits = jax.nn.log_softmax(logits)
        return loss(logits, labels, **kwargs)

    return loss_fn


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    x_train, x_test, y_train, y_test = load_data(args.imbalance, args.seed)
    num_classes = 10
    counts = np.bincount(y_train, minlength=num_classes)
    class_weights = None
    if args.class_balanced:
        class_weights = jaxloss.class_balanced_weights(counts, beta=args.beta)
        print("class-balanced weights:", np.round(np.asarray(class_weights), 3))
    print(f"loss: {args.loss}; {len(y_train)} training images (per class {counts.tolist()}), "
          f"{len(y_test)} test images")

    loss_fn = make_loss_fn(args.loss, args.label_smoothing, class_weights)
    model = MLP(args.hidden, num_classes, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def objective(model):
            logits = model(x)
            return loss_fn(logits, y), logits

        (loss, logits), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, jnp.mean(jnp.argmax(logits, -1) == y)

    @nnx.jit
    def predict(model, x):
        return jnp.argmax(model(x), -1)

    rng = np.random.default_rng(args.seed)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    steps = int(np.ceil(len(y_train) / args.batch_size))
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y_train))
        losses, accs = [], []
        # disable=None: no progress bar when the output is redirected (the per-epoch lines still print).
        bar = tqdm(range(steps), desc=f"epoch {epoch:2d}/{args.epochs}", leave=False, mininterval=0.5,
                   disable=None)
        for i in bar:
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            loss, acc = train_step(model, optimizer, x_train[idx], y_train[idx])
            losses.append(float(loss))
            accs.append(float(acc))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", acc=f"{np.mean(accs):.3f}")
        test_acc = float(np.mean(np.asarray(predict(model, x_test)) == y_test))
        history["loss"].append(np.mean(losses))
        history["train_acc"].append(np.mean(accs))
        history["test_acc"].append(test_acc)
        tqdm.write(f"epoch {epoch:2d}: loss {np.mean(losses):.4f}  train acc {np.mean(accs):.3f}  "
                   f"test acc {test_acc:.3f}")

    predictions = np.asarray(predict(model, x_test))
    recall = recall_score(y_test, predictions, average=None, labels=list(range(num_classes)))
    test_accuracy = float(np.mean(predictions == y_test))
    print(f"\ntest accuracy: {test_accuracy:.4f}")
    print("per-class recall: " + "  ".join(f"{c}:{r:.3f}" for c, r in enumerate(recall)))
    print(f"macro recall: {recall.mean():.4f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, args.epochs + 1)
    ax_loss.plot(epochs, history["loss"])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=args.loss)
    ax_acc.plot(epochs, history["train_acc"], label="train")
    ax_acc.plot(epochs, history["test_acc"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0.0, 1.0), title="accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    print(f"curves written to {shown(args.output)}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return test_accuracy


if __name__ == "__main__":
    main()

"""Train a Keras 3 model on scikit-learn's digits with ``model.fit`` and a jaxloss loss.

Keras 3 runs on JAX (``KERAS_BACKEND=jax``); ``jaxloss.keras.Loss`` turns any
jaxloss loss into a ``keras.losses.Loss`` for ``model.compile``, with Keras's
``(y_true, y_pred)`` order, ``sample_weight`` and reductions. The script trains
a small MLP on the 1,797 8x8 digit images that ship with scikit-learn (nothing
is downloaded), reports the held-out accuracy, checks that the loss Keras
reports equals Keras's own ``SparseCategoricalCrossentropy(from_logits=True)``
on the same model (for the default loss), and draws the training curves::

    python examples/keras_fit.py                                  # >= 95% test accuracy
    python examples/keras_fit.py --loss softmax_focal_loss_with_integer_labels
    python examples/keras_fit.py --label-smoothing 0.1
    python examples/keras_fit.py --smoke                          # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import jaxloss  # noqa: E402
import jaxloss.keras  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="softmax_cross_entropy_with_integer_labels",
                        choices=sorted(jaxloss.available(tag="integer_labels", aliases=False)), metavar="NAME",
                        help="a jaxloss loss of (logits, integer labels)")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="two epochs on a subset, for CI")
    parser.add_argument("--output", default=str(ROOT / "outputs" / "keras_fit.png"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 2
    return args


def _shown(path: pathlib.Path) -> str:
    """The path relative to the project when it is inside it (what the user typed), else absolute."""
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
    if args.smoke:
        x_train, y_train = x_train[:256], y_train[:256]

    kwargs = {"label_smoothing": args.label_smoothing} if args.label_smoothing else {}
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),                     # logits: jaxloss's softmax losses take logits
    ])
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=jaxloss.keras.Loss(args.loss, **kwargs),
                  metrics=["sparse_categorical_accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs,
                        batch_size=args.batch_size, verbose=0 if args.smoke else 2)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0, batch_size=len(x_test))

    result = {"loss": args.loss, "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
              "seconds": seconds}
    if args.loss == "softmax_cross_entropy_with_integer_labels" and not args.label_smoothing:
        logits = model.predict(x_test, verbose=0, batch_size=len(x_test))
        reference = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_test, logits))
        result["keras_reference_loss"] = reference
        print(f"test loss {test_loss:.6f} (Keras's SparseCategoricalCrossentropy(from_logits=True): "
              f"{reference:.6f})")
    print(f"{args.loss}: test accuracy {test_accuracy:.4f} after {args.epochs} epochs ({seconds:.1f} s)")

    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = np.arange(1, args.epochs + 1)
    ax_loss.plot(epochs, history.history["loss"], label="train")
    ax_loss.plot(epochs, history.history["val_loss"], label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history.history["sparse_categorical_accuracy"], label="train")
    ax_acc.plot(epochs, history.history["val_sparse_categorical_accuracy"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"test accuracy {test_accuracy:.3f}", ylim=(0, 1.01))
    ax_acc.legend()
    fig.suptitle(f"Keras model.fit with jaxloss.keras.Loss({args.loss!r})", fontsize=10)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    print(f"wrote {_shown(output)}")
    result["output"] = str(output)
    return result


if __name__ == "__main__":
    main()

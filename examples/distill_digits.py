"""Distil a wide teacher into a small student on scikit-learn's digits with ``jaxloss.distillation``.

A wide Flax (NNX) MLP teacher is trained on the labelled training images of
the 8x8 digits (nothing is downloaded). Then the same small student (one
narrow hidden layer) is trained three ways, from the same initialisations:
on the labels only (cross-entropy), with Hinton's
``knowledge_distillation_loss`` (soft targets at temperature ``T``, with the
``T**2`` factor) added to the cross-entropy, and with TRL's
``generalized_jsd_loss`` (the beta-skewed Jensen-Shannon divergence of GKD)
added instead. The student sees the labels of only ``--labelled`` training
images per class, while the teacher's logits are available on every training
image: the situation distillation is used for (a large model labels a pool of
unlabelled inputs for a small one). Each student is trained for ``--seeds``
seeds; the script prints the mean and spread of the test accuracies and saves
a bar chart::

    python examples/distill_digits.py                      # 5 labels per class (the default)
    python examples/distill_digits.py --labelled 1000      # every label: the gap closes
    python examples/distill_digits.py --temperature 2 --beta 0.1
    python examples/distill_digits.py --smoke              # a few seconds, for CI
"""

from __future__ import annotations

import sys
import argparse
import os
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

import jaxloss.classification  # noqa: E402
import jaxloss.distillation  # noqa: E402

METHODS = ("labels only", "knowledge_distillation_loss", "generalized_jsd_loss")


class MLP(nnx.Module):
    def __init__(self, widths: list[int], rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled", type=int, default=5,
                        help="labelled training images per class the student may use (the teacher uses all)")
    parser.add_argument("--teacher-hidden", type=int, default=512)
    parser.add_argument("--student-hidden", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation temperature T")
    parser.add_argument("--beta", type=float, default=0.5,
                        help="beta of generalized_jsd_loss (0 forward KL, 1 reverse KL)")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the cross-entropy on labelled images; 1 - alpha weights the distillation term")
    parser.add_argument("--teacher-steps", type=int, default=1500)
    parser.add_argument("--student-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, default=5, help="students trained per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything, for CI")
    parser.add_argument("--output", default="outputs/distill_digits.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.teacher_steps, args.student_steps, args.seeds = 60, 60, 1
    return args


def load_data(labelled: int, seed: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    has_label = np.zeros(len(y_train), bool)
    for c in range(10):
        has_label[rng.permutation(np.flatnonzero(y_train == c))[:labelled]] = True
    return x_train, y_train, has_label, x_test, y_test


def train(model, steps, batch_size, learning_rate, seed, objective, pool, desc):
    """Adam on ``objective(model, rows)``, minibatches of ``rows`` drawn from the index array ``pool``."""
    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)
    optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, idx):
        loss, grads = nnx.value_and_grad(objective)(model, idx)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(seed)
    losses = []
    for _ in tqdm(range(steps), desc=desc, leave=False, mininterval=0.5, disable=not sys.stderr.isatty()):
        losses.append(float(step(model, optimizer, jnp.asarray(pool[rng.integers(0, len(pool), batch_size)]))))
    return float(np.mean(losses[-50:]))


def accuracy(model, x, y) -> float:
    return float(np.mean(np.asarray(jnp.argmax(model(jnp.asarray(x)), -1)) == y))


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    x_train, y_train, has_label, x_test, y_test = load_data(args.labelled, args.seed)
    print(f"{len(y_train)} training images ({int(has_label.sum())} with a label for the student), "
          f"{len(y_test)} test images")

    # The teacher: a wide MLP on every labelled training image.
    x_all, y_all = jnp.asarray(x_train), jnp.asarray(y_train)
    teacher = MLP([64, args.teacher_hidden, args.teacher_hidden, 10], nnx.Rngs(args.seed))

    def teacher_objective(model, idx):
        return jaxloss.classification.softmax_cross_entropy_with_integer_labels(model(x_all[idx]), y_all[idx])

    train(teacher, args.teacher_steps, args.batch_size, args.learning_rate, args.seed, teacher_objective,
          np.arange(len(y_train)), "teacher")
    teacher_accuracy = accuracy(teacher, x_test, y_test)
    teacher_logits = jax.lax.stop_gradient(teacher(x_all))  # computed once: the teacher is frozen
    print(f"teacher ({args.teacher_hidden}-{args.teacher_hidden} hidden): test accuracy {teacher_accuracy:.4f}")

    # The students. Each minibatch draws from all training images; the cross-entropy only sees
    # the labelled ones (where=), the distillation term sees every image.
    labelled = jnp.asarray(has_label)

    def student_objective(method):
        def objective(model, idx):
            logits = model(x_all[idx])
            ce = jaxloss.classification.softmax_cross_entropy_with_integer_labels(
                logits, y_all[idx], where=labelled[idx])
            if method == "labels only":
                return ce
            if method == "knowledge_distillation_loss":
                distill = jaxloss.distillation.knowledge_distillation_loss(
                    logits, teacher_logits[idx], temperature=args.temperature)
            else:
                distill = jaxloss.distillation.generalized_jsd_loss(
                    logits, teacher_logits[idx], beta=args.beta, temperature=args.temperature)
            return args.alpha * ce + (1.0 - args.alpha) * distill
        return objective

    results = {m: [] for m in METHODS}
    for s in range(args.seeds):
        for method in METHODS:
            student = MLP([64, args.student_hidden, 10], nnx.Rngs(1000 + s))  # same init across methods
            # Without a teacher, only the labelled images are worth drawing.
            pool = np.flatnonzero(has_label) if method == "labels only" else np.arange(len(y_train))
            train(student, args.student_steps, args.batch_size, args.learning_rate, 1000 + s,
                  student_objective(method), pool, f"seed {s} {method}")
            results[method].append(accuracy(student, x_test, y_test))
        tqdm.write(f"seed {s}: " + "  ".join(f"{m} {results[m][-1]:.3f}" for m in METHODS))

    print(f"\nstudent ({args.student_hidden} hidden, {args.labelled} labels per class), test accuracy "
          f"over {args.seeds} seed(s):")
    summary = {"teacher": teacher_accuracy}
    for method in METHODS:
        acc = np.asarray(results[method])
        summary[method] = float(acc.mean())
        print(f"  {method:28s} {acc.mean():.4f} +- {acc.std():.4f}  (min {acc.min():.3f}, max {acc.max():.3f})")
    print(f"  {'teacher':28s} {teacher_accuracy:.4f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    names = ["teacher\n(all labels)", "student\nlabels only", "student +\nknowledge_distillation",
             "student +\ngeneralized_jsd"]
    means = [teacher_accuracy] + [summary[m] for m in METHODS]
    spreads = [0.0] + [float(np.std(results[m])) for m in METHODS]
    ax.bar(names, means, yerr=spreads, color=["0.6", "tab:gray", "tab:blue", "tab:orange"], capsize=4)
    for i, m in enumerate(means):
        ax.text(i, m + spreads[i] + 0.005, f"{m:.3f}", ha="center")
    ax.set(ylabel="test accuracy", ylim=(min(means) - 0.1, 1.02),
           title=f"digits: {args.student_hidden}-unit student, {args.labelled} labels/class, T={args.temperature}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"chart written to {args.output}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return summary


if __name__ == "__main__":
    main()

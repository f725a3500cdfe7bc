"""Train a small convolutional sequence model with ``jaxloss.ctc_loss`` on synthetic digit strings.

Each example is a digit string (2 to 5 digits) rendered as a sequence of
noisy feature frames: every digit has a fixed random 16-dimensional
"prototype" and lasts 2 to 4 frames; a few "silence" frames separate digits
and pad both ends; Gaussian noise is added to every frame and sequences have
different lengths (right padding). No frame-level alignment is given: the
model (1-D convolutions over time, Flax NNX) only sees the frames and the
digit string, and CTC sums over all alignments. Greedy decoding (argmax per
frame, merge repeats, drop blanks) is scored by the label error rate (edit
distance / reference length) on held-out sequences.

    python examples/ctc_synthetic.py
    python examples/ctc_synthetic.py --noise 1.5 --steps 3000
    python examples/ctc_synthetic.py --smoke     # 5 steps on 256 sequences, for CI
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
from tqdm import tqdm  # noqa: E402

from jaxloss.sequence import ctc_loss  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BLANK = 0  # classes: 0 = blank, 1..10 = digits 0..9
FEATURES, MAX_FRAMES, MAX_LABELS = 16, 40, 5


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def make_data(n, prototypes, silence, noise, rng):
    frames = np.zeros((n, MAX_FRAMES, FEATURES), np.float32)
    frame_pad = np.ones((n, MAX_FRAMES), np.float32)
    labels = np.zeros((n, MAX_LABELS), np.int32)
    label_pad = np.ones((n, MAX_LABELS), np.float32)
    for i in range(n):
        digits = rng.integers(0, 10, size=rng.integers(2, MAX_LABELS + 1))
        seq = [silence] * rng.integers(1, 3)
        for d in digits:
            seq += [prototypes[d]] * rng.integers(2, 5) + [silence] * rng.integers(1, 3)
        seq = np.stack(seq)[:MAX_FRAMES]
        frames[i, :len(seq)] = seq + noise * rng.normal(size=seq.shape)
        frame_pad[i, :len(seq)] = 0.0
        labels[i, :len(digits)] = digits + 1
        label_pad[i, :len(digits)] = 0.0
    return frames, frame_pad, labels, label_pad


class ConvCTC(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(FEATURES, hidden, kernel_size=(5,), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(hidden, hidden, kernel_size=(5,), padding="SAME", rngs=rngs)
        self.conv3 = nnx.Conv(hidden, hidden, kernel_size=(3,), padding="SAME", rngs=rngs)
        self.out = nnx.Linear(hidden, 11, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.conv1(x))
        h = nnx.relu(self.conv2(h)) + h
        h = nnx.relu(self.conv3(h)) + h
        return self.out(h)  # [B, T, 11] logits, blank = 0


def greedy_decode(logits, frame_pad):
    best = np.asarray(jnp.argmax(logits, axis=-1))
    out = []
    for path, pad in zip(best, np.asarray(frame_pad)):
        path = path[pad == 0]
        merged = [int(c) for k, c in enumerate(path) if k == 0 or c != path[k - 1]]
        out.append([c for c in merged if c != BLANK])
    return out


def edit_distance(a, b):
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return int(d[-1])


def label_error_rate(decoded, labels, label_pad):
    refs = [[int(t) for t in l[p == 0]] for l, p in zip(np.asarray(labels), np.asarray(label_pad))]
    return sum(edit_distance(h, r) for h, r in zip(decoded, refs)) / sum(len(r) for r in refs), refs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", type=float, default=1.0, help="std of the frame noise (prototypes have std 1)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/ctc_synthetic.png")
    parser.add_argument("--smoke", action="store_true",
                        help="5 steps on 256 sequences: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.train_size, args.test_size = 5, 256, 32
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    rng = np.random.default_rng(args.seed)
    prototypes = rng.normal(size=(10, FEATURES)).astype(np.float32)
    silence = np.zeros(FEATURES, np.float32)
    train = make_data(args.train_size, prototypes, silence, args.noise, rng)
    test = make_data(args.test_size, prototypes, silence, args.noise, rng)

    model = ConvCTC(args.hidden, nnx.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.steps)
    optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, frames, frame_pad, labels, label_pad):
        def loss_fn(model):
            return ctc_loss(model(frames), frame_pad, labels, label_pad, blank_id=BLANK,
                            normalize_by_label_length=True)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def predict(model, frames):
        return model(frames)

    losses = []
    with tqdm(range(args.steps), desc="ctc", unit="step", mininterval=1.0, disable=None) as bar:
        for step in bar:
            idx = rng.integers(0, args.train_size, size=args.batch_size)
            loss = train_step(model, optimizer, *(jnp.asarray(a[idx]) for a in train))
            losses.append(float(loss))
            if step % 50 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")

    logits = predict(model, jnp.asarray(test[0]))
    decoded = greedy_decode(logits, test[1])
    ler, refs = label_error_rate(decoded, test[2], test[3])
    exact = np.mean([h == r for h, r in zip(decoded, refs)])
    print(f"held-out greedy label error rate {ler:.3%}, exact sequences {exact:.1%} "
          f"({args.test_size} sequences, noise {args.noise})")
    for h, r in list(zip(decoded, refs))[:3]:
        print(f"  reference {[d - 1 for d in r]} -> decoded {[d - 1 for d in h]}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
    ax[0].plot(losses)
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("ctc_loss per label")
    ax[0].set_title("training loss")
    length = int((test[1][0] == 0).sum())
    ax[1].imshow(test[0][0, :length].T, aspect="auto", cmap="coolwarm")
    ax[1].set_title(f"input frames of held-out #0, digits {[d - 1 for d in refs[0]]}")
    ax[1].set_xlabel("frame")
    probs = np.asarray(jax.nn.softmax(logits[0, :length], axis=-1)).T
    ax[2].imshow(probs, aspect="auto", cmap="viridis", interpolation="nearest")
    ax[2].set_yticks(range(11), ["blank"] + [str(d) for d in range(10)])
    ax[2].set_title(f"per-frame posteriors, decoded {[d - 1 for d in decoded[0]]}")
    ax[2].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    plt.close(fig)
    print(f"saved {shown(args.output)} ({time.time() - start:.1f} s)")
    return ler


if __name__ == "__main__":
    main()

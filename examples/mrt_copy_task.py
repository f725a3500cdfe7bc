"""Minimum risk training on BLEU: ``jaxloss.minimum_risk_loss`` fine-tunes a toy sequence model.

Task: read a random token sequence (length 8, tokens 1..15, 0 = padding) and
write it reversed. The model is a small Flax (NNX) non-autoregressive
sequence model: it embeds the input, mixes positions with an MLP and emits
independent per-position logits, so a sequence's log-probability is the sum
of its tokens' log-probabilities and sampling is one ``jax.random.categorical``.

1. Pre-training with token-level cross-entropy
   (``jaxloss.softmax_cross_entropy_with_integer_labels``), stopped early.
2. Fine-tuning with minimum risk training (Shen et al. 2016): for each input,
   S sequences are sampled from the model, scored with the jittable
   sentence-level ``jaxloss.text.bleu`` against the reference *inside the
   jitted training step*, and ``minimum_risk_loss`` minimises the expected
   ``1 - BLEU`` under the sharpened distribution over the samples.

Prints the held-out corpus BLEU of greedy outputs before and after (the
point is that BLEU itself is a usable training signal, not that it beats
more cross-entropy on this easy task).

    python examples/mrt_copy_task.py
    python examples/mrt_copy_task.py --smoke    # 3 + 3 steps, for CI
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

from jaxloss.text import bleu, corpus_bleu, minimum_risk_loss  # noqa: E402

try:  # written by another family; the module path keeps working after the flat export
    from jaxloss import softmax_cross_entropy_with_integer_labels  # noqa: E402
except ImportError:  # pragma: no cover
    from jaxloss.classification import softmax_cross_entropy_with_integer_labels  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
LENGTH, VOCAB = 8, 16


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class Seq2Seq(nnx.Module):
    def __init__(self, embed: int, hidden: int, rngs: nnx.Rngs):
        self.embed = nnx.Embed(VOCAB, embed, rngs=rngs)
        self.mix = nnx.Linear(LENGTH * embed, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, LENGTH * VOCAB, rngs=rngs)

    def __call__(self, tokens):
        h = self.embed(tokens).reshape(tokens.shape[0], -1)
        return self.out(nnx.relu(self.mix(h))).reshape(tokens.shape[0], LENGTH, VOCAB)


def make_data(n, rng):
    source = rng.integers(1, VOCAB, size=(n, LENGTH)).astype(np.int32)
    return source, source[:, ::-1].copy()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-steps", type=int, default=20,
                        help="kept short so the pre-trained model is far from perfect")
    parser.add_argument("--mrt-steps", type=int, default=400)
    parser.add_argument("--samples", type=int, default=16, help="S sequences sampled per input")
    parser.add_argument("--alpha", type=float, default=1.0, help="sharpness of minimum_risk_loss")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--mrt-learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=1000, help="held-out sequences")
    parser.add_argument("--output", default="outputs/mrt_copy_task.png")
    parser.add_argument("--smoke", action="store_true",
                        help="3 + 3 steps, 4 samples, 64 held-out sequences: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pretrain_steps, args.mrt_steps, args.samples, args.batch_size, args.test_size = 3, 3, 4, 16, 64
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    rng = np.random.default_rng(args.seed)
    test_src, test_tgt = make_data(args.test_size, rng)
    model = Seq2Seq(16, 256, nnx.Rngs(args.seed))

    @nnx.jit
    def evaluate(model, src, tgt):
        greedy = jnp.argmax(model(src), axis=-1).astype(jnp.int32)
        refs = tgt[:, None, :]
        return corpus_bleu(greedy, refs), jnp.mean(bleu(greedy, refs, smoothing="exp"))

    # --- 1. cross-entropy pre-training
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)

    @nnx.jit
    def ce_step(model, optimizer, src, tgt):
        def loss_fn(model):
            return softmax_cross_entropy_with_integer_labels(model(src), tgt)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    history = []
    # disable=None: no progress bar when the output is redirected to a file or a pipe.
    for step in tqdm(range(args.pretrain_steps), desc="cross-entropy", unit="step", mininterval=1.0, disable=None):
        ce_step(model, optimizer, *(jnp.asarray(a) for a in make_data(args.batch_size, rng)))
        if step % 5 == 0:
            history.append(("ce", step, float(evaluate(model, test_src, test_tgt)[0])))
    before, before_sent = (float(v) for v in evaluate(model, test_src, test_tgt))
    history.append(("ce", args.pretrain_steps, before))  # where minimum risk training starts
    print(f"after cross-entropy pre-training: corpus BLEU {before:.3f}, mean sentence BLEU {before_sent:.3f}")

    # --- 2. minimum risk training on sentence BLEU of samples
    optimizer = nnx.Optimizer(model, optax.adam(args.mrt_learning_rate), wrt=nnx.Param)

    @nnx.jit
    def mrt_step(model, optimizer, src, tgt, key):
        def loss_fn(model):
            log_probs = jax.nn.log_softmax(model(src))                                  # [B, L, V]
            samples = jax.random.categorical(key, log_probs, axis=-1,
                                             shape=(args.samples,) + log_probs.shape[:-1])  # [S, B, L]
            samples = jnp.moveaxis(samples, 0, 1).astype(jnp.int32)                      # [B, S, L]
            token_lp = jnp.take_along_axis(log_probs[:, None], samples[..., None], axis=-1)[..., 0]
            sample_log_probs = jnp.sum(token_lp, axis=-1)                                # [B, S]
            refs = jnp.broadcast_to(tgt[:, None, None, :], samples.shape[:2] + (1, LENGTH))
            rewards = bleu(samples, refs, smoothing="exp")                               # [B, S], jitted metric
            return minimum_risk_loss(sample_log_probs, rewards, alpha=args.alpha), jnp.mean(rewards)

        (loss, reward), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, reward

    key = jax.random.key(args.seed)
    with tqdm(range(args.mrt_steps), desc="minimum risk", unit="step", mininterval=1.0, disable=None) as bar:
        for step in bar:
            key, sub = jax.random.split(key)
            loss, reward = mrt_step(model, optimizer, *(jnp.asarray(a) for a in make_data(args.batch_size, rng)), sub)
            if step % 25 == 0:
                history.append(("mrt", args.pretrain_steps + step, float(evaluate(model, test_src, test_tgt)[0])))
                bar.set_postfix(risk=f"{float(loss):.3f}", sample_bleu=f"{float(reward):.3f}")
    after, after_sent = (float(v) for v in evaluate(model, test_src, test_tgt))
    print(f"after minimum risk training:      corpus BLEU {after:.3f}, mean sentence BLEU {after_sent:.3f}")
    print(f"held-out corpus BLEU (greedy): before {before:.3f} -> after {after:.3f}")

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for phase, label in (("ce", "cross-entropy"), ("mrt", "minimum_risk_loss on BLEU")):
        pts = [(s, b) for p, s, b in history if p == phase]
        ax.plot(*zip(*pts), marker="o", ms=3, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out corpus BLEU (greedy)")
    ax.set_title("reverse-copy task")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    plt.close(fig)
    print(f"saved {shown(args.output)} ({time.time() - start:.1f} s)")
    return before, after


if __name__ == "__main__":
    main()

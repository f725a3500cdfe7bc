"""Preference-tune a byte-level language model with ``jaxloss.preference``: DPO, IPO, SimPO, ORPO or KTO.

A small Flax (NNX) byte-level language model (an MLP over the previous
``--context`` bytes) is first fitted by maximum likelihood (SFT) on sentences
of a tiny grammar, ``the <noun>[s] <verb>[s].``, in which the verb agrees
with the subject (``the cat runs.``, ``the cats run.``) only half of the
time. Sampling from it gives a sentence that obeys agreement about half of
the time. The SFT model is then copied into a frozen reference and a policy,
and the policy is tuned on preference pairs that differ only in agreement
(chosen ``the dogs dig.``, rejected ``the dogs digs.``) with ``--loss``:

* ``dpo``: ``dpo_loss`` (sigmoid) on summed sequence log-probabilities, against the reference;
* ``ipo``: ``dpo_loss(loss_type="ipo")`` on length-averaged log-probabilities (as TRL);
* ``simpo``: ``simpo_loss`` on length-averaged log-probabilities, no reference;
* ``orpo``: the chosen sentence's NLL plus ``orpo_loss`` (odds ratio), no reference;
* ``kto``: ``kto_loss`` with chosen sentences as desirable and rejected ones as undesirable examples,
  unpaired, with the batch's KL estimate as ``kl``.

Every loss but ORPO (which has its own) also gets the chosen sentences'
negative log-likelihood per byte, weighted by ``--nll-weight`` (TRL's
``rpo_alpha``, Pang et al. 2024). Without it (``--nll-weight 0``) the pairs,
which differ in a single byte, are over-optimised: the held-out reward
accuracy reaches 1 while the policy moves probability to byte strings that
are not sentences at all, and sampled grammaticality collapses.

Sequence log-probabilities come from ``sequence_log_probs``. A quarter of the
(noun, verb) pairs are held out of the preference data; the script prints the
fraction of sampled sentences that are grammatical and that obey agreement,
before and after tuning, and the implicit reward accuracy on the held-out
pairs (the fraction of pairs whose chosen sentence gets the larger implicit
reward: ``beta * (log pi - log pi_ref)`` for the reference-based losses, the
policy's length-averaged log-probability for SimPO and ORPO)::

    python examples/dpo_bytes.py                 # dpo (the default)
    python examples/dpo_bytes.py --nll-weight 0  # pure DPO: watch the samples degrade
    python examples/dpo_bytes.py --loss kto
    python examples/dpo_bytes.py --loss simpo --beta 2.0
    python examples/dpo_bytes.py --smoke         # a few seconds, for CI
"""

from __future__ import annotations

import sys
import argparse
import itertools
import os
import re
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

import jaxloss.preference as preference  # noqa: E402

NOUNS = ("cat", "dog", "bird", "fox", "cow", "frog", "duck", "goat")
VERBS = ("run", "eat", "sing", "jump", "swim", "hide", "nap", "dig")
LENGTH = 18  # bytes per sentence slot (the longest sentence has 16)
PAD = 0  # byte 0 pads the left context and the end of a sentence
VOCAB = 256
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "simpo": 2.0, "orpo": 0.1, "kto": 0.1}
SENTENCE = re.compile(r"the ([a-z]+?)(s?) ([a-z]+?)(s?)\.")


def sentence(noun: str, plural: bool, verb: str, agrees: bool) -> str:
    verb_s = (not plural) if agrees else plural  # singular subjects take the -s form
    return f"the {noun}{'s' if plural else ''} {verb}{'s' if verb_s else ''}."


def judge(text: str) -> tuple[bool, bool]:
    """(grammatical, obeys agreement) of one sampled sentence."""
    m = SENTENCE.fullmatch(text)
    if m is None or m.group(1) not in NOUNS or m.group(3) not in VERBS:
        return False, False
    return True, (m.group(2) == "s") != (m.group(4) == "s")


def encode(texts) -> tuple[np.ndarray, np.ndarray]:
    """Byte tokens [N, LENGTH] and the mask of real bytes (up to and including the full stop)."""
    tokens = np.full((len(texts), LENGTH), PAD, np.int32)
    for i, t in enumerate(texts):
        tokens[i, :len(t)] = np.frombuffer(t.encode(), np.uint8)
    return tokens, tokens != PAD


class ByteMLP(nnx.Module):
    def __init__(self, context: int, embed: int, width: int, rngs: nnx.Rngs):
        self.context = context
        self.embed = nnx.Embed(VOCAB, embed, rngs=rngs)
        self.layer1 = nnx.Linear(context * embed, width, rngs=rngs)
        self.layer2 = nnx.Linear(width, width, rngs=rngs)
        self.out = nnx.Linear(width, VOCAB, rngs=rngs)

    def next_logits(self, windows):
        """windows [..., context] of previous bytes -> logits [..., VOCAB] of the next byte."""
        x = self.embed(windows).reshape(*windows.shape[:-1], -1)
        return self.out(nnx.gelu(self.layer2(nnx.gelu(self.layer1(x)))))

    def __call__(self, tokens):
        """tokens [B, L] -> logits [B, L, VOCAB]; position t is scored from bytes t - context .. t - 1."""
        padded = jnp.pad(tokens, ((0, 0), (self.context, 0)), constant_values=PAD)
        idx = jnp.arange(tokens.shape[1])[:, None] + jnp.arange(self.context)[None, :]
        return self.next_logits(padded[:, idx])  # [B, L, context] windows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="dpo", choices=tuple(DEFAULT_BETA))
    parser.add_argument("--beta", type=float, default=None, help="beta of the loss (default: TRL's for that loss)")
    parser.add_argument("--nll-weight", type=float, default=1.0,
                        help="weight of the chosen sentences' NLL added to the loss "
                             "(TRL's rpo_alpha; ORPO has its own)")
    parser.add_argument("--context", type=int, default=LENGTH)
    parser.add_argument("--sft-steps", type=int, default=800)
    parser.add_argument("--steps", type=int, default=200, help="preference-tuning steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sft-learning-rate", type=float, default=2e-3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--samples", type=int, default=1000, help="sentences sampled to count agreement")
    parser.add_argument("--eval-every", type=int, default=20, help="preference steps between sampling checks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything, for CI")
    parser.add_argument("--output", default="outputs/dpo_bytes.png")
    args = parser.parse_args(argv)
    if args.beta is None:
        args.beta = DEFAULT_BETA[args.loss]
    if args.smoke:
        args.sft_steps, args.steps, args.samples, args.eval_every = 30, 10, 100, 5
    return args


def make_sampler(graphdef, context: int, count: int):
    @jax.jit
    def sample(params, key):
        model = nnx.merge(graphdef, params)

        def body(carry, key_t):
            window, done = carry
            byte = jax.random.categorical(key_t, model.next_logits(window))
            byte = jnp.where(done, PAD, byte)
            done = done | (byte == ord("."))
            return (jnp.concatenate([window[:, 1:], byte[:, None]], axis=1), done), byte

        start = (jnp.full((count, context), PAD, jnp.int32), jnp.zeros((count,), bool))
        _, tokens = jax.lax.scan(body, start, jax.random.split(key, LENGTH))
        return tokens.T

    def texts(params, key):
        out = []
        for row in np.asarray(sample(params, key)):
            row = row[:np.flatnonzero(row == PAD)[0]] if (row == PAD).any() else row
            out.append(bytes(row.astype(np.uint8)).decode("latin-1"))
        return out

    return texts


def rule_stats(texts) -> tuple[float, float]:
    verdicts = np.array([judge(t) for t in texts])
    return float(verdicts[:, 0].mean()), float(verdicts[:, 1].mean())


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    # SFT corpus: every choice independent, so agreement holds half of the time.
    combos = list(itertools.product(NOUNS, (False, True), VERBS))
    sft_texts = [sentence(*combos[i], agrees=bool(a))
                 for i, a in zip(rng.integers(0, len(combos), 20000), rng.integers(0, 2, 20000))]
    sft_tokens, sft_mask = encode(sft_texts)
    # Preference pairs: the same sentence with and without agreement; a quarter of the (noun, verb)
    # pairs are held out for the implicit reward accuracy.
    held_out = {(n, v) for n, v in itertools.product(NOUNS, VERBS) if rng.random() < 0.25}
    pairs = {"train": ([], []), "held-out": ([], [])}
    for noun, plural, verb in combos:
        split = "held-out" if (noun, verb) in held_out else "train"
        pairs[split][0].append(sentence(noun, plural, verb, agrees=True))
        pairs[split][1].append(sentence(noun, plural, verb, agrees=False))
    (chosen, chosen_mask), (rejected, rejected_mask) = (encode(t) for t in pairs["train"])
    (eval_chosen, eval_chosen_mask), (eval_rejected, eval_rejected_mask) = (encode(t) for t in pairs["held-out"])
    print(f"SFT corpus: {len(sft_texts)} sentences, {np.mean([judge(t)[1] for t in sft_texts]):.1%} obeying "
          f"agreement; preference pairs: {len(chosen)} for training, {len(eval_chosen)} held out; loss: {args.loss} "
          f"(beta {args.beta})")

    model = ByteMLP(args.context, 32, 256, nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    sampler = make_sampler(graphdef, args.context, args.samples)

    def log_probs(p, tokens, mask, average=False):
        logits = nnx.merge(graphdef, p)(tokens)
        return preference.sequence_log_probs(logits, tokens, where=mask, average=average)

    # 1. SFT: maximum likelihood of the corpus (mean negative log-likelihood per byte).
    sft_optimizer = optax.adam(args.sft_learning_rate)
    sft_state = sft_optimizer.init(params)

    @jax.jit
    def sft_step(p, state, tokens, mask):
        def nll(p):
            return -jnp.sum(log_probs(p, tokens, mask)) / jnp.sum(mask)
        loss, grads = jax.value_and_grad(nll)(p)
        updates, state = sft_optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    bar = tqdm(range(args.sft_steps), desc="SFT", mininterval=0.5, disable=not sys.stderr.isatty())
    for i in bar:
        idx = rng.integers(0, len(sft_tokens), args.batch_size)
        params, sft_state, loss = sft_step(params, sft_state, jnp.asarray(sft_tokens[idx]), jnp.asarray(sft_mask[idx]))
        if i % 50 == 0:
            bar.set_postfix(nll_per_byte=f"{float(loss):.3f}")
    reference = params  # frozen from here on
    key = jax.random.key(args.seed)
    key, sub = jax.random.split(key)
    before_texts = sampler(reference, sub)
    before = rule_stats(before_texts)
    print(f"after SFT: {before[0]:.1%} of {args.samples} samples grammatical, {before[1]:.1%} obey agreement")

    # 2. Preference tuning against the frozen reference.
    averaged = args.loss in ("ipo", "simpo", "orpo")  # these methods use length-averaged log-probabilities
    reference_free = args.loss in ("simpo", "orpo")

    # The reference is frozen and the pairs are fixed: its log-probabilities are computed once.
    reference_logps = jax.jit(lambda c, cm, r, rm: (log_probs(reference, c, cm, averaged),
                                                    log_probs(reference, r, rm, averaged)))
    train_data = tuple(jnp.asarray(a) for a in (chosen, chosen_mask, rejected, rejected_mask))
    held_out_data = tuple(jnp.asarray(a) for a in (eval_chosen, eval_chosen_mask, eval_rejected, eval_rejected_mask))
    train_reference = reference_logps(*train_data)
    held_out_reference = reference_logps(*held_out_data)

    def objective(p, c, cm, r, rm, rc, rr):
        pc, pr = log_probs(p, c, cm, averaged), log_probs(p, r, rm, averaged)
        if args.nll_weight and args.loss != "orpo":
            nll = -jnp.sum(log_probs(p, c, cm)) / jnp.sum(cm)  # per byte, as the SFT loss
            return args.nll_weight * nll + preference_loss(pc, pr, rc, rr)
        return preference_loss(pc, pr, rc, rr)

    def preference_loss(pc, pr, rc, rr):
        if args.loss == "dpo":
            return preference.dpo_loss(pc, pr, rc, rr, beta=args.beta)
        if args.loss == "ipo":
            return preference.dpo_loss(pc, pr, rc, rr, beta=args.beta, loss_type="ipo")
        if args.loss == "simpo":
            return preference.simpo_loss(pc, pr, beta=args.beta)
        if args.loss == "orpo":  # ORPO's NLL of the chosen sentence, from the averaged log-probabilities
            return -jnp.mean(pc) + preference.orpo_loss(pc, pr, beta=args.beta)
        # KTO: unpaired; chosen sentences are desirable, rejected ones undesirable.
        policy, ref = jnp.concatenate([pc, pr]), jnp.concatenate([rc, rr])
        desirable = jnp.arange(policy.shape[0]) < pc.shape[0]
        kl = jax.lax.stop_gradient(jnp.maximum(jnp.mean(policy - ref), 0.0))  # the batch KL estimate
        return preference.kto_loss(policy, ref, desirable, beta=args.beta, kl=kl)

    @jax.jit
    def reward_accuracy(p, c, cm, r, rm, rc, rr):
        """Fraction of pairs whose chosen sentence has the larger implicit reward (ties count half)."""
        pc, pr = log_probs(p, c, cm, averaged), log_probs(p, r, rm, averaged)
        if not reference_free:
            pc, pr = pc - rc, pr - rr  # beta > 0 does not change the comparison
        return jnp.mean(jnp.where(pc > pr, 1.0, jnp.where(pc == pr, 0.5, 0.0)))

    optimizer = optax.adam(args.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(p, state, idx):
        batch = tuple(a[idx] for a in (*train_data, *train_reference))
        loss, grads = jax.value_and_grad(objective)(p, *batch)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    def held_out_accuracy(p):
        return float(reward_accuracy(p, *held_out_data, *held_out_reference))

    accuracy_before = held_out_accuracy(params)
    history = {"step": [0], "loss": [float("nan")], "accuracy": [accuracy_before], "grammatical": [before[0]],
               "obey": [before[1]]}
    batch = min(args.batch_size, len(chosen))
    bar = tqdm(range(1, args.steps + 1), desc=args.loss, mininterval=0.5, disable=not sys.stderr.isatty())
    for i in bar:
        params, opt_state, loss = step(params, opt_state, jnp.asarray(rng.permutation(len(chosen))[:batch]))
        if i % args.eval_every == 0 or i == args.steps:
            key, sub = jax.random.split(key)
            grammatical, obey = rule_stats(sampler(params, sub))
            for name, value in zip(history, (i, float(loss), held_out_accuracy(params), grammatical, obey)):
                history[name].append(value)
            bar.set_postfix(loss=f"{float(loss):.4f}", reward_accuracy=f"{history['accuracy'][-1]:.3f}",
                            obey=f"{obey:.3f}", grammatical=f"{grammatical:.3f}")

    key, sub = jax.random.split(key)
    after_texts = sampler(params, sub)
    after = rule_stats(after_texts)
    accuracy_after = held_out_accuracy(params)
    print(f"\n{'':28s} {'grammatical':>12s} {'obey agreement':>15s}")
    print(f"{'before (SFT reference)':28s} {before[0]:12.1%} {before[1]:15.1%}")
    print(f"{'after ' + args.loss:28s} {after[0]:12.1%} {after[1]:15.1%}")
    print(f"implicit reward accuracy on {len(eval_chosen)} held-out pairs: {accuracy_before:.3f} before, "
          f"{accuracy_after:.3f} after")
    print("samples after tuning: " + " | ".join(after_texts[:6]))

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(11, 4))
    labels = ["grammatical", "obey agreement"]
    for j, (name, values) in enumerate((("before (SFT)", before), (f"after {args.loss}", after))):
        ax_bar.bar(np.arange(2) + (j - 0.5) * 0.38, values, 0.38, label=name)
        for i, v in enumerate(values):
            ax_bar.text(i + (j - 0.5) * 0.38, v + 0.01, f"{v:.0%}", ha="center", fontsize=9)
    ax_bar.set_xticks(np.arange(2), labels)
    ax_bar.set(ylim=(0, 1.1), ylabel=f"fraction of {args.samples} samples", title="sampled sentences")
    ax_bar.legend(loc="lower right")
    for name, label in (("obey", "samples obeying agreement"), ("grammatical", "samples grammatical"),
                        ("accuracy", "held-out implicit reward accuracy")):
        ax_curve.plot(history["step"], history[name], marker=".", label=label)
    ax_curve.set(xlabel="preference step", ylim=(0, 1.05),
                 title=f"{args.loss} (beta {args.beta}, lr {args.learning_rate}, NLL weight {args.nll_weight})")
    ax_loss = ax_curve.twinx()
    ax_loss.plot(history["step"], history["loss"], color="0.5", ls="--", label="training loss")
    ax_loss.set_ylabel("training loss (dashed)")
    ax_curve.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"chart written to {args.output}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return {"grammatical_before": before[0], "obey_before": before[1], "grammatical_after": after[0],
            "obey_after": after[1], "reward_accuracy_before": accuracy_before, "reward_accuracy_after": accuracy_after}


if __name__ == "__main__":
    main()

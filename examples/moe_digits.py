"""A mixture-of-experts classifier on scikit-learn's digits, with and without ``jaxloss.routing.load_balancing_loss``.

Each 8x8 digit is read as a sequence of 8 tokens (its rows). A Flax (NNX)
model embeds the tokens, sends each one through a mixture-of-experts
feed-forward layer (a router picks the ``--top-k`` best of ``--experts``
small MLPs per token, Switch/Mixtral style: the chosen experts' outputs are
mixed with the renormalised router probabilities), pools the tokens and
classifies. The same model, from the same initialisation, is trained twice:
on the cross-entropy alone, and with the Switch Transformer auxiliary loss
``load_balancing_loss`` (weight ``--balance-weight``) plus a small
``router_z_loss``. Without the auxiliary loss the load is uneven: early in
training most tokens go to two or three experts, and at the end some experts
still take several times the share of others (an expert that receives few
tokens gets little gradient, so it stays behind). With it, the tokens spread
evenly over all experts at no cost in accuracy. The script prints test
accuracy, each expert's share of the test tokens and the effective number of
experts ``exp(entropy of the shares)``, and saves a chart::

    python examples/moe_digits.py                 # top-1 of 8 experts (the default)
    python examples/moe_digits.py --top-k 2 --experts 16
    python examples/moe_digits.py --smoke         # a few seconds, for CI
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
import jaxloss.routing  # noqa: E402

TOKENS, TOKEN_SIZE = 8, 8  # the rows of an 8x8 image


class MoEClassifier(nnx.Module):
    def __init__(self, dim: int, experts: int, hidden: int, top_k: int, rngs: nnx.Rngs):
        self.top_k = top_k
        self.embed = nnx.Linear(TOKEN_SIZE, dim, rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (TOKENS, dim)))
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.router = nnx.Linear(dim, experts, rngs=rngs)
        init = nnx.initializers.lecun_normal()
        self.w_in = nnx.Param(jax.vmap(lambda k: init(k, (dim, hidden)))(jax.random.split(rngs.params(), experts)))
        self.w_out = nnx.Param(jax.vmap(lambda k: init(k, (hidden, dim)))(jax.random.split(rngs.params(), experts)))
        self.head = nnx.Linear(dim, 10, rngs=rngs)

    def __call__(self, images):
        """images [B, 64] -> (class logits [B, 10], router logits [B * 8, E], chosen experts [B * 8, k])."""
        tokens = self.embed(images.reshape(-1, TOKENS, TOKEN_SIZE)) + self.position[None]
        x = self.norm(tokens).reshape(-1, tokens.shape[-1])  # [T, dim], T = B * 8 tokens
        router_logits = self.router(x)
        top_logits, chosen = jax.lax.top_k(router_logits, self.top_k)  # [T, k]
        gates = jax.nn.softmax(top_logits, axis=-1)  # renormalised over the chosen experts
        # Every expert on every token (cheap at this size), then keep the chosen ones.
        hidden = nnx.gelu(jnp.einsum("td,edh->teh", x, self.w_in[...]))
        outputs = jnp.einsum("teh,ehd->ted", hidden, self.w_out[...])  # [T, E, dim]
        mix = jnp.sum(jax.nn.one_hot(chosen, router_logits.shape[-1]) * gates[..., None], axis=1)  # [T, E]
        moe = jnp.einsum("te,ted->td", mix, outputs).reshape(tokens.shape)
        pooled = jnp.mean(tokens + moe, axis=1)
        return self.head(pooled), router_logits, chosen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--expert-hidden", type=int, default=64)
    parser.add_argument("--balance-weight", type=float, default=0.01, help="weight of load_balancing_loss")
    parser.add_argument("--z-weight", type=float, default=1e-3, help="weight of router_z_loss in the balanced run")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps of everything, for CI")
    parser.add_argument("--output", default="outputs/moe_digits.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = 50
    return args


def expert_shares(chosen, experts: int) -> np.ndarray:
    """Fraction of the (token, slot) assignments that went to each expert; sums to 1."""
    return np.bincount(np.asarray(chosen).ravel(), minlength=experts) / np.asarray(chosen).size


def effective_experts(share: np.ndarray) -> float:
    """exp(entropy of the shares): E when perfectly balanced, 1 when one expert takes everything."""
    p = share[share > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def train_model(args, balance: bool, x_train, y_train, x_test, y_test, label: str):
    model = MoEClassifier(args.dim, args.experts, args.expert_hidden, args.top_k, nnx.Rngs(args.seed))
    schedule = optax.cosine_decay_schedule(args.learning_rate, args.steps, alpha=0.05)
    optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, images, labels):
        def objective(model):
            logits, router_logits, chosen = model(images)
            ce = jaxloss.classification.softmax_cross_entropy_with_integer_labels(logits, labels)
            balance_loss = jaxloss.routing.load_balancing_loss(router_logits, top_k=args.top_k)
            z = jaxloss.routing.router_z_loss(router_logits)
            total = ce + (args.balance_weight * balance_loss + args.z_weight * z if balance else 0.0)
            return total, (ce, balance_loss, chosen)

        (_, (ce, balance_loss, chosen)), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return ce, balance_loss, chosen

    @nnx.jit
    def evaluate(model, images):
        logits, _, chosen = model(images)
        return jnp.argmax(logits, -1), chosen

    rng = np.random.default_rng(args.seed)
    history = {"step": [], "effective": []}
    bar = tqdm(range(1, args.steps + 1), desc=label, leave=False, mininterval=0.5, disable=not sys.stderr.isatty())
    for i in bar:
        idx = rng.integers(0, len(y_train), args.batch_size)
        ce, balance_loss, chosen = step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
        if i % 50 == 0 or i == args.steps:
            history["step"].append(i)
            history["effective"].append(effective_experts(expert_shares(chosen, args.experts)))
            bar.set_postfix(ce=f"{float(ce):.3f}", balance=f"{float(balance_loss):.3f}",
                            experts=f"{history['effective'][-1]:.1f}")
    predictions, chosen = evaluate(model, jnp.asarray(x_test))
    test_accuracy = float(np.mean(np.asarray(predictions) == y_test))
    share = expert_shares(chosen, args.experts)
    return test_accuracy, share, history


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not 1 <= args.top_k <= args.experts:
        raise SystemExit(f"--top-k must be in [1, --experts={args.experts}], got {args.top_k}")
    start = time.perf_counter()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
    print(f"{len(y_train)} training and {len(y_test)} test images, {TOKENS} tokens each; "
          f"{args.experts} experts, top-{args.top_k} routing")

    runs = {}
    for balance, label in ((False, "cross-entropy only"), (True, "+ load_balancing_loss")):
        accuracy, share, history = train_model(args, balance, x_train, y_train, x_test, y_test, label)
        runs[label] = (accuracy, share, history)
        print(f"\n{label}: test accuracy {accuracy:.4f}, effective experts {effective_experts(share):.2f} "
              f"of {args.experts}, largest share {share.max():.3f}")
        print("  share of test tokens per expert: " + "  ".join(f"{e}:{s:.3f}" for e, s in enumerate(share)))

    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig, (ax_share, ax_eff) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.4
    for j, (label, (accuracy, share, history)) in enumerate(runs.items()):
        ax_share.bar(np.arange(args.experts) + (j - 0.5) * width, share, width,
                     label=f"{label} (test acc {accuracy:.3f})")
        ax_eff.plot(history["step"], history["effective"], label=label)
    ax_share.axhline(1.0 / args.experts, color="k", lw=0.8, ls="--", label="uniform")
    ax_share.set(xlabel="expert", ylabel="share of test tokens", title="where the router sends tokens")
    ax_share.legend(fontsize=8)
    ax_eff.set(xlabel="training step", ylabel="effective experts, exp(entropy of shares)",
               ylim=(0, args.experts + 0.5), title="balance during training (per minibatch)")
    ax_eff.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"\nchart written to {args.output}")
    print(f"total time: {time.perf_counter() - start:.1f} s")
    return {label: {"test_accuracy": acc, "expert_share": share.tolist(), "effective_experts": effective_experts(share)}
            for label, (acc, share, _) in runs.items()}


if __name__ == "__main__":
    main()

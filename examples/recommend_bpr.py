"""Matrix factorisation for implicit feedback, trained with four sampled ranking losses.

Synthetic data with a known latent structure: users and items get hidden
factors, each user interacts with items drawn (without replacement) with
probability increasing in the hidden affinity, and two interactions per user
are held out. A matrix factorisation model (user and item embeddings, score =
dot product) is trained with ``jaxloss.ranking``'s BPR, TOP1, BPR-max and
TOP1-max losses side by side, each on one positive against K sampled negatives
(negatives that are training positives of the user are masked with ``where``).
It prints recall@10 and NDCG@10 on the held-out interactions next to random,
most-popular and oracle (the hidden affinities) rankings, and saves a figure
under ``outputs/``.

Run from the repository root::

    python examples/recommend_bpr.py
    python examples/recommend_bpr.py --smoke     # 200 users, 10 steps per loss, for CI

One full run took 65 s on two shared CPU cores (fixed seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from jaxloss import ranking  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRUE_DIM, PER_USER, HELD_OUT, DIM = 6, 24, 2, 16


@dataclasses.dataclass(frozen=True)
class Setup:
    """Sizes of the data and of the training run (``--smoke`` shrinks them)."""

    num_users: int = 1000
    num_items: int = 600
    negatives: int = 64     # K sampled negatives per positive
    batch: int = 512
    steps: int = 1200
    chunk: int = 100        # steps per jitted lax.scan (one point of the curves)


SMOKE = Setup(num_users=200, num_items=100, negatives=8, batch=64, steps=10, chunk=5)


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

LOSSES = {
    "BPR": ranking.bpr_loss,
    "TOP1": ranking.top1_loss,
    "BPR-max": ranking.bpr_max_loss,
    "TOP1-max": ranking.top1_max_loss,
}


def make_data(rng: np.random.Generator, setup: Setup):
    """Implicit feedback from hidden factors; returns train/test interaction sets."""
    user_factors = rng.normal(size=(setup.num_users, TRUE_DIM))
    item_factors = rng.normal(size=(setup.num_items, TRUE_DIM))
    popularity = rng.normal(scale=0.5, size=setup.num_items)  # a popularity bias as well
    logits = 1.5 * user_factors @ item_factors.T / np.sqrt(TRUE_DIM) + popularity
    # Gumbel top-k: PER_USER items per user without replacement, P ~ softmax(logits).
    gumbel = rng.gumbel(size=logits.shape)
    chosen = np.argsort(-(logits + gumbel), axis=1)[:, :PER_USER]
    chosen = rng.permuted(chosen, axis=1)
    test_items = chosen[:, :HELD_OUT]
    train_items = chosen[:, HELD_OUT:]
    train = np.zeros((setup.num_users, setup.num_items), bool)
    np.put_along_axis(train, train_items, True, axis=1)
    test = np.zeros((setup.num_users, setup.num_items), bool)
    np.put_along_axis(test, test_items, True, axis=1)
    pairs = np.stack(np.nonzero(train), axis=1).astype(np.int32)  # (user, item) training interactions
    return train, test, pairs, logits


def init_params(key, setup: Setup):
    ku, ki = jax.random.split(key)
    return {"users": 0.1 * jax.random.normal(ku, (setup.num_users, DIM)),
            "items": 0.1 * jax.random.normal(ki, (setup.num_items, DIM))}


def make_trainer(loss_fn, train_mask, pairs, optimizer, setup: Setup):
    train_mask = jnp.asarray(train_mask)
    pairs = jnp.asarray(pairs)

    def loss(params, users, positives, negatives):
        u = params["users"][users]                                  # [B, D]
        pos = jnp.sum(u * params["items"][positives], axis=-1)      # [B]
        neg = jnp.einsum("bd,bkd->bk", u, params["items"][negatives])  # [B, K]
        # Sampled "negatives" the user actually interacted with are not negatives.
        where = ~train_mask[users[:, None], negatives]               # [B, K], valid negatives
        l2 = 1e-3 * (jnp.sum(u ** 2) + jnp.sum(params["items"][positives] ** 2)) / users.shape[0]
        return loss_fn(pos, neg, where=where) + l2

    def step(carry, key):
        params, opt_state = carry
        k1, k2 = jax.random.split(key)
        batch = pairs[jax.random.randint(k1, (setup.batch,), 0, pairs.shape[0])]
        negatives = jax.random.randint(k2, (setup.batch, setup.negatives), 0, setup.num_items)
        value, grads = jax.value_and_grad(loss)(params, batch[:, 0], batch[:, 1], negatives)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    @jax.jit
    def run_chunk(params, opt_state, key):
        (params, opt_state), values = jax.lax.scan(step, (params, opt_state), jax.random.split(key, setup.chunk))
        return params, opt_state, values

    return run_chunk


@jax.jit
def top10(params, train_mask):
    scores = params["users"] @ params["items"].T
    scores = jnp.where(train_mask, -jnp.inf, scores)  # never recommend training items
    return jax.lax.top_k(scores, 10)[1]


def evaluate(params, train_mask, test_mask):
    """recall@10 and NDCG@10 over the held-out interactions (binary relevance)."""
    top = np.asarray(top10(params, jnp.asarray(train_mask)))
    hits = np.take_along_axis(test_mask, top, axis=1).astype(np.float64)   # [U, 10]
    num_test = test_mask.sum(1)
    recall = hits.sum(1) / np.minimum(num_test, 10)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    dcg = (hits * discounts).sum(1)
    idcg = np.array([discounts[: min(n, 10)].sum() for n in num_test])
    return float(recall.mean()), float((dcg / idcg).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "outputs" / "recommend_bpr.png"))
    parser.add_argument("--smoke", action="store_true",
                        help="200 users, 100 items, 10 steps per loss: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    setup = SMOKE if args.smoke else Setup()
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    train, test, pairs, true_logits = make_data(rng, setup)
    print(f"{setup.num_users} users, {setup.num_items} items, {pairs.shape[0]} training interactions, "
          f"{int(test.sum())} held out; hidden dimension {TRUE_DIM}, model dimension {DIM}")
    # Reference points: random and most-popular recommendations.
    popular = {"users": jnp.ones((setup.num_users, 1)),
               "items": jnp.asarray(train.sum(0, keepdims=True).T, jnp.float32)}
    rand = {"users": jnp.asarray(rng.normal(size=(setup.num_users, 4)), jnp.float32),
            "items": jnp.asarray(rng.normal(size=(setup.num_items, 4)), jnp.float32)}
    # The ceiling: ranking by the hidden affinities that generated the data.
    oracle = {"users": jnp.asarray(true_logits, jnp.float32), "items": jnp.eye(setup.num_items)}
    baselines = {"random": evaluate(rand, train, test), "most popular": evaluate(popular, train, test),
                 "oracle": evaluate(oracle, train, test)}

    optimizer = optax.adam(3e-3)
    results, curves = {}, {}
    chunks = setup.steps // setup.chunk
    # disable=None: no progress bar when the output is redirected to a file or a pipe.
    bar = tqdm(total=len(LOSSES) * chunks, desc="training", unit="chunk", disable=None)
    for i, (name, loss_fn) in enumerate(LOSSES.items()):
        key = jax.random.PRNGKey(args.seed)  # the same initialisation and batches for every loss
        key, init_key = jax.random.split(key)
        params = init_params(init_key, setup)
        opt_state = optimizer.init(params)
        run_chunk = make_trainer(loss_fn, train, pairs, optimizer, setup)
        losses, recalls = [], []
        for c in range(chunks):
            key, sub = jax.random.split(key)
            params, opt_state, values = run_chunk(params, opt_state, sub)
            losses.append(float(values.mean()))
            recalls.append(evaluate(params, train, test)[0])
            bar.set_postfix(loss=name, value=f"{losses[-1]:.4f}", recall10=f"{recalls[-1]:.3f}")
            bar.update()
        results[name] = evaluate(params, train, test)
        curves[name] = (np.array(losses), np.array(recalls))
    bar.close()

    print(f"\n{'method':<14}{'recall@10':>10}{'NDCG@10':>10}")
    for name, (rec, ndcg) in {**baselines, **results}.items():
        print(f"{name:<14}{rec:>10.4f}{ndcg:>10.4f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, chunks + 1) * setup.chunk
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, (losses, recalls) in curves.items():
        axes[0].plot(steps, losses / losses[0], label=name)
        axes[1].plot(steps, recalls, label=name)
    for name, (rec, _) in baselines.items():
        axes[1].axhline(rec, ls="--", c={"random": "gray", "most popular": "k", "oracle": "purple"}[name], lw=1,
                        label=name)
    axes[0].set(title="training loss (relative to the first chunk)", xlabel="step", yscale="log")
    axes[1].set(title="held-out recall@10", xlabel="step")
    names = list(baselines) + list(results)
    x = np.arange(len(names))
    table = {**baselines, **results}
    axes[2].bar(x - 0.2, [table[n][0] for n in names], 0.4, label="recall@10")
    axes[2].bar(x + 0.2, [table[n][1] for n in names], 0.4, label="NDCG@10")
    axes[2].set_xticks(x, names, rotation=20)
    axes[2].set(title="final held-out metrics")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Matrix factorisation on synthetic implicit feedback: BPR, TOP1, BPR-max, TOP1-max (jaxloss.ranking)")
    fig.tight_layout()
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nfigure: {shown(path)}")
    print(f"total time {time.time() - t0:.1f}s")
    return {name: {"recall@10": rec, "ndcg@10": ndcg} for name, (rec, ndcg) in {**baselines, **results}.items()}


if __name__ == "__main__":
    main()

"""A byte-level language model trained on this project's README with a data x model mesh.

A small MLP over a window of the previous ``--context`` bytes (Flax NNX, Optax
AdamW) predicts the next byte of ``README.md``. Training runs under
``jax.shard_map`` on a ``("data", "model")`` mesh of 8 simulated CPU devices
(2 x 4): the batch is split over ``"data"``, and the output projection
``[D, 256]`` and its bias are split over ``"model"`` (each device holds 64
contiguous byte ids). ``jaxloss.linear_softmax_cross_entropy(...,
axis_name="model")`` combines the per-slice log-sum-exp statistics, so no
device ever holds the full logits; each data shard's sum over its tokens,
divided by the global batch size, adds up to the global mean. The script first checks that the sharded loss
and gradients equal the single-device ones, then trains, prints the loss going
down and a greedy sample, and saves the loss curve to ``outputs/sharded_lm.png``::

    python examples/sharded_lm.py              # 800 steps (40 s of training in one run on 2 shared CPU cores)
    python examples/sharded_lm.py --steps 200  # a quick look
    python examples/sharded_lm.py --smoke      # 3 steps of 16 windows, for CI

The number of CPU devices is fixed when JAX starts, so ``XLA_FLAGS`` is set
below before ``jax`` is imported (an existing device-count flag is kept).
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxloss  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 256  # bytes
EMBED, WIDTH, HIDDEN = 24, 384, 128


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class ByteMLP(nnx.Module):
    """Embeds a window of bytes, two GELU layers, then an output projection kept as raw parameters.

    The projection (``head_w [HIDDEN, VOCAB]``, ``head_b [VOCAB]``) is not applied in
    ``__call__``: the fused loss takes it, sharded, and the logits are never formed.
    """

    def __init__(self, context: int, rngs: nnx.Rngs):
        self.embed = nnx.Embed(VOCAB, EMBED, rngs=rngs)
        self.layer1 = nnx.Linear(context * EMBED, WIDTH, rngs=rngs)
        self.layer2 = nnx.Linear(WIDTH, HIDDEN, rngs=rngs)
        self.norm = nnx.LayerNorm(HIDDEN, rngs=rngs)
        self.head_w = nnx.Param(jax.random.normal(rngs.params(), (HIDDEN, VOCAB)) * HIDDEN**-0.5)
        self.head_b = nnx.Param(jnp.zeros((VOCAB,)))

    def __call__(self, window: jax.Array) -> jax.Array:
        x = self.embed(window).reshape(window.shape[0], -1)
        return self.norm(nnx.gelu(self.layer2(nnx.gelu(self.layer1(x)))))


def param_spec(path) -> P:
    """Output projection split over the vocabulary ("model"), everything else replicated."""
    name = path[0].key
    return {"head_w": P(None, "model"), "head_b": P("model")}.get(name, P())


def windows(data: np.ndarray, starts: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    chunk = data[idx]
    return chunk[:, :-1].astype(np.int32), chunk[:, -1].astype(np.int32)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=128, help="global batch (windows per step)")
    parser.add_argument("--context", type=int, default=8, help="bytes of context")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", type=Path, default=ROOT / "README.md")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "sharded_lm.png", help="figure path")
    parser.add_argument("--sample", type=int, default=240, help="bytes of greedy sample")
    parser.add_argument("--smoke", action="store_true",
                        help="3 steps of 16 windows, a 16-byte sample: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.sample = 3, 16, 16

    n = jax.device_count()
    model_axis = next(m for m in (4, 2, 1) if n % m == 0)
    mesh = jax.make_mesh((n // model_axis, model_axis), ("data", "model"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)
    data_axis = n // model_axis
    if args.batch % data_axis:
        parser.error(f"--batch must be a multiple of the data axis ({data_axis})")
    text = np.frombuffer(args.text.read_bytes(), np.uint8)
    print(f"{n} {jax.devices()[0].platform} devices as a {data_axis} (data) x {model_axis} (model) mesh; "
          f"{args.text.name}: {len(text)} bytes; the output projection [{HIDDEN}, {VOCAB}] holds "
          f"{VOCAB // model_axis} byte ids per model shard")

    rng = np.random.default_rng(args.seed)
    split = int(0.9 * len(text))
    train_starts = np.arange(split - args.context - 1)
    valid_starts = np.arange(split, len(text) - args.context - 1)

    model = ByteMLP(args.context, nnx.Rngs(args.seed))
    graphdef, state = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(state)
    specs = jax.tree_util.tree_map_with_path(lambda path, _: param_spec(path), params)
    params = jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), params, specs)
    schedule = optax.cosine_decay_schedule(args.lr, args.steps, alpha=0.1)
    optimizer = optax.adamw(schedule, weight_decay=args.weight_decay)
    opt_state = optimizer.init(params)

    def forward(p, window):
        local = jax.tree.map(lambda x: x, state)  # a fresh State to fill with p's arrays
        nnx.replace_by_pure_dict(local, p)
        return nnx.merge(graphdef, local)(window), p["head_w"], p["head_b"]

    def local_loss(p, window, target):
        # Inside shard_map: a [B / data, ...] slice of the batch and a [HIDDEN, VOCAB / model]
        # slice of the projection. The per-token values are already global over the vocabulary
        # (axis_name="model"); this device's share of the global mean is sum / global batch.
        hidden, w, b = forward(p, window)
        values = jaxloss.linear_softmax_cross_entropy(hidden, w, target, bias=b, chunk_size=32,
                                                      reduction="none", axis_name="model")
        return jaxloss.reduce(values, reduction="sum") / args.batch

    # Gradients inside shard_map: the parameters are replicated over "data" (and the trunk over
    # "model"), so JAX sums their per-device gradients over those axes: the gradient of the global
    # mean; linear_softmax_cross_entropy sums the hidden states' gradient over "model". The value
    # comes back as one partial sum per data shard (out_specs P("data")), added up outside.
    # (jaxloss.reduce(values, axis_name="data") would psum it inside; we keep that collective out
    # of the step because, on simulated CPU devices, collectives that do not depend on each other
    # can be entered in different orders by different devices and exhaust the thread pool they
    # share, which XLA reports as a rendezvous timeout.)
    def local_value_and_grad(p, window, target):
        value, grads = jax.value_and_grad(local_loss)(p, window, target)
        return value[None], grads

    sharded_value_and_grad = jax.shard_map(local_value_and_grad, mesh=mesh,
                                           in_specs=(specs, P("data"), P("data")), out_specs=(P("data"), specs))

    @jax.jit
    def train_step(p, opt_state, window, target):
        partial, grads = sharded_value_and_grad(p, window, target)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, partial

    def single_device_loss(p, window, target):
        hidden, w, b = forward(p, window)
        return jaxloss.softmax_cross_entropy_with_integer_labels(hidden @ w + b, target)

    @jax.jit
    def eval_loss(p, window, target):  # validation, sharded over the batch by jit
        return single_device_loss(p, window, target)

    @jax.jit
    def next_byte(p, window):
        hidden, w, b = forward(p, window)
        return jnp.argmax(hidden @ w + b, axis=-1)

    batch_sharding = NamedSharding(mesh, P("data"))

    def batch(starts):
        window, target = windows(text, starts, args.context)
        return jax.device_put(window, batch_sharding), jax.device_put(target, batch_sharding)

    # 1. The sharded fused loss equals the single-device naive loss, value and gradients.
    window, target = batch(rng.choice(train_starts, args.batch))
    partial, grads = jax.jit(sharded_value_and_grad)(params, window, target)
    value = np.sum(jax.device_get(partial))
    plain = jax.device_get(params)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(single_device_loss))(plain, np.asarray(window),
                                                                             np.asarray(target))
    grad_err = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                   for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)))
    print(f"sharded loss {float(value):.6f} == single-device loss {float(ref_value):.6f}; "
          f"largest gradient difference {grad_err:.1e} of the gradient's scale")
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-5)
    assert grad_err < 1e-4, grad_err

    # 2. Training.
    valid_window, valid_target = batch(valid_starts[: len(valid_starts) // data_axis * data_axis])
    history, valid_history = [], []
    start = time.perf_counter()
    # disable=None: no progress bar when the output is redirected (the tqdm.write lines still print).
    for step in (bar := tqdm(range(args.steps), desc="training", mininterval=1.0, disable=None)):
        window, target = batch(rng.choice(train_starts, args.batch))
        params, opt_state, partial = train_step(params, opt_state, window, target)
        # Wait for the step: the 8 simulated devices share one CPU thread pool, and work queued
        # behind a step (the next batch's transfer) must not take a thread a collective waits for.
        partial.block_until_ready()
        history.append(partial)
        if step % 100 == 0 or step == args.steps - 1:
            history[-1] = float(np.sum(jax.device_get(partial)))
            valid_history.append((step, float(eval_loss(params, valid_window, valid_target))))
            bar.set_postfix(loss=f"{history[-1]:.3f}", valid=f"{valid_history[-1][1]:.3f}")
            tqdm.write(f"step {step:5d}  train loss {history[-1]:.3f}  held-out loss {valid_history[-1][1]:.3f}"
                       f"  (nats per byte; uniform would be {np.log(VOCAB):.3f})")
    history = [float(np.sum(jax.device_get(v))) for v in history]
    elapsed = time.perf_counter() - start
    first, last = float(np.mean(history[:20])), float(np.mean(history[-50:]))
    print(f"trained {args.steps} steps in {elapsed:.1f} s: train loss {first:.3f} -> {last:.3f}, "
          f"held-out {valid_history[0][1]:.3f} -> {valid_history[-1][1]:.3f}")

    # 3. Greedy sample, prompted with the README's first line.
    prompt = text[: args.context]
    plain = jax.device_get(params)
    out = list(prompt)
    for _ in range(args.sample):
        out.append(int(next_byte(plain, np.asarray(out[-args.context:], np.int32)[None])[0]))
    sample = bytes(out).decode("utf-8", errors="replace")
    print("greedy sample (the first", args.context, "bytes are the prompt):")
    print("    " + sample.replace("\n", "\n    "))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(history, lw=0.8, label="train (per step)")
    ax.plot(*zip(*valid_history), "o-", label="held-out (last 10% of the file)")
    ax.axhline(np.log(VOCAB), color="gray", ls=":", label="uniform over bytes")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per byte)")
    ax.set_title(f"byte MLP on {args.text.name}, {data_axis} x {model_axis} data x model mesh")
    ax.legend()
    fig.tight_layout()
    path = args.output
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"figure: {shown(path)}")
    return {"first_loss": first, "last_loss": last, "valid": valid_history, "sample": sample, "figure": str(path)}


if __name__ == "__main__":
    main()

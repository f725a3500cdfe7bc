"""CLIP-style two-tower training with a global-batch contrastive loss under ``jax.shard_map``.

Paired synthetic "images" and "captions" share a latent code; two MLP towers
(Flax NNX) embed them and ``jaxloss.clip_loss(..., axis_name="batch")`` is
computed inside ``shard_map`` over all local devices: every device holds a
slice of the batch, the embeddings of all devices are gathered, so each pair
is contrasted with the whole global batch. The script checks that the sharded
loss and its gradients equal the single-device full-batch computation, trains
with a learned temperature, and plots the loss curve and the held-out
image-text similarity matrix to ``outputs/sharded_<loss>.png``::

    python examples/sharded_clip.py                # 8 simulated CPU devices
    python examples/sharded_clip.py --loss siglip  # the sigmoid loss instead
    python examples/sharded_clip.py --smoke        # 3 steps of 4 pairs per device, for CI

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
from jaxloss import embedding  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LATENT, IMAGE_DIM, TEXT_DIM, EMBED_DIM = 16, 64, 48, 32


def shown(path) -> str:
    """``path`` relative to the project when it lies inside it (what to type), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def make_pairs(rng: np.random.Generator, n: int, mixers) -> tuple[np.ndarray, np.ndarray]:
    """Images and captions: two different noisy non-linear views of one latent code."""
    a, b = mixers
    z = rng.normal(size=(n, LATENT))
    images = np.tanh(z @ a) + 0.3 * rng.normal(size=(n, IMAGE_DIM))
    texts = np.sin(z @ b) + 0.3 * rng.normal(size=(n, TEXT_DIM))
    return images.astype(np.float32), texts.astype(np.float32)


class Tower(nnx.Module):
    def __init__(self, din: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(din, 128, rngs=rngs)
        self.out = nnx.Linear(128, EMBED_DIM, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.gelu(self.hidden(x)))


class TwoTower(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.image = Tower(IMAGE_DIM, rngs)
        self.text = Tower(TEXT_DIM, rngs)
        # Learned temperature (CLIP: tau = exp(-t), t = log(1 / 0.07)) and SigLIP's bias.
        self.log_scale = nnx.Param(jnp.log(jnp.asarray(1 / 0.07)))
        self.bias = nnx.Param(jnp.asarray(-10.0))


def contrastive(model: TwoTower, images, texts, loss: str, axis_name=None) -> jax.Array:
    u, v = model.image(images), model.text(texts)
    if loss == "clip":
        return embedding.clip_loss(u, v, temperature=jnp.exp(-model.log_scale[...]), axis_name=axis_name)
    return embedding.siglip_loss(u, v, logit_scale=jnp.exp(model.log_scale[...]), logit_bias=model.bias[...],
                                 axis_name=axis_name)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=("clip", "siglip"), default="clip")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-per-device", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="figure path (default: outputs/sharded_<loss>.png)")
    parser.add_argument("--smoke", action="store_true",
                        help="3 steps of 4 pairs per device: checks the whole script in seconds (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch_per_device = 3, 4

    devices = jax.devices()
    mesh = jax.make_mesh((len(devices),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    global_batch = args.batch_per_device * len(devices)
    print(f"{len(devices)} {devices[0].platform} devices, global batch {global_batch} "
          f"({args.batch_per_device} per device), loss {args.loss}")

    rng = np.random.default_rng(args.seed)
    mixers = (rng.normal(size=(LATENT, IMAGE_DIM)) / 2, rng.normal(size=(LATENT, TEXT_DIM)) / 2)
    model = TwoTower(nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(params)

    def loss_fn(params, images, texts, axis_name=None):
        return contrastive(nnx.merge(graphdef, params), images, texts, args.loss, axis_name)

    # Parameters replicated (P()), data split along the batch (P("batch")). Inside
    # shard_map the loss gathers every device's embeddings; jax.value_and_grad of
    # that global loss w.r.t. the replicated parameters is the global gradient.
    @jax.jit
    def sharded_value_and_grad(params, images, texts):
        return jax.shard_map(lambda p, x, y: jax.value_and_grad(loss_fn)(p, x, y, axis_name="batch"),
                             mesh=mesh, in_specs=(P(), P("batch"), P("batch")), out_specs=(P(), P()))(
            params, images, texts)

    single_value_and_grad = jax.jit(jax.value_and_grad(loss_fn))

    @jax.jit
    def train_step(params, opt_state, images, texts):
        value, grads = sharded_value_and_grad(params, images, texts)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    data_sharding = NamedSharding(mesh, P("batch"))

    def batch(n):
        images, texts = make_pairs(rng, n, mixers)
        return jax.device_put(images, data_sharding), jax.device_put(texts, data_sharding)

    # 1. The sharded loss is the single-device loss of the full global batch.
    images, texts = batch(global_batch)
    v_sharded, g_sharded = sharded_value_and_grad(params, images, texts)
    v_single, g_single = single_value_and_grad(params, np.asarray(images), np.asarray(texts))
    grad_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                    zip(jax.tree.leaves(g_sharded), jax.tree.leaves(g_single)))
    b = args.batch_per_device
    local_only = np.mean([float(loss_fn(params, np.asarray(images)[i * b:(i + 1) * b],
                                        np.asarray(texts)[i * b:(i + 1) * b]))
                          for i in range(len(devices))])
    print(f"sharded loss {float(v_sharded):.6f} == single-device loss {float(v_single):.6f} "
          f"(max |grad diff| {grad_diff:.2e}); per-device losses without gathering average {local_only:.6f}")
    np.testing.assert_allclose(float(v_sharded), float(v_single), rtol=1e-5)

    # 2. Training.
    history = []
    start = time.perf_counter()
    # disable=None: no progress bar when the output is redirected to a file or a pipe.
    for step in (bar := tqdm(range(args.steps), desc=f"{args.loss} training", disable=None)):
        images, texts = batch(global_batch)
        params, opt_state, value = train_step(params, opt_state, images, texts)
        history.append(float(value))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s; loss {history[0]:.4f} -> "
          f"{np.mean(history[-20:]):.4f}")

    # 3. Held-out retrieval: is the nearest caption of each image its own?
    model = nnx.merge(graphdef, params)
    test_images, test_texts = make_pairs(np.random.default_rng(args.seed + 1), 256, mixers)
    u = np.array(model.image(test_images))
    v = np.array(model.text(test_texts))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sim = u @ v.T
    top1_i2t = float(np.mean(np.argmax(sim, axis=1) == np.arange(len(sim))))
    top1_t2i = float(np.mean(np.argmax(sim, axis=0) == np.arange(len(sim))))
    print(f"held-out retrieval among 256 pairs: image->text top-1 {top1_i2t:.3f}, text->image top-1 {top1_t2i:.3f} "
          f"(chance {1 / 256:.3f}); learned scale exp(t) = {float(jnp.exp(model.log_scale[...])):.2f}")
    registered = jaxloss.get(f"{args.loss}_loss")
    assert registered is (embedding.clip_loss if args.loss == "clip" else embedding.siglip_loss)

    fig, (ax_loss, ax_sim) = plt.subplots(1, 2, figsize=(11, 4.6))
    ax_loss.plot(history)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"{args.loss} loss (global batch {global_batch})")
    ax_loss.set_title(f"shard_map over {len(devices)} devices")
    im = ax_sim.imshow(sim[:48, :48], cmap="viridis")
    fig.colorbar(im, ax=ax_sim)
    ax_sim.set_title(f"held-out cosine similarity (48 pairs), top-1 {top1_i2t:.2f}")
    ax_sim.set_xlabel("caption")
    ax_sim.set_ylabel("image")
    fig.tight_layout()
    path = args.output or Path("outputs") / f"sharded_{args.loss}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"figure: {shown(path)}")
    return {"first_loss": history[0], "last_loss": float(np.mean(history[-20:])), "top1_image_to_text": top1_i2t,
            "top1_text_to_image": top1_t2i}


if __name__ == "__main__":
    main()

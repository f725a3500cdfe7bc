"""Mixture-of-experts router regularisers (``jaxloss.routing``).

Both losses read router logits ``[..., E]`` (one row of ``E`` expert logits
per token; the leading axes are the tokens, e.g. ``[T, E]`` or
``[batch, sequence, E]``) and take ``where`` (shape ``[...]``) to mask tokens
such as padding.

:func:`load_balancing_loss` is a statistic of the whole batch of tokens: its
unreduced value is one scalar, ``where`` removes tokens from the statistics,
and inside ``jax.shard_map``/``pmap`` with ``axis_name`` the token counts and
router probabilities are summed over devices (``psum``), so every device gets
the full-batch value and gradients. :func:`router_z_loss` is a mean over
tokens: one value per token, and ``axis_name`` makes its ``"mean"`` the global
mean.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


def _psum(x: Array, axis_name: Hashable | None) -> Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _router_inputs(fn: str, router_logits: ArrayLike, where: ArrayLike | None) -> tuple[Array, Array | None]:
    """Validates ``[..., E]`` logits; masked tokens become zeros (first half of the double-where)."""
    x = _checks.floating(fn, "router_logits", router_logits)
    _checks.rank_at_least(fn, "router_logits", x, 1, "[..., experts]")
    x = x.astype(_numerics.compute_dtype(x))
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), x.shape[:-1],
                                      "the token shape router_logits.shape[:-1]")
        x = _numerics.mask_inputs(where[..., None], x)
    return x, where


@_registry.builtin(tags=("routing", "batch_global"))
def load_balancing_loss(router_logits: ArrayLike, *, top_k: int = 1, axis_name: Hashable | None = None,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Switch/GShard auxiliary load-balancing loss of a mixture-of-experts router.

    With router probabilities :math:`p_t = \mathrm{softmax}(z_t)` over the
    :math:`E` experts for each of the :math:`N` (unmasked) tokens, the share of
    top-k assignments :math:`f_e` and the mean probability :math:`P_e` of
    expert :math:`e`:

    .. math::

        f_e = \frac{1}{N} \sum_t [e \in \mathrm{topk}(z_t)], \qquad
        P_e = \frac{1}{N} \sum_t p_{t,e}, \qquad
        \ell = E \sum_e f_e P_e

    so :math:`\sum_e f_e = k` and a perfectly balanced router gives
    :math:`\ell = k`. Only :math:`P_e` carries a gradient (the top-k selection
    is piecewise constant). This is Hugging Face transformers'
    ``load_balancing_loss_func`` for one layer (pass the concatenated logits of
    several layers to pool them the way it does), with ``where`` in the role of
    its ``attention_mask``.

    Args:
      router_logits: ``[..., E]`` float router logits, one row per token
        (e.g. ``[T, E]`` or ``[batch, sequence, E]``).
      top_k: experts per token, an int in ``[1, E]``.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) the
        tokens are sharded over: the counts and probabilities are summed over
        devices, so every device gets the global-batch value.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``; the loss is one value for
        the batch, so all three return it (times ``weights``).
      weights: a float scalar weight (the unreduced value is a scalar).
      where: boolean, broadcastable to the token shape ``router_logits.shape[:-1]``;
        ``False`` removes a token from the statistics (masking equals slicing it
        off). With no token left the loss is 0 with zero gradient.

    Returns:
      A scalar (float32 for 16-bit inputs), for every ``reduction``.

    Raises:
      ValueError: ``router_logits`` of rank 0, ``top_k`` not an int in ``[1, E]``,
        ``where`` that does not broadcast to the token shape, or an unknown
        ``reduction``.
      TypeError: non-float ``router_logits`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import routing
      >>> logits = jnp.array([[2.0, 0.0], [2.0, 0.0]])   # both tokens prefer expert 0
      >>> round(float(routing.load_balancing_loss(logits)), 6)
      1.761594
      >>> balanced = jnp.array([[2.0, 0.0], [0.0, 2.0]])
      >>> round(float(routing.load_balancing_loss(balanced)), 6)
      1.0

    References:
      Fedus, Zoph and Shazeer, "Switch Transformers: Scaling to Trillion
      Parameter Models with Simple and Efficient Sparsity", JMLR 2022 (eqs. 4-6),
      https://arxiv.org/abs/2101.03961;
      Lepikhin et al., "GShard: Scaling Giant Models with Conditional
      Computation and Automatic Sharding", 2020, https://arxiv.org/abs/2006.16668
    """
    fn = "load_balancing_loss"
    x, where = _router_inputs(fn, router_logits, where)
    num_experts = x.shape[-1]
    _checks.integer_option(fn, "top_k", top_k, allow_none=False)
    if not 1 <= top_k <= num_experts:
        _checks._fail(ValueError, _checks.message(fn, "top_k", f"must be in [1, {num_experts}] (the number of "
                                                  "experts)", top_k))
    dtype = x.dtype
    valid = (jnp.ones(x.shape[:-1], dtype) if where is None else where.astype(dtype))[..., None]
    probs = jax.nn.softmax(x, axis=-1)
    # Top-k on the logits: the same experts as top-k on the probabilities, without
    # the ties that underflowed probabilities would create.
    _, chosen = jax.lax.top_k(x, top_k)
    assigned = jnp.sum(jax.nn.one_hot(chosen, num_experts, dtype=dtype), axis=-2)  # [..., E], in {0, 1}
    token_axes = tuple(range(x.ndim - 1))
    count = _psum(jnp.sum(valid), axis_name)
    fraction = _numerics.safe_div(_psum(jnp.sum(valid * assigned, axis=token_axes), axis_name), count)
    mean_prob = _numerics.safe_div(_psum(jnp.sum(valid * probs, axis=token_axes), axis_name), count)
    value = num_experts * jnp.sum(fraction * mean_prob)
    # The value is already the global one on every device: no axis_name in the reduction.
    return reduce_values(value, reduction=reduction, weights=weights, where=count > 0, fn=fn)


@_registry.builtin(tags=("routing",))
def router_z_loss(router_logits: ArrayLike, *, axis_name: Hashable | None = None,
                  reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                  where: ArrayLike | None = None) -> Array:
    r"""Router z-loss of ST-MoE: the squared log-partition of the router logits.

    Per token :math:`t` with router logits :math:`z_t`:

    .. math::

        \ell_t = \Bigl(\log \sum_e e^{z_{t,e}}\Bigr)^2

    and the ``"mean"`` over tokens is the router z-loss of Zoph et al. (2022),
    which keeps router logits small for numerical stability.

    Args:
      router_logits: ``[..., E]`` float router logits, one row per token.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s):
        ``"sum"`` and ``"mean"`` run over the tokens of every device.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-token weights broadcastable to ``[...]``.
      where: boolean per-token mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-token values for ``reduction="none"``, else a scalar
      (float32 for 16-bit inputs).

    Raises:
      ValueError: ``router_logits`` of rank 0, ``weights``/``where`` that do not
        broadcast to the token shape, or an unknown ``reduction``.
      TypeError: non-float ``router_logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import routing
      >>> logits = jnp.zeros((3, 4))   # logsumexp = log 4 for every token
      >>> round(float(routing.router_z_loss(logits)), 6)
      1.921812

    References:
      Zoph et al., "ST-MoE: Designing Stable and Transferable Sparse Expert
      Models", 2022 (eq. 5), https://arxiv.org/abs/2202.08906
    """
    fn = "router_z_loss"
    x, where = _router_inputs(fn, router_logits, where)
    values = jnp.square(jax.nn.logsumexp(x, axis=-1))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn, axis_name=axis_name)

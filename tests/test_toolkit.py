"""The toolkit for custom losses: ``make_loss``, ``combine``, the registry,
``checked`` and ``jaxloss.testing.check_loss``.

References: optax (softmax cross-entropy with integer labels, for the
per-example ``make_loss``), Keras 3 string identifiers (the registry aliases),
``jax.experimental.checkify`` (``checked``), the rules of docs/conventions.md.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from jaxloss import _registry
from jaxloss.testing import CHECKS, check_loss

# checked() raises checkify's JaxRuntimeError eagerly and jax.errors.JaxRuntimeError under jit.
CHECK_ERRORS = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


@pytest.fixture
def clean_registry(monkeypatch):
    """User registrations made by a test disappear after it (the invariants suite
    requires a spec for every registered name)."""
    monkeypatch.setattr(_registry, "_LOSSES", dict(_registry._LOSSES))
    monkeypatch.setattr(_registry, "_ALIASES", dict(_registry._ALIASES))
    monkeypatch.setattr(_registry, "_TAGS", dict(_registry._TAGS))


def _regression_example(shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=shape)
    t = p + np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0) * rng.uniform(0.2, 1.0, size=shape)
    return p, t


# ================================================================= make_loss
@jaxloss.make_loss
def cubic_error(predictions, targets, *, scale=1.0):
    return scale * jnp.abs(predictions - targets) ** 3


@jaxloss.make_loss(axis=-1)
def my_integer_ce(logits, labels):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]


def test_make_loss_elementwise_values_and_reductions():
    p = jnp.array([1.0, -2.0, 0.5])
    t = jnp.zeros(3)
    expected = np.array([1.0, 8.0, 0.125])
    _close(cubic_error(p, t, reduction="none"), expected)
    _close(cubic_error(p, t, reduction="sum"), expected.sum())
    _close(cubic_error(p, t), expected.mean())
    _close(cubic_error(p, t, scale=2.0, reduction="none"), 2.0 * expected)
    w = jnp.array([1.0, 0.0, 3.0])
    m = jnp.array([True, True, False])
    _close(cubic_error(p, t, weights=w, where=m), (1.0 * 1.0 + 0.0 * 8.0) / (1.0 + 0.0))


def test_make_loss_signature_adds_the_common_keywords():
    params = inspect.signature(cubic_error).parameters
    assert list(params)[:2] == ["predictions", "targets"]
    for name, default in (("scale", 1.0), ("reduction", "mean"), ("weights", None), ("where", None)):
        assert params[name].kind == inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default
    assert cubic_error.__name__ == "cubic_error"


def test_make_loss_checks_name_the_loss_and_argument():
    with pytest.raises(ValueError, match=r"jaxloss\.cubic_error: predictions \(4,\) and targets \(4, 1\) "
                                         r"must have the same shape"):
        cubic_error(jnp.zeros(4), jnp.zeros((4, 1)))
    with pytest.raises(TypeError, match=r"jaxloss\.cubic_error: predictions .*floating dtype"):
        cubic_error(jnp.zeros(4, jnp.int32), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"jaxloss\.cubic_error: reduction must be one of"):
        cubic_error(jnp.zeros(4), jnp.zeros(4), reduction="avg")
    with pytest.raises(TypeError, match=r"jaxloss\.cubic_error: where must be a boolean mask"):
        cubic_error(jnp.zeros(4), jnp.zeros(4), where=jnp.ones(4))


def test_make_loss_wrong_value_shape_raises():
    @jaxloss.make_loss
    def summed(predictions, targets):
        return jnp.sum(predictions - targets)

    with pytest.raises(ValueError, match=r"jaxloss\.summed: values returned by the wrapped function must have "
                                         r"the unreduced shape \(4,\)"):
        summed(jnp.zeros(4), jnp.zeros(4))


def test_make_loss_dtype_policy_and_masking():
    # bfloat16 in -> float32 out, gradients in bfloat16; masked NaN never reaches fn's values or gradients.
    p = jnp.array([1.0, 2.0, jnp.nan], jnp.bfloat16)
    t = jnp.array([0.0, 0.0, jnp.inf], jnp.bfloat16)
    m = jnp.array([True, True, False])
    assert cubic_error(p, t, where=m).dtype == jnp.float32
    _close(cubic_error(p, t, where=m), (1.0 + 8.0) / 2)
    g = jax.grad(lambda x: cubic_error(x, t, where=m))(p)
    assert g.dtype == jnp.bfloat16
    _close(g.astype(jnp.float32), [3.0 / 2, 12.0 / 2, 0.0])
    with jax.enable_x64(True):
        assert cubic_error(jnp.ones(3, jnp.float64), jnp.zeros(3, jnp.float64)).dtype == jnp.float64


def test_make_loss_per_example_with_integer_labels_matches_optax():
    # Reference: optax.losses.softmax_cross_entropy_with_integer_labels.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 2, 3], np.int32)
    expected = optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)
    values = my_integer_ce(logits, labels, reduction="none")
    assert values.shape == (5,)
    _close(values, expected)
    _close(my_integer_ce(logits, labels), jnp.mean(expected))
    # where [B] masks whole examples; NaN logits of a masked example do not leak into value or gradient.
    m = np.array([True, True, False, True, True])
    poisoned = logits.copy()
    poisoned[2] = np.nan
    _close(my_integer_ce(poisoned, labels, where=m), np.asarray(expected)[m].mean())
    g = jax.jit(jax.grad(lambda x: my_integer_ce(x, labels, where=m)))(poisoned)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(np.asarray(g)[2], 0.0)
    g_ref = jax.jit(jax.grad(lambda x: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(
        x, labels[m]))))(logits[m])
    _close(np.asarray(g)[m], g_ref)


def test_make_loss_per_example_label_shape_is_checked():
    with pytest.raises(ValueError, match=r"jaxloss\.my_integer_ce: labels must have shape \(5,\)"):
        my_integer_ce(jnp.zeros((5, 4)), jnp.zeros((5, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"jaxloss\.my_integer_ce: axis"):
        jaxloss.make_loss(axis=2)(my_integer_ce.__wrapped__)(jnp.zeros((5, 4)), jnp.zeros(5, jnp.int32))


@jaxloss.make_loss
def plain_nll(logits, labels):
    # Issue 11 item 10: inputs of different shapes, output [B].
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]


def test_make_loss_inputs_of_different_shapes():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=5).astype(np.int32)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # reference: optax
    _close(plain_nll(logits, labels, reduction="none"), expected)
    weights = np.array([1.0, 2.0, 0.0, 1.0, 3.0], np.float32)
    _close(plain_nll(logits, labels, weights=weights), np.sum(weights * expected) / weights.sum())
    where = np.array([True, False, True, True, False])
    poisoned = logits.copy()
    poisoned[1] = np.nan
    _close(plain_nll(poisoned, labels, where=where), np.mean(np.asarray(expected)[where]))
    grads = jax.grad(lambda x: plain_nll(x, labels, where=where))(poisoned)
    assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[1] == 0)
    with pytest.raises(ValueError, match=r"jaxloss\.plain_nll: logits \(5, 4\) and labels \(4,\) must have the same"):
        plain_nll(logits, labels[:4])


def test_make_loss_per_example_passes_check_loss():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6).astype(np.int32)
    report = check_loss(my_integer_ce, logits, labels, raise_on_failure=False)
    # take_along_axis wraps -1 to the last class: check_loss catches the silently wrong number.
    assert list(report.failures) == ["labels"], str(report)
    assert "labels = -1 (int32, C = 4) gives the finite loss" in report.failures["labels"]


# =================================================================== combine
def test_combine_total_and_parts():
    loss_fn = jaxloss.combine(mse=(jaxloss.squared_error, 1.0), mae=(jaxloss.absolute_error, 0.5),
                              huber=(jaxloss.huber_loss, 2.0))
    p = jnp.array([2.0, -1.0, 0.25])
    t = jnp.zeros(3)
    total, parts = loss_fn(p, t)
    assert set(parts) == {"mse", "mae", "huber"}
    mse = (4.0 + 1.0 + 0.0625) / 3
    mae = (2.0 + 1.0 + 0.25) / 3
    huber = (1.5 + 0.5 + 0.5 * 0.0625) / 3
    _close(parts["mse"], mse)
    _close(parts["mae"], mae)
    _close(parts["huber"], huber)
    _close(total, 1.0 * mse + 0.5 * mae + 2.0 * huber)
    # Keywords go to every term.
    m = jnp.array([True, False, True])
    total_m, parts_m = loss_fn(p, t, where=m)
    _close(parts_m["mse"], (4.0 + 0.0625) / 2)
    _close(total_m, parts_m["mse"] + 0.5 * parts_m["mae"] + 2.0 * parts_m["huber"])


def test_combine_value_and_grad_with_aux():
    loss_fn = jaxloss.combine(mse=(jaxloss.squared_error, 1.0), mae=(jaxloss.absolute_error, 0.5))
    p = jnp.array([2.0, -1.0])
    t = jnp.zeros(2)
    (total, parts), grad = jax.value_and_grad(loss_fn, has_aux=True)(p, t)
    _close(total, (4.0 + 1.0) / 2 + 0.5 * (2.0 + 1.0) / 2)
    _close(grad, 2 * p / 2 + 0.5 * jnp.sign(p) / 2)
    _close(parts["mae"], 1.5)
    # Under jit, with a traced weight (a schedule).
    step = jax.jit(lambda w, a, b: jax.value_and_grad(
        jaxloss.combine(mse=(jaxloss.squared_error, 1.0), mae=(jaxloss.absolute_error, w)), has_aux=True)(a, b))
    (total_j, _), grad_j = step(jnp.float32(0.5), p, t)
    _close(total_j, total)
    _close(grad_j, grad)


@pytest.mark.parametrize("terms,pattern", [
    ({}, r"jaxloss\.combine: terms must name at least one"),
    ({"mse": jaxloss.squared_error}, r"jaxloss\.combine: mse must be a \(loss_fn, weight\) pair"),
    ({"mse": (1.0, jaxloss.squared_error)}, r"jaxloss\.combine: mse must be a \(loss_fn, weight\) pair"),
    ({"mse": (jaxloss.squared_error, -1.0)}, r"jaxloss\.combine: weight of mse must be >= 0"),
    ({"mse": (jaxloss.squared_error, float("inf"))}, r"jaxloss\.combine: weight of mse must be finite"),
])
def test_combine_errors(terms, pattern):
    with pytest.raises(ValueError, match=pattern):
        jaxloss.combine(**terms)


# ================================================================== registry
# Keras names that jaxloss.get resolves: their Keras call gives the same number
# as the jaxloss function (symmetric in y_true/y_pred, same default constants).
KERAS_SAME = {
    "mse": "squared_error",
    "mean_squared_error": "squared_error",
    "mae": "absolute_error",
    "mean_absolute_error": "absolute_error",
    "msle": "squared_log_error",
    "mean_squared_logarithmic_error": "squared_log_error",
    "huber": "huber_loss",
    "log_cosh": "log_cosh",
}
# Keras names whose Keras call differs (argument order, probabilities vs logits, formula).
KERAS_DIFFERENT = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "kld",
                   "kullback_leibler_divergence", "mape", "mean_absolute_percentage_error", "poisson", "hinge",
                   "squared_hinge", "categorical_hinge", "cosine_similarity")


@pytest.mark.parametrize("alias", sorted(KERAS_SAME))
def test_keras_alias_gives_keras_number(alias):
    # Issue 11 item 10: a Keras name resolves only where it means the same call and number as Keras.
    keras = pytest.importorskip("keras")
    assert alias in jaxloss.available()
    fn = jaxloss.get(alias)
    assert fn.__name__ == KERAS_SAME[alias] and jaxloss.get(KERAS_SAME[alias]) is fn
    rng = np.random.default_rng(0)
    y_true = rng.uniform(0.1, 3.0, (4, 5)).astype(np.float32)
    y_pred = rng.uniform(0.1, 3.0, (4, 5)).astype(np.float32)
    expected = float(keras.losses.get(alias)(y_true, y_pred).numpy().mean()) if hasattr(
        keras.losses.get(alias)(y_true, y_pred), "numpy") else float(np.mean(keras.losses.get(alias)(y_true, y_pred)))
    _close(fn(y_true, y_pred), expected, rtol=2e-5)


@pytest.mark.parametrize("alias", KERAS_DIFFERENT)
def test_keras_name_with_other_semantics_raises(alias):
    # Issue 11 item 10: get("binary_crossentropy")(y_true, y_pred) gave 6.164 where Keras gives 0.548.
    with pytest.raises(ValueError, match=rf"jaxloss\.get: name .*use jaxloss\.\w+.*jaxloss\.keras\.get\('{alias}'\)"):
        jaxloss.get(alias)
    assert alias not in jaxloss.available()


def test_get_returns_the_public_function():
    assert jaxloss.get("huber_loss") is jaxloss.huber_loss
    assert jaxloss.get("mse") is jaxloss.squared_error


def test_get_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"jaxloss\.get: name must be a registered loss name or alias.*'msee'"
                                         r".*did you mean .*'mse'"):
        jaxloss.get("msee")
    with pytest.raises(ValueError, match=r"jaxloss\.get: name"):
        jaxloss.get(3)


def test_available_is_sorted_and_filters_by_tag():
    names = jaxloss.available()
    assert names == sorted(names)
    assert "mse" in names and "mse" not in jaxloss.available(aliases=False)
    assert "softmax_cross_entropy" in jaxloss.available(tag="classification")
    regression = jaxloss.available(tag="regression")
    assert {"squared_error", "huber_loss", "gaussian_nll_loss"} <= set(regression)
    assert "huber" in jaxloss.available(tag="regression", aliases=True)
    assert not set(regression) & {"softmax_cross_entropy", "nll_loss"}
    assert jaxloss.available(tag="no-such-tag") == []


def test_register_function_and_decorator(clean_registry):
    @jaxloss.make_loss
    def cube(predictions, targets):
        return (predictions - targets) ** 3

    assert jaxloss.register("my_cube", cube, aliases=("cube3",), tags=("custom",)) is cube
    assert jaxloss.get("my_cube") is cube and jaxloss.get("cube3") is cube
    assert jaxloss.available(tag="custom", aliases=False) == ["my_cube"]
    assert "cube3" in jaxloss.available(aliases=True)

    @jaxloss.register("my_square")
    @jaxloss.make_loss
    def square(predictions, targets):
        return (predictions - targets) ** 2

    _close(jaxloss.get("my_square")(jnp.array([3.0]), jnp.array([1.0])), 4.0)
    with pytest.raises(ValueError, match=r"jaxloss\.register: name must not be registered already"):
        jaxloss.register("my_cube", square)
    jaxloss.register("my_cube", square, overwrite=True)
    assert jaxloss.get("my_cube") is square


@pytest.mark.parametrize("name", ["huber_loss", "mse", "squared_error", "poisson"])
def test_register_over_a_builtin_raises(clean_registry, name):
    with pytest.raises(ValueError, match=rf"jaxloss\.register: name must not replace a built-in loss, got '{name}'"):
        jaxloss.register(name, cubic_error)
    with pytest.raises(ValueError, match=r"jaxloss\.register: name must not replace a built-in loss"):
        jaxloss.register(name, cubic_error, overwrite=True)
    with pytest.raises(ValueError, match=r"jaxloss\.register: name must not replace a built-in loss"):
        jaxloss.register("fresh_name", cubic_error, aliases=(name,))
    assert "fresh_name" not in jaxloss.available()
    assert "fresh_name" not in jaxloss.available(aliases=False)


def test_register_rejects_bad_arguments(clean_registry):
    with pytest.raises(ValueError, match=r"jaxloss\.register: fn must be callable"):
        jaxloss.register("not_callable", 3.0)
    with pytest.raises(ValueError, match=r"jaxloss\.register: name must be a non-empty string"):
        jaxloss.register("", cubic_error)


# =================================================================== checked
def _both(fn):
    """The checked function called eagerly and under jax.jit."""
    checked = jaxloss.checked(fn)
    return [("eager", checked), ("jit", jax.jit(checked))]


_UNCHECKED: dict = {}


def _unchecked(name):
    """The plain loss, compiled once per process: the reference value the checked loss must equal (the
    eager and jit tests share it; op-by-op evaluation of the reference was most of their time)."""
    if name not in _UNCHECKED:
        _UNCHECKED[name] = jax.jit(jaxloss.get(name))
    return _UNCHECKED[name]


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_integer_labels_out_of_range(mode):
    fn = dict(_both(jaxloss.softmax_cross_entropy_with_integer_labels))[mode]
    logits = jnp.zeros((3, 4))
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.softmax_cross_entropy_with_integer_labels: labels must be "
                                           r"in \[0, 4\), got 4 at flat index 2"):
        jax.block_until_ready(fn(logits, jnp.array([0, 1, 4])))
    with pytest.raises(CHECK_ERRORS, match=r"labels must be in \[0, 4\), got -1"):
        jax.block_until_ready(fn(logits, jnp.array([0, -1, 2])))
    # ignore_index is allowed; in-range labels pass and give the unchecked value.
    # ignore_index is a static Python int: under jit it is closed over, not traced.
    checked = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
    with_ignore = lambda x, y: checked(x, y, ignore_index=-100)  # noqa: E731
    if mode == "jit":
        with_ignore = jax.jit(with_ignore)
    _close(with_ignore(logits, jnp.array([0, -100, 2])), np.log(4.0))
    with pytest.raises(CHECK_ERRORS, match=r"labels must be in \[0, 4\) or ignore_index=-100, got -1"):
        jax.block_until_ready(with_ignore(logits, jnp.array([0, -1, 2])))
    _close(fn(logits, jnp.array([0, 1, 3])), np.log(4.0))


def test_checked_eager_calls_with_unhashable_options():
    # Concrete calls compile once per hashable option set; a list option (unhashable) runs op by op
    # and checks the same things.
    checked = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
    logits = jnp.zeros((3, 4))
    _close(checked(logits, jnp.array([0, 1, 3]), class_weights=[1.0, 2.0, 1.0, 1.0]), np.log(4.0))
    with pytest.raises(CHECK_ERRORS, match=r"labels must be in \[0, 4\), got 4 at flat index 2"):
        checked(logits, jnp.array([0, 1, 4]), class_weights=[1.0, 2.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_float_labels_outside_their_domain(mode):
    bce = dict(_both(jaxloss.binary_cross_entropy))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.binary_cross_entropy: labels must be in \[0, 1\], got 1\.5"):
        jax.block_until_ready(bce(jnp.array([0.2, 0.5]), jnp.array([0.0, 1.5])))
    hinge = dict(_both(jaxloss.hinge_loss))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.hinge_loss: labels must be -1 or \+1, got 0\.0 at flat index 0"):
        jax.block_until_ready(hinge(jnp.array([0.2, 0.1]), jnp.array([0.0, 1.0])))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_probabilities_outside_unit_interval(mode):
    bce = dict(_both(jaxloss.binary_cross_entropy))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.binary_cross_entropy: probabilities must be in \[0, 1\], "
                                           r"got 1\.5 at flat index 1"):
        jax.block_until_ready(bce(jnp.array([0.2, 1.5]), jnp.array([0.0, 1.0])))
    with pytest.raises(CHECK_ERRORS, match=r"probabilities must be in \[0, 1\], got -0\.25"):
        jax.block_until_ready(bce(jnp.array([-0.25, 0.5]), jnp.array([0.0, 1.0])))
    # Exactly 0 and 1 are valid probabilities.
    assert np.isfinite(float(bce(jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0]))))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_non_finite_inputs(mode):
    huber = dict(_both(jaxloss.huber_loss))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.huber_loss: predictions must be finite, got nan at flat "
                                           r"index 1"):
        jax.block_until_ready(huber(jnp.array([0.2, jnp.nan]), jnp.array([0.0, 1.0])))
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.huber_loss: targets must be finite, got -?inf"):
        jax.block_until_ready(huber(jnp.array([0.2, 0.1]), jnp.array([0.0, -jnp.inf])))
    gnll = dict(_both(jaxloss.gaussian_nll_loss))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.gaussian_nll_loss: variance must be finite, got inf"):
        jax.block_until_ready(gnll(jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, jnp.inf])))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_negative_weights(mode):
    huber = dict(_both(jaxloss.huber_loss))[mode]
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.huber_loss: weights must be >= 0, got -2\.0 at flat index 1"):
        jax.block_until_ready(huber(jnp.array([0.2, 0.1]), jnp.array([0.0, 1.0]), weights=jnp.array([1.0, -2.0])))


def test_checked_passes_good_inputs_through_jit_and_grad():
    p, t = jnp.array([0.2, 3.0]), jnp.array([0.0, 1.0])
    checked = jaxloss.checked(jaxloss.huber_loss)
    _close(checked(p, t, delta=0.5), jaxloss.huber_loss(p, t, delta=0.5))
    _close(jax.jit(checked)(p, t, delta=0.5), jaxloss.huber_loss(p, t, delta=0.5))
    _close(jax.jit(checked)(p, t, weights=jnp.array([1.0, 2.0])),
           jaxloss.huber_loss(p, t, weights=jnp.array([1.0, 2.0])))
    _close(jax.grad(checked)(p, t), jax.grad(jaxloss.huber_loss)(p, t))
    assert inspect.signature(checked) == inspect.signature(jaxloss.huber_loss)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_ignores_masked_positions(mode):
    # docs/conventions.md: a masked position may hold NaN/inf (padding) and contributes exactly 0;
    # checked() must not reject inputs the loss itself accepts by contract.
    huber = dict(_both(jaxloss.huber_loss))[mode]
    p = jnp.array([0.2, jnp.nan])
    t = jnp.array([0.0, jnp.inf])
    m = jnp.array([True, False])
    _close(huber(p, t, where=m), 0.5 * 0.2 ** 2)
    ce = dict(_both(jaxloss.softmax_cross_entropy_with_integer_labels))[mode]
    _close(ce(jnp.zeros((2, 3)), jnp.array([1, 7]), where=jnp.array([True, False])), np.log(3.0))


def _rng_arrays():
    rng = np.random.default_rng(0)
    f32 = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    return rng, f32


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_masked_and_padded_settings_do_not_crash(mode):
    # Issue 11 item 6: valid inputs with where= crashed checked() for these losses.
    rng, f32 = _rng_arrays()
    labels, where = jnp.array([0, 1, 2, 1]), jnp.array([True, True, True, False])
    for name in ("arcface_loss", "cosface_loss"):
        fn = dict(_both(jaxloss.get(name)))[mode]
        emb, centers = f32(4, 5).at[3].set(jnp.nan), f32(3, 5)  # NaN in the masked example only
        _close(fn(emb, centers, labels, where=where), _unchecked(name)(emb, centers, labels, where=where))
    lsce = dict(_both(jaxloss.linear_softmax_cross_entropy))[mode]
    hidden, weight = f32(4, 5), f32(5, 7)
    _close(lsce(hidden, weight, labels, where=where),
           _unchecked("linear_softmax_cross_entropy")(hidden, weight, labels, where=where))
    # Pixel masks on the segmentation losses, with NaN at a masked pixel.
    predictions = f32(2, 4, 4, 3).at[0, 0, 0].set(jnp.nan)
    targets = jnp.asarray(rng.integers(0, 3, (2, 4, 4)))
    pixels = jnp.asarray(rng.uniform(size=(2, 4, 4)) > 0.3).at[0, 0, 0].set(False)
    for name in ("dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "generalized_dice_loss"):
        fn = dict(_both(jaxloss.get(name)))[mode]
        value = fn(predictions, targets, where=pixels)
        _close(value, _unchecked(name)(predictions, targets, where=pixels))
        assert np.isfinite(float(value))
    # Item masks on the pairwise ranking losses, with NaN at a masked item.
    scores = f32(2, 5).at[0, 4].set(jnp.nan)
    relevance = jnp.asarray(rng.integers(0, 3, (2, 5)), jnp.float32)
    items = jnp.array([[True] * 4 + [False]] * 2)
    for name in ("pairwise_hinge_loss", "pairwise_logistic_loss", "ranking_softmax_loss"):
        fn = dict(_both(jaxloss.get(name)))[mode]
        _close(fn(scores, relevance, where=items), _unchecked(name)(scores, relevance, where=items))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_skips_masked_and_padded_ctc_frames(mode):
    # Issue 11 item 6: NaN at masked (where) or padded (logit_paddings) positions is valid input.
    rng, f32 = _rng_arrays()
    fn = dict(_both(jaxloss.ctc_loss))[mode]
    logits = f32(3, 6, 4)
    logit_paddings, labels, label_paddings = jnp.zeros((3, 6)), jnp.ones((3, 2), jnp.int32), jnp.zeros((3, 2))
    where = jnp.array([True, True, False])
    _close(fn(logits.at[2].set(jnp.nan), logit_paddings, labels, label_paddings, where=where),
           _unchecked("ctc_loss")(logits, logit_paddings, labels, label_paddings, where=where))
    padded = logit_paddings.at[0, 5].set(1.0)
    _close(fn(logits.at[0, 5].set(jnp.nan), padded, labels, label_paddings),
           _unchecked("ctc_loss")(logits, padded, labels, label_paddings))
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.ctc_loss: logits must be finite, got nan"):
        jax.block_until_ready(fn(logits.at[0, 1].set(jnp.nan), logit_paddings, labels, label_paddings))


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("name", ["dice_loss", "jaccard_loss", "focal_tversky_loss"])
def test_checked_integer_targets_like_labels(mode, name):
    # Issue 11 item 6: integer targets of the segmentation losses are class indices too.
    rng, f32 = _rng_arrays()
    fn = dict(_both(jaxloss.get(name)))[mode]
    targets = jnp.asarray(rng.integers(0, 3, (2, 4, 4))).at[1, 2, 3].set(3)
    with pytest.raises(CHECK_ERRORS, match=rf"jaxloss\.{name}: targets must be in \[0, 3\), got 3 at flat index 27"):
        jax.block_until_ready(fn(f32(2, 4, 4, 3), targets))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_checked_lovasz_hinge_binary_labels(mode):
    rng, f32 = _rng_arrays()
    fn = dict(_both(jaxloss.lovasz_hinge_loss))[mode]
    labels = jnp.asarray(rng.integers(0, 2, (2, 4, 4))).at[0, 0, 1].set(2)
    with pytest.raises(CHECK_ERRORS, match=r"jaxloss\.lovasz_hinge_loss: labels must be 0 or 1, got 2 at flat index 1"):
        jax.block_until_ready(fn(f32(2, 4, 4), labels))


@pytest.mark.parametrize("make", [np.asarray, jnp.asarray], ids=["numpy", "jax"])
def test_checked_numpy_and_jax_weights_alike(make):
    fn = jaxloss.checked(jaxloss.huber_loss)
    p, t = jnp.array([0.2, 0.1, 0.3]), jnp.array([0.0, 1.0, 0.5])
    with pytest.raises(CHECK_ERRORS, match=r"weights must be >= 0, got -1\.0 at flat index 2"):
        fn(p, t, weights=make(np.array([1.0, 2.0, -1.0], np.float32)))
    good = make(np.array([1.0, 2.0, 0.5], np.float32))
    _close(fn(p, t, weights=good), jaxloss.huber_loss(p, t, weights=jnp.asarray(good)))
    # Masked NaN targets with NumPy weights: not checked, as with JAX weights.
    _close(fn(p, t.at[2].set(jnp.nan), weights=good, where=jnp.array([True, True, False])),
           jaxloss.huber_loss(p[:2], t[:2], weights=jnp.asarray(good)[:2]))


def test_checked_under_jit_prints_our_message_first(capfd):
    # Issue 11 item 6: under jit the first line a user reads is jaxloss's message.
    fn = jax.jit(jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels))
    with pytest.raises(CHECK_ERRORS) as info:
        jax.block_until_ready(fn(jnp.zeros((2, 3)), jnp.array([0, 5])))
    assert "jaxloss.softmax_cross_entropy_with_integer_labels: labels must be in [0, 3), got 5" in str(info.value)
    first = [line for line in capfd.readouterr().err.splitlines() if line.strip()][0]
    assert first.startswith("jaxloss.softmax_cross_entropy_with_integer_labels: labels must be in [0, 3), got 5")


# ================================================================ check_loss
@jaxloss.make_loss
def sqrt_error(predictions, targets):
    return jnp.sqrt(jnp.abs(predictions - targets))  # d/dr sqrt|r| is infinite at r = 0


def no_shape_check_loss(predictions, targets, *, reduction="mean", weights=None, where=None):
    """Hand-written squared error with dtype checks and a double-where but no shape check."""
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if not jnp.issubdtype(predictions.dtype, jnp.floating):
        raise TypeError("jaxloss.no_shape_check_loss: predictions must have a floating dtype")
    dtype = jnp.promote_types(predictions.dtype, jnp.float32)
    predictions, targets = predictions.astype(dtype), targets.astype(dtype)
    if where is not None:
        predictions = jnp.where(where, predictions, 0.0)
        targets = jnp.where(where, targets, 0.0)
    return jaxloss.reduce(jnp.square(predictions - targets), reduction=reduction, weights=weights, where=where)


@jaxloss.make_loss
def tracer_branching_loss(predictions, targets):
    # Different math when traced (jit) than when eager: a classic Python-level bug.
    if isinstance(predictions, jax.core.Tracer):
        return 2.0 * jnp.abs(predictions - targets)
    return jnp.square(predictions - targets)


def bfloat16_result_loss(predictions, targets, *, reduction="mean", weights=None, where=None):
    """Hand-written squared error that casts its result back to the input dtype."""
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.shape != targets.shape:
        raise ValueError("jaxloss.bfloat16_result_loss: predictions and targets must have the same shape")
    if not jnp.issubdtype(predictions.dtype, jnp.floating):
        raise TypeError("jaxloss.bfloat16_result_loss: predictions must have a floating dtype")
    in_dtype = predictions.dtype
    p32, t32 = predictions.astype(jnp.float32), targets.astype(jnp.float32)
    if where is not None:
        p32, t32 = jnp.where(where, p32, 0.0), jnp.where(where, t32, 0.0)
    value = jaxloss.reduce(jnp.square(p32 - t32), reduction=reduction, weights=weights, where=where)
    return value.astype(in_dtype)


def test_check_loss_catches_nan_gradient_at_zero_residual():
    p, t = _regression_example()
    # The checks are independent (a failing one never stops the others), so the edge check alone
    # reports exactly what it reports inside a full run.
    report = check_loss(sqrt_error, p, t, only=["edge"], raise_on_failure=False)
    assert not report.ok
    assert "edge" in report.failures, str(report)
    assert "gradient is not finite at identical inputs" in report.failures["edge"]
    assert "FAILED edge: " in str(report)
    with pytest.raises(AssertionError, match=r"(?s)check_loss\(sqrt_error\).*FAILED edge: gradient is not finite"):
        check_loss(sqrt_error, p, t, only=["edge"])


@pytest.mark.parametrize("shape", [(6,), (6, 3)])
@pytest.mark.parametrize("rank_promotion", ["allow", "raise"])
def test_check_loss_catches_silent_broadcasting(shape, rank_promotion):
    # A loss without shape checks broadcasts predictions [6, 1] against targets [6, 3] (or a batch
    # of 1 against a batch of 6) without complaint; check_loss must say so in plain words, both with
    # JAX's default rank promotion ("allow") and with this suite's conftest setting ("raise").
    p, t = _regression_example(shape)
    with jax.numpy_rank_promotion(rank_promotion):
        report = check_loss(no_shape_check_loss, p, t, only=["shapes"], raise_on_failure=False)
    assert "shapes" in report.failures, str(report)
    assert "silently broadcast" in report.failures["shapes"], str(report)
    assert "predictions" in report.failures["shapes"]


def test_check_loss_catches_jit_eager_disagreement():
    p, t = _regression_example()
    report = check_loss(tracer_branching_loss, p, t, raise_on_failure=False)
    assert "jit" in report.failures, str(report)
    assert "jax.jit disagrees with eager execution" in report.failures["jit"]
    # Only the jit check compares with op-by-op execution; the other checks share compiled programs.
    assert list(report.failures) == ["jit"], str(report)


def test_check_loss_catches_bfloat16_result():
    p, t = _regression_example()
    report = check_loss(bfloat16_result_loss, p, t, only=["dtype"], raise_on_failure=False)
    assert "dtype" in report.failures, str(report)
    assert "bfloat16 inputs gave a bfloat16 result" in report.failures["dtype"]
    assert "expected float32" in report.failures["dtype"]


@jax.custom_jvp
def _square_with_wrong_derivative(r):
    return jnp.square(r)


@_square_with_wrong_derivative.defjvp
def _square_with_wrong_derivative_jvp(primals, tangents):
    (r,), (dr,) = primals, tangents
    return jnp.square(r), 3.0 * r * dr  # should be 2 r dr


@jaxloss.make_loss
def wrong_gradient_loss(predictions, targets):
    return _square_with_wrong_derivative(predictions - targets)


@jaxloss.make_loss
def callback_loss(predictions, targets):
    # A host callback without a derivative rule: values work, gradients raise.
    diff = predictions - targets
    return jax.pure_callback(lambda d: np.square(d), jax.ShapeDtypeStruct(diff.shape, diff.dtype), diff)


def test_check_loss_catches_a_wrong_derivative():
    p, t = _regression_example()
    report = check_loss(wrong_gradient_loss, p, t, only=["call", "grad"], raise_on_failure=False)
    assert report.passed == ["call"], str(report)
    assert "gradients do not match finite differences in float64" in report.failures["grad"]


def test_check_loss_reports_a_failing_gradient_in_the_gradient_checks_only():
    # The checks share compiled programs that compute values and gradients together; when the
    # gradient cannot be taken, the value checks still pass and the error lands in the checks that
    # read gradients.
    p, t = _regression_example()
    report = check_loss(callback_loss, p, t, only=["call", "reduction", "grad", "where"], raise_on_failure=False)
    assert report.passed == ["call", "reduction"], str(report)
    assert set(report.failures) == {"grad", "where"}, str(report)
    assert "raised" in report.failures["grad"]


@jaxloss.make_loss
def correct_squared_error(predictions, targets):
    return jnp.square(predictions - targets)


@pytest.mark.parametrize("fn,kwargs", [(correct_squared_error, {}), (jaxloss.huber_loss, {"delta": 1.5})])
def test_check_loss_passes_a_correct_loss(fn, kwargs):
    p, t = _regression_example()
    report = check_loss(fn, p, t, raise_on_failure=False, **kwargs)
    assert report.ok, str(report)
    assert sorted(report.passed + list(report.skipped)) == sorted(CHECKS)
    # raise_on_failure=True (the default) does not raise when every check passes; the programs of
    # the checks above are not compiled again, so one check shows it.
    check_loss(fn, p, t, only=["call"], **kwargs)


def test_check_loss_only_and_skip():
    p, t = _regression_example()
    report = check_loss(sqrt_error, p, t, skip=["edge"], raise_on_failure=False)
    assert report.ok and "edge" in report.skipped
    report = check_loss(sqrt_error, p, t, only=["call", "jit"], raise_on_failure=False)
    assert report.passed == ["call", "jit"]
    with pytest.raises(ValueError, match=r"check names must be in"):
        check_loss(sqrt_error, p, t, only=["nonsense"])

"""``jaxloss.keras``: the Keras 3 adapter (issue 16, item 4).

Reference numbers come from Keras 3 itself on the JAX backend (``keras.losses.get``),
never from jaxloss, plus NumPy transcriptions of the formulas for the adapter of
jaxloss's own losses. Over every Keras name both sides run under ``jax.jit``: one
program each instead of one compile per primitive (CTC's, Circle's).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - depends on the environment
    pytest.skip("Keras must run on the JAX backend (KERAS_BACKEND=jax)", allow_module_level=True)

import jax  # noqa: E402

import jaxloss.keras as jk  # noqa: E402
from keras.src.losses import ALL_OBJECTS_DICT  # noqa: E402

# One xdist worker runs the whole file, so the programs its tests share compile once per run.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

# Keras's abstract base classes are identifiers of keras.losses.get but not losses.
KERAS_BUILTINS = sorted(set(ALL_OBJECTS_DICT) - {"Loss", "LossFunctionWrapper"})


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _inputs(name):
    """(y_true, y_pred) a Keras user would pass to the loss ``name`` (Keras's defaults: probabilities)."""
    rng = np.random.default_rng(0)
    canonical = jk._CLASSES[name][0] if name in jk._CLASSES else jk._FUNCTION_ALIASES.get(name, name)
    f32 = np.float32
    if canonical in ("mean_squared_error", "mean_absolute_error", "huber", "log_cosh"):
        return rng.normal(size=(4, 3)).astype(f32), rng.normal(size=(4, 3)).astype(f32) * 2
    if canonical in ("mean_absolute_percentage_error", "mean_squared_logarithmic_error", "poisson"):
        return rng.uniform(0.1, 3, (4, 3)).astype(f32), rng.uniform(0.1, 3, (4, 3)).astype(f32)
    if canonical == "kl_divergence":
        return _softmax(rng.normal(size=(4, 3))).astype(f32), _softmax(rng.normal(size=(4, 3))).astype(f32)
    if canonical == "cosine_similarity":
        return rng.normal(size=(4, 3)).astype(f32), rng.normal(size=(4, 3)).astype(f32)
    if canonical in ("hinge", "squared_hinge", "binary_crossentropy", "binary_focal_crossentropy"):
        y = (rng.random((4, 3)) > 0.5).astype(f32)
        if canonical in ("hinge", "squared_hinge"):
            return y, rng.normal(size=(4, 3)).astype(f32)
        return y, rng.uniform(0.02, 0.98, (4, 3)).astype(f32)
    if canonical in ("categorical_hinge", "categorical_crossentropy", "categorical_focal_crossentropy"):
        y = np.eye(4, dtype=f32)[rng.integers(0, 4, 5)]
        if canonical == "categorical_hinge":
            return y, rng.normal(size=(5, 4)).astype(f32)
        return y, _softmax(rng.normal(size=(5, 4))).astype(f32)
    if canonical == "sparse_categorical_crossentropy":
        return rng.integers(0, 4, 5).astype(f32), _softmax(rng.normal(size=(5, 4))).astype(f32)
    if canonical == "ctc":
        labels = np.array([[1, 2, 2, 0], [3, 1, 0, 0]], np.int32)
        return labels, rng.normal(size=(2, 7, 5)).astype(f32)
    if canonical in ("dice", "tversky"):
        return (rng.random((2, 4, 4, 1)) > 0.5).astype(f32), rng.uniform(0.01, 0.99, (2, 4, 4, 1)).astype(f32)
    if canonical == "circle":
        x = rng.normal(size=(6, 4))
        return np.array([0, 0, 1, 1, 2, 2], f32), (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(f32)
    raise AssertionError(f"no inputs for {name}")


def test_every_keras_builtin_name_is_accepted():
    assert set(jk.KERAS_NAMES) == set(KERAS_BUILTINS)


@pytest.mark.parametrize("name", KERAS_BUILTINS)
def test_get_equals_keras_on_every_builtin_name(name):
    y_true, y_pred = _inputs(name)
    expected = np.asarray(jax.jit(keras.losses.get(name))(y_true, y_pred))
    got = np.asarray(jax.jit(jk.get(name))(y_true, y_pred))
    assert got.shape == expected.shape, name
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name, config", [
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
    ("binary_crossentropy", {"from_logits": True}),
    ("BinaryFocalCrossentropy", {"from_logits": True, "apply_class_balancing": True, "gamma": 1.5,
                                 "label_smoothing": 0.05}),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.5, "label_smoothing": 0.1}),
    ("SparseCategoricalCrossentropy", {"from_logits": True}),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2}),
    ("Huber", {"delta": 0.3}),
    ("Tversky", {"alpha": 0.7, "beta": 0.3}),
    ("Dice", {"axis": (1, 2, 3)}),
    ("Circle", {"gamma": 10.0, "margin": 0.25}),
])
def test_get_equals_keras_with_options_and_sample_weight(name, config):
    y_true, y_pred = _inputs(name)
    if config.get("from_logits"):
        y_pred = np.log(y_pred) if name.lower().startswith(("categorical", "sparse")) else \
            np.log(y_pred) - np.log1p(-y_pred)
    reference = keras.losses.get({"class_name": name, "config": config}) if name[0].isupper() \
        else (lambda t, p: keras.losses.get(name)(t, p, **config))
    ours = jk.get(name, **config)
    np.testing.assert_allclose(np.asarray(ours(y_true, y_pred)), np.asarray(reference(y_true, y_pred)),
                               rtol=2e-5, atol=1e-6, err_msg=f"{name} {config}")
    if name[0].isupper() and name not in ("Dice", "Tversky"):
        weight = np.linspace(0.0, 2.0, y_pred.shape[0]).astype(np.float32)
        np.testing.assert_allclose(float(ours(y_true, y_pred, sample_weight=weight)),
                                   float(reference(y_true, y_pred, sample_weight=weight)), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "none", "mean_with_sample_weight"])
def test_get_class_reductions_equal_keras(reduction):
    y_true, y_pred = _inputs("CategoricalCrossentropy")
    weight = np.array([1.0, 0.0, 2.0, 0.5, 1.0], np.float32)
    expected = keras.losses.CategoricalCrossentropy(reduction=reduction)(y_true, y_pred, sample_weight=weight)
    got = jk.get("CategoricalCrossentropy", reduction=reduction)(y_true, y_pred, sample_weight=weight)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=2e-5)


def test_get_rejects_unknown_names_and_points_to_the_adapter():
    with pytest.raises(ValueError, match="not a Keras built-in loss.*close matches.*binary_crossentropy"):
        jk.get("binary_crossentropi")
    with pytest.raises(ValueError, match=r"jaxloss name: use jaxloss.keras.Loss\('huber_loss'\)"):
        jk.get("huber_loss")
    with pytest.raises(ValueError, match="Huber takes \\['delta'\\]"):
        jk.get("Huber", from_logits=True)


# ----------------------------------------------------------------- jaxloss.keras.Loss

def _log_softmax(x):
    return x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))


def test_loss_adapter_takes_keras_order_float_labels_and_sample_weight():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([[0.0], [3.0], [1.0], [2.0], [2.0]], np.float32)      # Keras hands labels over as floats
    weight = np.array([1.0, 0.5, 0.0, 2.0, 1.0], np.float32)
    # Reference: -log_softmax(logits)[label] with the label smoothing of torch (1 - e) onehot + e / C.
    e, c = 0.1, 4
    target = (1 - e) * np.eye(c)[labels[:, 0].astype(int)] + e / c
    per_example = -(target * _log_softmax(logits.astype(np.float64))).sum(-1)
    loss = jk.Loss("softmax_cross_entropy_with_integer_labels", label_smoothing=0.1)
    np.testing.assert_allclose(float(loss(labels, logits)), per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss(labels, logits, sample_weight=weight)),
                               (per_example * weight).sum() / 5, rtol=1e-5)   # Keras: sum_over_batch_size
    values = jk.Loss("softmax_cross_entropy_with_integer_labels", label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(np.asarray(values(labels, logits)), per_example, rtol=1e-5)
    summed = jk.Loss("softmax_cross_entropy_with_integer_labels", label_smoothing=0.1, reduction="sum")
    np.testing.assert_allclose(float(summed(labels, logits)), per_example.sum(), rtol=1e-5)


def test_loss_adapter_elementwise_losses_weight_examples_as_keras_does():
    # Keras's Huber averages the last axis, then weights examples: the adapter of jaxloss's
    # huber_loss (same formula) must give Keras's number with per-example sample weights.
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    weight = rng.uniform(0, 2, 6).astype(np.float32)
    for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        expected = keras.losses.Huber(delta=0.5, reduction=reduction)(y_true, y_pred, sample_weight=weight)
        got = jk.Loss("huber_loss", delta=0.5, reduction=reduction)(y_true, y_pred, sample_weight=weight)
        np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)


def test_loss_adapter_errors():
    with pytest.raises(ValueError, match="jaxloss.keras.Loss: reduction"):
        jk.Loss("huber_loss", reduction="avg")
    with pytest.raises(ValueError, match=r"jaxloss.keras.get\('binary_crossentropy'\)"):
        jk.Loss("binary_crossentropy")
    with pytest.raises(TypeError, match="name_or_fn"):
        jk.Loss(3)


def test_loss_adapter_round_trips_through_keras_config():
    loss = jk.Loss("huber_loss", delta=2.0, reduction="sum")
    again = jk.Loss.from_config(loss.get_config())
    y = np.array([[0.0, 4.0]], np.float32)
    assert float(again(y, y * 0)) == float(loss(y, y * 0))
    keras_like = jk.get("BinaryFocalCrossentropy", gamma=1.0)
    assert jk.KerasEquivalentLoss.from_config(keras_like.get_config()).config["gamma"] == 1.0


@pytest.fixture
def keras_promotion():
    """Keras's own layers (a Dense bias add) rely on JAX's default rank and dtype promotion."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def test_model_fit_with_a_jaxloss_loss_on_the_jax_backend(keras_promotion):
    """``model.compile(loss=jaxloss.keras.Loss(...))`` trains, and its reported loss is Keras's number."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = (x[:, :3].argmax(-1)).astype(np.int32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=jk.Loss("softmax_cross_entropy_with_integer_labels"))
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    ours = model.evaluate(x, y, verbose=0, batch_size=64)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(ours, float(reference), rtol=1e-5)


def test_keras_names_from_get_work_in_compile(keras_promotion):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x.sum(-1, keepdims=True) > 0).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss=jk.get("binary_crossentropy"))
    ours = model.evaluate(x, y, verbose=0, batch_size=32)
    reference = keras.losses.BinaryCrossentropy()(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(ours, float(reference), rtol=1e-5)
    assert jax.numpy.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])


# "kl_divergence" is both jaxloss's canonical name (optax's: log-predictions first) and a Keras
# function name ((y_true, y_pred) probabilities). A canonical jaxloss name always means the jaxloss
# function (jaxloss.get's docstring says so); every other Keras name is refused or gives Keras's number.
_CANONICAL_JAXLOSS_NAMES = ("kl_divergence",)


def test_canonical_jaxloss_name_shared_with_keras_means_the_jaxloss_function():
    import jaxloss

    for name in _CANONICAL_JAXLOSS_NAMES:
        assert jaxloss.get(name) is getattr(jaxloss, name)
        assert name in jaxloss.get.__doc__
    # The Keras meaning stays one call away.
    y_true = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    y_pred = np.array([[0.3, 0.7], [0.4, 0.6]], np.float32)
    np.testing.assert_allclose(float(np.mean(jk.get("kl_divergence")(y_true, y_pred))),
                               float(np.mean(keras.losses.get("kl_divergence")(y_true, y_pred))), rtol=2e-5)


@pytest.mark.parametrize("name", [n for n in KERAS_BUILTINS if n not in _CANONICAL_JAXLOSS_NAMES])
def test_plain_registry_never_returns_a_silently_different_number(name):
    """``jaxloss.get(keras_name)`` either refuses the name or gives Keras's number (issue 11, item 10)."""
    import jaxloss

    try:
        fn = jaxloss.get(name)
    except ValueError:
        return
    y_true, y_pred = _inputs(name)
    reference = np.asarray(keras.losses.get(name)(y_true, y_pred))
    # A Keras function returns per-sample values; a class a scalar. jaxloss's mean is over every element.
    np.testing.assert_allclose(float(fn(y_true, y_pred)), float(np.mean(reference)), rtol=2e-5, err_msg=name)

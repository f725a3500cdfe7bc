"""The package's public surface: flat re-exports, family modules, registry and aliases."""

import ast
import inspect
import pathlib

import jaxloss

FAMILIES = ["regression", "classification", "segmentation", "boxes", "embedding", "ranking", "sequence", "text",
            "generative", "robust", "large_vocab"]
TOOLKIT = {"reduce", "available", "get", "register", "checked", "combine", "make_loss"}


def _public_functions(family):
    source = pathlib.Path(jaxloss.__file__).parent.joinpath(f"{family}.py").read_text()
    return {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


def test_all_lists_every_public_function_of_every_family():
    expected = set(TOOLKIT)
    for family in FAMILIES:
        expected |= _public_functions(family)
    assert set(jaxloss.__all__) == expected
    assert len(jaxloss.__all__) == len(set(jaxloss.__all__))


def test_flat_names_are_the_family_functions():
    for family in FAMILIES:
        module = getattr(jaxloss, family)
        for name in _public_functions(family):
            assert getattr(jaxloss, name) is getattr(module, name)


def test_every_public_function_has_the_documented_sections():
    for name in jaxloss.__all__:
        doc = inspect.getdoc(getattr(jaxloss, name)) or ""
        for section in ("Args:", "Returns:", "Example:", "References:"):
            assert section in doc, f"jaxloss.{name} docstring lacks {section}"


def test_every_registered_loss_is_exported_and_keeps_the_common_keywords():
    for name in jaxloss.available():
        fn = jaxloss.get(name)
        assert getattr(jaxloss, name) is fn
        params = inspect.signature(fn).parameters
        for keyword in ("reduction", "weights", "where"):
            assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (name, keyword)
        assert params["reduction"].default == "mean"


def test_keras_aliases_resolve():
    # Keras 3 string identifiers (keras.losses.get) a Keras user passes as loss="...".
    expected = {
        "mse": "squared_error", "mae": "absolute_error", "mape": "absolute_percentage_error",
        "msle": "squared_log_error", "huber": "huber_loss", "log_cosh": "log_cosh",
        "binary_crossentropy": "binary_cross_entropy", "categorical_crossentropy": "softmax_cross_entropy",
        "sparse_categorical_crossentropy": "softmax_cross_entropy_with_integer_labels", "hinge": "hinge_loss",
        "squared_hinge": "squared_hinge_loss", "categorical_hinge": "multiclass_hinge_loss",
        "kld": "kl_divergence", "poisson": "poisson_loss", "cosine_similarity": "cosine_distance",
    }
    for alias, name in expected.items():
        assert jaxloss.get(alias) is getattr(jaxloss, name), alias
        assert alias in jaxloss.available(aliases=True)


def test_py_typed_ships():
    assert pathlib.Path(jaxloss.__file__).parent.joinpath("py.typed").exists()

"""The package's public surface: flat re-exports, family modules, registry and aliases."""

import ast
import inspect
import pathlib

import jaxloss

FAMILIES = ["regression", "classification", "segmentation", "boxes", "embedding", "ranking", "sequence", "text",
            "generative", "robust", "large_vocab", "preference", "distillation", "routing", "self_supervised",
            "diffusion"]
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
    for name in jaxloss.available(aliases=False):
        fn = jaxloss.get(name)
        assert getattr(jaxloss, name) is fn
        params = inspect.signature(fn).parameters
        for keyword in ("reduction", "weights", "where"):
            assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (name, keyword)
        assert params["reduction"].default == "mean"


def test_keras_aliases_resolve_only_where_keras_gives_the_same_number():
    # Keras 3 names whose Keras call loss(y_true, y_pred) equals the jaxloss function's value (the
    # function is symmetric in its two arguments and Keras's mean equals jaxloss's): they resolve.
    same = {"mse": "squared_error", "mae": "absolute_error", "msle": "squared_log_error", "huber": "huber_loss",
            "log_cosh": "log_cosh"}
    for alias, name in same.items():
        assert jaxloss.get(alias) is getattr(jaxloss, name), alias
        assert alias in jaxloss.available(aliases=True)
    # The others would give a different number (argument order, probabilities, formula): refused, with
    # the jaxloss function and the Keras adapter named.
    import pytest

    for alias in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "kld",
                  "mape", "poisson", "hinge", "categorical_hinge", "cosine_similarity"):
        with pytest.raises(ValueError, match=rf"jaxloss.keras.get\('{alias}'\)"):
            jaxloss.get(alias)


def test_py_typed_ships():
    assert pathlib.Path(jaxloss.__file__).parent.joinpath("py.typed").exists()


# ---------------------------------------------------------------------------
# The built distribution (issue 16): sdist and wheel build, pass `twine check`, ship py.typed and the
# data file, and the wheel installs into a fresh virtual environment and imports.

def test_sdist_and_wheel_build_check_and_install(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    import pytest

    pytest.importorskip("build")
    root = pathlib.Path(jaxloss.__file__).resolve().parent.parent
    # Build from a copy of what the sdist needs, so the work tree gets no build/ or egg-info.
    src = tmp_path / "src"
    shutil.copytree(root / "jaxloss", src / "jaxloss", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):
        shutil.copy(root / name, src / name)
    dist = tmp_path / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir",
                           str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert wheels[0].name.startswith(f"jaxloss-{jaxloss.__version__}-"), "the version has one source"
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert "jaxloss/py.typed" in names
    assert "jaxloss/data/robust_log_partition.npz" in names
    assert "jaxloss/keras.py" in names and not any(n.startswith(("tests/", "examples/")) for n in names)
    metadata = zipfile.ZipFile(wheels[0]).read(
        f"jaxloss-{jaxloss.__version__}.dist-info/METADATA").decode()
    assert "Classifier: Typing :: Typed" in metadata and "Provides-Extra: keras" in metadata

    if shutil.which("twine") or _has_module("twine"):
        done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    # A fresh venv that sees the installed dependencies (jax, chex, numpy) but not this checkout.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall",
                           str(wheels[0])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    probe = ("import jaxloss, pathlib, jax.numpy as jnp; "
             "assert 'site-packages' in jaxloss.__file__, jaxloss.__file__; "
             "assert pathlib.Path(jaxloss.__file__).with_name('py.typed').exists(); "
             "import numpy as np; "
             "table = np.load(pathlib.Path(jaxloss.__file__).parent / 'data' / 'robust_log_partition.npz'); "
             "assert len(table.files) > 0; "
             "print(float(jaxloss.huber_loss(jnp.array([0.0, 3.0]), jnp.array([0.0, 0.0]))), "
             "float(jaxloss.general_robust_loss(jnp.array([1.0]), alpha=1.0, scale=1.0)))")
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    huber, robust = map(float, done.stdout.split())
    assert huber == 1.25                       # (0 + (3 - 0.5)) / 2, from the installed wheel
    assert abs(robust - (2 ** 0.5 - 1)) < 1e-6  # Barron alpha = 1: sqrt(x^2 + 1) - 1


def _has_module(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None

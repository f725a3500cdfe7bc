"""The foundation's examples run from a clean checkout and do what the README says."""

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _user_promotion():
    """The examples are user programs: optax (an integer step count times a float) and Keras layers rely on
    JAX's default dtype and rank promotion, which the suite's conftest makes strict for the library."""
    import jax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `python examples/<name>.py` has it: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_train_digits_reaches_95_percent_with_defaults(tmp_path):
    # The bar: the default run reaches >= 95% held-out accuracy.
    accuracy = _load("train_digits").main(["--output", str(tmp_path / "curves.png")])
    assert accuracy >= 0.95
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_train_digits_rejects_options_the_loss_does_not_take(tmp_path):
    with pytest.raises(SystemExit, match="label_smoothing"):
        _load("train_digits").main(["--loss", "nll_loss", "--label-smoothing", "0.1", "--epochs", "1",
                                    "--output", str(tmp_path / "c.png")])


def test_custom_loss_example_runs(capsys):
    _load("custom_loss").main()
    out = capsys.readouterr().out
    import re

    # The number of checks grows with jaxloss.testing; none may fail on the well-written loss.
    assert re.search(r"check_loss\(cauchy_loss\): \d+ passed, 0 failed", out), out
    assert "FAILED edge: gradient is not finite" in out


# ---------------------------------------------------------------------------
# Every example runs in CI: each script under examples/ is found here and run with --smoke
# (a few steps on tiny data) through its main(argv), so an example cannot rot unnoticed.

import os  # noqa: E402
import subprocess  # noqa: E402

ROOT = EXAMPLES.parent
SMOKE_TIMEOUT_S = 300  # generous for 2 shared CPU cores; a smoke run takes seconds to tens of seconds
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


# Examples that simulate several devices set XLA_FLAGS before JAX starts: they need their own interpreter.
# The others run in this one (JAX, optax and matplotlib are imported once, not 20 times), through the
# same main(argv) that their command line calls.
OWN_INTERPRETER = {name for name in SCRIPTS if "xla_force_host_platform_device_count"
                   in (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")}


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_with_smoke(name, tmp_path, capsys, monkeypatch):
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    if name == "keras_fit":
        pytest.skip("run in-process by test_keras_fit_example_matches_keras_and_learns (one Keras start, not two)")
    if "--smoke" not in source:
        pytest.skip(f"examples/{name}.py has no --smoke flag yet: it runs only in full, outside the suite")
    argv = ["--smoke"]
    if "--output" in source:
        argv += ["--output", str(tmp_path / f"{name}.png")]
    if name in OWN_INTERPRETER:
        env = {**os.environ, "MPLBACKEND": "Agg", "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
               "TQDM_DISABLE": "1"}
        done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
        assert done.returncode == 0, f"examples/{name}.py --smoke failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        printed = done.stdout
    else:
        import matplotlib

        matplotlib.use("Agg")
        monkeypatch.setenv("TQDM_DISABLE", "1")
        monkeypatch.chdir(ROOT)
        _load(name).main(argv)  # promotion as a user's program: the fixture above
        printed = capsys.readouterr().out
    assert printed.strip(), f"examples/{name}.py --smoke printed nothing"
    if "--output" in source:
        written = list(tmp_path.glob(f"{name}*"))
        assert written and all(p.stat().st_size > 0 for p in written), f"examples/{name}.py wrote no figure"


def test_keras_fit_example_matches_keras_and_learns(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras must run on the JAX backend (KERAS_BACKEND=jax)")
    result = _load("keras_fit").main(["--smoke", "--output", str(tmp_path / "k.png")])  # promotion: fixture above
    # The loss Keras reports for jaxloss.keras.Loss equals Keras's own sparse cross-entropy on logits.
    assert result["test_loss"] == pytest.approx(result["keras_reference_loss"], rel=1e-5)
    assert result["test_accuracy"] > 0.2  # two epochs on 256 images: well above chance (0.1)
    assert (tmp_path / "k.png").stat().st_size > 0

"""The foundation's examples run from a clean checkout and do what the README says."""

import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
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
    assert "check_loss(cauchy_loss): 11 passed, 0 failed" in out
    assert "FAILED edge: gradient is not finite" in out

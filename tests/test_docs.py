"""The documentation site covers the public API (runs without MkDocs installed).

The API reference pages under ``docs/api/`` render objects with mkdocstrings
directives (``::: jaxloss.<family>.<name>``). These tests parse those pages as
plain text, so a public function added to ``jaxloss.__all__`` without a
reference entry, or an entry naming something that does not exist, fails here
and not only in ``mkdocs build --strict``.

The numeric checks call losses (ours and the peers' JAX ones) under ``jax.jit``:
eager calls compile each primitive on its own, and compilation is the suite's
cost.
"""

import importlib
import pathlib
import re

import pytest

import jaxloss
from tests.jitted import Jitted, jit_static


ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^:::\s+(jaxloss(?:\.\w+)*)\s*$", re.MULTILINE)
FAMILIES = ["regression", "classification", "segmentation", "boxes", "embedding", "ranking", "sequence", "text",
            "generative", "robust", "large_vocab"]
TOOLKIT = ["reduce", "make_loss", "combine", "checked", "get", "register", "available", "testing.check_loss"]


def _directives(page):
    return DIRECTIVE.findall(page.read_text(encoding="utf-8"))


def _resolve(path):
    """Imports the longest module prefix of a dotted path and walks the rest as attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _all_directives():
    return {path: page.name for page in sorted((DOCS / "api").glob("*.md")) for path in _directives(page)}


def test_every_public_name_is_in_the_reference():
    documented = {_resolve(path) for path in _all_directives()}
    missing = [name for name in jaxloss.__all__ if getattr(jaxloss, name) not in documented]
    assert not missing, f"public functions missing from docs/api/*.md: {missing}"


def test_every_reference_entry_exists():
    for path, page in _all_directives().items():
        try:
            _resolve(path)
        except (ImportError, AttributeError) as err:
            raise AssertionError(f"docs/api/{page}: '::: {path}' does not resolve ({err})") from None


def test_one_reference_page_per_family_with_its_functions():
    for family in FAMILIES:
        page = DOCS / "api" / f"{family}.md"
        assert page.exists(), f"no reference page {page.relative_to(ROOT)}"
        module = getattr(jaxloss, family)
        entries = {_resolve(path) for path in _directives(page)}
        for name in jaxloss.__all__:
            if getattr(module, name, None) is getattr(jaxloss, name):
                assert getattr(jaxloss, name) in entries, f"jaxloss.{family}.{name} not on docs/api/{family}.md"


def test_toolkit_page_lists_the_toolkit():
    entries = {_resolve(path) for path in _directives(DOCS / "api" / "toolkit.md")}
    for name in TOOLKIT:
        assert _resolve(f"jaxloss.{name}") in entries, f"jaxloss.{name} not on docs/api/toolkit.md"


def test_nav_pages_exist_and_every_example_has_a_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in re.findall(r"([\w/.-]+\.md)\s*$", config, re.MULTILINE):
        assert (DOCS / page).exists(), f"mkdocs.yml nav names a missing page docs/{page}"
    for script in sorted((ROOT / "examples").glob("*.py")):
        page = DOCS / "examples" / f"{script.stem}.md"
        assert page.exists(), f"example {script.name} has no page {page.relative_to(ROOT)}"
        assert f"examples/{script.name}" in page.read_text(encoding="utf-8"), f"{page.name} lacks its command"
        # The nav lists it, or docs/scripts/hooks.py (on_config) adds it under "Examples" at build time.


def test_docstring_rst_is_rewritten_for_mkdocstrings():
    """The griffe extension turns the reStructuredText bits of docstrings into Markdown (needs griffe)."""
    import importlib.util

    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_rst", DOCS / "scripts" / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    targets = {"huber_loss": "jaxloss.regression.huber_loss"}
    doc = ("Summary :math:`x^2`.\n\n.. math::\n\n    a = b\n\nSee :func:`huber_loss` and :func:`_private`.\n\n"
           "=====  =====\nname   value\n=====  =====\na      1\n=====  =====\n\n"
           "Args:\n  rtol, atol: tolerances.\n\nExample:\n  >>> 1\n  1\n")
    out = module.rst_to_markdown(doc, targets)
    assert "\\(x^2\\)" in out and "\\[\na = b\n\\]" in out
    assert "[`huber_loss`][jaxloss.regression.huber_loss]" in out and "`_private`" in out
    assert "| name | value |" in out and "| a | 1 |" in out
    assert "  rtol: tolerances.\n  atol: tolerances." in out
    assert "Examples:" in out and "Example:\n" not in out
    # A docstring completed at import time ("{args}" filled in by the module) is read from the object.
    assert module._TEMPLATE_FIELD.search("Args:\n  x: a.\n  {segments}\n")
    runtime = module._runtime_docstring("jaxloss.regression.huber_loss")
    assert runtime and runtime.startswith("Huber")


# ---------------------------------------------------------------------------
# Claims the docs make, checked as numbers (issue 11 item 11).

def test_pytorch_page_bce_weight_mapping():
    """docs/migration/pytorch.md#bce-weight: torch's weighted "mean" is jaxloss's weighted "sum" / x.size.

    Reference: torch/nn/functional.py ``binary_cross_entropy_with_logits`` calls the ATen kernel
    (aten/src/ATen/native/Loss.cpp): loss = (1 - y) x + log(1 + exp(-x)) (stable form), times ``weight``,
    then ``apply_loss_reduction`` takes a plain mean over every element. Transcribed in NumPy here.
    """
    import numpy as np

    import jaxloss.classification as cls

    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    y = (np.random.default_rng(1).random((4, 3)) > 0.5).astype(np.float32)
    w = np.array([[0.5], [2.0], [1.0], [3.0]], np.float32)
    per = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    torch_mean = float(np.mean(w * per))
    bce = jit_static(cls.sigmoid_binary_cross_entropy)
    np.testing.assert_allclose(float(bce(x, y, weights=w, reduction="sum")) / x.size,
                               torch_mean, rtol=1e-6)
    # The page's figures: 1.1464 (torch mean) against 0.7055 (jaxloss weighted mean).
    assert round(torch_mean, 4) == 1.1464
    assert round(float(bce(x, y, weights=w)), 4) == 0.7055
    page = (DOCS / "migration" / "pytorch.md").read_text(encoding="utf-8")
    assert "1.1464" in page and "0.7055" in page and 'reduction="sum") / x.size' in page
    try:
        import torch
    except ImportError:
        return
    import torch.nn.functional as F

    got = F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y), weight=torch.tensor(w)).item()
    np.testing.assert_allclose(got, torch_mean, rtol=1e-6)


def test_conventions_page_nan_padding_is_about_the_loss_inputs():
    """docs/conventions.md#masking-and-nan: NaN in a padded *model input* row poisons an upstream Dense
    layer's gradient through 0 x NaN; ``jnp.where`` on the inputs is the safe pattern."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxloss.classification as cls

    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    x[3] = np.nan                                             # a padded row holding garbage
    labels = jnp.array([0, 1, 1, 0])
    mask = jnp.array([True, True, True, False])
    w = jnp.ones((3, 2), jnp.float32) * 0.1

    def naive(w):
        return cls.softmax_cross_entropy_with_integer_labels(x @ w, labels, where=mask)

    def safe(w):
        return cls.softmax_cross_entropy_with_integer_labels(jnp.where(mask[:, None], x, 0.0) @ w, labels,
                                                             where=mask)

    value, grad = jax.jit(jax.value_and_grad(naive))(w)
    assert np.isfinite(value) and np.isnan(np.asarray(grad)).any()   # the loss is fine, the layer is not
    value, grad = jax.jit(jax.value_and_grad(safe))(w)
    assert np.isfinite(value) and np.isfinite(np.asarray(grad)).all()
    page = (DOCS / "conventions.md").read_text(encoding="utf-8")
    assert "jnp.where(mask[:, None], x, 0.0)" in page


# ---------------------------------------------------------------------------
# The site: a real home page, no placeholder, nothing loaded from another host (issue 16).

def _hooks():
    import importlib.util

    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("jaxloss_docs_hooks", DOCS / "scripts" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_page_source_is_a_placeholder_or_empty():
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        words = re.sub(r"[#`*_\[\]()|:>-]", " ", text).split()
        assert len(words) >= 15, f"{page.relative_to(ROOT)} is empty or nearly so"
        assert not re.search(r"\bTODO\b|\bFIXME\b|\bTBD\b", text), f"{page.relative_to(ROOT)} holds a placeholder"


def test_mkdocs_config_loads_nothing_from_another_host():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for section in ("extra_javascript", "extra_css"):
        block = re.search(rf"^{section}:\n((?:\s+-.*\n)+)", config, re.MULTILINE)
        if block:
            assert "://" not in block.group(1) and "//" not in block.group(1), f"{section} names another host"
    assert re.search(r"^\s+font: false", config, re.MULTILINE), "Material would load its fonts from a CDN"


def test_site_checker_flags_placeholders_empty_pages_and_external_resources():
    hooks = _hooks()
    body = "<p>" + "A real paragraph of documentation text. " * 5 + "</p>"
    good = (f'<html><head><link rel="stylesheet" href="assets/main.css"><script src="js/a.js"></script>'
            f'<link rel="next" href="https://example.org/x"></head><body><article>{body}</article></body></html>')
    assert hooks.page_problems("index.html", good) == []
    assert any("placeholder" in p for p in hooks.page_problems("index.html", good.replace("A real", "TODO", 1)))
    assert any("empty" in p for p in hooks.page_problems("x.html", "<article><h1>TODO</h1></article>"))
    for tag in ('<script src="https://cdn.example.org/mathjax.js"></script>',
                '<link rel="stylesheet" href="//fonts.example.org/css">',
                '<link rel="preconnect" href="https://fonts.gstatic.com">'):
        problems = hooks.page_problems("a.html", good.replace("</head>", tag + "</head>"))
        assert problems and "another host" in problems[0], tag


def test_mathjax_is_bundled_from_a_package():
    hooks = _hooks()
    try:
        root = hooks.mathjax_root()
    except Exception as err:  # the docs extra is not installed here

        pytest.skip(str(err))
    assert (root / "tex-chtml.js").stat().st_size > 500_000
    assert list((root / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))
    assert (root / "input" / "tex" / "extensions" / "boldsymbol.js").exists()


def test_home_page_example_runs():
    """The home page's thirty-second example trains (executed as written, minus nothing)."""
    import contextlib
    import io

    page = (DOCS / "index.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)```", page, re.DOTALL)[0]
    import jax

    out = io.StringIO()
    # As a user runs it, with JAX's default promotion: the suite's strict guards would refuse the bias's
    # broadcast and optax's own bias correction (an int step count times a float).
    with contextlib.redirect_stdout(out), jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(code, "docs/index.md", "exec"), {})
    loss = float(out.getvalue().rsplit(":", 1)[1])
    assert loss < 0.6  # from log(3) = 1.0986 at the zero initialisation
    assert "{{ families }}" in page


def test_nav_gains_every_example_and_api_page(tmp_path):
    hooks = _hooks()
    (tmp_path / "examples").mkdir()
    (tmp_path / "api").mkdir()
    (tmp_path / "examples" / "old.md").write_text("# Old\n")
    (tmp_path / "examples" / "new_one.md").write_text("Intro.\n\n# A new example\n")
    (tmp_path / "api" / "fam.md").write_text("no heading\n")
    config = {"docs_dir": str(tmp_path), "nav": [{"Home": "index.md"}, {"Examples": [{"Old": "examples/old.md"}]},
                                                 {"API reference": ["api/index.md"]}]}
    nav = hooks.on_config(config)["nav"]
    assert nav[1]["Examples"] == [{"Old": "examples/old.md"}, {"A new example": "examples/new_one.md"}]
    assert nav[2]["API reference"] == ["api/index.md", {"Fam": "api/fam.md"}]


def test_pytorch_page_concatenated_ctc_targets():
    """docs/migration/pytorch.md: torch's 1-D concatenated CTC targets, padded by the page's function,
    give torch's ctc_loss (torch/nn/functional.py ``ctc_loss`` with 1-D targets) through jaxloss.ctc_loss."""
    import numpy as np

    import jaxloss.sequence as seq

    page = (DOCS / "migration" / "pytorch.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```", page, re.DOTALL)
                if "def pad_concatenated_targets" in block)
    namespace = {}
    exec(compile(code.split("labels, label_paddings =")[0], "pytorch.md", "exec"), namespace)
    pad = namespace["pad_concatenated_targets"]
    lengths = np.array([3, 1, 4], np.int32)
    targets = np.array([1, 2, 2, 3, 4, 1, 1, 2], np.int32)
    labels, paddings = pad(targets, lengths, max_length=5)
    expected = np.zeros((3, 5), np.int32)
    for i, (start, n) in enumerate(zip(np.cumsum(lengths) - lengths, lengths)):
        expected[i, :n] = targets[start:start + n]
    np.testing.assert_array_equal(np.asarray(labels), expected)
    np.testing.assert_array_equal(np.asarray(paddings), (np.arange(5)[None] >= lengths[:, None]).astype(np.float32))
    try:
        import torch
    except ImportError:
        return
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 9, 5)).astype(np.float32)                  # [B, T, K], batch first
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    reference = torch.nn.functional.ctc_loss(torch.tensor(log_probs).transpose(0, 1), torch.tensor(targets),
                                             torch.full((3,), 9), torch.tensor(lengths), reduction="mean")
    ours = jit_static(seq.ctc_loss)(log_probs, np.zeros((3, 9), np.float32), labels, paddings,
                              normalize_by_label_length=True)
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-5)


# ---------------------------------------------------------------------------
# The migration pages name real functions, and their mappings hold as numbers (issues 12-14).

MIGRATION = DOCS / "migration"
_BACKTICKED = re.compile(r"`(jaxloss(?:\.\w+)+)")          # `jaxloss.x.y(...)` or `jaxloss.x`
_AUTOREF = re.compile(r"\]\[(jaxloss(?:\.\w+)+)\]")         # [`name`][jaxloss.family.name]


def _migration_names():
    names = set()
    for page in sorted(MIGRATION.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        names |= {(page.name, n) for n in _BACKTICKED.findall(text) + _AUTOREF.findall(text)
                  if not re.fullmatch(r"jaxloss\.[A-Z]", n)}                  # `jaxloss.X(...)`: any loss
    return names


def test_migration_pages_name_existing_jaxloss_functions():
    names = _migration_names()
    assert len(names) > 100  # the parser sees the tables, not nothing
    for page, name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as err:
            raise AssertionError(f"docs/migration/{page} names {name}, which does not exist ({err})") from None


def test_migration_pages_are_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in ("trl", "monai", "rax", "optax", "keras", "pytorch"):
        assert f"migration/{page}.md" in config, f"docs/migration/{page}.md is not in the mkdocs.yml nav"


def test_rax_page_item_weight_mappings():
    """docs/migration/rax.md#item-weights, against rax itself (rax/_src/losses.py: ``softmax_loss`` multiplies
    the labels by ``weights``; ``_pairwise_loss`` multiplies pair (i, j) by ``weights[i]`` and reduces with a
    plain mean over the valid pairs; the pointwise losses multiply each item's loss and take a plain mean)."""
    import jax.numpy as jnp
    import numpy as np

    rax = pytest.importorskip("rax")
    import jaxloss.ranking

    rk = Jitted(jaxloss.ranking)
    peer = Jitted(rax)

    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=(3, 5)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(3, 5)).astype(np.float32)
    m = rng.uniform(size=(3, 5)) > 0.2
    valid_pairs = float((m[:, :, None] & m[:, None, :] & (y[:, :, None] > y[:, None, :])).sum())
    np.testing.assert_allclose(rk.ranking_softmax_loss(s, y * w, where=m),
                               peer.softmax_loss(s, y, weights=w, where=m), rtol=1e-5)
    pair_w = jnp.repeat(w, 5, axis=-1)
    total = rk.pairwise_logistic_loss(s, y, weights=pair_w, where=m, reduction="sum")
    np.testing.assert_allclose(total, peer.pairwise_logistic_loss(s, y, weights=w, where=m, reduce_fn=jnp.sum),
                               rtol=1e-5)
    np.testing.assert_allclose(total / valid_pairs, peer.pairwise_logistic_loss(s, y, weights=w, where=m), rtol=1e-5)
    np.testing.assert_allclose(rk.pointwise_mse_loss(s, y, weights=w, where=m, reduction="sum") / float(m.sum()),
                               peer.pointwise_mse_loss(s, y, weights=w, where=m), rtol=1e-5)
    np.testing.assert_allclose(rk.pairwise_logistic_loss(s, y, where=m, lambdaweight="dcg"),
                               peer.pairwise_logistic_loss(s, y, where=m, lambdaweight_fn=rax.dcg_lambdaweight),
                               rtol=1e-5)
    page = (MIGRATION / "rax.md").read_text(encoding="utf-8")
    assert "weights=jnp.repeat(w, L, axis=-1)" in page and "y * w" in page


def test_monai_page_mappings():
    """docs/migration/monai.md, against MONAI itself (monai/losses/dice.py ``DiceLoss``, ``MaskedDiceLoss``;
    monai/losses/hausdorff_loss.py ``LogHausdorffDTLoss`` = log(HausdorffDTLoss + 1); monai/losses/ssim_loss.py;
    monai/losses/cldice.py ``SoftclDiceLoss``, whose harmonic mean adds ``smooth=1e-4`` to its denominator)."""
    import numpy as np

    losses = pytest.importorskip("monai.losses")
    torch = pytest.importorskip("torch")
    import jaxloss.segmentation

    seg = Jitted(jaxloss.segmentation)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 12, 12)).astype(np.float32)             # MONAI's layout [B, C, H, W]
    labels = rng.integers(0, 3, size=(2, 1, 12, 12))
    onehot = np.moveaxis(np.eye(3, dtype=np.float32)[labels[:, 0]], -1, 1)
    X, Y = torch.from_numpy(x), torch.from_numpy(labels)
    np.testing.assert_allclose(seg.dice_loss(x, labels[:, 0], channel_axis=1),
                               float(losses.DiceLoss(softmax=True, to_onehot_y=True)(X, Y)), rtol=1e-5)
    probs = torch.softmax(X, 1)
    np.testing.assert_allclose(seg.dice_loss(probs.numpy(), onehot, channel_axis=1, activation=None),
                               float(losses.DiceLoss()(probs, torch.from_numpy(onehot))), rtol=1e-5)
    mask = rng.uniform(size=(2, 1, 12, 12)) > 0.3
    np.testing.assert_allclose(seg.dice_loss(x, onehot, channel_axis=1, where=mask[:, 0]),
                               float(losses.MaskedDiceLoss(softmax=True)(X, torch.from_numpy(onehot),
                                                                          mask=torch.from_numpy(mask))), rtol=1e-5)
    np.testing.assert_allclose(np.log1p(seg.hausdorff_dt_loss(x, labels[:, 0], channel_axis=1, activation="softmax")),
                               float(losses.LogHausdorffDTLoss(softmax=True, to_onehot_y=True)(X, Y)), rtol=1e-5)
    a, b = rng.uniform(size=(2, 3, 16, 16)).astype(np.float32), rng.uniform(size=(2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(seg.ssim_loss(a, b, channel_axis=1),
                               float(losses.SSIMLoss(spatial_dims=2)(torch.from_numpy(a), torch.from_numpy(b))),
                               rtol=1e-5)
    ours = float(seg.soft_cldice_loss(x, labels[:, 0], channel_axis=1))
    theirs = float(losses.SoftclDiceLoss(softmax=True, to_onehot_y=True)(X, Y))
    assert ours != theirs and abs(ours - theirs) / theirs < 1e-3                 # only MONAI's extra 1e-4
    np.testing.assert_allclose(ours, theirs, rtol=5e-4)


def test_pytorch_page_metric_learning_mappings():
    """docs/migration/pytorch.md#pytorch-metric-learning, against pytorch-metric-learning itself
    (pytorch_metric_learning/losses/{arcface_loss,cosface_loss,supcon_loss,circle_loss}.py): class weights
    ``W`` are ``[D, C]`` (pass ``W.T``) and ArcFace's margin is in degrees."""
    import numpy as np

    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    import jaxloss.embedding

    emb = Jitted(jaxloss.embedding)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=12)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    for cls, ours in ((pml.ArcFaceLoss, lambda: emb.arcface_loss(x, w.T, y, margin=float(np.deg2rad(28.6)))),
                      (pml.CosFaceLoss, lambda: emb.cosface_loss(x, w.T, y))):
        module = cls(num_classes=3, embedding_size=5)
        module.W.data = torch.from_numpy(w)
        np.testing.assert_allclose(ours(), float(module(X, Y).detach()), rtol=1e-4)
    np.testing.assert_allclose(emb.supervised_contrastive_loss(x, y), float(pml.SupConLoss()(X, Y)), rtol=1e-5)
    np.testing.assert_allclose(emb.circle_loss(x, y), float(pml.CircleLoss()(X, Y)), rtol=1e-5)

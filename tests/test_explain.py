"""The explanation registry and ``explain``: every method through the same checks.

Models are tiny and seeded (random weights; BatchNorm statistics re-estimated on random images,
then eval mode), inputs are 32-64 px, budgets (samples, steps, batch sizes) are small. The
slow part runs the heavy architectures and the per-architecture property checks that decide
the compatibility matrix (LRP conservation, DeepLIFT summation-to-delta, CAM's exact
decomposition).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medxai_lite.explain import (
    METHODS,
    Explanation,
    UnsupportedArchitectureError,
    compatibility_matrix,
    explain,
    infer_arch,
    list_methods,
    methods_table,
)
from medxai_lite.models.vit import HybridViT
from medxai_lite.models.zoo import ARCHS, SmallCNN, get_model

ALL = list_methods()
CAM_METHODS = list_methods("CAM-based")
GRADIENT_METHODS = list_methods("Gradient-based")

#: Every method runs at its registry preset "quick" (samples, steps, batch sizes), so a slow
#: method added later brings its own budget. The zoo's big architectures ablate a quarter of
#: the channels on top (Ablation-CAM makes one forward pass per channel).
QUICK = dict(preset="quick")
HEAVY = {"ablationcam": dict(ratio_channels_to_ablate=0.25)}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; two OpenMP threads on a shared 2-core machine
    spin against other processes (measured: 0.9 s instead of 0.007 s per call)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _settle(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
    """Re-estimate BatchNorm statistics on random images (exact averages), then eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    gen = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, size, size, generator=gen))
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def small():
    """SmallCNN, width 4 (32 channels in the CAM layer), 3 classes."""
    torch.manual_seed(0)
    return _settle(SmallCNN(num_classes=3, width=4), 32)


@pytest.fixture(scope="module")
def images():
    return _images(2, 32)


_ZOO: dict = {}


def zoo(arch: str, size: int = 32) -> nn.Module:
    """A seeded zoo model (3 classes), BatchNorm settled at ``size``; built once per session."""
    if (arch, size) not in _ZOO:
        torch.manual_seed(0)
        _ZOO[(arch, size)] = _settle(get_model(arch, num_classes=3), size)
    return _ZOO[(arch, size)]


class Mask(nn.Module):
    """Multiplies by a fixed 0/1 mask [H, W]."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x * self.mask


class RegionModel(nn.Module):
    """Reads only the square rows/cols 20..27 of a 32-px image: a fixed mask zeroes the features elsewhere."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        mask = torch.zeros(32, 32)
        mask[20:28, 20:28] = 1
        self.mask = Mask(mask)  # the last module with a spatial output: the default CAM layer
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        features = self.mask(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc(torch.flatten(self.pool(features), 1))


class PlainCNN(nn.Module):
    """A BatchNorm-free CNN outside the zoo (arch unknown): where the epsilon-LRP rule is conservative."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        torch.manual_seed(4)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.fixture(scope="module")
def plain():
    return PlainCNN().eval()


@pytest.fixture(scope="module")
def vit():
    """A small hybrid ViT (two blocks of two heads, a 4 x 4 token grid at 32 px) for the attention family."""
    torch.manual_seed(0)
    return HybridViT(num_classes=3, dim=16, depth=2, heads=2, grid=4).eval()


def _needs_attention(method: str) -> bool:
    return "attention" in METHODS[method].requires


@pytest.fixture(scope="module")
def text_models(small):
    """Untrained text models of :mod:`medxai_lite.models.text` around the SmallCNN (a brain-phantom
    vocabulary; 8 reference reports for retrieval), one per text method."""
    from medxai_lite.data import load_dataset
    from medxai_lite.models import text as T

    refs = load_dataset("phantom-brain-mri", "train", image_size=32, n=8, seed=0)
    torch.manual_seed(0)
    vocab = T.Vocabulary.build(refs.captions + [q for pairs in refs.qa for q, _ in pairs])
    answers = sorted({a for pairs in refs.qa for _, a in pairs})
    vqa = T.VisualQA(small, T.VQANet(len(vocab), len(answers), 32).eval(), vocab, answers).eval()
    return {"captioner": T.Captioner(small, T.CaptionDecoder(len(vocab), 32).eval(), vocab, max_len=6).eval(),
            "vqa": vqa, "report_template": T.TemplateReporter(vqa, "phantom-brain-mri").eval(),
            "report_retrieval": T.ReportRetriever(small, refs).eval()}


def _needs_text(method: str) -> bool:
    return "language_model" in METHODS[method].requires


@pytest.fixture(scope="module")
def concept_model(small):
    """An untrained concept bottleneck (4 named concepts, 3 classes) around the SmallCNN."""
    from medxai_lite.concepts import ConceptBottleneckModel

    return ConceptBottleneckModel.untrained(small, ["a", "b", "c", "d"], 3).eval()


def _needs_concepts(method: str) -> bool:
    return "concept_bottleneck" in METHODS[method].requires


@pytest.fixture
def model_for(small, plain, vit, text_models, concept_model):
    """The SmallCNN; the plain CNN for a method the registry refuses on small_cnn; the ViT for the
    attention family; a text model around the SmallCNN for the text family; a concept bottleneck
    around it for the bottleneck methods."""
    return lambda method: text_models[method] if _needs_text(method) else vit if _needs_attention(method) \
        else concept_model if _needs_concepts(method) else small if METHODS[method].supports("small_cnn") else plain


def _hook_count(model: nn.Module) -> int:
    return sum(len(getattr(m, d)) for m in model.modules()
               for d in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def _snapshot(model: nn.Module):
    return ([n for n, _ in model.named_modules()], {k: v.clone() for k, v in model.state_dict().items()})


def _assert_same_value(a, b) -> None:
    """Two values of a non-map kind are equal (arrays inside dicts compared element-wise)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), "not deterministic"
        for key in a:
            _assert_same_value(a[key], b[key])
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg="not deterministic")
    else:
        assert a == b, "not deterministic"


def _assert_contract(result: Explanation, method: str, n: int, size: int) -> None:
    assert isinstance(result, Explanation)
    assert result.method == method and result.family == METHODS[method].family
    assert result.targets.shape == (n,) and result.targets.dtype == np.int64
    if result.kind == "text":
        assert result.maps is None and len(result.value) == n and all(isinstance(t, str) for t in result.value)
        return
    if result.kind != "map":     # the other kinds' contracts are checked by explain (tests/test_output_kinds.py)
        assert result.maps is None and result.raw is None and result.value is not None
        return
    assert result.maps.shape == (n, size, size) and result.maps.dtype == np.float32
    assert result.raw.shape == (n, size, size) and result.raw.dtype == np.float32
    assert np.isfinite(result.maps).all() and np.isfinite(result.raw).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    assert result.targets.shape == (n,) and result.targets.dtype == np.int64
    assert result.seconds > 0


# --------------------------------------------------------------------------- the registry


def test_every_registered_method_is_described_and_in_a_survey_family():
    from medxai_lite.explain import OUTPUT_KINDS, PRESETS
    from medxai_lite.taxonomy import FAMILIES

    families = {f for _, f in FAMILIES}
    # the two chapters' methods are there (others may be added: a subset, not an exact list)
    assert {"cam", "gradcam", "gradcampp", "xgradcam", "ablationcam", "eigengradcam", "layercam"} <= set(CAM_METHODS)
    assert {"saliency", "integrated_gradients", "deeplift", "lrp_composite"} <= set(GRADIENT_METHODS)
    for name, info in METHODS.items():
        assert info.family in families
        assert info.output in OUTPUT_KINDS
        assert info.cost in ("fast", "medium", "slow") and info.library and info.paper and info.title
        assert isinstance(info.needs_gradients, bool)
        assert info.summary, f"{name} has no docstring"
        assert set(info.unsupported) <= set(ARCHS)
        assert all(reason and isinstance(reason, str) for reason in info.unsupported.values())
        assert set(info.presets) == set(PRESETS)
        assert all(set(opts) <= set(info.options) for opts in info.presets.values())
    with pytest.raises(TypeError):
        METHODS["x"] = None  # read-only view


def test_register_fills_the_registry_and_refuses_a_clash(small, images):
    from medxai_lite.explain import AdapterResult, register, unregister

    @register("test_mean_image", title="Mean image", family="Perturbation-based", library="none",
              needs_gradients=False, cost="fast", paper="none", presets={"quick": {"power": 3.0}})
    def _mean_image(call, power: float = 1.0):
        """Mean over channels of |x| ** power (a stand-in adapter)."""
        return AdapterResult(raw=call.images.abs().pow(power).mean(1))

    try:
        assert METHODS["test_mean_image"].options == ("power",)
        result = explain("test_mean_image", small, images, power=2.0)
        _assert_contract(result, "test_mean_image", 2, 32)
        np.testing.assert_allclose(result.raw, images.pow(2).mean(1).numpy(), rtol=1e-6)
        quick = explain("test_mean_image", small, images, preset="quick")
        np.testing.assert_allclose(quick.raw, images.abs().pow(3).mean(1).numpy(), rtol=1e-5)
        assert quick.options == {"power": 3.0}
        explicit = explain("test_mean_image", small, images, preset="quick", power=1.0)  # explicit wins
        np.testing.assert_allclose(explicit.raw, images.abs().mean(1).numpy(), rtol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            register("test_mean_image", title="x", family="Perturbation-based", library="none", needs_gradients=False,
                     cost="fast", paper="none")(lambda call: None)
        with pytest.raises(ValueError, match="cost"):
            register("test_other", title="x", family="Perturbation-based", library="none", needs_gradients=False,
                     cost="cheap", paper="none")
        with pytest.raises(ValueError, match="preset"):
            explain("test_mean_image", small, images, preset="fast")
    finally:
        unregister("test_mean_image")
    assert "test_mean_image" not in METHODS


def test_a_family_typo_or_a_wrong_declaration_is_refused_naming_the_valid_choices():
    from medxai_lite.explain import register

    decl = dict(title="x", library="none", needs_gradients=False, cost="fast", paper="none")
    with pytest.raises(ValueError, match=r"unknown family 'Gradient based'; valid choices: CAM-based, Gradient-based"):
        register("typo", family="Gradient based", **decl)
    with pytest.raises(ValueError, match="unknown output 'maps'.*map, concepts, examples, text"):
        register("typo", family="Gradient-based", output="maps", **decl)
    with pytest.raises(ValueError, match="unknown requires 'gap_head'"):
        register("typo", family="CAM-based", requires={"gap_head": "x"}, **decl)
    with pytest.raises(ValueError, match="unknown presets 'fast'"):
        register("typo", family="CAM-based", presets={"fast": {}}, **decl)
    with pytest.raises(ValueError, match=r"presets\['quick'\] of method 'typo' names unknown option\(s\) 'step'"):
        register("typo", family="CAM-based", presets={"quick": {"step": 1}}, **decl)(lambda call, steps=2: None)
    assert "typo" not in METHODS


def test_a_capability_in_requires_refuses_exactly_the_architectures_that_lack_it():
    from medxai_lite.models import ARCH_SPECS

    for name, info in METHODS.items():
        for cap in info.requires:
            lacking = {a for a, spec in ARCH_SPECS.items() if not spec.has(cap)}
            assert lacking <= set(info.unsupported), (name, cap)
            for arch in lacking:
                assert info.reason(arch).startswith(ARCH_SPECS[arch].title + ": ")
    assert set(METHODS["cam"].unsupported) == {"vgg16", "hybrid_vit"}
    assert set(METHODS["attention_rollout"].unsupported) == set(ARCHS) - {"hybrid_vit"}
    assert set(METHODS["lrp_epsilon"].unsupported) == set(ARCHS) - {"vgg16"}


def test_the_subpackage_import_gives_the_subpackage_and_the_verb_still_works(small, images):
    import types

    import medxai_lite as mx
    import medxai_lite.explain as E

    assert isinstance(E, types.ModuleType) and E is mx.explain
    assert E.register is not None and E.METHODS is METHODS
    np.testing.assert_array_equal(mx.explain("saliency", small, images).maps, E.explain("saliency", small, images).maps)


def test_list_methods_filters_by_family_and_rejects_unknown_family():
    assert set(CAM_METHODS) | set(GRADIENT_METHODS) <= set(ALL)
    with pytest.raises(ValueError, match="family"):
        list_methods("Perturbation-ish")
    table = methods_table()
    assert list(table.index) == ALL and {"family", "library", "cost", "needs_gradients"} <= set(table.columns)


def test_compatibility_matrix_is_read_from_the_registry():
    matrix = compatibility_matrix()
    assert list(matrix.columns) == list(ARCHS) and list(matrix.index) == ALL
    assert set(matrix.stack().map(lambda v: v == "yes" or v.startswith("no: "))) == {True}
    assert matrix.loc["cam", "vgg16"].startswith("no: ") and "VGG16" in matrix.loc["cam", "vgg16"]
    assert matrix.loc["lrp_composite", "resnet50"] == "yes"
    assert matrix.loc["deeplift", "efficientnet_b0"].startswith("no: ")
    assert (matrix.loc[CAM_METHODS, "resnet50"] == "yes").all()
    assert list(compatibility_matrix(["vgg16"], family="CAM-based").index) == CAM_METHODS
    with pytest.raises(ValueError, match="archs"):
        compatibility_matrix(["alexnet"])


def test_arch_is_inferred_from_the_model_class():
    assert infer_arch(SmallCNN(2)) == "small_cnn"
    assert infer_arch(RegionModel()) is None
    import torchvision

    assert infer_arch(torchvision.models.resnet18(num_classes=2)) == "resnet18"
    assert infer_arch(torchvision.models.resnet50(num_classes=2)) == "resnet50"
    assert infer_arch(torchvision.models.densenet121(num_classes=2)) == "densenet121"
    assert infer_arch(torchvision.models.efficientnet_b0(num_classes=2)) == "efficientnet_b0"


# --------------------------------------------------------------------------- every method, same checks


@pytest.mark.parametrize("method", ALL)
def test_every_method_keeps_the_contract_and_leaves_the_model_as_found(method, model_for, images):
    small = model_for(method)
    # state the model is in before: some gradients present, one parameter frozen
    params = list(small.parameters())
    torch.manual_seed(1)
    before_grads = [torch.randn_like(p) for p in params]
    for p, g in zip(params, before_grads):
        p.grad = g.clone()
    params[0].requires_grad_(False)
    names, state = _snapshot(small)
    try:
        first = explain(method, small, images, **QUICK)
        second = explain(method, small, images, **QUICK)
        _assert_contract(first, method, 2, 32)
        if first.kind == "map":
            np.testing.assert_allclose(first.maps, second.maps, atol=1e-5, err_msg="not deterministic")
            np.testing.assert_allclose(first.raw, second.raw, rtol=1e-4, atol=1e-6)
        else:
            _assert_same_value(first.value, second.value)
        assert _hook_count(small) == 0
        assert all(not m.training for m in small.modules())
        assert [p.requires_grad for p in params] == [False] + [True] * (len(params) - 1)
        for p, g in zip(params, before_grads):
            assert torch.equal(p.grad, g)
        names_after, state_after = _snapshot(small)
        assert names_after == names
        assert all(torch.equal(state[k], state_after[k]) for k in state)
        with torch.no_grad():
            assert list(first.targets) == small(images).argmax(1).tolist()
    finally:
        for p in params:
            p.grad = None
            p.requires_grad_(True)


@pytest.mark.parametrize("method", ALL)
def test_no_hooks_left_and_gradients_restored_after_an_error(method, model_for, images):
    small = model_for(method)
    calls = {"n": 0}

    def boom(module, inputs, output):
        calls["n"] += 1
        raise RuntimeError("boom")

    head = small.head if _needs_attention(method) else small.classifier.classifier if _needs_text(method) \
        else small.classifier
    handle = head.register_forward_hook(boom)
    params = list(small.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            explain(method, small, images, targets=[0, 1], **QUICK)
        assert calls["n"] >= 1
        assert _hook_count(small) == 1 and len(head._forward_hooks) == 1  # only the user's own
        assert all(p.requires_grad and torch.equal(p.grad, torch.ones_like(p)) for p in params)
    finally:
        handle.remove()
        for p in params:
            p.grad = None
    assert _hook_count(small) == 0


def test_ablation_cam_puts_the_target_layer_back_after_an_error(small, images):
    layer = small.features[-1]
    state = {"n": 0}

    def fail_during_ablation(module, inputs, output):  # 1st call: the hooked pass; later: ablated passes
        state["n"] += 1
        if state["n"] >= 3:
            raise RuntimeError("boom")

    handle = small.classifier.register_forward_hook(fail_during_ablation)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            explain("ablationcam", small, images, batch_size=8)
    finally:
        handle.remove()
    assert small.features[-1] is layer and _hook_count(small) == 0


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "small_cnn"])
def test_ablation_cam_on_the_head_gives_the_whole_networks_maps(arch):
    """Known answer: pytorch-grad-cam's ablation layer discards its input, so running the library
    on the part after the layer (fed the layer's activations) gives the whole network's maps."""
    torch.manual_seed(0)
    model = get_model(arch, 3, pretrained=False).eval()
    x = torch.randn(2, 3, 32, 32)
    for ratio, align in ((1.0, True), (0.25, False)):
        head = explain("ablationcam", model, x, arch=arch, align=align, ratio_channels_to_ablate=ratio, batch_size=64)
        whole = explain("ablationcam", model, x, arch=arch, align=align, ratio_channels_to_ablate=ratio, batch_size=64,
                        head_only=False)
        np.testing.assert_allclose(head.maps, whole.maps, atol=1e-6)
        np.testing.assert_allclose(np.asarray(head.raw), np.asarray(whole.raw), atol=1e-6)
        assert head.extras["grid"] == whole.extras["grid"]


@pytest.mark.parametrize("shift", [0.0, -0.5])     # after a ReLU (minimum 0), and with negative activations
def test_ablation_layer_writes_what_the_librarys_writes(shift):
    """Known answer: the ablation layer that reads the minimum once a batch writes exactly the
    values pytorch-grad-cam's AblationLayer writes (zeros after a ReLU; else a minimum 1e7 lower
    for each copy in turn)."""
    from pytorch_grad_cam import AblationLayer

    from medxai_lite.explain.cam import _ablation_layer

    torch.manual_seed(0)
    acts = torch.relu(torch.randn(1, 16, 3, 3)) + shift
    indices = np.int32(np.random.default_rng(0).permutation(16)[:6])
    out = []
    for layer in (AblationLayer(), _ablation_layer()):
        layer.set_next_batch(0, acts, len(indices))
        layer.indices = indices
        out.append(layer(None).clone())
    assert torch.equal(out[0], out[1])
    assert (out[1][np.arange(6), indices] < acts.min()).all() if shift else (out[1][np.arange(6), indices] == 0).all()


def test_split_at_cuts_only_where_nothing_skips_the_cut():
    from medxai_lite.explain.cam import split_at

    torch.manual_seed(0)
    model = get_model("resnet18", 2, pretrained=False).eval()
    x = torch.randn(2, 3, 32, 32)
    body, head = split_at(model, model.layer4[-1])
    with torch.no_grad():
        torch.testing.assert_close(head(body(x)), model(x))
    # inside a residual block the block's input also reaches the sum after the cut: no cut
    assert split_at(model, model.layer4[0].conv1) is None
    assert split_at(model, nn.Conv2d(1, 1, 1)) is None                  # not a module of the model


@pytest.mark.parametrize("method", ALL)
def test_a_model_in_training_mode_is_refused_not_switched(method, model_for, images):
    small = model_for(method)
    small.train()
    try:
        with pytest.raises(RuntimeError, match=r"training mode.*model\.eval\(\)"):
            explain(method, small, images)
        assert all(m.training for m in small.modules())
    finally:
        small.eval()


class ConfidentRegionModel(RegionModel):
    """RegionModel with its logits x 1000: hiding the square moves the class probability from ~1 to ~0.5,
    where RegionModel's own moves by less than 1 %."""

    def forward(self, x):
        return 1000 * super().forward(x)


#: Where "95 % of the map's mass within the square's 2-px margin" is not a fair expectation, what is
#: expected instead: (kind, options on top of the "quick" preset, explain ConfidentRegionModel?).
#: "ratio": the square's mean relevance is more than twice the mean outside the margin; "cell": 95 % of
#: the mass in [16, 32)^2, the cell of a 16-px grid that holds the margin; "units": 95 % of the mass on
#: the superpixels (``extras["segments"]``) that overlap the margin, or no mass at all; "peak": the
#: maximum lies within the margin.
REGION_EXPECTATIONS = {
    # whole segments are ranked; at 32 px a segment can straddle the border (the 2x margin was measured
    # at 4 IG steps: at 32 px whole segments move with the steps)
    "xrai": ("ratio", {"steps": 4}, False),
    # regression surrogates on ~36 superpixels: the model's non-additive effects (its ReLUs) leak weight
    # onto every superpixel (measured: 60-80 % of the mass on the superpixels that overlap the margin at
    # 64 samples, 91-97 % at 1000; the square's mean is ~10x the outside mean)
    "lime": ("ratio", {}, False),
    "kernelshap": ("ratio", {}, False),
    # one value per window (quick: 16 px every 16 px) / per block of shap's hierarchy, which halves the
    # image (16, 8, 4 px): the margin [18, 30) lies in the cell [16, 32)^2 of either
    "occlusion": ("cell", {}, False),
    "partition_shap": ("cell", {}, False),
    # an anchor is a set of whole superpixels; here the predicted class survives any hiding (the logits
    # differ by < 0.01), so the anchor is empty and an empty map is the right answer
    "anchors": ("units", {}, False),
    # a smooth mask (Gaussian bumps, never exactly 0) of a set area, 10 %, not fitted to the square; on
    # the confident copy: RegionModel's logit barely moves when the square is blurred, and on a 2-core
    # AVX2 CPU (no AVX-512) the mask that best "preserves" it settled outside the square (0.24 inside
    # against 0.27 outside at 60 iterations, worse with more), where the confident copy gives 0.90 vs 0.18
    "extremal_perturbation": ("ratio", {}, True),
    # a Monte-Carlo average of class probabilities: its noise, ~ f sqrt(Var M / N) / p, does not shrink
    # with how little the probability moves, so the confident copy with 2000 masks; the expected map is the
    # square blurred over about two 5-px grid cells on a floor, so its peak, not its mass, is in the margin
    "rise": ("peak", {"n_masks": 2000}, True),
    # a pertinent positive is the part of the image that, on top of the reference, keeps the class; RegionModel
    # already gives the black reference (and the mean colour, by 6e-5) the explained class, so its PP is empty (an
    # all-zero map, the right answer). From the mean colour with a margin kappa = 1 on the confident copy (whose
    # mean-colour margin is 0.06) the PP is needed, and must lie on the square
    "cem_pp": ("mass", {"baseline": "zero", "kappa": 1.0}, True),
    # L2X keeps k whole patches (quick: 4 px): the margin [18, 30) lies in the patches of [16, 32)^2
    "l2x": ("cell", {}, False),
}


# (the attention family reads attention weights a CNN does not have: tests/test_attention.py builds a
# ViT by hand whose class token looks at one patch and checks that every map puts its peak there;
# the text family draws no map, and tests/test_text_models.py checks where its attention looks)
@pytest.mark.parametrize("method", [m for m in ALL if not _needs_attention(m) and METHODS[m].output == "map"])
def test_a_model_reading_one_region_gets_its_relevance_there(method):
    kind, options, confident = REGION_EXPECTATIONS.get(method, ("mass", {}, False))
    model = (ConfidentRegionModel() if confident else RegionModel()).eval()
    x = _images(2, 32, seed=5)
    result = explain(method, model, x, **QUICK, **options)
    _assert_contract(result, method, 2, 32)
    # two 3x3 convolutions: pixels up to 2 px outside the square reach it
    inside = np.zeros((32, 32), bool)
    inside[18:30, 18:30] = True
    total = np.maximum(result.maps.sum((1, 2)), 1e-12)
    mass_inside = (result.maps * inside).sum((1, 2)) / total
    if kind == "ratio":
        square = np.zeros((32, 32), bool)
        square[20:28, 20:28] = True
        assert (result.maps[:, square].mean(1) > 2 * result.maps[:, ~inside].mean(1)).all()
    elif kind == "cell":
        cell = np.zeros((32, 32), bool)
        cell[16:32, 16:32] = True
        assert ((result.maps * cell).sum((1, 2)) / total > 0.95).all()
    elif kind == "units":
        for maps, segments in zip(result.maps, result.extras["segments"]):
            touching = np.isin(segments, np.unique(segments[inside]))
            assert not maps.any() or (maps * touching).sum() / maps.sum() > 0.95
    elif kind == "peak":
        assert all(inside.flat[m.argmax()] for m in result.maps)
    else:
        assert (mass_inside > 0.95).all(), mass_inside


def test_targets_are_honoured_and_default_to_the_prediction(small, images):
    with torch.no_grad():
        predicted = small(images).argmax(1)
    assert explain("gradcam", small, images).targets.tolist() == predicted.tolist()
    assert explain("gradcam", small, images, targets=2).targets.tolist() == [2, 2]
    by_list = explain("saliency", small, images, targets=[1, 0])
    by_tensor = explain("saliency", small, images, targets=torch.tensor([1, 0]))
    assert by_list.targets.tolist() == [1, 0]
    np.testing.assert_array_equal(by_list.maps, by_tensor.maps)
    raw0 = explain("gradcam", small, images, targets=0).raw
    assert not np.allclose(raw0, explain("gradcam", small, images, targets=1).raw)


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("target", [0, 1, 2])
def test_cam_equals_the_class_weighted_sum_of_feature_maps(target, small):
    x = _images(4, 32, seed=2)
    result = explain("cam", small, x, targets=target)
    with torch.no_grad():
        features = small.features(x)  # [N, K, h, w], the input of global average pooling
        by_hand = torch.einsum("k,nkhw->nhw", small.classifier.weight[target], features)
        logits = small(x)
    from medxai_lite.explain.cam import upsample_grid

    np.testing.assert_allclose(result.extras["cam"], by_hand.numpy(), rtol=1e-4, atol=1e-5)
    # SmallCNN's cells sit where plain resizing puts them: read bilinearly, the package's placement is
    # torch's own resize; by default it interpolates bicubically between the same centres
    plain = nn.functional.interpolate(by_hand[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(upsample_grid(by_hand, (32, 32), "small_cnn", mode="bilinear"), plain, atol=1e-6)
    upsampled = upsample_grid(by_hand, (32, 32), "small_cnn")
    np.testing.assert_allclose(result.raw, upsampled.numpy(), rtol=1e-4, atol=1e-5)
    rect = upsampled.clamp_min(0).flatten(1)
    lo, hi = rect.min(1, keepdim=True).values, rect.max(1, keepdim=True).values
    assert (hi > lo).any(), "degenerate case: no positive evidence at all"
    expected = torch.where(hi > lo, (rect - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(rect))
    np.testing.assert_allclose(result.maps, expected.reshape(4, 32, 32).numpy(), atol=1e-5)
    # CAM's defining property: the mean of the grid (what GAP averages) plus the bias is the logit
    np.testing.assert_allclose(result.extras["cam"].mean((1, 2)) + small.classifier.bias[target].item(),
                               logits[:, target].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("baseline", ["black", "blur", "mean", "zero"])
def test_integrated_gradients_is_complete(baseline, plain, small, images):
    """Completeness: the attributions sum to f(x) - f(baseline) (the integral is approximated:
    64 Gauss-Legendre points reach < 2 % on a plain CNN; a random BatchNorm net is kinkier)."""
    for model, steps, rtol in [(plain, 64, 2e-2), (small, 16, None)]:
        result = explain("integrated_gradients", model, images, targets=[0, 2], baseline=baseline, n_steps=steps)
        reference = torch.as_tensor(result.extras["baseline"])
        with torch.no_grad():
            gap = model(images)[[0, 1], [0, 2]] - model(reference)[[0, 1], [0, 2]]
        assert (gap.abs() > 1e-4).all()
        # the reported completeness error is exactly ours: the raw maps are the full attribution
        np.testing.assert_allclose(result.raw.sum((1, 2)) - gap.numpy(), result.extras["convergence_delta"],
                                   atol=1e-5 * max(1.0, gap.abs().max().item()))
        if rtol is not None:
            np.testing.assert_allclose(result.raw.sum((1, 2)), gap.numpy(), rtol=rtol)
        assert result.extras["attributions"].shape == (2, 3, 32, 32)


def _logit(model, images, targets):
    with torch.no_grad():
        return model(images)[torch.arange(len(images)), torch.as_tensor(targets)]


def _check_deeplift(model, images, targets):
    result = explain("deeplift", model, images, targets=targets, baseline="zero")
    gap = _logit(model, images, targets) - _logit(model, torch.zeros_like(images), targets)
    assert gap.abs().min() > 1e-4
    np.testing.assert_allclose(result.raw.sum((1, 2)), gap.numpy(), rtol=1e-3, atol=1e-4 * gap.abs().max().item())


def _check_deepshap(model, images, targets):
    from medxai_lite.explain.captum_tools import shap_background

    background = shap_background(images, 3)
    result = explain("deepshap", model, images, targets=targets, baselines=background)
    with torch.no_grad():
        expected = model(background)[:, torch.as_tensor(targets)].mean(0)
    gap = _logit(model, images, targets) - expected
    np.testing.assert_allclose(result.raw.sum((1, 2)), gap.numpy(), rtol=1e-3, atol=1e-4 * gap.abs().max().item())


def _check_lrp(model, images, targets, method):
    result = explain(method, model, images, targets=targets)
    logit = _logit(model, images, targets)
    np.testing.assert_allclose(result.raw.sum((1, 2)), logit.numpy(), rtol=1e-2, atol=1e-3 * logit.abs().max().item())


def _check_cam(model, images, targets, arch):
    result = explain("cam", model, images, targets=targets)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    # on the grid the GAP head averages (the upsampled raw map is registered, which moves its mean)
    np.testing.assert_allclose(result.extras["cam"].mean((1, 2)) + head.bias[torch.as_tensor(targets)].detach().numpy(),
                               _logit(model, images, targets).numpy(), rtol=1e-3, atol=1e-4)


PROPERTY_CHECKS = {
    "cam": lambda m, x, t, arch: _check_cam(m, x, t, arch),
    "deeplift": lambda m, x, t, arch: _check_deeplift(m, x, t),
    "deepshap": lambda m, x, t, arch: _check_deepshap(m, x, t),
    "lrp_epsilon": lambda m, x, t, arch: _check_lrp(m, x, t, "lrp_epsilon"),
    "lrp_composite": lambda m, x, t, arch: _check_lrp(m, x, t, "lrp_composite"),
}


@pytest.mark.parametrize("method", ["deeplift", "deepshap", "lrp_composite", "cam"])
def test_defining_property_holds_on_the_small_cnn(method, small, images):
    PROPERTY_CHECKS[method](small, images, [0, 2], "small_cnn")


def test_epsilon_lrp_is_conservative_without_batchnorm(plain, images):
    _check_lrp(plain, images, [0, 2], "lrp_epsilon")


@pytest.mark.parametrize("method", ["deeplift", "lrp_composite"])
def test_defining_property_holds_on_resnet18(method):
    PROPERTY_CHECKS[method](zoo("resnet18"), _images(2, 32, seed=7), [0, 2], "resnet18")


def test_guided_methods_differ_from_the_plain_gradient_on_relu_networks(small, images):
    plain = explain("saliency", small, images, targets=[0, 1]).extras["attributions"]
    guided = explain("guided_backprop", small, images, targets=[0, 1]).extras["attributions"]
    deconv = explain("deconvnet", small, images, targets=[0, 1]).extras["attributions"]
    assert not np.allclose(plain, guided) and not np.allclose(plain, deconv)


# --------------------------------------------------------------------------- options


def test_layer_accepts_a_module_a_dotted_name_or_a_list(small, images):
    by_module = explain("gradcam", small, images, layer=small.features[2])
    by_name = explain("gradcam", small, images, layer="features.2")
    np.testing.assert_array_equal(by_module.maps, by_name.maps)
    assert not np.allclose(by_name.raw, explain("gradcam", small, images).raw)
    fused = explain("layercam", small, images, layer=["features.1", "features.3"])
    staged = explain("layercam", small, images, fuse_stages=True)
    _assert_contract(fused, "layercam", 2, 32)
    _assert_contract(staged, "layercam", 2, 32)


def test_smoothgrad_runs_over_any_gradient_method_and_is_seeded(small, images):
    a = explain("smoothgrad", small, images, base="integrated_gradients", nt_samples=3,
                base_options={"n_steps": 8})
    b = explain("integrated_gradients", small, images, smooth=True, nt_samples=3, n_steps=8)
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-6)
    c = explain("smoothgrad", small, images, nt_samples=3, seed=1)
    d = explain("smoothgrad", small, images, nt_samples=3, seed=2)
    assert not np.allclose(c.raw, d.raw)
    state = torch.random.get_rng_state()
    explain("smoothgrad", small, images, nt_samples=2)
    assert torch.equal(state, torch.random.get_rng_state()), "global RNG must be untouched"
    with pytest.raises(ValueError, match="base"):
        explain("smoothgrad", small, images, base="gradcam")


def test_sign_option_controls_the_maps(small, images):
    raw = explain("integrated_gradients", small, images, n_steps=8).raw
    for sign, expected in [("positive", np.clip(raw, 0, None)), ("absolute", np.abs(raw)),
                           ("negative", np.clip(-raw, 0, None))]:
        maps = explain("integrated_gradients", small, images, n_steps=8, sign=sign).maps
        np.testing.assert_allclose(maps, expected / expected.max((1, 2), keepdims=True), atol=1e-5)
    both = explain("integrated_gradients", small, images, n_steps=8, sign="all").maps
    assert both.min() >= 0 and both.max() <= 1
    np.testing.assert_allclose(np.abs(both - 0.5).max((1, 2)), 0.5, atol=1e-6)  # the largest |raw| reaches 0 or 1
    np.testing.assert_allclose(both[raw == 0], 0.5)


def test_scale_is_separate_from_sign_and_recorded_on_the_result(small, images):
    raw = explain("integrated_gradients", small, images, n_steps=8).raw
    pos = np.clip(raw, 0, None)
    lo, hi = pos.min((1, 2), keepdims=True), pos.max((1, 2), keepdims=True)
    res = explain("integrated_gradients", small, images, n_steps=8, sign="positive", scale="minmax")
    np.testing.assert_allclose(res.maps, (pos - lo) / (hi - lo), atol=1e-5)
    assert (res.sign, res.scale) == ("positive", "minmax")
    signed = explain("integrated_gradients", small, images, n_steps=8, sign="all", scale="minmax").maps
    np.testing.assert_allclose(signed, (raw - raw.min((1, 2), keepdims=True)) / np.ptp(raw, (1, 2), keepdims=True),
                               atol=1e-5)
    # the CAM family says what it applies: the libraries' ReLU, then min-max
    cam = explain("gradcam", small, images)
    assert (cam.sign, cam.scale) == ("positive", "minmax")
    assert (METHODS["xrai"].sign, METHODS["xrai"].scale) == ("all", "minmax")
    with pytest.raises(ValueError, match="sign='minmax' is now sign='all', scale='minmax'"):
        explain("saliency", small, images, sign="minmax")
    with pytest.raises(ValueError, match="unknown scale 'max01'"):
        explain("saliency", small, images, scale="max01")


def test_to_unit_known_answers():
    from medxai_lite.explain import to_unit

    raw = torch.tensor([[[-2.0, 0.0], [1.0, 4.0]]])
    np.testing.assert_allclose(to_unit(raw, "positive", "max"), [[[0, 0], [0.25, 1]]])
    np.testing.assert_allclose(to_unit(raw, "absolute", "max"), [[[0.5, 0], [0.25, 1]]])
    np.testing.assert_allclose(to_unit(raw, "negative", "max"), [[[1, 0], [0, 0]]])
    np.testing.assert_allclose(to_unit(raw, "all", "max"), [[[0.25, 0.5], [0.625, 1]]])
    np.testing.assert_allclose(to_unit(raw, "all", "minmax"), [[[0, 1 / 3], [0.5, 1]]])
    np.testing.assert_allclose(to_unit(torch.zeros(1, 2, 2), "all", "max"), np.full((1, 2, 2), 0.5))
    np.testing.assert_allclose(to_unit(torch.ones(1, 2, 2), "positive", "minmax"), np.zeros((1, 2, 2)))


# --------------------------------------------------------------------------- bad input


def test_unknown_method_lists_the_valid_ones(small, images):
    with pytest.raises(ValueError, match=r"unknown method 'gradcan'.*gradcam.*lrp_composite"):
        explain("gradcan", small, images)


@pytest.mark.parametrize(("bad", "error", "pattern"), [
    (lambda x: x[0], ValueError, r"images must have shape \[N, C, H, W\].*images\[None\]"),
    (lambda x: (x * 255).to(torch.uint8), TypeError, r"images must be a floating-point tensor.*uint8"),
    (lambda x: x[:, :1], ValueError, r"images must have 3 channels"),
    (lambda x: torch.where(torch.arange(32) == 5, torch.nan, x), ValueError, r"images contain NaN"),
    (lambda x: x.tolist(), TypeError, r"images must be a torch.Tensor"),
    (lambda x: x[:0], ValueError, r"images must hold at least one image"),
])
def test_bad_images_are_refused_naming_the_parameter(bad, error, pattern, small, images):
    with pytest.raises(error, match=pattern):
        explain("gradcam", small, bad(images))


@pytest.mark.parametrize(("targets", "error", "pattern"), [
    (3, ValueError, r"targets out of range: \[3\]; valid class indices are 0 \.\. 2"),
    ([0, -1], ValueError, r"targets out of range: \[-1\]"),
    ([0, 1, 2], ValueError, r"targets must have one entry per image \(N = 2\)"),
    ([0.5, 1.0], TypeError, r"targets must be integers"),
    ("cat", TypeError, r"targets must be"),
])
def test_bad_targets_are_refused_naming_the_parameter(targets, error, pattern, small, images):
    with pytest.raises(error, match=pattern):
        explain("saliency", small, images, targets=targets)


def test_unknown_layer_lists_valid_names(small, images):
    with pytest.raises(ValueError, match=r"layer 'features.9' is not a module of this model.*Valid names: features, "):
        explain("gradcam", small, images, layer="features.9")
    with pytest.raises(ValueError, match=r"Closest: features\.3"):
        explain("gradcam", small, images, layer="feature.3")
    with pytest.raises(ValueError, match=r"layer Conv2d is not a module of this model"):
        explain("layercam", small, images, layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="layer must be"):
        explain("gradcam", small, images, layer=3)


def test_unknown_options_and_bad_option_values_are_named(small, images):
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'n_step' for method 'integrated_gradients'.*n_steps"):
        explain("integrated_gradients", small, images, n_step=8)
    with pytest.raises(ValueError, match="sign"):
        explain("saliency", small, images, sign="both")
    for bad in (0, 1.5, float("nan"), "all"):
        with pytest.raises(ValueError, match="ratio_channels_to_ablate"):
            explain("ablationcam", small, images, ratio_channels_to_ablate=bad)
    with pytest.raises(ValueError, match="algorithm"):
        explain("xrai", small, images, algorithm="quick")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        explain("gradcam", object(), images)


def test_wrong_or_unsupported_architecture_is_refused_with_the_reason(small, images):
    with pytest.raises(ValueError, match=r"arch='resnet18' does not match the model.*'small_cnn'"):
        explain("gradcam", small, images, arch="resnet18")
    with pytest.raises(ValueError, match="unknown arch"):
        explain("gradcam", small, images, arch="alexnet")
    with pytest.raises(UnsupportedArchitectureError,
                       match=r"'lrp_epsilon' does not support arch 'small_cnn': .*BatchNorm"):
        explain("lrp_epsilon", small, images)
    effnet = zoo("efficientnet_b0")
    with pytest.raises(UnsupportedArchitectureError,
                       match=r"'deeplift' does not support arch 'efficientnet_b0': .*SiLU"):
        explain("deeplift", effnet, images)
    with pytest.raises(UnsupportedArchitectureError,
                       match=r"'smoothgrad' with base 'guided_backprop'.*efficientnet_b0"):
        explain("smoothgrad", effnet, images, base="guided_backprop")


# --------------------------------------------------------------------------- the zoo (heavy)


FAST_ON_ZOO = ["gradcam", "layercam", "eigencam", "saliency", "guided_backprop", "integrated_gradients",
               "deeplift", "lrp_composite"]


@pytest.mark.parametrize("method", FAST_ON_ZOO)
def test_fast_methods_on_resnet18(method):
    model = zoo("resnet18")
    result = explain(method, model, _images(2, 32), **QUICK)
    _assert_contract(result, method, 2, 32)
    assert _hook_count(model) == 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "small_cnn"])
@pytest.mark.parametrize("method", ALL)
def test_every_method_on_every_zoo_arch(method, arch):
    model = zoo(arch)
    info = METHODS[method]
    x = _images(1, 32, seed=3)
    if not info.supports(arch):
        with pytest.raises(UnsupportedArchitectureError, match=arch):
            explain(method, model, x)
        return
    names, state = _snapshot(model)
    result = explain(method, model, x, **QUICK, **HEAVY.get(method, {}))
    _assert_contract(result, method, 1, 32)
    assert _hook_count(model) == 0 and all(p.grad is None and p.requires_grad for p in model.parameters())
    assert _snapshot(model)[0] == names


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", list(PROPERTY_CHECKS))
def test_supported_means_the_defining_property_holds(method, arch):
    """The compatibility matrix says "yes" only where the method's defining property holds."""
    if not METHODS[method].supports(arch):
        pytest.skip(f"{method} is declared unsupported on {arch}")
    size = 64  # ResNets, DenseNet and EfficientNet keep a 2x2 map in their CAM layer
    PROPERTY_CHECKS[method](zoo(arch, size), _images(2, size, seed=11), [0, 2], arch)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "arch"), [(m, a) for m in PROPERTY_CHECKS for a in ARCHS
                                              if not METHODS[m].supports(a)])
def test_declared_unsupported_means_the_property_really_fails(method, arch):
    """Run the adapter past the registry's refusal: the property must fail (or the library refuse)."""
    from medxai_lite.explain.registry import Call, hook_guard

    model, x, targets = zoo(arch, 64), _images(2, 64, seed=11), torch.tensor([0, 2])
    info = METHODS[method]
    with hook_guard(model):
        try:
            options = {"baseline": "zero"} if method == "deeplift" else {}
            raw = torch.as_tensor(info.func(Call(model, x, targets, arch), **options).raw).double()
        except (ValueError, TypeError, RuntimeError):
            return  # the library itself cannot run it (e.g. CAM on VGG16's three-layer head)
    logit = _logit(model, x, targets).double()
    if method == "cam":
        head = dict(model.named_modules())[[n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]]
        ok = torch.allclose(raw.mean((1, 2)) + head.bias[targets].double(), logit, rtol=1e-3, atol=1e-4)
    elif method.startswith("lrp"):
        ok = torch.allclose(raw.sum((1, 2)), logit, rtol=1e-2)
    else:  # deeplift / deepshap against their own references: check DeepLIFT with the zero baseline
        if method == "deepshap":
            pytest.skip("covered by the deeplift case (DeepSHAP averages DeepLIFT)")
        gap = logit - _logit(model, torch.zeros_like(x), targets).double()
        ok = torch.allclose(raw.sum((1, 2)), gap, rtol=1e-3)
    assert not ok, f"{method} satisfies its property on {arch}: the registry should mark it supported"


@pytest.mark.slow
def test_guided_backprop_on_efficientnet_would_be_the_plain_gradient():
    from captum.attr import GuidedBackprop, Saliency

    model, x = zoo("efficientnet_b0"), _images(1, 32).requires_grad_(True)
    guided = GuidedBackprop(model).attribute(x, target=0)
    plain = Saliency(model).attribute(x, target=0, abs=False)
    assert torch.allclose(guided, plain, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "densenet121", "vgg16", "efficientnet_b0"])
def test_layer_cam_stage_fusion_on_the_paper_archs(arch):
    result = explain("layercam", zoo(arch, 64), _images(1, 64), fuse_stages=True)
    _assert_contract(result, "layercam", 1, 64)


# --------------------------------------------------------------------------- every method, model on a GPU


@pytest.mark.parametrize("method", ALL)
def test_every_method_runs_with_the_model_on_a_gpu_and_cpu_images(method, model_for, images):
    """Colab puts the model on CUDA and the dataset hands out CPU images. Under the pretend GPU of
    ``tests/fakecuda.py`` (device mix-ups and ``.numpy()`` of a GPU tensor fail as on CUDA, the
    arithmetic stays on the CPU) every method must run, return host arrays, and give the numbers
    the CPU gives."""
    import copy

    from fakecuda import fake_cuda

    cpu_model = model_for(method)
    expected = explain(method, cpu_model, images, **QUICK)
    with fake_cuda() as gpu:
        gpu_model = copy.deepcopy(cpu_model).to("cuda")
        assert next(gpu_model.parameters()).device.type == "cuda"
        got = explain(method, gpu_model, gpu.host(images), **QUICK)
    assert list(got.targets) == list(expected.targets)
    if got.kind == "map":
        assert isinstance(got.maps, np.ndarray) and isinstance(got.raw, np.ndarray)
        np.testing.assert_allclose(got.maps, expected.maps, atol=1e-5)
    else:
        _assert_same_value(got.value, expected.value)

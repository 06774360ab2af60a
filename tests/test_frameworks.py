"""Table 11 as data, and the same method through several libraries (medxai_lite.frameworks).

Known answers: on a network whose CAM layer feeds global average pooling and one linear layer,
the Grad-CAM weights are the classifier row divided by the grid size, so every library's map
on the grid is known in closed form; on a linear model f(x) = w . x the gradient is constant
along the path, so Integrated Gradients is w * (x - x0) exactly for any rule whose weights sum
to one, and captum's trapezoid rule (weights summing to 1 - 1/n) gives (1 - 1/n) times that.
"""
from __future__ import annotations

from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from medxai_lite.explain import METHODS, explain
from medxai_lite.frameworks import (CAPTUM_RULES, LIBRARIES, LIBRARY_DEFAULTS, TABLE11_FRAMEWORKS, TABLE11_METHODS,
                                    agreement, compare_libraries, frameworks_table, package_licence, package_version,
                                    rule_weights,
                                    summarise_agreement, table11_methods)
from medxai_lite.models.zoo import get_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models run fastest on one torch thread (see tests/conftest.py)."""
    yield


class GapNet(nn.Module):
    """conv-ReLU-conv(stride 2)-ReLU, then global average pooling and one linear layer (3 classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture(scope="module")
def gapnet():
    return GapNet().eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


TARGETS = [0, 1, 2]


# --------------------------------------------------------------------------- Table 11


def test_table11_has_the_surveys_rows():
    table = frameworks_table()
    assert len(table) == TABLE11_FRAMEWORKS == 5
    assert table["framework"].tolist() == ["tf-keras-vis", "pytorch-grad-cam", "Captum", "TorchRay", "TorchCAM"]
    assert table["n_methods"].tolist() == [7, 11, 10, 4, 9]
    assert table["backend"].tolist() == ["TensorFlow, Keras", "PyTorch", "PyTorch", "PyTorch", "PyTorch"]
    long = table11_methods()
    assert len(long) == TABLE11_METHODS == 41
    assert "Layer-CAM [99]" in table.set_index("framework").loc["tf-keras-vis", "methods"]
    assert all(link.startswith("https://") and " " not in link for link in table["access_link"])


def test_table11_knows_the_installation_and_the_registry():
    table = frameworks_table().set_index("framework")
    assert (table["installed"] == table["version"].notna()).all()
    assert table.loc["Captum", "version"] == metadata.version("captum")
    assert table.loc["pytorch-grad-cam", "version"] == metadata.version("grad-cam")
    captum_methods = table.loc["Captum", "registry_methods"].split(", ")
    assert "integrated_gradients" in captum_methods and "gradcam" not in captum_methods
    assert table.loc["tf-keras-vis", "n_registry"] == 0
    long = table11_methods().set_index(["framework", "method"])
    assert all(k in METHODS for k in long["registry"] if k)
    assert long.loc[("Captum", "IG"), "via_framework"]
    assert long.loc[("Captum", "TCAV"), "registry"] == "tcav" and long.loc[("Captum", "TCAV"), "via_framework"]
    assert not long.loc[("TorchCAM", "Grad-CAM"), "via_framework"]     # the registry's Grad-CAM is pytorch-grad-cam's
    assert long.loc[("TorchCAM", "Score-CAM"), "via_framework"]
    assert long.loc[("tf-keras-vis", "Faster-ScoreCAM"), "survey_ref"] is None
    assert table.loc["Captum", "listed_via_framework"] == int(long.loc["Captum", "via_framework"].sum())


def test_package_version_and_licence():
    assert package_version("captum") == metadata.version("captum")
    assert package_version("surely-not-a-distribution-name") is None
    assert package_licence("captum") == metadata.metadata("captum")["License-Expression"] == "BSD-3-Clause"
    assert package_licence("grad-cam") == "MIT License"                  # from the trove classifier
    assert package_licence("surely-not-a-distribution-name") is None
    table = frameworks_table().set_index("framework")
    assert table.loc["Captum", "licence"] == "BSD-3-Clause"
    assert table["licence"].isna().tolist() == (~table["installed"]).tolist()
    for bad in (package_version, package_licence):
        with pytest.raises(ValueError, match="package"):
            bad("")


# --------------------------------------------------------------------------- Grad-CAM


def test_three_gradcams_agree_after_alignment(gapnet, images):
    result = compare_libraries("gradcam", gapnet, images, TARGETS, layer="features.3", repeats=2)
    assert result.libraries == LIBRARIES["gradcam"]
    table = agreement(result)
    assert len(table) == 3 * len(images)
    assert (table["spearman"] > 0.999).all()
    assert (table["max abs diff"] < 1e-5).all()
    for maps in result.maps.values():
        assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
        assert np.allclose(maps.max((1, 2)), 1) and np.allclose(maps.min((1, 2)), 0)
    # pytorch-grad-cam's own output is already the common post-processing
    assert np.abs(result.native["pytorch-grad-cam"] - result.maps["pytorch-grad-cam"]).max() < 1e-5


def test_gradcam_grids_match_the_closed_form(gapnet, images):
    """GAP + linear head: w_k = W[c, k] / (h w), so the weighted sum is the CAM divided by h w."""
    with torch.no_grad():
        features = gapnet.features(images)                       # [3, 16, 16, 16]
        h, w = features.shape[-2:]
        cam = torch.einsum("nk,nkij->nij", gapnet.fc.weight[TARGETS], features) / (h * w)
    result = compare_libraries("gradcam", gapnet, images, TARGETS, layer="features.3", repeats=1, warmup=False)
    assert np.allclose(result.raw["captum"], cam.numpy(), atol=1e-6)              # signed, on the grid
    assert np.allclose(result.raw["pytorch-grad-cam"], cam.numpy(), atol=1e-6)    # before its ReLU
    relu = cam.clamp_min(0).flatten(1)
    scaled = ((relu - relu.min(1, keepdim=True).values) / (relu.max(1, keepdim=True).values
                                                            - relu.min(1, keepdim=True).values)).reshape(cam.shape)
    assert np.allclose(result.raw["torchcam"], scaled.numpy(), atol=1e-5)        # ReLU and min-max on the grid


def test_align_changes_only_the_upsampling():
    from medxai_lite.explain.cam import upsample_registered
    from medxai_lite.explain.registry import to_unit

    torch.manual_seed(0)
    model = get_model("resnet18", 2).eval()                  # output stride 32: a 2 x 2 grid at 64 px
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    plain = compare_libraries("gradcam", model, x, [0, 1], repeats=1, warmup=False)
    aligned = compare_libraries("gradcam", model, x, [0, 1], repeats=1, warmup=False, align=True)
    for lib in LIBRARIES["gradcam"]:
        assert np.array_equal(plain.raw[lib], aligned.raw[lib])         # the same grid
        assert np.abs(plain.maps[lib] - aligned.maps[lib]).max() > 0.05  # moved by half a cell
    assert (agreement(aligned)["max abs diff"] < 1e-5).all()
    # ResNet cell j is centred on pixel 32 j: ReLU on the grid, registered upsampling, min-max
    grid = torch.as_tensor(plain.raw["captum"]).clamp_min(0)
    expected = to_unit(upsample_registered(grid, (64, 64), 32, 0.0, mode="bilinear"), "positive", "minmax").numpy()
    assert np.abs(aligned.maps["captum"] - expected).max() < 1e-5
    # the registry's Grad-CAM with the libraries' upsampling is pytorch-grad-cam's map
    assert np.abs(explain("gradcam", model, x, [0, 1], align=False).maps - plain.maps["pytorch-grad-cam"]).max() < 1e-5


# --------------------------------------------------------------------------- Integrated Gradients


class Linear(nn.Module):
    """f(x) = W x + b on the flattened image (3 x 8 x 8 -> 3 classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.fc = nn.Linear(3 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("rule", [r for r in CAPTUM_RULES if r != "riemann_trapezoid"])
def test_ig_on_a_linear_model_is_w_times_x(rule):
    model = Linear().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    result = compare_libraries("integrated_gradients", model, x, [2, 0], n_steps=8, captum_method=rule,
                               repeats=1, warmup=False)
    expected = (model.fc.weight[[2, 0]].reshape(2, 3, 8, 8) * x).detach().numpy()   # baseline: zeros
    for lib in LIBRARIES["integrated_gradients"]:
        assert np.allclose(result.raw[lib], expected, atol=1e-6)
    assert (result.completeness["relative error"] < 1e-5).all()


def test_captum_trapezoid_weights_sum_to_one_minus_one_over_n():
    n = 8
    alphas, weights = rule_weights("riemann_trapezoid", n)
    assert np.isclose(weights.sum(), 1 - 1 / n) and np.isclose(alphas[0], 0) and np.isclose(alphas[-1], 1)
    for rule in ("riemann_right", "gausslegendre"):
        assert np.isclose(rule_weights(rule, n)[1].sum(), 1)
    model = Linear().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    result = compare_libraries("integrated_gradients", model, x, [2, 0], n_steps=n, captum_method="riemann_trapezoid",
                               libraries=["captum"], repeats=1, warmup=False)
    expected = (model.fc.weight[[2, 0]].reshape(2, 3, 8, 8) * x).detach().numpy()
    assert np.allclose(result.raw["captum"], (1 - 1 / n) * expected, atol=1e-6)
    assert np.allclose(result.completeness["relative error"], 1 / n, atol=1e-5)


def test_captum_riemann_right_is_zennits_sum(gapnet, images):
    result = compare_libraries("integrated_gradients", gapnet, images, TARGETS, n_steps=12, repeats=1)
    assert np.allclose(result.raw["captum"], result.raw["zennit"], atol=1e-6)
    table = agreement(result)
    assert (table["spearman"] > 0.999).all() and (table["max abs diff"] < 1e-5).all()
    comp = result.completeness.pivot(index="image", columns="library", values="sum of attributions")
    assert np.allclose(comp["captum"], comp["zennit"], atol=1e-6)
    # a ReLU network is not linear: the 12-point sum misses the score difference by a little, not by nothing
    assert (result.completeness["relative error"] > 0).all() and (result.completeness["relative error"] < 0.5).all()


# --------------------------------------------------------------------------- shared behaviour


def test_no_side_effects_and_same_numbers(gapnet, images):
    params = [(p.requires_grad, p.grad) for p in gapnet.parameters()]
    first = compare_libraries("gradcam", gapnet, images, TARGETS, layer="features.3", repeats=1, warmup=False)
    second = compare_libraries("integrated_gradients", gapnet, images, TARGETS, n_steps=4, repeats=1, warmup=False)
    again = compare_libraries("gradcam", gapnet, images, TARGETS, layer="features.3", repeats=1, warmup=False)
    for m in gapnet.modules():
        assert not m.training
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    assert [(p.requires_grad, p.grad) for p in gapnet.parameters()] == params
    for lib in first.libraries:
        assert np.array_equal(first.maps[lib], again.maps[lib])
    assert second.targets.tolist() == TARGETS


def test_timing_and_defaults_tables(gapnet, images):
    result = compare_libraries("gradcam", gapnet, images, None, layer="features.3", repeats=3)
    timing = result.timing()
    assert list(timing.index) == list(LIBRARIES["gradcam"])
    assert (timing["calls timed"] == 3).all() and (timing["seconds per call (median)"] > 0).all()
    assert all(result.seconds[lib] == sorted(result.times[lib])[1] for lib in result.libraries)
    defaults = result.defaults()
    assert defaults.loc["captum", "shape returned"] == "3x16x16"        # the grid, not the image
    assert defaults.loc["pytorch-grad-cam", "shape returned"] == "3x32x32"
    assert set(LIBRARY_DEFAULTS) == {(m, lib) for m, libs in LIBRARIES.items() for lib in libs}
    with torch.no_grad():
        assert result.targets.tolist() == gapnet(images).argmax(1).tolist()   # None: the predicted class


def test_agreement_known_answers():
    m = np.random.default_rng(0).random((2, 5, 5))
    table = agreement({"a": m, "b": m ** 3, "c": -m})
    pairs = table.set_index(["library_a", "library_b", "image"])
    assert np.allclose(pairs.loc[("a", "b"), "spearman"], 1)
    assert np.allclose(pairs.loc[("a", "c"), "spearman"], -1)
    assert np.allclose(pairs.loc[("a", "c"), "max abs diff"], 2 * m.reshape(2, -1).max(1))
    summary = summarise_agreement(pd.concat([table.assign(dataset="x"), table.assign(dataset="y")]))
    assert summary.loc[("a", "b"), "maps"] == 4 and np.isclose(summary.loc[("a", "c"), "min Spearman"], -1)


def test_bad_inputs_raise_naming_the_parameter(gapnet, images):
    with pytest.raises(ValueError, match="method"):
        compare_libraries("lime", gapnet, images)
    with pytest.raises(ValueError, match="libraries"):
        compare_libraries("gradcam", gapnet, images, libraries=["zennit"])
    with pytest.raises(ValueError, match="libraries"):
        compare_libraries("gradcam", gapnet, images, libraries="captum")
    with pytest.raises(ValueError, match="libraries"):
        compare_libraries("gradcam", gapnet, images, libraries=["captum", "captum"])
    with pytest.raises(ValueError, match="repeats"):
        compare_libraries("gradcam", gapnet, images, repeats=0)
    with pytest.raises(ValueError, match="n_steps"):
        compare_libraries("integrated_gradients", gapnet, images, n_steps=1)
    with pytest.raises(ValueError, match="captum_method"):
        compare_libraries("integrated_gradients", gapnet, images, captum_method="simpson")
    with pytest.raises(ValueError, match="'layer'"):
        compare_libraries("integrated_gradients", gapnet, images, layer="features.3")
    with pytest.raises(ValueError, match="align"):
        compare_libraries("gradcam", gapnet, images, align=True)          # not a zoo model
    with pytest.raises(ValueError, match="targets"):
        compare_libraries("gradcam", gapnet, images, [0, 1, 7])
    with pytest.raises(ValueError, match="layer"):
        compare_libraries("gradcam", gapnet, images, layer="features.9")
    with pytest.raises(ValueError, match="images"):
        compare_libraries("gradcam", gapnet, images[0])
    with pytest.raises(RuntimeError, match="training mode"):
        compare_libraries("gradcam", GapNet().train(), images)
    with pytest.raises(ValueError, match="maps_by_library"):
        agreement({"a": np.zeros((1, 4, 4))})
    with pytest.raises(ValueError, match="maps_by_library"):
        agreement({"a": np.zeros((1, 4, 4)), "b": np.zeros((1, 4, 5))})
    with pytest.raises(ValueError, match="captum_method"):
        rule_weights("simpson", 4)
    with pytest.raises(ValueError, match="table"):
        summarise_agreement(pd.DataFrame({"x": [1]}))

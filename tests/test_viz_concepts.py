"""medxai_lite.viz.concepts: the concept chapter's figures draw computed results, with titles,
labelled axes and colour bars, and refuse input they cannot draw."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medxai_lite.concepts import ConceptSHAPResult, TCAVResult  # noqa: E402
from medxai_lite.concepts.discovery import ACEConcept, ACEResult  # noqa: E402
from medxai_lite.viz import concepts as V  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def colour_bars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def texts(fig):
    out = [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]
    out += [t.get_text() for t in fig.texts]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return out


def tcav_result(scores, random_scores, significant):
    scores = np.asarray(scores, dtype=float)
    k, m = scores.shape
    return TCAVResult(concepts=tuple(f"c{i}" for i in range(k)), target=1, layer="layer3.1", scores=scores,
                      magnitudes=scores, random_scores=np.asarray(random_scores, float),
                      random_magnitudes=np.asarray(random_scores, float), cav_accuracy=np.full((k, m), 0.8),
                      p_values=np.full(k, 0.01), p_adjusted=np.where(significant, 0.01, 0.5),
                      significant=np.asarray(significant), derivatives=np.zeros((3, k), np.float32),
                      cavs=np.zeros((k, m, 4)))


# --------------------------------------------------------------------------- interventions
def test_intervention_pairs_show_both_arms_and_the_difference_with_a_colour_bar():
    low = torch.zeros(2, 3, 8, 8)
    high = low.clone()
    high[0, :, :2, :2] = 1.0                                  # 4 of 64 pixels change in row 0, none in row 1
    fig = V.plot_intervention_pairs(low, high, ["ring", "artefact"], values=[(0, 1), (0.0, "1, as drawn")],
                                    title="switched")
    images = [ax for ax in fig.axes if ax.images and not hasattr(ax, "_colorbar")]
    assert len(images) == 6 and len(colour_bars(fig)) == 2
    titles = texts(fig)
    assert "do(ring = 0)" in titles and "do(ring = 1)" in titles and "artefact: 1, as drawn" in titles
    assert "|difference|, 6.2% of pixels" in titles and "|difference|, 0.0% of pixels" in titles
    diff = images[2].images[0].get_array()
    assert diff.shape == (8, 8) and diff[:2, :2].min() > 0 and diff[2:].max() == 0
    assert colour_bars(fig)[0].get_ylabel() == "|pixel difference| (0-1)"


def test_intervention_pairs_refuse_mismatched_input():
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="same length"):
        V.plot_intervention_pairs(x, x, ["a"])
    with pytest.raises(ValueError, match="values"):
        V.plot_intervention_pairs(x, x, ["a", "b"], values=[(0, 1)])
    with pytest.raises(ValueError, match="same shape"):
        V.plot_intervention_pairs(x, torch.zeros(2, 3, 4, 4), ["a", "b"])
    with pytest.raises(ValueError, match="low"):
        V.plot_intervention_pairs(torch.zeros(0, 3, 8, 8), x, [])


# --------------------------------------------------------------------------- TCAV
def test_tcav_bars_show_runs_the_random_band_and_the_verdicts():
    rnd = [0.4, 0.6, 0.5, 0.5]
    result = tcav_result([[1, 1, 1], [0.2, 0.4, 0.0]], rnd, [True, False])
    fig = V.plot_tcav({"labelled": result, "rendered": result}, title="TCAV")
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 2
    ax = axes[0]
    heights = [p.get_height() for p in ax.patches if p.get_width() < 1]            # the bars
    np.testing.assert_allclose(heights[-2:], [1.0, 0.2])
    band = [p for p in ax.patches if p.get_width() >= 1]                             # axhspan: mean +- std
    sd = np.std(rnd, ddof=1)
    assert len(band) == 1 and band[0].get_y() == pytest.approx(0.5 - sd)
    assert band[0].get_height() == pytest.approx(2 * sd)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c0", "c1", "random"]
    verdicts = [t.get_text() for t in ax.texts]
    assert verdicts[0].startswith("*") and verdicts[1].startswith("n.s.")
    assert ax.get_ylabel().startswith("TCAV score") and ax.get_ylim()[0] == 0
    assert {a.get_title() for a in axes} == {"labelled", "rendered"}
    # whiskers never leave [0, 1]
    for line in ax.lines:
        y = np.asarray(line.get_ydata(), dtype=float)
        assert np.all((y >= -1e-9) & (y <= 1 + 1e-9))


def test_tcav_bars_refuse_anything_but_tcav_results():
    with pytest.raises(ValueError, match="TCAVResult"):
        V.plot_tcav({})
    with pytest.raises(ValueError, match="TCAVResult"):
        V.plot_tcav({"a": "not a result"})


def test_tcav_against_effect_labels_every_point_and_stacks_coinciding_names():
    table = pd.DataFrame({"model": ["m1", "m1", "m2"], "concept": ["a", "b", "c"], "tcav": [1.0, 1.0, 0.3],
                          "effect": [0.0, 0.001, 0.8], "ci_low": [-0.1, -0.1, 0.7], "ci_high": [0.1, 0.1, 0.9],
                          "tcav_std": [0.0, 0.2, 0.5]})
    fig = V.plot_tcav_vs_effect(table, yerr="tcav_std", title="agreement")
    ax = fig.axes[0]
    notes = [t.get_text() for t in ax.texts]
    assert "a\nb" in notes and "c" in notes                  # a and b coincide: one stacked label
    assert ax.get_xlabel() == "true causal concept effect (CaCE)" and ax.get_ylabel() == "TCAV score"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["m1", "m2"]
    assert ax.get_title() == "agreement"
    with pytest.raises(ValueError, match="missing"):
        V.plot_tcav_vs_effect(table.drop(columns="effect"))
    with pytest.raises(ValueError, match="at least one row"):
        V.plot_tcav_vs_effect(table.iloc[:0])


# --------------------------------------------------------------------------- bottlenecks
def test_intervention_curve_draws_each_curve_and_the_reference():
    curves = {"joint": pd.DataFrame({"k": [0, 1, 2], "accuracy": [0.9, 0.95, 1.0]}),
              "independent": pd.DataFrame({"k": [0, 1, 2], "accuracy": [0.8, 0.9, 1.0]})}
    fig = V.plot_intervention_curve(curves, reference={"classifier": 0.92}, title="curve")
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.9, 0.95, 1.0])
    assert ax.lines[0].get_marker() != ax.lines[1].get_marker()                       # readable in grey
    assert ax.get_xlabel() == "concepts corrected per image (k)" and ax.get_ylabel() == "task accuracy"
    with pytest.raises(ValueError, match="at least one"):
        V.plot_intervention_curve({})
    with pytest.raises(ValueError, match="columns k and accuracy"):
        V.plot_intervention_curve({"x": pd.DataFrame({"k": [0]})})


def test_cbm_intervention_shows_image_concepts_and_classes():
    image = torch.zeros(3, 8, 8)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    fig = V.plot_cbm_intervention(image, ["a", "b"], [0.1, 0.9], [1.0, 0.9], [1, 1], ["x", "y", "z"],
                                  [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], mask=mask, title="fix")
    ax_img, ax_c, ax_p = fig.axes
    assert ax_img.lines                                                               # the lesion outline
    assert ax_c.get_xlabel() == "concept probability" and ax_p.get_xlabel() == "class probability"
    widths = sorted(round(p.get_width(), 3) for p in ax_p.patches)
    assert widths == sorted([0.7, 0.2, 0.1, 0.1, 0.8, 0.1])
    with pytest.raises(ValueError, match="one value per concept"):
        V.plot_cbm_intervention(image, ["a"], [0.1, 0.9], [1.0, 0.9], [1, 1], ["x"], [1.0], [1.0])
    with pytest.raises(ValueError, match="one probability per class"):
        V.plot_cbm_intervention(image, ["a", "b"], [0.1, 0.9], [1.0, 0.9], [1, 1], ["x", "y"], [1.0], [1.0, 0.0])


def test_uncertainty_error_puts_the_auroc_in_the_legend():
    table = pd.DataFrame({"uncertainty": [0.1, 0.5], "error_rate": [0.0, 0.4], "n": [5, 5]})
    table.attrs["auroc"] = 0.875
    fig = V.plot_uncertainty_error({"prob": table})
    ax = fig.axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "prob (AUROC 0.88)"
    assert ax.get_ylabel() == "share of wrong concept predictions" and ax.get_xlabel()
    with pytest.raises(ValueError, match="columns uncertainty and error_rate"):
        V.plot_uncertainty_error({"x": pd.DataFrame({"a": [1]})})


def test_concept_weights_heat_map_is_centred_with_a_colour_bar_and_marks_zeros():
    w = np.array([[0.0, 2.0], [-1.0, 0.0]])
    fig = V.plot_concept_weights(w, ["a", "b"], ["x", "y"], title="head")
    ax = [a for a in fig.axes if not hasattr(a, "_colorbar")][0]
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == -vmax == -2.0
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0", "2.00", "-1.00", "0"])
    assert len(colour_bars(fig)) == 1 and ax.get_xlabel() == "concept" and ax.get_ylabel() == "class"
    with pytest.raises(ValueError, match="shape"):
        V.plot_concept_weights(w, ["a"], ["x", "y"])


# --------------------------------------------------------------------------- discovery
def ace_result():
    patches = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    concepts = [ACEConcept("concept 1", np.array([0, 1, 2]), 2, np.zeros(4), tcav=0.9, p_value=0.01, significant=True),
                ACEConcept("concept 2", np.array([3, 4]), 2, np.zeros(4), tcav=0.2, p_value=0.6)]
    return ACEResult(concepts, patches, np.zeros((6, 8, 8), bool), np.array([0, 0, 1, 1, 0, 1]), np.full(6, 5),
                     np.zeros((6, 4)), np.array([0, 0, 0, 1, 1, 2]))


def test_ace_gallery_shows_the_patches_nearest_each_centre_with_their_scores():
    result = ace_result()
    fig = V.plot_ace_gallery(result, k=3, notes={"concept 1": "50% on the ruler"}, title="ACE")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 + 2                               # concept 2 has two segments for three slots
    first = shown[0].images[0].get_array()
    np.testing.assert_allclose(first, result.concepts[0].gallery(result, 1)[0] / 255, atol=1e-6)
    labels = texts(fig)
    assert any(t.startswith("concept 1: 3 segments from 2 images, TCAV 0.90 (significant") and
               t.endswith("50% on the ruler") for t in labels)
    assert any(t.startswith("concept 2") and "n.s." in t for t in labels)
    assert len(V.plot_ace_gallery(result, concepts=["concept 2"]).axes) == 6
    with pytest.raises(ValueError, match="no concept"):
        V.plot_ace_gallery(result, concepts=["concept 9"])
    with pytest.raises(ValueError, match="k must"):
        V.plot_ace_gallery(result, k=0)


def test_concept_shap_bars_and_completeness_in_the_title():
    r = ConceptSHAPResult(("a", "b"), np.array([0.7, -0.1]), {(): 0.0, (0,): 0.8, (1,): 0.0, (0, 1): 0.6}, 0.9, 0.5)
    fig = V.plot_concept_shap({"model": r})
    ax = fig.axes[0]
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [0.7, -0.1])
    assert "completeness 0.60 (empty set 0.00)" in ax.get_title()
    assert ax.get_xlabel() == "ConceptSHAP value"
    with pytest.raises(ValueError, match="ConceptSHAPResult"):
        V.plot_concept_shap({"model": "nope"})

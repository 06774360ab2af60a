"""Figures of the example-based chapter (medxai_lite.viz.examples): every tile has its title, the
difference images have colour bars with their unit and the true values, lesions are outlined, and
bad input is refused with a ValueError naming the parameter."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medxai_lite.viz import examples as vx  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def image(seed: int, size: int = 16) -> torch.Tensor:
    return torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed))


def lesion(size: int = 16) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[4:9, 5:11] = True
    return m


def colour_bars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.axison and not hasattr(ax, "_colorbar")]


def outlined(ax) -> bool:
    return len(ax.lines) > 0


def test_gallery_titles_every_tile_outlines_lesions_and_marks_other_classes():
    fig = vx.plot_gallery(torch.stack([image(0), image(1)]), [[image(2), image(3), image(4)], [image(5)]],
                          [["naevus\nd = 1.0", "naevus\nd = 2.0", "melanoma\nd = 3.0"], ["glioma\nd = 0.5"]],
                          query_titles=["query A", "query B"], masks=[lesion(), None],
                          example_masks=[[lesion(), None, None], [None]],
                          highlight=[[False, False, True], [False]], title="gallery")
    assert fig._suptitle.get_text() == "gallery"
    assert titles(fig) == ["query A", "naevus\nd = 1.0", "naevus\nd = 2.0", "melanoma\nd = 3.0",
                           "query B", "glioma\nd = 0.5"]
    axes = np.array(fig.axes).reshape(2, 4)
    assert outlined(axes[0, 0]) and outlined(axes[0, 1]) and not outlined(axes[0, 2]) and not outlined(axes[1, 0])
    assert axes[0, 3].title.get_color() == "#c62828" and axes[0, 1].title.get_color() == "black"
    assert not axes[1, 2].axison and not axes[1, 3].axison               # the shorter row leaves its tiles empty
    grey = np.zeros((16, 16, 3)) + 0.5                                    # a grey display image stays grey
    fig = vx.plot_gallery([grey], [[grey]], [["x"]], query_titles=["q"])
    assert fig.axes[0].images[0].get_cmap().name == "gray"


def test_prototypes_one_row_per_dataset_with_labels():
    fig = vx.plot_prototypes([[image(0), image(1)], [image(2), image(3), image(4)]],
                             [["naevus (n=40)", "melanoma (n=38)"], ["a", "b", "c"]],
                             row_labels=["skin", "brain MRI"], masks=[[None, lesion()], [None, None, lesion()]])
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel() == "skin" and axes[1, 0].get_ylabel() == "brain MRI"
    assert axes[0, 1].get_title() == "melanoma (n=38)" and outlined(axes[0, 1]) and not axes[0, 2].axison


def test_counterfactual_panel_shows_the_true_difference_with_a_colour_bar():
    x = image(0)
    cf = x.clone()
    cf[:, 2:4, 2:4] += 0.5                                                # a change in 4 pixels, 3 channels
    fig = vx.plot_counterfactuals([x], [cf], titles=["x: melanoma (0.91)"], counterfactual_titles=["x_cf: naevus"],
                                  prototypes=[image(1)], prototype_titles=["prototype: naevus"], masks=[lesion()],
                                  title="cf")
    bars = colour_bars(fig)
    assert len(bars) == 1 and bars[0].get_ylabel() == vx.DIFFERENCE_LABEL
    diff_ax = [ax for ax in fig.axes if ax.get_title() == "|x_cf - x|"][0]
    shown = diff_ax.images[0].get_array()
    np.testing.assert_allclose(shown[2:4, 2:4], 1.5, rtol=1e-5)          # 3 channels x 0.5
    assert float(np.asarray(shown).sum()) == pytest.approx(4 * 1.5, rel=1e-5)
    assert outlined(diff_ax)                                              # lesion outlined on the difference too
    assert titles(fig)[:2] == ["x: melanoma (0.91)", "x_cf: naevus"]
    np.testing.assert_allclose(vx.difference_map(x, cf), (cf - x).abs().sum(0).numpy(), rtol=1e-6)


def test_cem_panel_has_two_difference_images_with_colour_bars():
    x, base = image(0), torch.full((3, 16, 16), -2.0)
    pp = base.clone()
    pp[:, 5:7, 5:7] = x[:, 5:7, 5:7]
    pn = x.clone()
    pn[0, 10, 10] += 1.0
    fig = vx.plot_cem([x], [pp], [pn], titles=["x"], pp_titles=["PP: glioma"], pn_titles=["x + PN: meningioma"],
                      baselines=[base], masks=[lesion()])
    assert len(colour_bars(fig)) == 2
    axes = {ax.get_title(): ax for ax in fig.axes}
    kept = axes["PP: what it keeps"].images[0].get_array()
    assert (np.asarray(kept)[5:7, 5:7] > 0).all() and float(np.asarray(kept).sum()) == pytest.approx(
        float((x[:, 5:7, 5:7] - base[:, 5:7, 5:7]).abs().sum()), rel=1e-5)
    added = np.asarray(axes["PN: what it adds"].images[0].get_array())
    assert added[10, 10] == pytest.approx(1.0) and added.sum() == pytest.approx(1.0)
    # an empty pertinent positive (the baseline alone keeps the class) is said so, on a readable scale
    fig = vx.plot_cem([x], [base], [pn], titles=["x"], pp_titles=["PP"], pn_titles=["PN"], baselines=[base])
    empty = [ax for ax in fig.axes if ax.get_title().startswith("PP: what it keeps")][0]
    assert empty.get_title().endswith("(no change at all)") and empty.images[0].norm.vmax == 1.0


def test_influence_figure_has_a_helpful_and_a_harmful_row():
    fig = vx.plot_influence(image(0), [image(1), image(2)], [image(3), image(4), image(5)], query_title="query",
                            helpful_titles=["+0.9", "+0.5"], harmful_titles=["-0.8", "-0.7", "-0.1"],
                            highlight_harmful=[True, False, False], mask=lesion())
    axes = np.array(fig.axes).reshape(2, 4)
    assert axes[0, 1].get_ylabel() == "most helpful" and axes[1, 1].get_ylabel() == "most harmful"
    assert axes[1, 1].title.get_color() == "#c62828" and axes[1, 2].title.get_color() == "black"
    assert not axes[1, 0].axison and not axes[0, 3].axison and outlined(axes[0, 0])
    assert titles(fig) == ["query", "+0.9", "+0.5", "-0.8", "-0.7", "-0.1"]


def test_planted_ranking_plot_marks_the_planted_items_and_their_count():
    scores = np.arange(30, dtype=float)
    fig = vx.plot_planted_ranking(scores, [29, 28, 3], k=5, score_label="self-influence", title="t")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("rank") and ax.get_ylabel() == "self-influence" and ax.get_title() == "t"
    planted = ax.collections[1]
    np.testing.assert_array_equal(planted.get_offsets()[:, 0], [1, 2, 27])       # ranks of the planted items
    assert "2 in the top 5" in ax.get_legend().get_texts()[2].get_text()
    fig = vx.plot_planted_ranking(scores, [0], k=3, largest=False)
    np.testing.assert_array_equal(fig.axes[0].collections[1].get_offsets()[:, 0], [1])


@pytest.mark.parametrize(("call", "name"), [
    (lambda: vx.plot_gallery([image(0)], [[image(1)]], [["a", "b"]], query_titles=["q"]), "titles"),
    (lambda: vx.plot_gallery([image(0)], [[image(1)], [image(2)]], [["a"]], query_titles=["q"]), "examples"),
    (lambda: vx.plot_gallery([image(0)], [[image(1)]], [["a"]], query_titles=None), "query_titles"),
    (lambda: vx.plot_gallery([], [], [], query_titles=[]), "queries"),
    (lambda: vx.plot_gallery([image(0)], [[image(1)]], [["a"]], query_titles=["q"], highlight=[[True, False]]),
     "highlight"),
    (lambda: vx.plot_prototypes([], [], row_labels=[]), "images"),
    (lambda: vx.plot_prototypes([[image(0)]], [["a"]], row_labels=["x", "y"]), "row_labels"),
    (lambda: vx.plot_counterfactuals([image(0)], [image(1), image(2)], titles=["a"], counterfactual_titles=["b"]),
     "counterfactuals"),
    (lambda: vx.plot_counterfactuals([image(0)], [image(1)], titles=["a"], counterfactual_titles=["b"],
                                     prototypes=[image(2)]), "prototype_titles"),
    (lambda: vx.plot_cem([image(0)], [image(1)], [], titles=["a"], pp_titles=["b"], pn_titles=["c"]),
     "pertinent_negatives"),
    (lambda: vx.plot_cem([image(0)], [image(1)], [image(2)], titles=["a"], pp_titles=["b"], pn_titles=["c"],
                         baselines=[image(3), image(4)]), "baselines"),
    (lambda: vx.plot_influence(image(0), [image(1)], [image(2)], query_title="q", helpful_titles=[],
                               harmful_titles=["b"]), "helpful_titles"),
    (lambda: vx.plot_influence(image(0), [image(1)], [image(2)], query_title="q", helpful_titles=["a"],
                               harmful_titles=["b"], highlight_harmful=[True, True]), "highlight_harmful"),
    (lambda: vx.difference_map(image(0), image(1, size=8)), "changed"),
    (lambda: vx.plot_planted_ranking(np.arange(5.0), [7], k=2), "planted"),
    (lambda: vx.plot_planted_ranking(np.arange(5.0), [1], k=9), "k"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()

"""medxai_lite.viz: the chapter figures draw computed results, with labelled axes and colour bars."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from medxai_lite import viz  # noqa: E402
from medxai_lite.metrics import PerturbationCurves, RoadCurves  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled(fig):
    """Every axes that draws data has both axis labels (colour bars carry their own label)."""
    for ax in fig.axes:
        if hasattr(ax, "_colorbar") or not ax.has_data():
            continue
        assert ax.get_xlabel() and (ax.get_ylabel() or ax.get_shared_y_axes().get_siblings(ax)), ax


def colour_bars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_method_colours_put_the_reference_in_grey():
    colours = viz.method_colours(["a", "b", "random"])
    assert colours["random"] == viz.REFERENCE_COLOUR and colours["a"] != colours["b"]


def test_score_heatmap_has_a_colour_bar_and_group_separators():
    columns = pd.MultiIndex.from_product([["phantom-a", "phantom-b"], ["RMA", "RRA"]], names=["dataset", "metric"])
    summary = pd.DataFrame(np.random.default_rng(0).random((3, 4)), index=["x", "y", "chance"], columns=columns)
    fig = viz.plot_score_heatmap(summary, title="t", label="mean score")
    assert len(colour_bars(fig)) == 1 and colour_bars(fig)[0].get_ylabel() == "mean score"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "a\nRMA"
    assert len(ax.lines) == 1                                    # one separator between the two datasets
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "t"


def curves(mode, level):
    c = np.array([[level, level / 2, 0.0]])
    return PerturbationCurves(fractions=np.array([0, 0.5, 1]), curves=c, auc=np.array([level / 2]),
                              targets=np.array([1]), mode=mode, baseline="zero" if mode == "deletion" else "blur",
                              score="probability")


def test_perturbation_and_road_curves_are_labelled():
    fig = viz.plot_perturbation_curves({(mode, m): curves(mode, v) for mode in ("deletion", "insertion")
                                        for m, v in (("gradcam", 0.8), ("random", 0.4))}, title="t")
    labelled(fig)
    assert "AUC 0.40" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert fig.axes[0].lines[1].get_linestyle() == "--"           # the random reference, dashed
    road = {m: RoadCurves(percentiles=np.array([20.0, 80.0]), morf=np.full((2, 2), -v), lerf=np.zeros((2, 2)),
                          score="probability") for m, v in (("gradcam", 0.3), ("random", 0.1))}
    fig = viz.plot_road_curves(road)
    labelled(fig)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [-0.3, -0.3])


def test_randomisation_figures():
    rows = [dict(mode="cascading", step=s, layer=l, image=i, metric=m, value=v, method=me)
            for s, l in enumerate(["original", "fc", "layer4"]) for i in range(2) for m in ("spearman", "ssim")
            for me, v in (("gradcam", 1 - s / 2), ("saliency", np.nan if (s == 2 and i == 0) else 0.9))]
    fig = viz.plot_randomisation_curves(pd.DataFrame(rows))
    labelled(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["none", "fc", "+ layer4"]
    image = np.zeros((16, 16, 3))                      # an [H, W, 3] display image
    maps = {"gradcam": [np.random.default_rng(k).random((16, 16)) for k in range(3)]}
    fig = viz.plot_randomisation_maps(image, maps, viz.cascade_labels(["fc", "layer4"]),
                                      mask=np.eye(16, dtype=bool), clip_percentile={"gradcam": None})
    assert len(colour_bars(fig)) == 1 and colour_bars(fig)[0].get_ylabel().startswith("relevance")


def test_benchmark_figures():
    scores = pd.DataFrame({"dataset": ["a"] * 4 + ["b"] * 4, "method": ["x", "x", "y", "y"] * 2,
                           "metric": "road_combined", "value": np.arange(8.0)})
    fig = viz.plot_mean_bars(scores, {"road_combined": "ROAD (higher is better)"})
    labelled(fig)
    assert "95 % interval" in fig.axes[0].get_title()
    # a method scored on one dataset only keeps its bar in that dataset's group
    partial = pd.DataFrame({"dataset": ["d1", "d2", "d2"], "method": ["A", "A", "B"], "metric": "m",
                            "value": [1.0, 2.0, 5.0]})
    fig = viz.plot_mean_bars(partial, {"m": "score"}, z=1.0)
    bars = {(round(p.get_x() + p.get_width() / 2, 2), p.get_height()) for p in fig.axes[0].patches}
    assert bars == {(0.0, 1.0), (1.0, 2.0), (1.4, 5.0)}              # bar centres; B sits beside A in d2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["d1", "d2"]
    assert "68 % interval" in fig.axes[0].get_title()
    tests = pd.DataFrame([dict(dataset="a", metric="m", method_a="x", method_b="y", p_holm=0.001)])
    fig = viz.plot_pvalue_grid(tests)
    assert len(colour_bars(fig)) == 1 and "Holm" in colour_bars(fig)[0].get_ylabel()
    seconds = pd.DataFrame({"a": [0.1, 2.0]}, index=["x", "y"]).rename_axis(columns="dataset")
    fig = viz.plot_timing(seconds, title="t")
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_xlabel()


def test_style_verdicts_colours_the_verdict_cells():
    table = pd.DataFrame({"method": ["a", "b", "c"], "verdict": ["fails", "passes", "undefined"]})
    html = viz.style_verdicts(table, hide_index=True, caption="c").to_html()
    assert "#f8d7da" in html and "#d9f2d9" in html and "<caption>c</caption>" in html
    everything = viz.style_verdicts(pd.DataFrame({"x": ["yes", None]}), columns=None, default="#f8d7da").to_html()
    assert everything.count("#f8d7da") == 1 and "#d9f2d9" in everything

"""The benchmark runner and `medxai bench`, on a tiny budget."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_rel

from medxai_lite import bench
from medxai_lite.cli import main
from medxai_lite.models import train as train_mod

TINY = dict(train=dict(image_size=32, n_train=48, n_val=24, n_test=24, epochs=1), n_images=4,
            method_options={"ablationcam": {"ratio_channels_to_ablate": 0.25}}, extended_images=2,
            extended_options=bench.BENCH_BUDGETS["cpu"]["extended_options"], steps=4)
KW = dict(datasets=["phantom-chest-xray"], archs=["small_cnn", "resnet18"], cam_arch="small_cnn",
          methods=["gradcampp", "xgradcam", "layercam"], extended_methods=["gradcam", "saliency"], progress=False)


@pytest.fixture
def tiny(tmp_cache, monkeypatch):
    monkeypatch.setitem(bench.BENCH_BUDGETS, "tiny", TINY)
    monkeypatch.setitem(train_mod.PROFILES, "tiny", dict(train_mod.PROFILES["cpu"]))
    return tmp_cache


@pytest.mark.slow
def test_tiny_run_writes_every_table_and_reuses_it(tiny, monkeypatch):
    res = bench.run_benchmark("phantom", "tiny", **KW)
    files = sorted(p.name for p in res.folder.iterdir())
    assert files == sorted(["accuracy.csv", "per_class_f1.csv", "scores.csv", "cam_summary.csv", "ttests.csv",
                            "timing.csv", "extended.csv", "meta.json"])
    # Table A: our two networks plus the published figure, labelled with its source
    assert set(res.accuracy.dropna(subset=["macro_f1"])["arch"]) == {"small_cnn", "resnet18"}
    published = res.accuracy[res.accuracy["macro_f1"].isna()]
    assert published["accuracy"].tolist() == [0.8631] and "Chaddad" in published["source"].iloc[0]
    # scores: 4 images x 3 methods x 3 metrics, tidy
    assert len(res.scores) == 4 * 3 * 3 and set(res.scores["metric"]) == set(bench._CAM_METRICS)
    assert set(res.cam_summary["class"]) >= {"all", "normal", "pneumonia"}
    # the t-tests are scipy's on the same per-image arrays
    s = res.scores[res.scores.metric == "confidence_change"].pivot(index="image", columns="method", values="value")
    row = res.ttests[(res.ttests.metric == "confidence_change") & (res.ttests.method_a == "gradcampp")
                     & (res.ttests.method_b == "xgradcam")].iloc[0]
    expected = ttest_rel(s["gradcampp"], s["xgradcam"])
    assert row["t"] == pytest.approx(expected.statistic, nan_ok=True)
    assert row["p"] == pytest.approx(expected.pvalue, nan_ok=True)
    assert len(res.ttests) == 2 * 3  # two scores x three pairs
    assert set(res.timing["method"]) == set(KW["methods"]) and (res.timing["mean_s_per_image"] > 0).all()
    assert set(res.extended["method"]) == {"gradcam", "saliency"}
    assert {"relevance_mass_accuracy", "pointing_game", "deletion"} <= set(res.extended["metric"])

    def boom(*a, **k):
        raise AssertionError("a finished run must be read, not recomputed")

    import sys

    # the package re-exports the function under the subpackage's name: patch the module itself
    monkeypatch.setattr(sys.modules["medxai_lite.explain"], "explain", boom)
    again = bench.run_benchmark("phantom", "tiny", **KW)
    assert again.folder == res.folder
    assert np.allclose(again.scores["value"], res.scores["value"], equal_nan=True)


@pytest.mark.slow
def test_a_failed_run_leaves_nothing_under_the_final_name(tiny, tmp_path, monkeypatch):
    import medxai_lite.metrics as metrics

    def broken(*a, **k):
        raise RuntimeError("metric crashed")

    broken.needs_masks = False
    monkeypatch.setitem(metrics.METRICS, "road_combined", broken)
    out = tmp_path / "bench-out"
    with pytest.raises(RuntimeError, match="metric crashed"):
        bench.run_benchmark("phantom", "tiny", out=out, **{**KW, "archs": ["small_cnn"]})
    assert not out.exists() and not list(tmp_path.glob(".bench-out*"))


@pytest.mark.parametrize("kwargs, param", [
    (dict(data="web"), "data"),
    (dict(profile="gpu"), "profile"),
    (dict(methods=["gradcam", "magic"]), "methods"),
    (dict(n_images=1), "n_images"),
    (dict(archs=["vgg16"], cam_arch="resnet50"), "cam_arch"),
])
def test_bad_benchmark_arguments(kwargs, param, tmp_cache):
    with pytest.raises(ValueError, match=param):
        bench.run_benchmark(**{"progress": False, **kwargs})


def test_cli_bench_reports_bad_input(capsys, tmp_cache):
    assert main(["bench", "--profile", "tpu", "--quiet"]) == 2
    assert "profile" in capsys.readouterr().err


def test_load_results_without_a_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="medxai bench"):
        bench.load_results(tmp_path)

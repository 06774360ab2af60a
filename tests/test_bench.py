"""The benchmark runner and `medxai bench`, on a tiny budget."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_rel

from medxai_lite import bench
from medxai_lite.cli import main
from medxai_lite.models import train as train_mod

TINY = dict(train=dict(image_size=32, n_train=48, n_val=24, n_test=24, epochs=1),
            arch_train={"small_cnn": dict(n_train=32, epochs=2)}, n_images=4,
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
    # training as a step of its own; the run then loads every network from the cache
    models = bench.train_models("phantom", "tiny", datasets=KW["datasets"], archs=KW["archs"], progress=False)
    assert set(models) == {("phantom-chest-xray", a) for a in ("small_cnn", "resnet18")}
    assert models[("phantom-chest-xray", "resnet18")].report.settings["image_size"] == 32      # the budget's
    # without the paper's archs, the extended grid's network is added
    only = bench.train_models("phantom", "tiny", datasets=KW["datasets"], archs=["small_cnn"], progress=False)
    assert set(only) == {("phantom-chest-xray", "small_cnn"), ("phantom-chest-xray", bench.EXTENDED_ARCH)}

    def no_training(*a, **k):
        raise AssertionError("run_benchmark must reuse the networks train_models cached")

    monkeypatch.setattr(train_mod, "train_model", no_training)
    res = bench.run_benchmark("phantom", "tiny", **KW)
    files = sorted(p.name for p in res.folder.iterdir())
    assert files == sorted(["accuracy.csv", "per_class_f1.csv", "scores.csv", "cam_summary.csv", "ttests.csv",
                            "vs_random.csv", "timing.csv", "extended.csv", "meta.json"])
    # Table A: our two networks plus the published figure, labelled with its source
    ours = res.accuracy.dropna(subset=["macro_f1"]).set_index("arch")
    assert set(ours.index) == {"small_cnn", "resnet18"}
    # the per-arch override reaches training, and Table A records each network's budget
    assert (ours.loc["small_cnn", "n_train"], ours.loc["small_cnn", "epochs"]) == (32, 2)
    assert (ours.loc["resnet18", "n_train"], ours.loc["resnet18", "epochs"]) == (48, 1)
    assert bench.bench_model("phantom-chest-xray", "small_cnn", "tiny").report.settings["n_train"] == 32
    published = res.accuracy[res.accuracy["macro_f1"].isna()]
    assert published["accuracy"].tolist() == [0.8631] and "Chaddad" in published["source"].iloc[0]
    # scores: 4 images x (3 methods + the random reference) x (3 metrics + 2 localisation + the map's mean)
    assert len(res.scores) == 4 * 4 * 6
    assert set(res.scores["metric"]) == {*bench._CAM_METRICS, *bench._CAM_LOCALISATION, bench.MAP_MEAN}
    # where masks are known, every scored image carries a lesion, so localisation is defined on all
    pg = res.scores[res.scores.metric == "pointing_game"]
    assert set(pg["class"]) == {"pneumonia"} and pg["value"].notna().all()
    # every method against the random reference, one-sided, on both scores
    assert set(res.vs_random["method_b"]) == {bench.RANDOM_REFERENCE}
    assert set(res.vs_random["metric"]) == set(bench.VS_RANDOM_METRICS) and len(res.vs_random) == 2 * 3
    means = res.scores[res.scores.metric == bench.MAP_MEAN]["value"]
    assert ((means >= 0) & (means <= 1)).all()
    assert (res.cam_summary["road_n_undefined"] >= 0).all()
    assert bench.RANDOM_REFERENCE in set(res.scores["method"]) and bench.RANDOM_REFERENCE in set(res.cam_summary["method"])
    # the reference is neither timed nor tested: the tests compare the paper's methods
    assert bench.RANDOM_REFERENCE not in set(res.timing["method"])
    assert bench.RANDOM_REFERENCE not in set(res.ttests["method_a"]) | set(res.ttests["method_b"])
    summary = bench.reproduction_summary(res)
    assert list(summary.columns) == ["finding", "published", "this run", "verdict"]
    assert summary.verdict.iloc[0] == "not run"       # no ResNet50 in this run: no accuracy to set beside 86.31 %
    assert set(res.cam_summary["class"]) == {"all", "pneumonia"}
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


def test_random_maps_have_the_grain_of_the_target_layer():
    import torch

    from medxai_lite.models import get_model

    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=2).eval()
    x = torch.randn(3, 3, 64, 64)
    maps = bench.random_maps(model, "resnet18", x, seed=1)
    assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    # layer4 of a (stride-32) ResNet18 is 2x2 at 64 px: bilinear upsampling leaves each 16x16 corner flat
    for corner in (maps[:, :16, :16], maps[:, :16, -16:], maps[:, -16:, :16], maps[:, -16:, -16:]):
        assert np.ptp(corner, axis=(1, 2)).max() < 1e-6
    assert np.array_equal(maps, bench.random_maps(model, "resnet18", x, seed=1))
    assert not np.allclose(maps, bench.random_maps(model, "resnet18", x, seed=2))
    assert not model.layer4._forward_hooks   # the hook is removed


@pytest.mark.slow
def test_cams_beat_the_random_reference_on_a_small_run(tmp_cache, monkeypatch):
    """The benchmark's precondition on a small but real run: chest films, a stride-16 ResNet18
    (4 x 4 grid at 64 px), two CAMs against the random map on the pointing game."""
    small = dict(train=dict(image_size=64, output_stride=16, n_train=240, n_val=48, n_test=64, epochs=3, lr=3e-3,
                            zero_init_residual=True, precise_bn=64),
                 arch_train={}, n_images=16, method_options={}, extended_images=2, extended_options={}, steps=4)
    monkeypatch.setitem(bench.BENCH_BUDGETS, "small", small)
    monkeypatch.setitem(train_mod.PROFILES, "small", dict(train_mod.PROFILES["cpu"]))
    res = bench.run_benchmark("phantom", "small", datasets=["phantom-chest-xray"], archs=["resnet18"],
                              cam_arch="resnet18", methods=["gradcampp", "layercam"], extended=False, progress=False)
    pg = res.vs_random[res.vs_random.metric == "pointing_game"]
    if pg.n.min() < 6:
        pytest.skip(f"only {pg.n.min()} lesion images: too few for the paired test's power")
    assert res.accuracy.dropna(subset=["macro_f1"]).accuracy.iloc[0] >= 0.8
    assert pg.significant.all(), pg[["method_a", "mean_a", "mean_b", "p_holm"]]
    assert (pg.mean_a > pg.mean_b).all()


def test_reproduction_summary_verdicts_come_from_the_tables(tmp_path):
    """Known answers: a tie is not the published ordering; close values in that order reproduce it."""
    import pandas as pd

    def result(values, data="real"):
        summary = pd.DataFrame([{"dataset": "brain", "class": "glioma", "method": m, "confidence_increase": v}
                                for m, v in values.items()])
        acc = pd.DataFrame([{"dataset": "isic-benign-malignant", "arch": "resnet50", "accuracy": 0.85,
                             "source": "this run (real, paper profile)"}])
        return bench.BenchmarkResult(accuracy=acc, per_class_f1=None, scores=None, cam_summary=summary, ttests=None,
                                     vs_random=pd.DataFrame(), timing=None, extended=None,
                                     meta={"settings": {"data": data, "methods": list(bench.PAPER_CAMS)}},
                                     folder=tmp_path)

    verdicts = lambda r: bench.reproduction_summary(r).set_index("finding").verdict.tolist()
    assert verdicts(result({"xgradcam": 0.25, "gradcampp": 0.25, "layercam": 0.25}))[:2] == ["reproduced",
                                                                                           "not reproduced"]
    assert verdicts(result({"xgradcam": 0.11, "gradcampp": 0.10, "layercam": 0.07}))[1] == "reproduced"
    assert verdicts(result({"xgradcam": 0.5, "gradcampp": 0.4, "layercam": 0.3}))[1] == "ordering only"
    phantom = verdicts(result({"xgradcam": 0.1, "gradcampp": 0.1, "layercam": 0.1}, data="phantom"))
    assert phantom[0] == "not comparable" and phantom[2:] == ["not run", "not run"]

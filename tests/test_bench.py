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
            extended_preset="quick", extended_options={}, steps=4)
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
    assert list(res.scores.columns) == bench.SCORE_CSV_COLUMNS
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
    (dict(n_images=0), "n_images"),                               # not read as "the default"
    (dict(datasets=["phantom-skin", "bogus"]), "datasets"),      # before the first network trains
    (dict(datasets=["chest-xray-pneumonia"]), "datasets"),       # a real dataset under the phantom source
    (dict(data="real", datasets=["phantom-skin"]), "datasets"),    # a phantom under the real source
    (dict(archs=["resnet50", "bogus"]), "archs"),
    (dict(archs=["vgg16"], cam_arch="resnet50"), "cam_arch"),
    (dict(extended_methods=["gradcam", "magic"]), "extended_methods"),
])
def test_bad_benchmark_arguments(kwargs, param, tmp_cache, monkeypatch):
    monkeypatch.setattr(bench, "bench_model", lambda *a, **k: pytest.fail("trained before checking the arguments"))
    with pytest.raises(ValueError, match=param):
        bench.run_benchmark(**{"progress": False, **kwargs})
    if set(kwargs) <= {"data", "datasets", "archs"}:            # train_models checks them too
        with pytest.raises(ValueError, match=param):
            bench.train_models(**{"progress": False, **kwargs})


def test_any_public_dataset_is_accepted_under_the_real_source(monkeypatch):
    # the experiment's three are only the default: figshare-brain-tumor (with masks) is valid too
    trained = []
    monkeypatch.setattr(bench, "bench_model", lambda d, a, *args, **k: trained.append((d, a)))
    bench.train_models("real", datasets=["figshare-brain-tumor"], archs=["resnet50"], extended=False,
                       progress=False)
    assert trained == [("figshare-brain-tumor", "resnet50")]


def test_cli_bench_reports_bad_input(capsys, tmp_cache):
    assert main(["bench", "--profile", "tpu", "--quiet"]) == 2
    assert "profile" in capsys.readouterr().err


def test_load_results_without_a_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="medxai bench"):
        bench.load_results(tmp_path)


def test_the_random_reference_is_the_cam_grid_noise_of_the_metrics(monkeypatch, tmp_path):
    """Table B's reference row: metrics.random_maps on the CAM grid, not a noise of its own."""
    import medxai_lite.metrics as metrics

    assert not hasattr(bench, "random_maps")
    seen = []

    def stop(images, grid="pixel", **kw):
        seen.append((grid, kw.get("arch")))
        raise RuntimeError("stop here")

    # the reference is scored after the methods: the run stops at its maps
    monkeypatch.setattr(metrics, "random_maps", stop)
    monkeypatch.setattr(bench, "train_models", lambda *a, **k: {("phantom-skin", "small_cnn"): _tiny_model()})
    with pytest.raises(RuntimeError, match="stop here"):
        bench.run_benchmark("phantom", "cpu", datasets=["phantom-skin"], archs=["small_cnn"], cam_arch="small_cnn",
                            methods=["gradcam"], n_images=2, extended=False, progress=False, out=tmp_path / "run")
    assert seen == [("cam", "small_cnn")]


def _tiny_model():
    import types

    import torch

    from medxai_lite.models import get_model

    model = get_model("small_cnn", 2).eval()
    model.report = types.SimpleNamespace(settings={"image_size": 32, "n_train": 1}, test={
        "accuracy": 1.0, "macro_f1": 1.0, "n": 1, "per_class_f1": [1.0, 1.0]}, history=[], seconds=0.0,
        classes=["a", "b"])
    torch.manual_seed(0)
    return model


def test_the_extended_grid_runs_the_cam_gradient_and_perturbation_families():
    from medxai_lite.explain import METHODS, list_methods

    assert set(bench.EXTENDED_FAMILIES) == {"CAM-based", "Gradient-based", "Perturbation-based"}
    grid = bench.extended_grid_methods()
    perturbation = ["lime", "kernelshap", "partition_shap", "occlusion", "rise", "sidu", "anchors",
                    "extremal_perturbation"]
    assert set(perturbation) <= set(grid) and {"gradcam", "scorecam", "saliency", "integrated_gradients"} <= set(grid)
    for family in bench.EXTENDED_FAMILIES:
        assert [m for m in grid if METHODS[m].family == family] == [
            m for m in list_methods(family) if METHODS[m].output == "map" and METHODS[m].supports(bench.EXTENDED_ARCH)]
    assert {METHODS[m].family for m in grid} <= set(bench.EXTENDED_FAMILIES)
    assert bench.extended_grid_methods(["CAM-based"]) == [m for m in grid if METHODS[m].family == "CAM-based"]
    # each method runs at the profile's preset: quick on the CPU, the book's on the paper scale
    assert bench.BENCH_BUDGETS["cpu"]["extended_preset"] == "quick"
    assert bench.BENCH_BUDGETS["paper"]["extended_preset"] == "book"
    assert all({"quick", "book"} <= set(METHODS[m].presets) for m in grid)


def test_the_cache_key_holds_the_extended_grid_as_resolved(monkeypatch):
    """A run cached before a family joined the grid must not be reused: the default grid is resolved
    into the settings that make the key."""
    seen = []

    def stop(settings):
        seen.append(settings)
        raise RuntimeError("stop here")

    monkeypatch.setattr(bench, "_key", stop)
    for profile, kwargs in (("cpu", {"extended": True}), ("cpu", {"extended": False}),
                            ("cpu", {"extended_methods": ["rise", "gradcam"]}), ("cpu", {}), ("paper", {})):
        with pytest.raises(RuntimeError, match="stop here"):
            bench.run_benchmark("phantom", profile, progress=False, **kwargs)
    assert seen[0]["extended_methods"] == bench.extended_grid_methods() and "rise" in seen[0]["extended_methods"]
    assert seen[1]["extended_methods"] == []
    assert seen[2]["extended_methods"] == ["rise", "gradcam"] and seen[2]["extended"]   # naming methods asks for the grid
    # the grid is off by default on the CPU (the book's budget) and on at paper scale
    assert seen[3]["extended"] is False and seen[3]["extended_methods"] == []
    assert seen[4]["extended"] is True and seen[4]["extended_methods"] == bench.extended_grid_methods()


def test_extended_ranks_orient_every_metric_so_that_higher_is_better():
    import pandas as pd

    ext = pd.DataFrame([
        {"dataset": d, "method": m, "metric": metric, "higher_is_better": hib, "value": v}
        for d in ("a", "b")
        for metric, hib, values in (("rma", True, {"good": 0.9, "bad": 0.1, "mid": 0.5}),
                                    ("deletion", False, {"good": 0.1, "bad": 0.9, "mid": 0.5}))
        for m, v in values.items()])
    ranks, means = bench.extended_ranks(ext)
    assert list(ranks.index) == ["good", "mid", "bad"] == list(means.index)
    assert (ranks.rank(ascending=False).loc["good"] == 1).all()          # the best rank on every metric
    assert ranks.loc["bad"].max() < ranks.loc["mid"].min()
    # the best gets 1 and the worst 1/n on either kind of metric
    assert ranks.loc["good", "rma"] == 1 and ranks.loc["good", "deletion"] == 1
    assert ranks.loc["bad", "rma"] == pytest.approx(1 / 3) and ranks.loc["bad", "deletion"] == pytest.approx(1 / 3)
    assert means.loc["good", "deletion"] == pytest.approx(0.1)


@pytest.mark.slow
def test_cams_beat_the_random_reference_on_a_small_run(tmp_cache, monkeypatch):
    """The benchmark's precondition on a small but real run: chest films, a stride-16 ResNet18
    (4 x 4 grid at 64 px), two CAMs against the random map on the pointing game."""
    small = dict(train=dict(image_size=64, output_stride=16, n_train=240, n_val=48, n_test=64, epochs=3, lr=3e-3,
                            zero_init_residual=True, precise_bn=64),
                 arch_train={}, n_images=32, method_options={}, extended_images=2, extended_options={}, steps=4)
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
    # phantom images only rehearse a real-data figure, however close and well ordered
    assert verdicts(result({"xgradcam": 0.11, "gradcampp": 0.10, "layercam": 0.07}, data="phantom"))[1] == \
        "not comparable"
    # a published method left out of the run is "not run", not a failed ordering
    partial = bench.reproduction_summary(result({"gradcampp": 0.10, "layercam": 0.07})).iloc[1]
    assert partial.verdict == "not run" and "xgradcam not run" in partial["this run"]



def test_the_random_map_row_names_the_datasets_where_a_cam_fails(tmp_path):
    """The precondition is 'every CAM beats the random map on at least two datasets': the row says
    on which datasets all CAMs won and on which they did not, and its verdict counts only the former."""
    import pandas as pd

    methods = list(bench.PAPER_CAMS)

    def vs(losers):          # every method wins (p 0.001) except those named per dataset (p 0.5)
        return pd.DataFrame([{"metric": metric, "dataset": d, "method_a": m, "method_b": bench.RANDOM_REFERENCE,
                              "p_holm": 0.5 if m in losers.get(d, ()) else 0.001}
                             for metric in bench.VS_RANDOM_METRICS
                             for d in ("phantom-brain-mri", "phantom-skin", "phantom-chest-xray") for m in methods])

    def rows(losers):
        result = bench.BenchmarkResult(accuracy=pd.DataFrame(columns=["dataset", "arch", "accuracy", "source"]),
                                       per_class_f1=None, scores=None, cam_summary=pd.DataFrame(), ttests=None,
                                       vs_random=vs(losers), timing=None, extended=None,
                                       meta={"settings": {"data": "phantom", "methods": methods}}, folder=tmp_path)
        return bench.reproduction_summary(result).iloc[2:]

    one_off = rows({"phantom-skin": [methods[0]]})
    assert (one_off.verdict == "holds").all()
    assert one_off["this run"].str.endswith("on 2 of 3 datasets (brain-mri, chest-xray); not on skin (4 of 5 there)").all()
    assert one_off.finding.str.startswith("every CAM beats a random map on at least 2 of 3 datasets").all()
    two_off = rows({"phantom-skin": [methods[0]], "phantom-brain-mri": [methods[-1]]})
    assert (two_off.verdict == "does not hold").all() and two_off["this run"].str.contains("not on brain-mri (4 of 5 there), skin (4 of 5 there)", regex=False).all()
    assert rows({})["this run"].str.endswith("on 3 of 3 datasets (brain-mri, skin, chest-xray)").all()

def test_the_scored_images_fill_up_from_the_classes_that_last():
    """_balanced interleaves the classes while they last, then the rest: a prefix of n holds n
    items whenever n items are kept (zip() cut it at the smallest class), all of them kept ones."""
    from types import SimpleNamespace

    labels = np.array([0] * 10 + [1] * 2 + [2] * 2 + [3] * 5)
    keep = labels != 3                                            # class 3: no lesion
    order = bench._balanced(SimpleNamespace(labels=labels, classes=range(4)), keep)
    assert order[:6] == [0, 10, 12, 1, 11, 13] and len(order) == 14 and all(keep[order])
    assert order[6:] == list(range(2, 10))


def _result_with(summary):
    return bench.BenchmarkResult(accuracy=None, per_class_f1=None, scores=None, cam_summary=summary, ttests=None,
                                 vs_random=None, timing=None, extended=None, meta={}, folder=None)


def test_table_b_and_the_gap_to_the_random_reference():
    import pandas as pd

    rows = [{"dataset": d, "class": c, "method": m, "road_combined": v + (0.5 if c != "all" else 0),
             "pointing_game": 2 * v, "map_mean": 0.3}
            for d, base in (("brain", 0.1), ("skin", 0.2)) for c in ("all", "glioma")
            for m, v in (("gradcampp", base + 0.05), ("layercam", base), (bench.RANDOM_REFERENCE, base - 0.1))]
    result = _result_with(pd.DataFrame(rows))
    table = bench.table_b(result)
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == ["road_combined", "pointing_game", "map_mean"]
    assert table.loc["layercam", ("road_combined", "skin")] == pytest.approx(0.2)     # the "all" rows only
    gap = bench.gap_to_random(result)
    assert bench.RANDOM_REFERENCE not in gap.index
    assert gap.loc["gradcampp", ("road_combined", "brain")] == pytest.approx(0.15)
    assert gap.loc["layercam", ("pointing_game", "skin")] == pytest.approx(0.2)


def test_example_maps_explain_lesion_images_with_the_budget_options(monkeypatch):
    import types

    import torch

    calls = []

    def fake_explain(method, model, images, **options):
        calls.append((method, options))
        return types.SimpleNamespace(maps=torch.zeros(len(images), *images.shape[-2:]).numpy())

    monkeypatch.setattr("medxai_lite.explain.explain", fake_explain)
    model = types.SimpleNamespace(report=types.SimpleNamespace(settings={"image_size": 32}))
    test, batch, maps = bench.example_maps(model, "phantom-skin", ["gradcampp", "ablationcam"], arch="resnet50")
    assert list(maps) == ["gradcampp", "ablationcam"] and batch["image"].shape == (2, 3, 32, 32)
    assert batch["mask"].flatten(1).any(1).all()
    assert calls[1] == ("ablationcam", {"arch": "resnet50", "seed": 0,
                                        **bench.BENCH_BUDGETS["cpu"]["method_options"]["ablationcam"]})

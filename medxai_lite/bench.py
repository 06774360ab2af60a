"""The benchmark: a reproduction of the Chaddad et al. (2025) experiment, plus the extended grid.

Chaddad et al. train four CNNs (ResNet50, DenseNet121, VGG16, EfficientNet-B0) on three public
datasets (brain tumour MRI, skin cancer, chest X-ray), explain ResNet50 with five CAM methods
(Grad-CAM++, XGrad-CAM, Ablation-CAM, EigenGrad-CAM, Layer-CAM), score the maps with ROAD and a
"confidence increase", compare the methods with paired t-tests and time them. ``run_benchmark``
does the same on the phantoms (default, CPU budget) or on the public datasets (``data="real"``,
``profile="paper"``, for a GPU), and writes tidy tables:

- ``accuracy.csv`` (Table A): dataset, arch, accuracy, macro-F1, source; ``per_class_f1.csv``;
- ``scores.csv``: one row per dataset x image x method x metric (ROAD, confidence change and
  increase, pointing game and relevance mass accuracy against the true lesion where there is
  one, and the map's mean value as a diagnostic), with the image's class. Where masks are known
  (the phantoms) the scored images all carry a lesion, balanced over the lesion classes;
  otherwise they are balanced over all classes; a random-map
  reference (``random_map``) is scored beside the methods; ``cam_summary.csv`` (Table B) averages it per dataset and
  per class, beside the published glioma figures;
- ``ttests.csv``: paired t-tests between every pair of methods on the per-image scores, with
  Cohen's d_z, Holm and Bonferroni corrections and bootstrap intervals;
- ``vs_random.csv``: each CAM against the random-map reference on the pointing game and ROAD
  (one-sided paired t-tests, Holm over the methods): can the maps be right at all?
- ``timing.csv``: seconds per image per method (mean, sd), device named;
- ``extended.csv``: every visual method of the registry's CAM, gradient and perturbation families
  (:data:`EXTENDED_FAMILIES`) x every visual metric on the phantoms (localisation against the true
  masks), on a ResNet18 trained with the same budget, each method at the profile's
  ``extended_preset``;
- ``meta.json``: settings, versions, device, wall time.

The folder is written under a temporary name and renamed when complete; a finished run is
reused when the same settings are asked for again (``force=True`` recomputes).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ._utils import atomic_dir, cache_dir, check_choice, device, model_device

__all__ = ["PAPER_CAMS", "PUBLISHED_ACCURACY", "PUBLISHED_CONFIDENCE", "DATA_SOURCES", "BENCH_BUDGETS",
           "MAP_MEAN", "EXTENDED_ARCH", "EXTENDED_FAMILIES", "extended_grid_methods", "RANDOM_REFERENCE",
           "VS_RANDOM_METRICS", "BenchmarkResult", "run_benchmark", "load_results",
           "bench_model", "train_models", "reproduction_summary", "extended_ranks", "table_b", "gap_to_random",
           "SCORE_LABELS",
           "example_maps"]

#: The five CAM methods of the experiment, as registry keys.
PAPER_CAMS = ("gradcampp", "xgradcam", "ablationcam", "eigengradcam", "layercam")
#: The datasets of each data source, in the order brain MRI, skin, chest X-ray.
DATA_SOURCES = {
    "phantom": ("phantom-brain-mri", "phantom-skin", "phantom-chest-xray"),
    "real": ("brain-tumor-mri", "isic-benign-malignant", "chest-xray-pneumonia"),
}
#: Figures published in the abstract of Chaddad et al. (2025): shown beside ours.
PUBLISHED_ACCURACY = [
    {"dataset": "skin cancer (public data)", "arch": "resnet50", "accuracy": 0.8631,
     "source": "Chaddad et al. 2025 (published, real data, pretrained, 224 px)"},
]
PUBLISHED_CONFIDENCE = [
    {"dataset": "brain tumour MRI (public data)", "class": "glioma", "method": m, "confidence increase": v,
     "source": "Chaddad et al. 2025 (published)"}
    for m, v in (("xgradcam", 0.12), ("gradcampp", 0.09), ("layercam", 0.08))
]
#: Budgets per profile: training overrides of ``get_trained_model``, images scored per dataset,
#: method options, and the extended grid's size. The ``cpu`` budget keeps the benchmark chapter
#: within its ten minutes on two cores; ``paper`` is the experiment's own scale.
BENCH_BUDGETS = {
    # 80 px at output stride 16: the CAM reads a 5 x 5 grid of 16 px cells (the published networks
    # read 2 x 2 at 64 px and 7 x 7 of 32 px cells at 224 px); an odd grid has a centre cell.
    # Measured on a 2-core AVX-512 BF16 CPU (2026-12-05), ResNet50, 32 images a phantom: every CAM
    # beat the random map by Holm-corrected paired tests on the pointing game and on ROAD for brain
    # (PG 0.16-0.22 against 0.03) and chest (0.40-0.44 against 0.10); skin did not (PG: XGrad-CAM
    # alone). At 64 px (4 x 4) and 16 images the pointing game beat it on chest only. Three epochs:
    # on a 2-core AVX2 CPU four epochs of the twelve networks took 346 s at 64 px, and the best
    # validation epoch was the third or earlier for 10 of the 12
    "cpu": dict(train=dict(image_size=80, output_stride=16, n_train=300, n_val=64, n_test=200, epochs=3, patience=3,
                           lr=3e-3, zero_init_residual=True, precise_bn=64),
                # VGG16 (138 M parameters, no BatchNorm) trains 4x slower per image than a ResNet50 on a CPU
                # and does not learn from scratch in any budget the chapter can afford: it gets a token run
                arch_train={"vgg16": dict(n_train=64, epochs=1, lr=1e-4)},
                # 32 images: the paired tests against the random map need them (16 left brain's pointing game
                # short). Ablation-CAM ablates all 2048 channels, as the paper: it runs on the network's head
                # only (explain/cam.py), 128 ablated copies a pass
                n_images=32, method_options={"ablationcam": {"batch_size": 128}},
                # the extended grid is off on the CPU (extended=True runs it: one lesion image per dataset,
                # about 100 s with its three extra networks); the book's 25 minutes cannot hold it
                extended=False, extended_images=1,
                # every method of the extended grid runs at its registry preset: "quick" here, "book" at paper scale
                extended_preset="quick", extended_options={},
                steps=16),
    "paper": dict(train={}, arch_train={}, n_images=100, method_options={}, extended=True, extended_images=32,
                  extended_preset="book",
                  extended_options={}, steps=32),
}
_CAM_METRICS = ("road_combined", "confidence_change", "confidence_increase")
#: Localisation scores of Table B, on the images with a lesion mask (NaN elsewhere).
_CAM_LOCALISATION = ("pointing_game", "relevance_mass_accuracy")
#: The scores on which every CAM is tested against the random-map reference (one-sided, Holm).
VS_RANDOM_METRICS = ("pointing_game", "road_combined")
_EXTENDED_METRICS = ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "deletion",
                     "insertion", "aopc", "road_morf", "confidence_change")


@dataclass
class BenchmarkResult:
    """The tables of one run (pandas DataFrames) and the folder they were written to."""
    accuracy: object
    per_class_f1: object
    scores: object
    cam_summary: object
    ttests: object
    vs_random: object
    timing: object
    extended: object
    meta: dict
    folder: Path


#: The families whose methods the extended grid runs by default, each method at the profile's
#: ``extended_preset`` (the perturbation family's ``"quick"`` preset keeps its tens to hundreds of
#: model passes per image within the ``cpu`` budget); ``extended_methods=`` picks any methods instead.
EXTENDED_FAMILIES = ("CAM-based", "Gradient-based", "Perturbation-based")
#: The network of the extended grid: cheap enough to run every method of the registry on it.
EXTENDED_ARCH = "resnet18"
#: The diagnostic stored beside the scores: the mean of each [0, 1] map (the share of the image it keeps).
MAP_MEAN = "map_mean"
#: The reference row of Table B: random maps as coarse as the CAMs, noise on the target layer's
#: grid upsampled to the image (:func:`medxai_lite.metrics.random_maps` with ``grid="cam"``). A
#: score is only informative where it beats a map that knows nothing about the image but is as
#: coarse as the maps being judged.
RANDOM_REFERENCE = "random_map"
#: The columns of ``scores.csv``, in order.
SCORE_CSV_COLUMNS = ["dataset", "image", "class", "predicted", "method", "metric", "value"]


def bench_model(dataset: str, arch: str = "resnet50", profile: str = "cpu", seed: int = 0):
    """The network the benchmark trained (or will train) for ``dataset`` and ``arch``: the
    profile's settings with the benchmark's budget (``BENCH_BUDGETS[profile]``), from the cache.

    Use it to look at the maps behind the tables, e.g. the five CAMs of one image.
    """
    from .models import get_trained_model

    check_choice("profile", profile, BENCH_BUDGETS)
    budget = BENCH_BUDGETS[profile]
    return get_trained_model(dataset, arch, profile, seed=seed, progress=False,
                             **{**budget["train"], **budget.get("arch_train", {}).get(arch, {})})


def train_models(data: str = "phantom", profile: str = "cpu", *, datasets: Sequence[str] | None = None,
                 archs: Sequence[str] | None = None, extended: bool | None = None, seed: int = 0,
                 progress: bool = True) -> dict:
    """Train (or load from the cache) every network a benchmark run needs, and return them.

    The ``archs`` on each dataset with the benchmark's budget (:func:`bench_model`) and, when
    ``extended`` (default: the profile's ``BENCH_BUDGETS[profile]["extended"]``), the ResNet18
    (same budget) that the extended grid explains. ``run_benchmark``
    calls it first; calling it on its own splits a long run into a training step and an
    explaining step (the benchmark notebook does, to keep each cell short). Returns
    ``{(dataset, arch): model}``.
    """
    from tqdm.auto import tqdm

    from .models import PAPER_ARCHS

    check_choice("data", data, DATA_SOURCES)
    check_choice("profile", profile, BENCH_BUDGETS)
    datasets = list(datasets or DATA_SOURCES[data])
    _check_names(data, datasets, archs)
    if extended is None:
        extended = BENCH_BUDGETS[profile].get("extended", True)
    archs = list(dict.fromkeys([*(archs or PAPER_ARCHS), *([EXTENDED_ARCH] if extended else [])]))
    jobs = [(d, a) for d in datasets for a in archs]
    return {(d, a): bench_model(d, a, profile, seed=seed) for d, a in tqdm(jobs, desc="training", disable=not progress)}


def _check_names(data: str, datasets, archs) -> None:
    """Every dataset of the data source and every architecture named, before anything trains.

    ``DATA_SOURCES`` holds each source's default datasets (the experiment's three); any dataset of
    the same kind is accepted: every phantom for ``"phantom"``, every public dataset for ``"real"``.
    """
    from .data import PHANTOMS
    from .data.specs import PUBLIC_DATASETS
    from .models import ARCHS

    valid = list(PHANTOMS) if data == "phantom" else list(PUBLIC_DATASETS)
    for d in datasets:
        check_choice("datasets", d, valid)
    for a in archs or ():
        check_choice("archs", a, ARCHS)


#: Bump whenever a change alters the scores of a run with the same settings (the results cache key
#: includes it). 2: CAMs take the ReLU on the grid, and the random reference is upsampled like them.
SCORING_VERSION = 2


def _key(settings: dict) -> str:
    from . import __version__
    from .data.phantoms import GENERATOR_VERSION

    blob = json.dumps({**settings, "medxai_lite": __version__, "phantoms": GENERATOR_VERSION,
                       "scoring": SCORING_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _eval_batch(dataset: str, size: int, n: int, seed: int, need_lesion: bool):
    from .data import lesion_batch, load_dataset

    test = load_dataset(dataset, split="test", image_size=size, n=max(4 * n, 64), seed=seed)
    if need_lesion:  # localisation needs a non-empty mask
        return test, lesion_batch(test, n)
    if getattr(test, "masks", None) is not None:
        # masks known (the phantoms): every scored image carries a lesion, the same number of each
        # lesion class where possible, so that localisation is defined on all of them
        idx = _balanced(test, test.masks.reshape(len(test), -1).any(1))
        if len(idx) >= n:
            return test, test.batch(sorted(idx[:n]))
    # stratified: the same number of images of every class where possible
    idx = _balanced(test, np.ones(len(test), bool)) or list(range(len(test)))
    return test, test.batch(sorted(idx[:n]))


def _balanced(test, keep) -> list[int]:
    """Indices of all the ``keep`` items, interleaved class by class (one of each class in turn,
    the classes that run out dropping out), so that any prefix is as balanced as the items allow."""
    per = [list(np.flatnonzero((test.labels == c) & keep)) for c in range(len(test.classes))]
    return [int(i) for group in itertools.zip_longest(*[p for p in per if p]) for i in group if i is not None]


def run_benchmark(data: str = "phantom", profile: str = "cpu", *, datasets: Sequence[str] | None = None,
                  archs: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                  cam_arch: str = "resnet50", n_images: int | None = None, extended: bool | None = None,
                  extended_methods: Sequence[str] | None = None, seed: int = 0, out: str | os.PathLike | None = None,
                  force: bool = False, progress: bool = True) -> BenchmarkResult:
    """Run the benchmark (see the module docstring) and return its tables.

    ``data``: ``"phantom"`` (embedded) or ``"real"`` (the public datasets, fetched first with
    ``medxai data fetch``). ``datasets``, ``archs``, ``methods`` select subsets; ``cam_arch`` is
    the network the CAM methods explain (ResNet50 in the paper). ``extended``: run the extended
    grid (default: the profile's ``BENCH_BUDGETS[profile]["extended"]``, off on ``cpu``). ``out``:
    the folder to write (default: ``$MEDXAI_CACHE/bench/<key>``).
    """
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from .explain import explain, list_methods
    from .metrics import paired_tests, random_maps, score_table, wide_scores
    from .models import PAPER_ARCHS

    check_choice("data", data, DATA_SOURCES)
    check_choice("profile", profile, BENCH_BUDGETS)
    datasets = list(datasets or DATA_SOURCES[data])
    archs = list(archs or PAPER_ARCHS)
    _check_names(data, datasets, archs)
    methods = list(methods or PAPER_CAMS)
    for m in methods:
        check_choice("methods", m, list_methods())
    if cam_arch not in archs:
        raise ValueError(f"cam_arch {cam_arch!r} must be one of the benchmarked archs: {', '.join(archs)}")
    budget = BENCH_BUDGETS[profile]
    if extended is None:        # naming the grid's methods asks for the grid
        extended = bool(extended_methods) or budget.get("extended", True)
    n_images = int(budget["n_images"] if n_images is None else n_images)
    if n_images < 2:
        raise ValueError(f"n_images must be at least 2 for paired tests, got {n_images}")
    # the grid's methods as resolved now (by default those of EXTENDED_FAMILIES), so that the cache key
    # changes with them and a run cached before a family joined is not reused
    extended_methods = list(extended_methods or extended_grid_methods()) if extended else []
    for m in extended_methods:
        check_choice("extended_methods", m, list_methods())
    settings = dict(data=data, profile=profile, datasets=datasets, archs=archs, methods=methods, cam_arch=cam_arch,
                    n_images=n_images, extended=extended, extended_methods=extended_methods,
                    seed=seed, budget=budget)
    folder = Path(out) if out is not None else cache_dir("bench") / f"{data}-{profile}-{_key(settings)}"
    if folder.is_dir() and (folder / "meta.json").is_file() and not force:
        return load_results(folder)

    t_start = time.perf_counter()
    models = train_models(data, profile, datasets=datasets, archs=archs, extended=extended, seed=seed,
                          progress=progress)
    acc_rows, f1_rows = [], []
    for d, a in [(d, a) for d in datasets for a in archs]:
        rep = models[(d, a)].report
        acc_rows.append({"dataset": d, "arch": a, "accuracy": rep.test["accuracy"], "macro_f1": rep.test["macro_f1"],
                         "n_test": rep.test["n"], "n_train": rep.settings["n_train"],
                         "epochs": len(rep.history), "train_seconds": rep.seconds,
                         "source": f"this run ({data}, {profile} profile)"})
        f1_rows += [{"dataset": d, "arch": a, "class": c, "f1": f}
                    for c, f in zip(rep.classes, rep.test["per_class_f1"])]
    accuracy = pd.DataFrame(acc_rows + [dict(r, macro_f1=np.nan, n_test=np.nan, n_train=np.nan, epochs=np.nan,
                                             train_seconds=np.nan)
                                        for r in PUBLISHED_ACCURACY])

    phases = {"training": time.perf_counter() - t_start}
    # Table B: the CAM methods on cam_arch, per image, then ROAD and the confidence scores
    score_tables, time_rows = [], []
    steps = [(d, m) for d in datasets for m in [*methods, RANDOM_REFERENCE]]
    # ROAD and the confidence scores, localisation against the true lesion (NaN on images without
    # one), and, not a score, how much of the image the map keeps, which the "image x map" scores
    # depend on
    cam_metrics = {**{m: m for m in _CAM_METRICS}, **{m: (m, {"on_empty": "nan"}) for m in _CAM_LOCALISATION},
                   MAP_MEAN: _map_mean}
    bar = tqdm(steps, desc="explaining", disable=not progress)
    batches = {}
    for d, method in bar:
        model = models[(d, cam_arch)]
        if d not in batches:   # the images and their predicted classes, once per dataset
            test, batch = _eval_batch(d, model.report.settings["image_size"], n_images, seed, need_lesion=False)
            with torch.no_grad():   # the paper explains the predicted class
                preds = model(batch["image"].to(model_device(model))).argmax(1).cpu().numpy()
            batches[d] = test, batch, preds
        test, batch, preds = batches[d]
        x = batch["image"]
        if method == RANDOM_REFERENCE:
            maps = random_maps(x, "cam", model=model, arch=cam_arch, seed=seed)
        else:
            opts = budget["method_options"].get(method, {})
            maps, secs = [], []
            for i in range(len(x)):   # one image at a time: the per-image time the paper reports
                res = explain(method, model, x[i:i + 1], targets=preds[i:i + 1], arch=cam_arch, seed=seed, **opts)
                maps.append(res.maps)
                secs.append(res.seconds)
            maps = np.concatenate(maps)
            time_rows.append({"dataset": d, "method": method, "mean_s_per_image": float(np.mean(secs)),
                              "sd_s_per_image": float(np.std(secs, ddof=1)), "n_images": len(secs),
                              "device": str(device()), "arch": cam_arch})
        # quiet: a constant map's ROAD is NaN, counted in the summary's n_undefined
        score_tables.append(score_table(
            {method: maps}, cam_metrics, model=model, images=x, targets=preds,
            masks=batch["mask"].numpy() if "mask" in batch else None, dataset=d, model_name=cam_arch,
            image_ids=[int(i) for i in batch["index"]], quiet=True,
            columns={"class": [test.classes[int(c)] for c in batch["label"]],
                     "predicted": [test.classes[int(p)] for p in preds]}))
    scores = pd.concat(score_tables, ignore_index=True)[SCORE_CSV_COLUMNS]
    timing = pd.DataFrame(time_rows)
    overall = scores.groupby(["dataset", "method", "metric"])["value"].mean().unstack("metric").reset_index()
    overall["class"] = "all"
    per_class = scores.groupby(["dataset", "class", "method", "metric"])["value"].mean().unstack("metric").reset_index()
    cam_summary = pd.concat([overall, per_class], ignore_index=True)
    # how many per-image ROAD scores were undefined (a constant map) and left out of each mean
    undefined = scores[scores.metric == "road_combined"].assign(nan=lambda t: t["value"].isna())
    counts = pd.concat([undefined.groupby(["dataset", "method"])["nan"].sum().reset_index().assign(**{"class": "all"}),
                        undefined.groupby(["dataset", "class", "method"])["nan"].sum().reset_index()])
    cam_summary = cam_summary.merge(counts.rename(columns={"nan": "road_n_undefined"}),
                                    on=["dataset", "class", "method"], how="left")

    tests = []
    for d in datasets:
        for metric in ("road_combined", "confidence_change"):
            t = paired_tests(wide_scores(scores[scores.dataset == d], metric, methods), seed=seed)
            t.insert(0, "metric", metric)
            t.insert(0, "dataset", d)
            tests.append(t)
    ttests = pd.concat(tests, ignore_index=True)
    # does each CAM beat the random map? one-sided paired t-tests, Holm over the methods
    against = []
    for d in datasets:
        for metric in VS_RANDOM_METRICS:
            part = scores[(scores.dataset == d) & (scores.metric == metric)]
            if part.empty:
                continue
            t = paired_tests(wide_scores(part, metric, [*methods, RANDOM_REFERENCE]), seed=seed,
                             reference=RANDOM_REFERENCE, alternative="greater")
            t.insert(0, "metric", metric)
            t.insert(0, "dataset", d)
            against.append(t)
    vs_random = pd.concat(against, ignore_index=True) if against else pd.DataFrame()

    phases["explaining_and_scoring"] = time.perf_counter() - t_start - phases["training"]
    ext = pd.DataFrame()
    if extended:
        ext = _extended_grid(datasets, extended_methods, {d: models[(d, EXTENDED_ARCH)] for d in datasets},
                             budget, seed, progress)
    phases["extended_grid"] = time.perf_counter() - t_start - sum(phases.values())

    meta = {"settings": settings, "device": str(device()), "wall_seconds": time.perf_counter() - t_start,
            "phase_seconds": phases,
            "platform": platform.platform(), "python": platform.python_version(),
            "published_confidence": PUBLISHED_CONFIDENCE}
    tables = dict(accuracy=accuracy, per_class_f1=pd.DataFrame(f1_rows), scores=scores, cam_summary=cam_summary,
                  ttests=ttests, vs_random=vs_random, timing=timing, extended=ext)
    _write(folder, tables, meta)
    return load_results(folder)


def _map_mean(model, images, targets, maps, masks=None) -> np.ndarray:
    """The mean of each [0, 1] map: the share of the image that multiplying by the map keeps."""
    return maps.mean(axis=(1, 2))


def extended_grid_methods(families: Sequence[str] = EXTENDED_FAMILIES) -> list[str]:
    """The methods the extended grid runs by default: every method of the registry in ``families``
    (default :data:`EXTENDED_FAMILIES`) that returns a map and supports :data:`EXTENDED_ARCH`."""
    from .explain import METHODS

    return [m for m, info in METHODS.items()
            if info.supports(EXTENDED_ARCH) and info.output == "map" and info.family in families]


def _extended_grid(datasets, methods, models, budget, seed, progress):
    """Every visual method x every visual metric on ``models`` (one per dataset), against the true masks."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .explain import explain
    from .metrics import METRICS

    methods = list(methods or extended_grid_methods())
    rows = []
    jobs = [(d, m) for d in datasets for m in methods]
    cache = {}
    for d, method in tqdm(jobs, desc="extended grid", disable=not progress):
        if d not in cache:
            model = models[d]
            test, batch = _eval_batch(d, model.report.settings["image_size"], budget["extended_images"], seed,
                                      need_lesion=True)
            cache[d] = (model, batch)
        model, batch = cache[d]
        x, masks = batch["image"], batch.get("mask")
        res = explain(method, model, x, seed=seed, preset=budget.get("extended_preset"),
                      **budget["extended_options"].get(method, {}))
        for metric in _EXTENDED_METRICS:
            # undefined scores (e.g. a constant map) come back as NaN and are counted in n_images
            fn = METRICS[metric]
            if fn.needs_masks and (masks is None or not bool(masks.any())):
                continue
            opts = {"steps": budget["steps"]} if metric in ("deletion", "insertion", "aopc") else {}
            if fn.needs_masks:
                opts["on_empty"] = "nan"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                values = fn(model, x, res.targets, res.maps, masks=None if masks is None else masks.numpy(), **opts)
                mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            rows.append({"dataset": d, "method": method, "family": res.family, "metric": metric,
                         "category": fn.category, "higher_is_better": fn.higher_is_better,
                         "value": mean, "n_images": int(np.isfinite(values).sum()),
                         "seconds_per_image": res.seconds / len(x)})
    return pd.DataFrame(rows)


#: The columns of Table B, in order (those the run computed).
TABLE_B_METRICS = ("road_combined", "confidence_change", "confidence_increase", "pointing_game",
                   "relevance_mass_accuracy", MAP_MEAN)
#: How the benchmark's tables name each score for a reader: short labels that can wrap at their
#: spaces (``relevance_mass_accuracy`` cannot, and widens every column it heads).
SCORE_LABELS = {"road_combined": "ROAD combined", "confidence_change": "confidence change",
                "confidence_increase": "confidence increase", "pointing_game": "pointing game",
                "relevance_mass_accuracy": "RMA", MAP_MEAN: "map mean"}


def table_b(result: BenchmarkResult):
    """Table B: the mean of each score per method (rows) and per dataset, over all classes;
    columns ``(metric, dataset)`` in the order of :data:`TABLE_B_METRICS`."""
    overall = result.cam_summary[result.cam_summary["class"] == "all"]
    return overall.pivot(index="method", columns="dataset", values=[c for c in TABLE_B_METRICS if c in overall])


def gap_to_random(result: BenchmarkResult, metrics: Sequence[str] = ("road_combined", "confidence_change",
                                                                     "pointing_game")):
    """Each method's mean score minus the random reference's on the same dataset (Table B's
    ``random_map`` row), in each score's own units: positive is better than a random map of the
    same grain (every metric here is higher-is-better). Rows: methods; columns ``(metric, dataset)``."""
    overall = result.cam_summary[result.cam_summary["class"] == "all"]
    gap = overall.set_index(["dataset", "method"])[[c for c in metrics if c in overall]]
    gap = gap - gap.xs(RANDOM_REFERENCE, level="method")
    return gap.drop(RANDOM_REFERENCE, level="method").unstack("dataset")


def example_maps(model, dataset: str, methods: Sequence[str] = PAPER_CAMS, *, arch: str = "resnet50",
                 profile: str = "cpu", n: int = 2, seed: int = 0):
    """The maps behind Table B for a few images: the first ``n`` lesion-bearing test images of
    ``dataset`` explained by each method on ``model`` (the benchmark's network for that dataset),
    for the predicted class, with the profile's method options.

    Returns ``(test, batch, results)``, ``results`` a dict method -> Explanation, ready for
    :func:`medxai_lite.viz.method_grid`.
    """
    from .explain import explain
    from .selection import lesion_images

    check_choice("profile", profile, BENCH_BUDGETS)
    options = BENCH_BUDGETS[profile]["method_options"]
    test, batch = lesion_images(dataset, model, n, seed=seed)
    results = {m: explain(m, model, batch["image"], arch=arch, seed=seed, **options.get(m, {})) for m in methods}
    return test, batch, results


def extended_ranks(extended):
    """The extended grid as percentile ranks: per metric, each method's percentile rank among the
    methods (mean over the datasets first), oriented so that higher is better: the best method
    gets 1 and the worst ``1/n`` whichever way the metric points (the largest value ranks 1 where
    higher is better, the smallest where lower is better). Rows sorted by the mean rank, best first.

    Returns ``(ranks, means)``: two DataFrames, methods x metrics, in the same order.
    """
    import pandas as pd

    mean = extended.groupby(["method", "metric"])["value"].mean().unstack("metric")
    better = extended.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    up = np.asarray(better.reindex(mean.columns).values, dtype=bool)
    ranked = pd.concat({metric: mean[metric].rank(pct=True, ascending=bool(higher))
                        for metric, higher in zip(mean.columns, up)}, axis=1)
    order = ranked.mean(axis=1).sort_values(ascending=False).index
    return ranked.loc[order], mean.loc[order]


def reproduction_summary(result: BenchmarkResult, alpha: float = 0.05):
    """What reproduced and what did not: one row per published finding or precondition.

    Columns ``finding, published, this run, verdict``; every value is read from ``result``
    (nothing here is typed in by hand except the published figures of :data:`PUBLISHED_ACCURACY`
    and :data:`PUBLISHED_CONFIDENCE`). Verdicts: ``reproduced``, ``not reproduced``, ``not
    comparable`` (phantom data cannot test a number measured on real data), ``ordering only``
    and ``not run``; for the precondition that the CAMs beat a random map (on at least two
    datasets, every method): ``holds`` or ``does not hold``.
    """
    import pandas as pd

    rows = []
    data = result.meta["settings"]["data"]
    acc = result.accuracy
    ours = acc[(acc.arch == "resnet50") & acc.dataset.str.contains("skin|isic", regex=True)
               & acc.source.str.startswith("this run")]
    pub = PUBLISHED_ACCURACY[0]
    if ours.empty:
        rows.append(("ResNet50 accuracy on skin images", f"{pub['accuracy']:.2%}", "-", "not run"))
    else:
        a = float(ours.accuracy.iloc[0])
        verdict = "not comparable" if data == "phantom" else (
            "reproduced" if abs(a - pub["accuracy"]) <= 0.03 else "not reproduced")
        rows.append(("ResNet50 accuracy on skin images", f"{pub['accuracy']:.2%} (real, pretrained, 224 px)",
                     f"{a:.2%} ({data})", verdict))
    summary = result.cam_summary
    glioma = summary[(summary["class"] == "glioma")] if "class" in summary else summary.iloc[:0]
    published = {r["method"]: r["confidence increase"] for r in PUBLISHED_CONFIDENCE}
    if glioma.empty or "confidence_increase" not in glioma:
        rows.append(("glioma confidence increase, XGrad-CAM > Grad-CAM++ > Layer-CAM",
                     ", ".join(f"{m} {v:.2f}" for m, v in published.items()), "-", "not run"))
    else:
        mine = {m: float(glioma.loc[glioma.method == m, "confidence_increase"].mean()) for m in published}
        order_pub = sorted(published, key=published.get, reverse=True)
        ordered = all(mine[a] > mine[b] for a, b in zip(order_pub, order_pub[1:]))   # strictly, ties do not count
        close = all(abs(mine[m] - published[m]) <= 0.05 for m in published)
        if not set(published) <= set(glioma.method):         # a published method was left out of the run
            verdict = "not run"
        elif data == "phantom":                               # a real-data figure: phantoms can only rehearse it
            verdict = "not comparable"
        else:
            verdict = "reproduced" if ordered and close else ("ordering only" if ordered else "not reproduced")
        change = ({m: float(glioma.loc[glioma.method == m, "confidence_change"].mean()) for m in published}
                  if "confidence_change" in glioma else {})
        rows.append(("glioma confidence increase, XGrad-CAM > Grad-CAM++ > Layer-CAM",
                     ", ".join(f"{m} {v:.2f}" for m, v in published.items()),
                     "share of glioma images whose confidence rises: "
                     + ", ".join(f"{m} {mine[m]:.2f}" + (f" (mean change {change[m]:+.2f})" if m in change else "")
                                 if m in set(glioma.method) else f"{m} not run" for m in published),
                     verdict))
    vs = result.vs_random
    methods = result.meta["settings"]["methods"]
    for metric in VS_RANDOM_METRICS:
        part = vs[vs.metric == metric] if not vs.empty else vs
        if part.empty:
            rows.append((f"every CAM beats a random map ({metric})", "precondition (not tested in the paper)", "-",
                         "not run"))
            continue
        wins = part[part.p_holm <= alpha].groupby("dataset").method_a.nunique()
        full = [d for d in part.dataset.unique() if wins.get(d, 0) == len(methods)]     # in the run's order
        n_data = part.dataset.nunique()
        need = min(2, n_data)
        short = [d.replace("phantom-", "") for d in full]
        # where not every CAM won, how many did: "4 of 5" and "0 of 5" are different failures
        rest = [f"{d.replace('phantom-', '')} ({wins.get(d, 0)} of {len(methods)} there)"
                for d in part.dataset.unique() if d not in full]
        rows.append((f"every CAM beats a random map on at least {need} of {n_data} datasets ({metric}, one-sided "
                     f"paired t, Holm {alpha})",
                     "precondition (not tested in the paper)",
                     f"all {len(methods)} CAMs on {len(full)} of {n_data} datasets"
                     + (f" ({', '.join(short)})" if full else "")
                     + (f"; not on {', '.join(rest)}" if rest else ""),
                     "holds" if len(full) >= need else "does not hold"))
    return pd.DataFrame(rows, columns=["finding", "published", "this run", "verdict"])


def _write(folder: Path, tables: dict, meta: dict) -> None:
    """Write every table into a temporary sibling folder, then rename it into place."""
    with atomic_dir(folder) as tmp:
        for name, table in tables.items():
            table.to_csv(tmp / f"{name}.csv", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def load_results(folder: str | os.PathLike) -> BenchmarkResult:
    """Read the tables a finished run wrote."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"no finished benchmark in {folder} (meta.json missing); run `medxai bench` first")

    def read(name):
        p = folder / f"{name}.csv"
        try:
            return pd.read_csv(p)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()

    return BenchmarkResult(**{n: read(n) for n in ("accuracy", "per_class_f1", "scores", "cam_summary", "ttests",
                                                    "vs_random", "timing", "extended")},
                           meta=json.loads((folder / "meta.json").read_text()), folder=folder)


"""Can the book's default models' explanations be right, and what do they cost to train?

Trains (or, with ``--cached``, loads) the ``cpu`` profile's default model of each phantom and
prints, per phantom: training seconds, test accuracy, Grad-CAM's strict and tolerant pointing
game on the first 32 test images with a lesion (true class, default layer), the ceiling of the
strict pointing game for the CAM grid if it were upsampled bilinearly (the package's maps are
bicubic and can pass it: ``medxai_lite.explain.cam.UPSAMPLE_MODE``), the share of the map's peak plateau (pixels within 5 % of
the maximum) in the lesion, which is what the strict pointing game scores on average when the
peak is a near-tie, relevance mass accuracy and its ratio to a random map.
The targets: accuracy >= 0.90, pointing game >= 0.8, RMA >= 2x random, the three models
trained in at most three times the 64 px ResNet18s' 135 s.

    python benchmarks/bench_default_models.py            # retrains into a temporary cache
    python benchmarks/bench_default_models.py --cached   # uses $MEDXAI_CACHE
    python benchmarks/bench_default_models.py --precision fp32   # float32 training steps, for the ratio
    python benchmarks/bench_default_models.py --arch resnet18   # the dilated ResNet18 the book used before
    python benchmarks/bench_default_models.py --epochs 5 --n-train 512   # a smaller training budget
    python benchmarks/bench_default_models.py --output-stride 8   # ResNet14 with a dilated layer3: 14 x 14
    python benchmarks/bench_default_models.py --output-stride 8 --image-size 96   # 12 x 12, cheaper
    python benchmarks/bench_default_models.py --seeds 0 1 2   # the spread over training seeds
    python benchmarks/bench_default_models.py --cached --per-class 96   # where the misses are, per class

The pointing game of a single trained network is one draw: networks of equal accuracy trained
from other seeds can point quite differently (a lesion that always sits in the same place, as a
pituitary tumour does, can be read by any cell whose receptive field covers it). ``--seeds``
prints a row per seed and the mean and range of each figure.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def per_class(mx, model, name, size, arch, stride, n):
    """Strict pointing game, ceiling and the peak's mean offset from the lesion centroid, per class.

    A class whose lesion always sits in the same place (a pituitary tumour in the sella) sits at the
    same place relative to the cells too: its peak offset can repeat from image to image, and the
    class's score then swings as a block."""
    import numpy as np

    from medxai_lite.data import lesion_batch
    from medxai_lite.metrics import pointing_ceiling, pointing_game
    from medxai_lite.models import grid_origin

    test = mx.load_dataset(name, "test", image_size=size, n=model.report.settings["n_test"])
    batch = lesion_batch(test, n)
    x, y, masks = batch["image"], batch["label"].numpy(), batch["mask"].numpy()
    maps = mx.explain("gradcam", model, x, targets=batch["label"]).maps
    hits = pointing_game(None, x, None, maps, masks)
    ceiling = pointing_ceiling(masks, stride, grid_origin(arch, stride))
    peaks = np.array(np.unravel_index(maps.reshape(len(maps), -1).argmax(1), maps.shape[1:])).T
    centroids = np.array([np.argwhere(m).mean(0) for m in masks])
    out = []
    for c in np.unique(y):
        on = y == c
        dy, dx = (peaks[on] - centroids[on]).mean(0)
        out.append(f"{test.classes[c]} (n={on.sum()}): PG {hits[on].mean():.2f}, ceiling {ceiling[on].mean():.2f}, "
                   f"peak offset ({dy:+.1f}, {dx:+.1f}) px")
    return f"first {len(y)} lesion images: " + "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="load from $MEDXAI_CACHE instead of retraining")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                        help="training arithmetic (default: the profile's, 'auto')")
    parser.add_argument("--output-stride", type=int, choices=(8, 16, 32), default=None,
                        help="the network's output stride (default: the profile's)")
    parser.add_argument("--arch", default=None, help="the architecture (default: the book's, DEFAULT_ARCH)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: the profile's)")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels (default: the profile's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0, the book's)")
    parser.add_argument("--datasets", nargs="+", default=["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"])
    parser.add_argument("--per-class", type=int, default=0, metavar="N",
                        help="also print the strict pointing game per class on the first N lesion images, with the "
                             "peak's mean offset from the lesion's centroid (pixels, down and right positive)")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("precision", args.precision), ("output_stride", args.output_stride),
                                   ("epochs", args.epochs), ("n_train", args.n_train),
                                   ("image_size", args.image_size)) if v is not None}
    if not args.cached:
        os.environ["MEDXAI_CACHE"] = tempfile.mkdtemp(prefix="medxai-bench-")

    import numpy as np

    import medxai_lite as mx
    from medxai_lite.data import lesion_batch
    from medxai_lite.metrics import peak_plateau, pointing_ceiling, pointing_game, relevance_mass_accuracy
    from medxai_lite.models import grid_origin

    total = 0.0
    print(f"{'phantom':20s} {'seed':>4s} {'train s':>8s} {'acc':>6s} {'PG':>6s} {'PG tol':>7s} {'ceiling':>8s} {'plateau':>8s} {'RMA':>6s} "
          f"{'random':>7s} {'ratio':>6s}")
    rows = []
    for name, seed in ((n, s) for n in args.datasets for s in args.seeds):
        start = time.perf_counter()
        model = mx.get_trained_model(name, *([args.arch] if args.arch else []), seed=seed, progress=False,
                                     **overrides)
        arch = model.report.arch
        wall = time.perf_counter() - start
        total += model.report.seconds
        size = model.report.settings["image_size"]
        test = mx.load_dataset(name, "test", image_size=size, n=model.report.settings["n_test"])
        batch = lesion_batch(test, 32)
        x, y, masks = batch["image"], batch["label"], batch["mask"].numpy()
        maps = mx.explain("gradcam", model, x, targets=y).maps
        stride = size / mx.cam_grid(model, arch, size)[0]
        rnd = np.random.default_rng(0).random(maps.shape).astype(np.float32)
        rma = np.nanmean(relevance_mass_accuracy(None, x, y, maps, masks))
        rma_r = np.nanmean(relevance_mass_accuracy(None, x, y, rnd, masks))
        pg = np.nanmean(pointing_game(None, x, y, maps, masks))
        rows.append((name, model.report.test["accuracy"], pg, rma / rma_r))
        print(f"{name:20s} {seed:4d} {model.report.seconds:8.1f} {model.report.test['accuracy']:6.3f} {pg:6.3f} "
              f"{np.nanmean(pointing_game(None, x, y, maps, masks, tolerance=15 * size / 224)):7.3f} "
              f"{pointing_ceiling(masks, stride, grid_origin(arch, stride)).mean():8.3f} "
              f"{peak_plateau(maps, masks).share_in_lesion.mean():8.3f} "
              f"{rma:6.3f} {rma_r:7.3f} {rma / rma_r:6.2f}   (wall {wall:.0f} s)")
        if args.per_class:
            print("      " + per_class(mx, model, name, size, arch, stride, args.per_class))
    if len(args.seeds) > 1:
        print(f"over seeds {args.seeds}: mean [min, max]")
        for name in args.datasets:
            got = np.array([r[1:] for r in rows if r[0] == name])
            print(f"  {name:20s} " + "  ".join(f"{label} {col.mean():.3f} [{col.min():.3f}, {col.max():.3f}]"
                                              for label, col in zip(("acc", "PG", "RMA ratio"), got.T)))
    print(f"{arch}, training precision: {model.report.settings['precision']}")
    print(f"training, {len(rows)} models: {total:.0f} s (target for the three <= 405 s, three times 135 s)")


if __name__ == "__main__":
    main()

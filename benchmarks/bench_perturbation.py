"""Cost and localisation of the perturbation family at its two presets, on the book's default model.

For each perturbation-based method (``list_methods("Perturbation-based")``) at its ``"quick"`` and
``"book"`` presets, prints the seconds per image and the pointing game (Zhang et al. 2018: the
map's maximum inside the true lesion mask, strict; ``scored``: images whose map is not constant,
e.g. Anchors' empty anchor, the others are left out of the mean) of the cached default model,
``get_trained_model("phantom-brain-mri", "resnet18", "cpu")``, on the first ``--n`` lesion images
of the 112-px test split, explaining the true class (as the chapters do). One call per method and
preset explains all images (the adapters loop or batch inside); the seconds are that call's
``Explanation.seconds`` divided by the number of images.

Run:  MEDXAI_CACHE=... python benchmarks/bench_perturbation.py [--n 8] [--methods rise,sidu] [--threads 2]
The model must be in the cache (it is trained, for minutes, otherwise).
"""
from __future__ import annotations

import argparse
import os
import platform
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medxai_lite as mx  # noqa: E402
from medxai_lite.explain import METHODS, explain, list_methods  # noqa: E402
from medxai_lite.metrics import pointing_game  # noqa: E402


def lesion_batch(n: int, size: int = 112):
    """The first ``n`` test images with a non-empty lesion mask: images, labels, masks."""
    data = mx.load_dataset("phantom-brain-mri", split="test", image_size=size)
    items = [data[i] for i in range(len(data)) if data[i]["mask"].any()][:n]
    if len(items) < n:
        raise SystemExit(f"only {len(items)} lesion images in the test split")
    return (torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items]),
            np.stack([it["mask"].numpy().astype(bool) for it in items]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="lesion images")
    parser.add_argument("--methods", default="", help="comma-separated subset (default: the whole family)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m] or list_methods("Perturbation-based")

    model = mx.get_trained_model("phantom-brain-mri", "resnet18", "cpu", progress=False)
    images, labels, masks = lesion_batch(args.n)
    print(f"# phantom-brain-mri, resnet18 (cpu profile), {len(images)} lesion images at 112 px, targets = true "
          f"class; torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"{'method':22s} {'preset':6s} {'s/image':>8s} {'pointing':>8s} {'scored':>6s}  options")
    for method in methods:
        for preset in ("quick", "book"):
            result = explain(method, model, images, targets=labels, preset=preset)
            with warnings.catch_warnings():   # constant maps: counted in "scored" instead
                warnings.simplefilter("ignore")
                hits = pointing_game(model, images, labels, result.maps, masks, on_constant="nan")
            scored = int(np.isfinite(hits).sum())
            mean = float(np.nanmean(hits)) if scored else float("nan")
            knobs = ", ".join(f"{k}={v}" for k, v in METHODS[method].presets[preset].items())
            print(f"{method:22s} {preset:6s} {result.seconds / len(images):8.2f} {mean:8.3f} "
                  f"{scored:3d}/{len(images):<2d}  {knobs}", flush=True)


if __name__ == "__main__":
    main()

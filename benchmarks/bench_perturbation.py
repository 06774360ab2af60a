"""Cost and localisation of the perturbation family at its two presets, on the book's default model.

Two parts, on the cached default model ``get_trained_model("phantom-brain-mri")`` (the ResNet14 of the ``cpu`` profile)
at the book's image size (the ``cpu`` profile's, 96 px):

1. **RISE against the bare model** (budget: <= 1.2x). RISE with M masks is M forward passes of
   masked copies plus the masks themselves; the ratio of ``explain("rise", n_masks=M)`` on one
   image to ``ceil(M / batch_size)`` forward passes of the same model on batches of the same size
   (``torch.no_grad``) says what the masks, the blending and the weighted sum cost on top. M = 256
   (the ``"quick"`` preset) and 2000 (``"book"``); medians over interleaved repeats, so that
   machine noise hits both alike.
2. **Every method at each preset**: seconds per image and the pointing game (Zhang et al. 2018:
   the map's maximum inside the true lesion mask, strict; ``scored``: images whose map is not
   constant, e.g. Anchors' empty anchor, the others are left out of the mean) on the first ``--n``
   lesion images of the profile-size test split, explaining the true class (as the chapters do). One call
   per method and preset explains all images (the adapters loop or batch inside); the seconds are
   that call's ``Explanation.seconds`` divided by the number of images. A method over the budget
   of 20 s per image at the ``"book"`` preset is flagged ``OVER``.

Figures only, no assertions: the machine is often shared, so rerun a ratio that looks noisy.

Run:  MEDXAI_CACHE=... python benchmarks/bench_perturbation.py [--n 8] [--methods rise,sidu] [--threads 2]
      [--presets quick,book] [--rise-masks 256,2000] [--repeats 3] [--skip-rise] [--skip-methods]
The model must be in the cache (it is trained, for minutes, otherwise).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medxai_lite as mx  # noqa: E402
from medxai_lite.explain import METHODS, explain, list_methods  # noqa: E402
from medxai_lite.metrics import pointing_game  # noqa: E402
from bench_explain import interleaved_medians  # noqa: E402  (this folder is on sys.path when a script runs)


def lesion_batch(n: int, size: int | None = None):
    """The first ``n`` test images with a non-empty lesion mask: images, labels, masks."""
    size = size or mx.PROFILES["cpu"]["image_size"]
    data = mx.load_dataset("phantom-brain-mri", split="test", image_size=size)
    items = [data[i] for i in range(len(data)) if data[i]["mask"].any()][:n]
    if len(items) < n:
        raise SystemExit(f"only {len(items)} lesion images in the test split")
    return (torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items]),
            np.stack([it["mask"].numpy().astype(bool) for it in items]))


#: Seconds per image that no method may exceed at its "book" preset, at the book's image size on a CPU.
BOOK_BUDGET_S = 20.0
#: RISE / the same number of bare forward passes.
RISE_BUDGET = 1.2


def bench_rise(model, image: torch.Tensor, target: int, masks=(256, 2000), repeats: int = 3) -> None:
    """RISE with M masks on one image against ceil(M / batch_size) bare forward passes of that batch size."""
    from medxai_lite.explain.perturbation import rise_masks

    batch_size = 64                         # RISE's default: masked copies per forward pass
    with torch.no_grad():                   # what the model sees: masked copies of the image
        torch.manual_seed(0)
        batch = rise_masks(batch_size, 7, 0.5, image.shape[-2:])[:, None] * image

    print(f"\n# RISE vs M bare forward passes (batch {batch_size}, 1 image, torch.no_grad); "
          f"median of {repeats} interleaved repeats; budget <= {RISE_BUDGET}x")
    print(f"{'M':>6s} {'RISE s':>8s} {'forward s':>9s} {'ratio':>6s}")
    for m in masks:
        def forward(m=m):
            with torch.no_grad():
                for start in range(0, m, batch_size):
                    model(batch[:min(batch_size, m - start)])

        def rise(m=m):
            explain("rise", model, image[None], targets=target, n_masks=m, batch_size=batch_size)

        med = interleaved_medians({"rise": rise, "forward": forward}, repeats)
        ratio = med["rise"] / med["forward"]
        print(f"{m:6d} {med['rise']:8.2f} {med['forward']:9.2f} {ratio:6.3f}"
              f"{'  OVER' if ratio > RISE_BUDGET else ''}  ({math.ceil(m / batch_size)} passes)", flush=True)


def bench_methods(model, images, labels, masks, methods, presets) -> None:
    print(f"\n# every method, {len(images)} lesion images; budget at the book preset: "
          f"<= {BOOK_BUDGET_S:.0f} s per image")
    print(f"{'method':22s} {'preset':6s} {'s/image':>8s} {'pointing':>8s} {'scored':>6s}  options")
    over = []
    for method in methods:
        for preset in presets:
            result = explain(method, model, images, targets=labels, preset=preset)
            with warnings.catch_warnings():   # constant maps: counted in "scored" instead
                warnings.simplefilter("ignore")
                hits = pointing_game(model, images, labels, result.maps, masks, on_constant="nan")
            scored = int(np.isfinite(hits).sum())
            mean = float(np.nanmean(hits)) if scored else float("nan")
            per_image = result.seconds / len(images)
            flag = preset == "book" and per_image > BOOK_BUDGET_S
            if flag:
                over.append(method)
            knobs = ", ".join(f"{k}={v}" for k, v in METHODS[method].presets[preset].items())
            print(f"{method:22s} {preset:6s} {per_image:8.2f} {mean:8.3f} "
                  f"{scored:3d}/{len(images):<2d}  {knobs}{'  OVER' if flag else ''}", flush=True)
    if "book" in presets:
        print(f"over {BOOK_BUDGET_S:.0f} s per image at the book preset: {', '.join(over) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="lesion images")
    parser.add_argument("--methods", default="", help="comma-separated subset (default: the whole family)")
    parser.add_argument("--presets", default="quick,book", help="comma-separated presets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rise-masks", default="256,2000", help="numbers of RISE masks to time")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the RISE timing")
    parser.add_argument("--skip-rise", action="store_true", help="leave out the RISE ratio")
    parser.add_argument("--skip-methods", action="store_true", help="leave out the per-method table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m] or list_methods("Perturbation-based")

    model = mx.get_trained_model("phantom-brain-mri", progress=False)
    images, labels, masks = lesion_batch(args.n)
    print(f"# phantom-brain-mri, {model.report.arch} (cpu profile), {len(images)} lesion images at {images.shape[-1]} px, "
          f"targets = true class; torch {torch.__version__}, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if not args.skip_rise:
        bench_rise(model, images[0], int(labels[0]), [int(m) for m in args.rise_masks.split(",")], args.repeats)
    if not args.skip_methods:
        bench_methods(model, images, labels, masks, methods, [p for p in args.presets.split(",") if p])


if __name__ == "__main__":
    main()

"""Batched fidelity metrics against a per-image loop (target: batched at least 5x faster).

Deletion, insertion and AOPC (Petsiuk et al. 2018; Samek et al. 2017) computed twice on the same
inputs: by :mod:`medxai_lite.metrics` (all steps of all images in chunks of ``--batch-size``
perturbed images per forward pass) and by a plain loop that perturbs and scores one image at
one step at a time (as Petsiuk et al.'s reference code does). The numbers must agree to 1e-5
before any time is printed.

The speed-up is that of batched forward passes, so it depends on the model and the hardware: on
a CPU a model whose batch-of-one pass is already compute-bound (``--arch small_cnn`` at 64 px,
full-resolution first blocks) gains almost nothing, ResNet18 gains about 5x at 64 px and about
9x at 32 px; on a GPU the gain is far larger.

    python benchmarks/bench_metrics.py [--arch resnet18] [--size 64] [--n 16] [--steps 16]
                                       [--batch-size 64] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

# With several threads on a loaded machine, OpenMP's default spin-waiting can slow a batch-of-one
# forward pass a hundredfold; passive waiting keeps the loop's timing honest.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medxai_lite.metrics import aopc, deletion, insertion  # noqa: E402
from medxai_lite.metrics import fidelity  # noqa: E402
from medxai_lite.metrics.fidelity import make_baseline, perturbation_curves, step_counts  # noqa: E402
from medxai_lite.models.zoo import get_model  # noqa: E402


def loop_curves(model, images, targets, maps, mode: str, baseline: str, steps: int) -> np.ndarray:
    """The reference: one image, one step, one forward pass at a time."""
    n, c, h, w = images.shape
    bases = make_baseline(images, baseline)
    counts = step_counts(h * w, steps, 1.0)
    curves = np.empty((n, steps + 1))
    with torch.inference_mode():
        for i in range(n):
            order = torch.from_numpy(np.argsort(-maps[i].ravel(), kind="stable"))
            image, base = images[i].reshape(c, -1), bases[i].reshape(c, -1)
            for k, count in enumerate(counts):
                idx = order[:count]
                if mode == "deletion":
                    x = image.clone()
                    x[:, idx] = base[:, idx]
                else:
                    x = base.clone()
                    x[:, idx] = image[:, idx]
                prob = torch.softmax(model(x.reshape(1, c, h, w)), dim=1)[0, targets[i]]
                curves[i, k] = float(prob)
    return curves


def setup(args):
    torch.manual_seed(0)
    model = get_model(args.arch, num_classes=4)
    model.train()
    with torch.no_grad():                     # BatchNorm statistics from data, or outputs ignore the input
        model(torch.randn(32, 3, args.size, args.size))
    model.eval()
    images = torch.randn(args.n, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    x = images.clone().requires_grad_(True)
    out = model(x)
    targets = out.argmax(1).detach()
    (grad,) = torch.autograd.grad(out.gather(1, targets[:, None]).sum(), x)
    maps = grad.abs().amax(1).numpy().astype(np.float64)          # plain gradient saliency
    return model, images, targets, maps


def interleaved(batched, looped, repeats: int):
    """Best-of-``repeats`` times of both, run alternately so that load from other processes hits both alike."""
    t_batched = t_loop = float("inf")
    a = b = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = batched()
        t1 = time.perf_counter()
        b = looped()
        t2 = time.perf_counter()
        t_batched, t_loop = min(t_batched, t1 - t0), min(t_loop, t2 - t1)
    return t_batched, t_loop, a, b


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the cores here are shared, and one thread gives steady figures)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, images, targets, maps = setup(args)
    print(f"{args.arch}, {args.n} images at {args.size} px, {args.steps} steps ({args.n * (args.steps + 1)} forward "
          f"images per metric), batch {args.batch_size}, {torch.get_num_threads()} thread(s), CPU "
          f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}")

    cases = {
        "deletion": (lambda: deletion(model, images, targets, maps, steps=args.steps, baseline="zero",
                                      batch_size=args.batch_size),
                     lambda: fidelity.trapezoid(loop_curves(model, images, targets, maps, "deletion", "zero", args.steps),
                                          step_counts(maps[0].size, args.steps, 1.0) / maps[0].size, axis=1)),
        "insertion": (lambda: insertion(model, images, targets, maps, steps=args.steps, baseline="blur",
                                        batch_size=args.batch_size),
                      lambda: fidelity.trapezoid(loop_curves(model, images, targets, maps, "insertion", "blur", args.steps),
                                           step_counts(maps[0].size, args.steps, 1.0) / maps[0].size, axis=1)),
        "aopc": (lambda: aopc(model, images, targets, maps, steps=args.steps, baseline="zero",
                              batch_size=args.batch_size),
                 lambda: np.mean((c := loop_curves(model, images, targets, maps, "deletion", "zero", args.steps))[:, :1]
                                 - c, axis=1)),
    }
    # the curves themselves must match too, not only their summaries
    batched_curves = perturbation_curves(model, images, targets, maps, steps=args.steps, batch_size=args.batch_size)
    looped_curves = loop_curves(model, images, targets, maps, "deletion", "zero", args.steps)
    np.testing.assert_allclose(batched_curves.curves, looped_curves, rtol=0, atol=1e-5)

    ratios = []
    print(f"{'metric':10s} {'batched s':>10s} {'loop s':>10s} {'speed-up':>9s} {'max |diff|':>11s}")
    for name, (batched, looped) in cases.items():
        t_batched, t_loop, a, b = interleaved(batched, looped, args.repeats)
        diff = float(np.max(np.abs(a - b)))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=f"{name}: batched and loop disagree")
        ratios.append(t_loop / t_batched)
        print(f"{name:10s} {t_batched:10.3f} {t_loop:10.3f} {t_loop / t_batched:8.1f}x {diff:11.1e}")
    verdict = "meets" if min(ratios) >= 5 else "MISSES"
    print(f"smallest speed-up {min(ratios):.1f}x: {verdict} the 5x target")


if __name__ == "__main__":
    main()

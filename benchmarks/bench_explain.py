"""Speed of ``medxai_lite.explain`` against its backing library and against the bare model.

Prints (medians over interleaved repeats, so that machine noise hits every contender alike):

1. ``explain("gradcam")`` / pytorch-grad-cam ``GradCAM`` called directly on the same batch
   (budget: <= 1.05x);
2. ``explain("gradcam")`` / one forward + backward pass of the same batch, i.e.
   ``model(x)[range(N), targets].sum().backward()`` with the parameters requiring gradients as
   in training (budget: <= 1.5x);
3. Score-CAM and Ablation-CAM seconds per image against ``batch_size``, the number of masked
   or ablated copies per forward pass: both batch their one-pass-per-channel work.

Run:  python benchmarks/bench_explain.py [--arch resnet50 --size 128 --batch 8 --repeats 7]
Random weights with BatchNorm statistics re-estimated on random images; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def settled_model(arch: str, size: int, num_classes: int = 4) -> nn.Module:
    """A seeded zoo model whose BatchNorm statistics were re-estimated on random images, in eval mode."""
    from medxai_lite.models.zoo import get_model

    torch.manual_seed(0)
    model = get_model(arch, num_classes)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(16, 3, size, size))
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def interleaved_medians(contenders: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of each zero-argument callable, running them in turn ``repeats`` times."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_gradcam(arch: str, size: int, batch: int, repeats: int) -> None:
    from pytorch_grad_cam import GradCAM

    from medxai_lite.explain import explain
    from medxai_lite.models.zoo import target_layer

    model = settled_model(arch, size)
    layer = target_layer(model, arch)
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        targets = model(images).argmax(1)

    def ours():
        explain("gradcam", model, images)

    def library():
        with GradCAM(model=model, target_layers=[layer]) as cam:
            cam(input_tensor=images, targets=None)
        model.zero_grad(set_to_none=True)

    def forward_backward():
        model(images)[torch.arange(batch), targets].sum().backward()
        model.zero_grad(set_to_none=True)

    med = interleaved_medians({"explain": ours, "library": library, "fwd+bwd": forward_backward}, repeats)
    print(f"Grad-CAM on {arch}, batch {batch} x 3 x {size} x {size}, torch threads {torch.get_num_threads()}, "
          f"median of {repeats}:")
    print(f"  explain('gradcam')              {med['explain'] * 1e3:8.1f} ms")
    print(f"  pytorch-grad-cam GradCAM direct {med['library'] * 1e3:8.1f} ms")
    print(f"  one forward + backward pass     {med['fwd+bwd'] * 1e3:8.1f} ms")
    print(f"  ratio explain / library     = {med['explain'] / med['library']:.3f}   (budget <= 1.05)")
    print(f"  ratio explain / fwd+bwd     = {med['explain'] / med['fwd+bwd']:.3f}   (budget <= 1.5)")


def bench_batching(arch: str, size: int, repeats: int, batch_sizes=(1, 8, 32, 128)) -> None:
    from medxai_lite.explain import explain

    model = settled_model(arch, size)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    print(f"\nOne-pass-per-channel CAMs on {arch}, 1 image of {size} px "
          f"(median of {repeats}, seconds per image):")
    print(f"  {'batch_size':>10} {'Score-CAM':>10} {'Ablation-CAM':>13}")
    first = {}
    for bs in batch_sizes:
        med = interleaved_medians({
            "scorecam": lambda: explain("scorecam", model, images, batch_size=bs),
            "ablationcam": lambda: explain("ablationcam", model, images, batch_size=bs),
        }, repeats, warmup=0)
        first = first or med
        print(f"  {bs:>10} {med['scorecam']:>10.3f} {med['ablationcam']:>13.3f}")
    print(f"  speed-up from batch_size 1 to {batch_sizes[-1]}: Score-CAM {first['scorecam'] / med['scorecam']:.1f}x, "
          f"Ablation-CAM {first['ablationcam'] / med['ablationcam']:.1f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sweep-arch", default="resnet18")
    parser.add_argument("--sweep-size", type=int, default=64)
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true", help="skip the Score-CAM / Ablation-CAM batch sweep")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_gradcam(args.arch, args.size, args.batch, args.repeats)
    if not args.no_sweep:
        bench_batching(args.sweep_arch, args.sweep_size, args.sweep_repeats)


if __name__ == "__main__":
    main()

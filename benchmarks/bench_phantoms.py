"""Phantom generation speed: images per second at 128 px on one core (target: at least 300).

    python benchmarks/bench_phantoms.py [--size 128] [--n 512] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core, as the budget says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from medxai_lite.data.phantoms import PHANTOMS, generate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    generate("phantom-skin", 8, size=args.size)  # warm up imports and FFT plans
    print(f"phantom generation, {args.n} images at {args.size} px, one thread, best of {args.repeats}")
    for name in PHANTOMS:
        best = min(_time(name, args) for _ in range(args.repeats))
        rate = args.n / best
        print(f"  {name:20s} {rate:7.0f} images/s  ({rate / 300:.1f}x the 300 images/s target)")


def _time(name, args) -> float:
    t0 = time.perf_counter()
    generate(name, args.n, size=args.size, seed=1)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

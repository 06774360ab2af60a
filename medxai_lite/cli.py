"""The ``medxai`` command line.

    medxai info                          datasets, architectures, profiles
    medxai train --dataset D --arch A    train (or load from the cache) and print test metrics
    medxai bench [--data phantom|real] [--profile cpu|paper] [--methods ...] [--archs ...] [--datasets ...]
                                         the Chaddad et al. benchmark; writes CSV/JSON tables
    medxai data list|fetch|verify|prepare NAME   the public datasets
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _info(args) -> int:
    from . import ARCHS, PROFILES, __version__, cache_dir, list_datasets

    print(f"medxai_lite {__version__}")
    print("datasets:      " + ", ".join(list_datasets()))
    print("architectures: " + ", ".join(ARCHS))
    print("profiles:      " + ", ".join(f"{k} ({v['image_size']} px)" for k, v in PROFILES.items()))
    print(f"cache:         {cache_dir(create=False)}")
    return 0


def _train(args) -> int:
    from . import get_trained_model

    model = get_trained_model(args.dataset, args.arch, args.profile, seed=args.seed, retrain=args.retrain,
                              progress=not args.quiet)
    rep = model.report
    if args.json:
        print(json.dumps({"summary": rep.summary(), "test": rep.test, "cache_key": rep.cache_key}, indent=1))
    else:
        print(rep.summary())
        print("per-class F1: " + ", ".join(f"{c} {f:.3f}" for c, f in zip(rep.classes, rep.test["per_class_f1"])))
    return 0


def _bench(args) -> int:
    from .bench import run_benchmark

    res = run_benchmark(args.data, args.profile, datasets=args.datasets, archs=args.archs, methods=args.methods,
                        cam_arch=args.cam_arch, n_images=args.n_images, extended=not args.no_extended,
                        seed=args.seed, out=args.out, force=args.force, progress=not args.quiet)
    print(f"tables written to {res.folder}")
    acc = res.accuracy.dropna(subset=["macro_f1"])
    print(acc[["dataset", "arch", "accuracy", "macro_f1"]].to_string(index=False, float_format="%.3f"))
    summary = res.cam_summary[res.cam_summary["class"] == "all"]
    print(summary.drop(columns="class").to_string(index=False, float_format="%.3f"))
    from .bench import reproduction_summary

    print(reproduction_summary(res).to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.public import register_cli

    p = argparse.ArgumentParser(prog="medxai", description="MedXAI book helper: data, models, explanations.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="list datasets, architectures and profiles")
    s.set_defaults(func=_info)
    s = sub.add_parser("train", help="train a model (or load it from the cache) and print its test metrics")
    s.add_argument("--dataset", default="phantom-brain-mri")
    s.add_argument("--arch", default="resnet18")
    s.add_argument("--profile", default="cpu")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--retrain", action="store_true", help="ignore the cache and train again")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(func=_train)
    s = sub.add_parser("bench", help="run the Chaddad et al. benchmark and write its tables (CSV + JSON)")
    s.add_argument("--data", default="phantom", help="phantom (default) or real (fetch the datasets first)")
    s.add_argument("--profile", default="cpu", help="cpu (default) or paper (224 px, pretrained, a GPU)")
    s.add_argument("--datasets", nargs="+", default=None, help="subset of the data source's datasets")
    s.add_argument("--archs", nargs="+", default=None, help="subset of resnet50 densenet121 vgg16 efficientnet_b0")
    s.add_argument("--methods", nargs="+", default=None, help="CAM methods (default: the paper's five)")
    s.add_argument("--cam-arch", dest="cam_arch", default="resnet50", help="the network the methods explain")
    s.add_argument("--n-images", dest="n_images", type=int, default=None, help="images scored per dataset")
    s.add_argument("--no-extended", dest="no_extended", action="store_true", help="skip the extended grid")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="output folder (default: under the cache)")
    s.add_argument("--force", action="store_true", help="recompute even if this run is cached")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_bench)
    register_cli(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, PermissionError, FileNotFoundError) as exc:
        print(f"medxai: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

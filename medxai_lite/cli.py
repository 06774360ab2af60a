"""The ``medxai`` command line.

    medxai info                          datasets, architectures, profiles
    medxai train --dataset D --arch A    train (or load from the cache) and print test metrics
    medxai bench [--data phantom|real] [--profile cpu|paper] [--methods ...] [--archs ...] [--datasets ...]
                                         the Chaddad et al. benchmark; writes CSV/JSON tables
    medxai data list|fetch|verify|prepare NAME   the public datasets

:func:`main` is the ``medxai`` console script. :func:`register_cli` adds the ``data``
commands to a parser (``medxai`` uses it), and :func:`main_for` is the entry point of each
``data_scripts/<name>.py`` (fetch one dataset, or ``--verify`` / ``--prepare-only``). A known
failure (no network, a checksum mismatch, missing Kaggle credentials, ...) ends as exit code
1 or 2 and a one-line message, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .data.download import ArchiveError, ChecksumError, DownloadError, KaggleCredentialsError
from .data.fetch import (
    DATA_ENV,
    MIRROR_ENV,
    data_root,
    download_state,
    fetch,
    prepare_public,
    verify_public,
)
from .data.specs import PUBLIC_DATASETS, get_spec
from .models.zoo import DEFAULT_ARCH

__all__ = ["main", "build_parser", "register_cli", "main_for"]


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


# --------------------------------------------------------------------------- medxai data

_KNOWN_ERRORS = (FileNotFoundError, ValueError, DownloadError, ChecksumError, ArchiveError,
                 KaggleCredentialsError, OSError, ImportError)


def _cmd_list(args) -> int:
    root = data_root(args.root)
    print(f"data root: {root}")
    for spec in PUBLIC_DATASETS.values():
        state = "prepared" if (root / spec.name / "manifest.json").is_file() else {
            "none": "-", "partial": "download incomplete", "downloaded": "downloaded"}[download_state(spec.name, root)]
        print(f"\n{spec.name}  [{state}]\n  {spec.title}; {spec.modality}; {len(spec.classes)} classes "
              f"({', '.join(spec.classes)}); masks: {'yes' if spec.has_masks else 'no'}; "
              f"about {spec.approx_size_bytes / (1 << 30):.1f} GiB\n  licence: {spec.licence}\n"
              f"  sources: {', '.join(spec.source_labels)} ({spec.homepage})\n  cite: {spec.citation}")
    return 0


def _cmd_fetch(args) -> int:
    report = fetch(args.name, args.root, source=args.source, mirror=args.mirror, max_size=args.max_size,
                   force=args.force, progress=not args.quiet)
    root = data_root(args.root)
    if report is None:
        print(f"{args.name} is already prepared in {root / args.name} (use --force to rebuild)")
    else:
        print(report.summary())
        print(f"written to {root / args.name}")
    return 0


def _cmd_prepare(args) -> int:
    report = prepare_public(args.name, args.root, max_size=args.max_size, progress=not args.quiet)
    print(report.summary())
    return 0


def _cmd_verify(args) -> int:
    result = verify_public(args.name, args.root)
    for line in result["checked"]:
        print(f"ok: {line}")
    for line in result["problems"]:
        print(f"problem: {line}", file=sys.stderr)
    return 0 if result["ok"] else 1


def _guard(func):
    def run(args) -> int:
        try:
            return func(args)
        except _KNOWN_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None,
                   help=f"data folder (default: ${DATA_ENV}, else ./DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_fetch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="auto",
                   help="auto (default), or a source label: github, kaggle, figshare, dataverse, mendeley")
    p.add_argument("--mirror", default=None,
                   help=f"base URL serving <mirror>/<name>/<file> (default: ${MIRROR_ENV})")
    p.add_argument("--max-size", type=int, default=512, dest="max_size",
                   help="longer image side after preparation in pixels; 0 keeps the original (default 512)")
    p.add_argument("--force", action="store_true", help="prepare again even if already prepared")


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``data list | fetch NAME | verify NAME | prepare NAME`` to a ``medxai`` CLI.

    Each leaf sets ``func`` (``args -> int`` exit code). Returns the ``data`` parser.
    """
    data = subparsers.add_parser("data", help="download, verify and prepare the public datasets",
                                 description="Public datasets: " + ", ".join(PUBLIC_DATASETS))
    sub = data.add_subparsers(dest="data_command", metavar="{list,fetch,verify,prepare}")
    sub.required = True
    names = list(PUBLIC_DATASETS)
    p = sub.add_parser("list", help="list the datasets, their licences and what is on disk")
    _add_common(p)
    p.set_defaults(func=_guard(_cmd_list))
    p = sub.add_parser("fetch", help="download, verify, extract and prepare a dataset")
    p.add_argument("name", choices=names)
    _add_common(p)
    _add_fetch_args(p)
    p.set_defaults(func=_guard(_cmd_fetch))
    p = sub.add_parser("verify", help="check downloads against recorded checksums and the prepared folder")
    p.add_argument("name", choices=names)
    _add_common(p)
    p.set_defaults(func=_guard(_cmd_verify))
    p = sub.add_parser("prepare", help="(re)build the prepared folder from the downloaded files")
    p.add_argument("name", choices=names)
    _add_common(p)
    p.add_argument("--max-size", type=int, default=512, dest="max_size",
                   help="longer image side in pixels; 0 keeps the original (default 512)")
    p.set_defaults(func=_guard(_cmd_prepare))
    return data


def main_for(name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``data_scripts/<name>.py``: fetch (default), ``--verify`` or ``--prepare-only``."""
    spec = get_spec(name)
    parser = argparse.ArgumentParser(description=f"Fetch and prepare {spec.title} ({spec.licence}).")
    _add_common(parser)
    _add_fetch_args(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help="only verify what is on disk")
    mode.add_argument("--prepare-only", action="store_true", help="only (re)prepare the downloaded files")
    args = parser.parse_args(argv)
    args.name = name
    if args.verify:
        return _guard(_cmd_verify)(args)
    if args.prepare_only:
        return _guard(_cmd_prepare)(args)
    return _guard(_cmd_fetch)(args)


# --------------------------------------------------------------------------- parser, entry point

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medxai", description="MedXAI book helper: data, models, explanations.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="list datasets, architectures and profiles")
    s.set_defaults(func=_info)
    s = sub.add_parser("train", help="train a model (or load it from the cache) and print its test metrics")
    s.add_argument("--dataset", default="phantom-brain-mri")
    s.add_argument("--arch", default=DEFAULT_ARCH)
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

"""Wall time of every book notebook, each in a fresh process, without a Jupyter kernel.

The book build measures its notebooks on the machine that builds it (each notebook's last cell
glues its own time). This script measures them anywhere plain Python runs, e.g. a bare GPU machine
that has no Jupyter installed, and writes what it measured to a JSON file. It is how the GPU
times on the course page were recorded (``medxai_lite/data/notebook_times.json``, read by
:func:`medxai_lite.book.recorded_times`).

Each notebook runs from its jupytext twin (``notebooks/NAME.py``), cell by cell, in a new Python
process with ``notebooks/`` as its working directory, as the book build runs it. What a kernel
adds is emulated so that it is paid for: every open matplotlib figure is rendered to PNG at the
end of its cell (what the inline backend does) and closed; a cell's last expression and every
``display()`` are rendered to HTML or text; a plotly ``fig.show()`` is serialised to JSON.
Widgets are not built (``MEDXAI_STATIC_WIDGETS=1``, as in the build).

The JSON holds, per notebook: ``seconds`` (the whole notebook), ``train_seconds`` (the part spent
training models the cache lacked, from :func:`medxai_lite.models.train.training_seconds`),
``run_seconds`` (the rest: what a reader with a warm cache waits), ``cells`` (the slowest cells,
by first line) and ``error`` (the traceback's last lines when a cell failed, else null); and the
machine: processor count, GPU name, torch version, and the git commit.

Run:  python benchmarks/bench_notebooks.py --out times.json [--only cam gradient]
                                           [--timeout 600] [--deadline 3000] [--jobs 1 --threads 0]
                                           [--fake-cuda]
``--jobs N`` runs N notebooks side by side (the heaviest first, as ``medxai_lite.book.execute_book``
does), each with ``--threads`` CPU threads; ``--fake-cuda`` runs them under the pretend GPU of
``tests/fakecuda.py``, which makes a tensor left on the wrong device fail on a CPU-only machine.
Set ``MEDXAI_CACHE`` to an empty folder to measure a first run (training included).
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def code_cells(path: Path) -> list:
    """The code cells of a jupytext percent-format script, as ``(first line number, source)``."""
    cells, current, start, is_code = [], [], 1, False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("# %%"):
            if is_code and "".join(current).strip():
                cells.append((start, "\n".join(current)))
            current, start = [], number + 1
            is_code = "[markdown]" not in line
            continue
        current.append(line)
    if is_code and "".join(current).strip():
        cells.append((start, "\n".join(current)))
    return cells


def _render(value) -> None:
    """Pay what a notebook front end pays to show ``value``: its richest representation."""
    if value is None:
        return
    for attr in ("_repr_mimebundle_", "_repr_html_", "_repr_png_"):
        method = getattr(value, attr, None)
        if callable(method):
            try:
                method()
                return
            except Exception:   # a representation may need a live kernel: fall back to text
                break
    repr(value)


def _flush_figures() -> None:
    """The inline backend's end of cell: render each open figure to PNG, then close them all."""
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        plt.figure(number).savefig(io.BytesIO(), format="png", bbox_inches="tight")
    plt.close("all")


def _install_kernel_emulation() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = lambda *args, **kwargs: _flush_figures()
    try:
        import IPython.display
        import IPython.core.display_functions as display_functions

        def display(*objs, **kwargs):
            for obj in objs:
                _render(obj)

        IPython.display.display = display
        display_functions.display = display
    except ImportError:
        pass
    try:
        import plotly.basedatatypes

        plotly.basedatatypes.BaseFigure.show = lambda self, *args, **kwargs: self.to_json()
    except ImportError:
        pass


def run_one(path: Path, fake_gpu: bool = False) -> dict:
    """Run one notebook's cells in this process; return its timings (and error, if a cell failed).
    ``fake_gpu``: run it under ``tests/fakecuda.py``, which makes device mix-ups fail on a CPU."""
    if fake_gpu:
        sys.path.insert(0, str(ROOT / "tests"))
        from fakecuda import fake_cuda

        with fake_cuda():
            return run_one(path)
    os.environ.setdefault("MEDXAI_STATIC_WIDGETS", "1")
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))
    _install_kernel_emulation()
    from medxai_lite.models.train import training_seconds

    namespace = {"__name__": "__main__"}
    cells, error = [], None
    train0, start = training_seconds(), time.perf_counter()
    for line, source in code_cells(path):
        t0 = time.perf_counter()
        try:
            tree = ast.parse(source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, f"{path.name}:{line}", "exec"), namespace)
            if last is not None:
                _render(eval(compile(ast.Expression(last.value), f"{path.name}:{line}", "eval"), namespace))
            _flush_figures()
        except BaseException:   # noqa: BLE001 - record any failure, KeyboardInterrupt included
            error = "".join(traceback.format_exc().splitlines(True)[-40:])
            cells.append({"line": line, "seconds": time.perf_counter() - t0, "first": source.strip()[:60]})
            break
        cells.append({"line": line, "seconds": time.perf_counter() - t0, "first": source.strip()[:60]})
    seconds, train = time.perf_counter() - start, training_seconds() - train0
    cells.sort(key=lambda c: -c["seconds"])
    return {"seconds": seconds, "train_seconds": train, "run_seconds": seconds - train,
            "cells": cells[:5], "error": error}


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "gpu": None,
            "date": time.strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


def _write(out: Path, result: dict) -> None:
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write (rewritten after each notebook)")
    parser.add_argument("--only", nargs="*", help="notebook names (default: all, in alphabetical order)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one notebook may take")
    parser.add_argument("--deadline", type=float, default=float("inf"),
                        help="seconds after which no further notebook is started")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run side by side (each one's JSON entry then counts the sharing)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per notebook (OMP_NUM_THREADS...; default: the libraries' own)")
    parser.add_argument("--fake-cuda", action="store_true",
                        help="pretend a GPU is present (tests/fakecuda.py): device mix-ups fail as on CUDA")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # the child process's entry
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one.resolve(), args.fake_cuda)), flush=True)
        return
    if args.out is None:
        parser.error("--out is required: the JSON file to write the times to")
    if args.jobs < 1 or args.threads < 0:
        parser.error(f"--jobs must be >= 1 and --threads >= 0; got {args.jobs} and {args.threads}")
    names = args.only or sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    missing = [n for n in names if not (NOTEBOOKS / f"{n}.py").is_file()]
    if missing:
        parser.error(f"--only: no notebook named {missing}; expected names from {NOTEBOOKS}")
    result = {"machine": machine(), "fake_cuda": args.fake_cuda, "jobs": args.jobs, "threads": args.threads,
              "cache": os.environ.get("MEDXAI_CACHE"), "notebooks": {}}
    env = dict(os.environ, MEDXAI_STATIC_WIDGETS="1", MEDXAI_BUILD_JOBS=str(args.jobs))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(args.threads)
    began = time.perf_counter()
    lock = threading.Lock()

    def one(name: str) -> None:
        if time.perf_counter() - began > args.deadline:
            entry = {"error": "not started: --deadline reached"}
        else:
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one",
                                       str(NOTEBOOKS / f"{name}.py")] + ["--fake-cuda"] * args.fake_cuda, env=env,
                                      capture_output=True, text=True, timeout=args.timeout)
                lines = proc.stdout.strip().splitlines()
                entry = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
                    "error": f"exit status {proc.returncode}: {proc.stderr[-2000:]}"}
            except subprocess.TimeoutExpired:
                entry = {"error": f"timed out after {args.timeout:.0f} s"}
            entry["process_seconds"] = time.perf_counter() - t0
        with lock:
            result["notebooks"][name] = entry
            _write(args.out, result)
            status = "ok" if not entry.get("error") else "FAILED"
            print(f"{name:16s} {entry.get('process_seconds', float('nan')):7.1f} s  training "
                  f"{entry.get('train_seconds', float('nan')):6.1f} s  {status}", flush=True)
            if entry.get("error"):
                print(entry["error"], flush=True)

    if args.jobs == 1:
        for name in names:
            one(name)
    else:                    # the notebooks that train the shared models first, as the book's parallel build
        from medxai_lite.book import HEAVY_FIRST

        names = [n for n in HEAVY_FIRST if n in names] + [n for n in names if n not in HEAVY_FIRST]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, names))
    result["seconds"] = time.perf_counter() - began
    _write(args.out, result)


if __name__ == "__main__":
    main()

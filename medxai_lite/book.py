"""Small helpers the book's notebooks share: gluing numbers into the prose, and timing a chapter.

``glue(name, value)`` is myst-nb's :func:`myst_nb.glue` when the book is being built; elsewhere
(Colab, a plain Jupyter kernel without myst-nb) it prints ``name = value``, so a reader still
sees every number the prose would show.

``chapter_timer()`` starts a stopwatch in a notebook's first code cell; ``timer.glue()`` in the
last cell glues the notebook's wall time in minutes under ``time_cpu_min``, the part of it spent
training models the cache lacked under ``time_train_min``, the rest (what a reader with a warm
model cache waits) under ``time_run_min``, and a sentence saying all that under ``time_cpu_note``.
Each chapter's opening reads them (``{glue:text}`../notebooks/NAME.ipynb::time_cpu_note```) and
the course page collects them, so the times a reader sees come from the last build.

Example
-------
>>> timer = chapter_timer()
>>> round(timer.minutes(), 3) >= 0
True
"""
from __future__ import annotations

import os
import time

__all__ = ["glue", "chapter_timer", "ChapterTimer", "TIME_KEY", "time_note", "duration", "live_widgets", "STATIC_ENV",
           "execute_book", "toc_notebooks", "JOBS_ENV", "HEAVY_FIRST", "recorded_gpu_times", "GPU_TIMES"]

#: Set to "1" in a non-interactive run (the book build, the notebook tests): widgets are not built.
STATIC_ENV = "MEDXAI_STATIC_WIDGETS"

#: The glue key under which every notebook records its wall time in minutes.
TIME_KEY = "time_cpu_min"


def live_widgets() -> bool:
    """Whether to build live ipywidgets: False when ``$MEDXAI_STATIC_WIDGETS`` is "1".

    The book build sets it (``book/_ext/medxai_build.py``) and so does the test suite: nobody can
    move a slider in a static page, and an ``ipywidgets.Output`` that captures figures can stall
    a headless notebook client waiting for a reply (jupyter/nbclient issue 312). Each notebook
    draws a static figure of the default selection beside its widgets in any case.
    """
    return os.environ.get(STATIC_ENV, "") != "1"


def glue(name: str, value, display: bool = True):
    """myst-nb's ``glue`` in a book build; ``print(f"{name} = {value}")`` where myst-nb is absent."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        print(f"{name} = {value}")
        return None
    return _glue(name, value, display=display)


def time_note(total_min: float, train_min: float, shared: int = 1) -> str:
    """The sentence a chapter's opening shows, e.g. ``"3.2 minutes (1.1 minutes of it training models
    the cache lacked; 2.1 minutes with a warm cache)"`` or ``"48 seconds (every model came from the
    cache)"``. ``shared`` > 1 adds that the notebook ran beside others, one core each (the book's
    parallel build, :func:`execute_book`), so alone it runs faster."""
    if train_min < 0.05:
        text = f"{duration(total_min)} (every model came from the cache"
    else:
        text = (f"{duration(total_min)} ({duration(train_min)} of it training models the cache lacked; "
                f"{duration(total_min - train_min)} with a warm cache")
    if shared > 1:
        text += f"; the build ran {shared} notebooks side by side, one core each, so alone it runs faster"
    return text + ")"


def duration(minutes: float) -> str:
    """``"3.2 minutes"``, or ``"8 seconds"`` under a minute (where one decimal of a minute says
    little); ``"1 second"`` in the singular."""
    if minutes >= 1:
        return f"{minutes:.1f} minutes"
    seconds = round(minutes * 60)
    return "1 second" if seconds == 1 else f"{seconds:.0f} seconds"


class ChapterTimer:
    """Wall-clock stopwatch started at construction (use :func:`chapter_timer`); it also notes how
    much of the time went into training models (:func:`medxai_lite.models.train.training_seconds`)."""

    def __init__(self) -> None:
        from .models.train import training_seconds

        self.start = time.perf_counter()
        self.train_start = training_seconds()

    def minutes(self) -> float:
        """Minutes since the timer started."""
        return (time.perf_counter() - self.start) / 60.0

    def training_minutes(self) -> float:
        """Minutes of that spent training models in :func:`medxai_lite.get_trained_model`."""
        from .models.train import training_seconds

        return (training_seconds() - self.train_start) / 60.0

    def glue(self, key: str = TIME_KEY) -> None:
        """Glue the minutes so far (``key``), the training part (``time_train_min``), the rest
        (``time_run_min``) and the sentence (``time_cpu_note``), all without display, and print the
        sentence with the device. Returns nothing, so a notebook's last cell shows only that
        sentence (:meth:`minutes` gives the number)."""
        from ._utils import device

        total, train = self.minutes(), self.training_minutes()
        try:
            shared = max(1, int(os.environ.get(JOBS_ENV, "1")))
        except ValueError:
            shared = 1
        glue(key, total, display=False)
        glue("time_train_min", train, display=False)
        glue("time_run_min", total - train, display=False)
        glue("time_cpu_note", time_note(total, train, shared), display=False)
        print(f"This notebook ran in {time_note(total, train, shared)} on {device().type.upper()}.")


def chapter_timer() -> ChapterTimer:
    """Start the stopwatch of a chapter's notebook (call it in the first code cell after the imports)."""
    return ChapterTimer()


# ----------------------------------------------------------------------------- times on a GPU
#: The notebooks' times measured on a GPU machine by ``benchmarks/bench_notebooks.py`` (its JSON,
#: as written). The build machine has no GPU, so these are a record of one run, not of the build.
GPU_TIMES = "gpu_times.json"


def recorded_gpu_times(path=None):
    """The recorded GPU run of the notebooks as a pandas DataFrame, one row per notebook, with
    ``total_min``, ``train_min`` (training models the cache lacked), ``run_min`` (the rest: a warm
    cache), ``ok``, ``error`` (the last line of a failure, else "") and ``jobs`` (notebooks that ran
    side by side with this one). ``attrs`` holds the run's
    ``machine`` (GPU, CPU count, torch, date, commit), ``jobs`` (notebooks side by side) and
    ``threads`` (CPU threads each). ``path``: another JSON of ``bench_notebooks.py``; default
    the one shipped with the package (:data:`GPU_TIMES`).

    Raises ``FileNotFoundError`` naming the file when it is missing and ``ValueError`` when it is
    not such a record.
    """
    import json
    from pathlib import Path

    import pandas as pd

    path = Path(path) if path is not None else Path(__file__).parent / "data" / GPU_TIMES
    if not path.is_file():
        raise FileNotFoundError(f"no recorded notebook times at {path} (write one with benchmarks/bench_notebooks.py)")
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not isinstance(record.get("notebooks"), dict) or "machine" not in record:
        raise ValueError(f"{path} is not a record of benchmarks/bench_notebooks.py (no 'machine' and 'notebooks')")
    rows = {}
    for name, entry in record["notebooks"].items():
        error = entry.get("error") or ""
        total = entry.get("seconds")
        train = entry.get("train_seconds")
        rows[name] = {"total_min": total / 60 if total is not None and not error else float("nan"),
                      "train_min": train / 60 if train is not None and not error else float("nan"),
                      "run_min": (total - train) / 60 if total is not None and train is not None and not error
                      else float("nan"),
                      "ok": not error, "error": error.strip().splitlines()[-1] if error.strip() else "",
                      "jobs": int(entry.get("jobs", record.get("jobs", 1)))}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "notebook"
    frame.attrs.update(machine=record["machine"], jobs=int(record.get("jobs", 1)),
                       threads=int(record.get("threads") or 0), fake_cuda=bool(record.get("fake_cuda", False)))
    return frame.sort_index()


# ----------------------------------------------------------------------------- executing the book
#: Environment variable the parallel executor sets: how many notebooks ran side by side.
JOBS_ENV = "MEDXAI_BUILD_JOBS"

#: Notebooks started first by :func:`execute_book` (the longest ones, which also train the models
#: the others read: the default networks, the ViTs, the benchmark's networks, the shortcut model).
HEAVY_FIRST = ("attention", "benchmark", "text", "challenges", "evaluation", "perturbation")


def toc_notebooks(root: str | os.PathLike = ".") -> list:
    """The notebooks ``_toc.yml`` lists (``notebooks/NAME``), as paths to their ``.ipynb`` files."""
    from pathlib import Path

    import yaml

    root = Path(root)

    def files(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                yield node["file"]
            for value in node.values():
                yield from files(value)
        elif isinstance(node, list):
            for item in node:
                yield from files(item)

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [root / f"{f}.ipynb" for f in files(toc) if f.startswith("notebooks/")]


def _execute_one(path: str, cache_path: str, timeout: int) -> tuple:
    """Execute one notebook as myst-nb's cache mode does and store it in the jupyter-cache at
    ``cache_path``; ``(path, seconds, error text or None)``. A notebook already cached is skipped."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    cache = get_cache(cache_path)
    nb = nbformat.read(path, as_version=4)
    try:
        if cache.match_cache_notebook(nb) is not None:
            return path, 0.0, None
    except KeyError:
        pass
    result = single_nb_execution(nb, cwd=os.path.dirname(os.path.abspath(path)), allow_errors=False,
                                 timeout=timeout, meta_override=True)
    if result.err is not None:
        return path, result.time, result.exc_string or repr(result.err)
    for attempt in range(5):                       # two workers can meet at the SQLite file
        try:
            cache.cache_notebook_bundle(CacheBundleIn(nb, os.path.abspath(path),
                                                      data={"execution_seconds": result.time}),
                                        check_validity=False, overwrite=True)
            break
        except Exception:  # noqa: BLE001 - "database is locked": wait and retry
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
    return path, result.time, None


def execute_book(root: str | os.PathLike = ".", jobs: int = 2, *, cache_path: str | None = None,
                 timeout: int = 1800, first: tuple = HEAVY_FIRST) -> dict:
    """Execute the book's notebooks ``jobs`` at a time into the jupyter-cache that ``jupyter-book
    build`` reads (``_build/.jupyter_cache``), so the build itself only renders.

    Each kernel gets ``cpu_count // jobs`` threads (``OMP_NUM_THREADS``), so kernels do not spin
    against each other. Measured on the two-core build machine with ``jobs=2`` (one thread each),
    the attention and benchmark notebooks took 1054 s and 900 s side by side against 450 s and
    403 s one after the other with two threads: slower, so ``make book`` builds serially; the
    function is for machines with more cores. The notebooks in ``first`` start first; models two notebooks need at once are trained once
    (:func:`medxai_lite._utils.cache_lock`). A notebook whose code is already cached is skipped,
    as in the build. ``timeout`` is per cell, longer than the build's 1200 s: on one core a
    cell that trains several networks (the attention chapter's trains six) runs up to twice as
    long as on two. Returns ``{notebook: (seconds, error or None)}``; raises ``RuntimeError``
    listing the notebooks that failed.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from pathlib import Path

    from ._utils import check_positive_int

    check_positive_int("jobs", jobs)
    root = Path(root).resolve()
    cache_path = cache_path or str(root / "_build" / ".jupyter_cache")
    notebooks = toc_notebooks(root)
    missing = [str(p) for p in notebooks if not p.exists()]
    if missing:
        raise FileNotFoundError(f"_toc.yml lists notebooks that do not exist: {missing}")
    from jupyter_cache import get_cache

    get_cache(cache_path).list_cache_records()     # create the folder and database here, not in two workers at once
    rank = {name: i for i, name in enumerate(first)}
    order = sorted(notebooks, key=lambda p: rank.get(p.stem, len(rank)))
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    os.environ.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, JOBS_ENV: str(jobs), STATIC_ENV: "1"})
    results, failed = {}, []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_execute_one, str(p), cache_path, timeout) for p in order]
        for future in as_completed(futures):
            path, seconds, error = future.result()
            name = Path(path).stem
            results[name] = (seconds, error)
            state = "cached" if seconds == 0 and error is None else ("FAILED" if error else f"{seconds:.0f} s")
            print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {name}: {state}", flush=True)
            if error:
                failed.append(name)
                print(error[-3000:], flush=True)
    if failed:
        raise RuntimeError(f"notebooks failed: {', '.join(failed)} (tracebacks above)")
    return results


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medxai_lite.book",
                                     description="Execute the book's notebooks in parallel into the build's cache.")
    parser.add_argument("command", choices=["execute"])
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2; use it on many cores)")
    parser.add_argument("--root", default=".", help="the book's root folder (default: here)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = parser.parse_args(argv)
    try:
        execute_book(args.root, args.jobs, timeout=args.timeout)
    except (ValueError, FileNotFoundError) as err:      # bad arguments: say which, no traceback
        print(f"error: {err}")
        return 2
    except RuntimeError as err:
        print(err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

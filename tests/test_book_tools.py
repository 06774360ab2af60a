"""medxai_lite.book: the glue fallback and the chapter timer that feeds every chapter's time line."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import medxai_lite as mx
from medxai_lite import book
from medxai_lite.models import train as train_mod

TINY = dict(image_size=32, n_train=48, n_val=24, n_test=24, epochs=1, batch_size=16)


def test_glue_prints_where_myst_nb_is_absent(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "myst_nb", None)          # import myst_nb -> ImportError
    book.glue("answer", 42, display=False)
    assert capsys.readouterr().out == "answer = 42\n"


def test_time_note_known_answers():
    assert book.time_note(0.84, 0.0) == "50 seconds (every model came from the cache)"
    assert book.time_note(1 / 60, 0.0) == "1 second (every model came from the cache)"
    assert book.duration(0.0247) == "1 second" and book.duration(0.4) == "24 seconds" and book.duration(2.04) == "2.0 minutes"
    assert book.time_note(3.21, 0.0) == "3.2 minutes (every model came from the cache)"
    assert book.time_note(3.21, 1.1) == ("3.2 minutes (1.1 minutes of it training models the cache lacked; "
                                         "2.1 minutes with a warm cache)")
    assert book.time_note(1.5, 0.75) == ("1.5 minutes (45 seconds of it training models the cache lacked; "
                                         "45 seconds with a warm cache)")


def test_the_timer_separates_training_from_the_rest(tmp_cache, monkeypatch):
    """Training in get_trained_model advances the process's training clock by the report's seconds;
    a cache hit does not; the timer's training minutes are exactly that advance."""
    timer = book.chapter_timer()
    before = train_mod.training_seconds()
    model = mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)
    trained = train_mod.training_seconds() - before
    assert trained == pytest.approx(model.report.seconds) and trained > 0
    mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)   # from the cache
    assert train_mod.training_seconds() - before == pytest.approx(trained)
    assert timer.training_minutes() == pytest.approx(trained / 60)
    assert timer.minutes() >= timer.training_minutes()
    glued = {}
    monkeypatch.setattr(book, "glue", lambda name, value, display=True: glued.__setitem__(name, value))
    assert timer.glue() is None              # a notebook's last cell shows the printed sentence, not a number
    total = glued["time_cpu_min"]
    assert timer.minutes() >= total > 0 and glued["time_train_min"] == pytest.approx(trained / 60)
    assert glued["time_run_min"] == pytest.approx(total - trained / 60)
    assert glued["time_cpu_note"] == book.time_note(total, trained / 60)


def test_no_live_widgets_in_a_headless_run(monkeypatch):
    """The book build and the tests set MEDXAI_STATIC_WIDGETS=1: the explorer then builds no widget
    (it does not even touch the model) and says where it runs instead."""
    from IPython.display import Markdown

    from medxai_lite.viz import explore

    monkeypatch.setenv(book.STATIC_ENV, "1")
    assert not book.live_widgets()
    note = explore(None, None, methods=["gradcam"])
    assert isinstance(note, Markdown) and "Jupyter or Colab" in note.data
    monkeypatch.setenv(book.STATIC_ENV, "0")
    assert book.live_widgets()
    monkeypatch.delenv(book.STATIC_ENV)
    assert book.live_widgets()


def test_the_book_build_switches_widgets_off(monkeypatch):
    """book/_ext/medxai_build.py, loaded by _config.yml, sets the variable for the build's kernels."""
    import importlib.util

    import yaml

    from conftest import ROOT

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["local_extensions"] == {"medxai_build": "book/_ext"}
    spec = importlib.util.spec_from_file_location("medxai_build", ROOT / "book/_ext/medxai_build.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    monkeypatch.delenv(book.STATIC_ENV, raising=False)

    class App:                       # what setup() registers with Sphinx
        connected = []

        def connect(self, event, handler):
            self.connected.append(event)

    ext.setup(App())
    assert not book.live_widgets()
    assert App.connected == ["env-before-read-docs"]


def test_the_build_reads_and_executes_the_pages_in_the_order_of_the_toc():
    """Sphinx would read the pages in sorted order, so the attention notebook would train the models
    that getting_started and the CAM chapter use first; the extension sorts them as _toc.yml does."""
    import importlib.util

    import yaml

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("medxai_build", ROOT / "book/_ext/medxai_build.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    order = ext.toc_order(toc)
    assert order[:4] == ["book/intro", "book/taxonomy", "notebooks/taxonomy", "notebooks/getting_started"]
    assert len(order) == len(set(order)) and order[-1] == "book/glossary"
    names = sorted(order) + ["zz/outside"]
    ext.read_in_toc_order(names, toc)
    assert names == order + ["zz/outside"]
    assert names.index("notebooks/getting_started") < names.index("notebooks/cam") < names.index("notebooks/attention")


def test_time_note_says_when_the_build_shared_the_machine():
    assert book.time_note(3.21, 0.0, shared=2) == ("3.2 minutes (every model came from the cache; the build ran 2 "
                                                   "notebooks side by side, one core each, so alone it runs faster)")
    assert book.time_note(3.21, 0.0, shared=1) == book.time_note(3.21, 0.0)


_LOCK_HOLDER = """
import sys, time
from medxai_lite._utils import cache_lock
with cache_lock(sys.argv[1]):
    open(sys.argv[2], "a").write("A-start\\n")
    time.sleep(1.0)
    open(sys.argv[2], "a").write("A-end\\n")
"""


def test_a_cache_lock_makes_a_second_process_wait(tmp_path):
    import subprocess
    import sys
    import time

    from medxai_lite._utils import cache_lock

    log = tmp_path / "log.txt"
    proc = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(tmp_path / "entry.pt"), str(log)])
    try:
        for _ in range(300):                       # wait until the other process holds the lock
            if log.exists() and "A-start" in log.read_text():
                break
            time.sleep(0.05)
        with cache_lock(tmp_path / "entry.pt"):
            with open(log, "a") as fh:
                fh.write("B\n")
    finally:
        proc.wait(timeout=60)
    assert log.read_text().split() == ["A-start", "A-end", "B"]


_TRAIN_ONE = """
from medxai_lite.models import get_trained_model
from medxai_lite.models.train import training_seconds
get_trained_model("phantom-skin", "small_cnn", image_size=32, n_train=32, n_val=16, n_test=16, epochs=1, progress=False)
print("trained" if training_seconds() > 0 else "loaded")
"""


def test_two_processes_asking_for_one_model_train_it_once(tmp_cache):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _TRAIN_ONE], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outcomes = sorted(p.communicate(timeout=300)[0].strip() for p in procs)
    assert outcomes == ["loaded", "trained"]


_NB_OK = "import os\nprint('jobs', os.environ.get('MEDXAI_BUILD_JOBS'), int(os.environ.get('OMP_NUM_THREADS')) >= 1)"


def _toy_book(root, cells: dict):
    import nbformat

    (root / "notebooks").mkdir()
    for name, source in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
    toc = "format: jb-book\nroot: intro\nparts:\n  - caption: Part\n    chapters:\n" + "".join(
        f"      - file: notebooks/{name}\n" for name in cells)
    (root / "_toc.yml").write_text(toc)


def test_execute_book_fills_the_cache_the_build_reads(tmp_path, monkeypatch):
    import nbformat
    from jupyter_cache import get_cache

    monkeypatch.setattr(book.os, "environ", dict(book.os.environ))   # execute_book sets variables: keep them here
    _toy_book(tmp_path, {"one": _NB_OK, "two": "x = 6 * 7\nprint(x)"})
    results = book.execute_book(tmp_path, jobs=2)
    assert set(results) == {"one", "two"} and all(err is None and s > 0 for s, err in results.values())
    cache = get_cache(str(tmp_path / "_build" / ".jupyter_cache"))
    for name, text in (("one", "jobs 2 True"), ("two", "42")):
        nb = nbformat.read(tmp_path / "notebooks" / f"{name}.ipynb", as_version=4)
        assert cache.match_cache_notebook(nb) is not None          # what myst-nb looks up in the build
        _, merged = cache.merge_match_into_notebook(nb)
        assert merged.cells[0].outputs[0]["text"].strip() == text
    again = book.execute_book(tmp_path, jobs=2)                     # unchanged: nothing runs again
    assert all(s == 0 and err is None for s, err in again.values())


def test_execute_book_names_the_notebook_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(book.os, "environ", dict(book.os.environ))
    _toy_book(tmp_path, {"good": "1 + 1", "bad": "raise ValueError('broken on purpose')"})
    with pytest.raises(RuntimeError, match="notebooks failed: bad"):
        book.execute_book(tmp_path, jobs=2)
    with pytest.raises(ValueError, match="jobs"):
        book.execute_book(tmp_path, jobs=0)


def test_recorded_gpu_times_reads_a_bench_notebooks_record(tmp_path):
    import json

    from medxai_lite.book import recorded_gpu_times

    record = {"machine": {"gpu": "Some GPU", "cpus": 16, "torch": "2.x", "date": "2026-01-01", "commit": "abc"},
              "jobs": 4, "threads": 2, "notebooks": {
                  "cam": {"seconds": 90.0, "train_seconds": 30.0, "cells": [], "error": None},
                  "text": {"seconds": 12.0, "train_seconds": 0.0, "error": "Traceback ...\nValueError: boom\n"},
                  "atlas": {"error": "not started: --deadline reached"}}}
    path = tmp_path / "times.json"
    path.write_text(json.dumps(record))
    table = recorded_gpu_times(path)
    assert list(table.index) == ["atlas", "cam", "text"]
    assert table.loc["cam", "total_min"] == 1.5 and table.loc["cam", "train_min"] == 0.5
    assert table.loc["cam", "run_min"] == 1.0 and bool(table.loc["cam", "ok"])
    assert not table.loc["text", "ok"] and table.loc["text", "error"] == "ValueError: boom"
    assert np.isnan(table.loc["text", "run_min"]) and not table.loc["atlas", "ok"]
    assert table.loc["cam", "jobs"] == 4 and table.attrs["jobs"] == 4 and table.attrs["threads"] == 2 and table.attrs["machine"]["gpu"] == "Some GPU"
    with pytest.raises(FileNotFoundError, match="no recorded notebook times"):
        recorded_gpu_times(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"notebooks": []}))
    with pytest.raises(ValueError, match="not a record"):
        recorded_gpu_times(tmp_path / "bad.json")


def test_the_shipped_gpu_record_names_only_the_books_notebooks_and_was_run_on_a_gpu():
    from pathlib import Path

    from medxai_lite.book import recorded_gpu_times

    table = recorded_gpu_times()
    notebooks = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")}
    assert set(table.index) <= notebooks and table["ok"].any()
    assert table.attrs["machine"]["gpu"] and not table.attrs["fake_cuda"]
    ok = table[table["ok"]]
    assert (ok["train_min"] >= 0).all() and np.allclose(ok["run_min"], ok["total_min"] - ok["train_min"])


def test_the_execute_command_reports_bad_arguments_without_a_traceback(tmp_path, capsys):
    from medxai_lite.book import _main

    assert _main(["execute", "--jobs", "0", "--root", str(tmp_path)]) == 2
    assert "jobs" in capsys.readouterr().out
    assert _main(["execute", "--root", str(tmp_path)]) == 2           # no _toc.yml there
    assert "_toc.yml" in capsys.readouterr().out

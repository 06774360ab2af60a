"""medxai_lite.book: the glue fallback and the chapter timer that feeds every chapter's time line."""
from __future__ import annotations

import sys

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
    total = timer.glue()
    assert glued["time_cpu_min"] == total and glued["time_train_min"] == pytest.approx(trained / 60)
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
    ext.setup(None)
    assert not book.live_widgets()

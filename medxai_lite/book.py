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

__all__ = ["glue", "chapter_timer", "ChapterTimer", "TIME_KEY", "time_note", "live_widgets", "STATIC_ENV"]

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


def time_note(total_min: float, train_min: float) -> str:
    """The sentence a chapter's opening shows, e.g. ``"3.2 minutes (1.1 minutes of it training models
    the cache lacked; 2.1 minutes with a warm cache)"`` or ``"48 seconds (every model came from the
    cache)"``."""
    if train_min < 0.05:
        return f"{_duration(total_min)} (every model came from the cache)"
    return (f"{_duration(total_min)} ({_duration(train_min)} of it training models the cache lacked; "
            f"{_duration(total_min - train_min)} with a warm cache)")


def _duration(minutes: float) -> str:
    """``"3.2 minutes"``, or ``"8 seconds"`` under a minute (where one decimal of a minute says little)."""
    return f"{minutes:.1f} minutes" if minutes >= 1 else f"{minutes * 60:.0f} seconds"


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

    def glue(self, key: str = TIME_KEY) -> float:
        """Glue the minutes so far (``key``), the training part (``time_train_min``), the rest
        (``time_run_min``) and the sentence (``time_cpu_note``), all without display; print the
        sentence with the device; return the total minutes."""
        from ._utils import device

        total, train = self.minutes(), self.training_minutes()
        glue(key, total, display=False)
        glue("time_train_min", train, display=False)
        glue("time_run_min", total - train, display=False)
        glue("time_cpu_note", time_note(total, train), display=False)
        print(f"This notebook ran in {time_note(total, train)} on {device().type.upper()}.")
        return total


def chapter_timer() -> ChapterTimer:
    """Start the stopwatch of a chapter's notebook (call it in the first code cell after the imports)."""
    return ChapterTimer()

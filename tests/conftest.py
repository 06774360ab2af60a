"""Shared fixtures. Unit tests use a private cache folder; notebook tests share the book's cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the book build and the notebook tests share trained models (the Makefile sets the same default)
os.environ.setdefault("MEDXAI_CACHE", str(ROOT / ".medxai_cache"))
# notebook kernels inherit it: no live widgets in a headless run (see medxai_lite.book.live_widgets)
os.environ.setdefault("MEDXAI_STATIC_WIDGETS", "1")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A fresh, empty cache folder for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MEDXAI_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a whole test module, the previous count put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


if os.environ.get("MEDXAI_FAKE_CUDA") == "1":
    from fakecuda import fake_cuda

    @pytest.fixture(autouse=True)
    def _fake_cuda():
        """``MEDXAI_FAKE_CUDA=1``: every test runs as if a CUDA GPU were present (tests/fakecuda.py),
        so a tensor left on the wrong device fails here as it would on Colab."""
        with fake_cuda() as mode:
            yield mode

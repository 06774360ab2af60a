"""The real-data path through the book: the notebooks run on public datasets when only their
parameters cell changes. Here the public datasets are fixture archives in each source's real
layout, served from 127.0.0.1 and fetched through the package's own download code."""
from __future__ import annotations

import pytest

import fixtures_public as fx
from test_book import ROOT

papermill = pytest.importorskip("papermill")

REAL = ["chest-xray-pneumonia", "figshare-brain-tumor"]   # one without masks, one with


@pytest.fixture(scope="module")
def real_data_root(tmp_path_factory):
    from medxai_lite.data.public import fetch

    root = tmp_path_factory.mktemp("DATA")
    server = fx.FixtureServer()
    try:
        fx.serve(server, "chest-xray-pneumonia", fx.chest_kaggle_files())
        fx.serve(server, "figshare-brain-tumor", fx.figshare_files())
        for name in REAL:
            fetch(name, root, mirror=server.url, progress=False, backoff=0)
    finally:
        server.close()
    return root


@pytest.mark.notebook
@pytest.mark.slow
def test_getting_started_runs_on_public_datasets(real_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_DATA", str(real_data_root))
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "cache"))   # tiny fixture models stay out of the book cache
    out = tmp_path / "getting_started.out.ipynb"
    nb = papermill.execute_notebook(
        str(ROOT / "notebooks/getting_started.ipynb"), str(out), parameters={"datasets": REAL},
        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if "text" in o)
    # the trained models are the public datasets' (their class names show in the printed outputs)
    assert "NORMAL" in text or "normal" in text
    assert (tmp_path / "cache" / "models").is_dir()
    trained = sorted(p.name for p in (tmp_path / "cache" / "models").glob("*.json"))
    assert any(n.startswith("chest-xray-pneumonia-resnet18") for n in trained)
    assert any(n.startswith("figshare-brain-tumor-resnet18") for n in trained)

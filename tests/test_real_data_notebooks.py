"""The real-data path through the book: the notebooks run on public datasets when only their
parameters cell changes. Here the public datasets are fixture archives in each source's real
layout, served from 127.0.0.1 and fetched through the package's own download code."""
from __future__ import annotations

import json

import pytest

import medxai_lite as mx

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
        # enough patients that the 70/10/20 patient split leaves every split non-empty
        fx.serve(server, "figshare-brain-tumor", fx.figshare_files(n_per_part=14))
        for name in REAL:
            fetch(name, root, mirror=server.url, progress=False, backoff=0)
            splits = json.loads((root / name / "manifest.json").read_text())["splits"]
            assert {"train", "val", "test"} <= set(splits), (name, splits)
    finally:
        server.close()
    return root


@pytest.fixture(scope="module")
def fixture_cache(tmp_path_factory):
    """One model cache for the notebooks: tiny fixture models stay out of the book's cache."""
    return tmp_path_factory.mktemp("cache")


# each chapter with a modality parameter, switched to the public datasets through that cell alone
CASES = {
    "getting_started": {"datasets": REAL},
    "cam": {"dataset": "figshare-brain-tumor", "datasets": REAL},
    "gradient": {"dataset": "figshare-brain-tumor", "datasets": REAL},
    "evaluation": {"dataset": "chest-xray-pneumonia", "datasets": REAL},   # no masks: localisation is skipped
    # the `--data real` run of the benchmark, on two networks and four images per dataset
    "benchmark": {"data": "real", "datasets": REAL, "archs": ["resnet50", "efficientnet_b0"], "n_images": 4},
}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_notebook_runs_on_public_datasets(name, real_data_root, fixture_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_DATA", str(real_data_root))
    monkeypatch.setenv("MEDXAI_CACHE", str(fixture_cache))
    out = tmp_path / f"{name}.out.ipynb"
    nb = papermill.execute_notebook(
        str(ROOT / f"notebooks/{name}.ipynb"), str(out), parameters=CASES[name],
        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # the models the notebook used were trained on the public datasets
    trained = sorted(p.name for p in (fixture_cache / "models").glob("*.json"))
    # (the benchmark trains its own networks; the other chapters the default one)
    for dataset in CASES[name].get("datasets", []):
        for arch in CASES[name].get("archs", [mx.models.DEFAULT_ARCH]):
            assert any(n.startswith(f"{dataset}-{arch}-") for n in trained), (dataset, arch, trained)

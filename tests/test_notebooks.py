"""Execute every notebook in the table of contents in a fresh kernel, as the book build does."""
from __future__ import annotations

import os
import time

import nbformat
import pytest
from nbclient import NotebookClient

from test_book import ROOT, toc_notebooks


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("nb", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_executes(nb):
    book = nbformat.read(nb, as_version=4)
    client = NotebookClient(book, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(nb.parent)}})
    env_cache = os.environ.get("MEDXAI_CACHE")
    assert env_cache, "MEDXAI_CACHE must point at the shared cache (tests/conftest.py sets it)"
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    print(f"{nb.name}: {seconds:.0f} s")
    outputs = [o for c in book.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the rendered book shows PNG figures and HTML (plotly); an output only Jupyter can show is lost
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    html = [o for o in outputs if "plotly" in str(o.get("data", {}).get("text/html", ""))]
    assert figures or html, f"{nb.name} made no figure"
    if "plotly" in "".join(c.source for c in book.cells if c.cell_type == "code"):
        assert html, f"{nb.name}: a plotly figure has no text/html output, so the book would drop it"

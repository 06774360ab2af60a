"""Execute every notebook in the table of contents in a fresh kernel, as the book build does."""
from __future__ import annotations

import ast
import os
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from test_book import toc_notebooks


def _must_show(source: str) -> bool:
    """Whether a cell is meant to show something: it ends in an expression (a table, a figure) or
    calls print / display / show."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        return True
    names = {getattr(n.func, "id", None) or getattr(n.func, "attr", None)
             for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return bool(names & {"print", "display", "show"})


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("nb", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_executes(nb):
    book = nbformat.read(nb, as_version=4)
    # per cell, as _config.yml's execute.timeout: the first notebook to need the default models trains them
    client = NotebookClient(book, timeout=1200, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(nb.parent)}})
    env_cache = os.environ.get("MEDXAI_CACHE")
    assert env_cache, "MEDXAI_CACHE must point at the shared cache (tests/conftest.py sets it)"
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    print(f"{nb.name}: {seconds:.0f} s")
    outputs = [o for c in book.cells for o in c.get("outputs", [])]
    # allow_errors=False already stops at an exception; what it lets through is a warning or a
    # traceback printed to stderr by a cell that went on, which the rendered book would show
    stderr = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"
                     and o.get("name") == "stderr")
    leaked = [line for line in stderr.splitlines() if re.search(r"Warning\b|Traceback|Error\b", line)]
    assert not leaked, f"{nb.name} printed to stderr: " + " | ".join(leaked[:5])
    # a visible cell meant to show a table, a figure or a printed line did show it
    silent = [c.source.splitlines()[0] for c in book.cells if c.cell_type == "code" and not c.get("outputs")
              and not set(c.get("metadata", {}).get("tags", [])) & {"remove-cell", "remove-output"}
              and _must_show(c.source)]
    assert not silent, f"{nb.name}: cells that should show something showed nothing: {silent}"
    # the rendered book shows PNG figures and HTML (plotly); an output only Jupyter can show is lost
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    html = [o for o in outputs if "plotly" in str(o.get("data", {}).get("text/html", ""))]
    assert figures or html, f"{nb.name} made no figure"
    if "plotly" in "".join(c.source for c in book.cells if c.cell_type == "code"):
        assert html, f"{nb.name}: a plotly figure has no text/html output, so the book would drop it"

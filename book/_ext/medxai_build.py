"""Sphinx extension of the MedXAI book: settings for the notebooks the build executes.

* The notebook kernels inherit the build's environment, so setting ``MEDXAI_STATIC_WIDGETS=1``
  here tells ``medxai_lite`` not to build live ipywidgets, which a static page cannot run and which
  can stall a headless notebook client (see ``medxai_lite.book.live_widgets``).
* Sphinx reads (and myst-nb executes) the pages in sorted order of their names, which would make
  the first notebook alphabetically (the attention chapter) train the models every later chapter
  shares. The pages are read in the order of ``_toc.yml`` instead, the order a reader runs them
  in, so each notebook's cold time in the build is the time a reader who follows the book waits
  (the shared models are trained by the first chapters that need them).
"""
import os
from pathlib import Path


def toc_order(toc: dict) -> list:
    """The page names of a Jupyter Book ``_toc.yml`` (as loaded by ``yaml.safe_load``) in reading
    order: the root, then every part's chapters, each followed by its sections."""
    order = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child:
                    order.append(child["file"])
                walk(child)

    walk(toc)
    return order


def read_in_toc_order(docnames: list, toc: dict) -> None:
    """Sort ``docnames`` in place by their place in the table of contents (pages outside it last,
    by name): the ``env-before-read-docs`` event lets an extension reorder the list this way."""
    rank = {name: i for i, name in enumerate(toc_order(toc))}
    docnames.sort(key=lambda name: (rank.get(name, len(rank)), name))


def _before_read(app, env, docnames):
    import yaml

    toc = yaml.safe_load((Path(app.srcdir) / "_toc.yml").read_text())
    read_in_toc_order(docnames, toc)


def setup(app):
    os.environ.setdefault("MEDXAI_STATIC_WIDGETS", "1")
    if app is not None:
        app.connect("env-before-read-docs", _before_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

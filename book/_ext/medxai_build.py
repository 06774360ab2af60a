"""Sphinx extension of the MedXAI book: settings for the notebooks the build executes.

The notebook kernels inherit the build's environment, so setting ``MEDXAI_STATIC_WIDGETS=1`` here
tells ``medxai_lite`` not to build live ipywidgets, which a static page cannot run and which can
stall a headless notebook client (see ``medxai_lite.book.live_widgets``).
"""
import os


def setup(app):
    os.environ.setdefault("MEDXAI_STATIC_WIDGETS", "1")
    return {"parallel_read_safe": True, "parallel_write_safe": True}

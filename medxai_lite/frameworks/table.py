"""The survey's Table 11 (open-source XAI frameworks) as data, with what this installation knows.

Dagnaw et al. 2025, Section 4, Table 11 lists five toolkits: tf-keras-vis, pytorch-grad-cam,
Captum, TorchRay and TorchCAM, each with the methods it supports (and the survey's reference
numbers), its backend and an access link. Two files ship with the package:

- ``table11.csv``: one row per framework: ``framework``, ``backend``, ``access_link`` (the link in
  the table), ``repository`` (the footnote link of Section 4), ``package`` (the PyPI distribution
  name) and ``registry_library`` (the ``library`` string :data:`medxai_lite.explain.METHODS` uses
  for adapters that call it; empty when no adapter does);
- ``table11_methods.csv``: one row per (framework, method): ``method``, ``survey_ref`` (reference
  number in the survey's bibliography, empty where the survey gives a footnote instead) and
  ``registry`` (the book's registry key for that method, whichever library backs it; empty
  where the book has no such method).

Transcription notes (the survey text available to the book is an OCR of the PDF, garbled in
the table; each call below was made from the Section 4 prose and the reference list):

- "Laver-CAM" is Layer-CAM [99]; "Smooth-Grad" is SmoothGrad [207].
- Faster-ScoreCAM (tf-keras-vis) and Eigen Grad-CAM (pytorch-grad-cam) carry footnotes 6 and 7
  instead of reference numbers; the footnotes' text is lost in the OCR, so ``survey_ref`` is empty.
- Access links broken over lines by the table layout are joined. The framework names follow
  the prose of Section 4 ("Captum", "TorchCAM"), not the table's "CAPTUM" and "TorchCam".
  Captum's access link is a tutorial page; its repository comes from footnote 2.
- The section's closing sentence says the table gives "modality compatibility", but the table
  has no such column; none is invented here.
- ``registry`` mappings: "LRP" maps to ``lrp_epsilon`` (the book's LRP runs through zennit,
  not captum, see :mod:`medxai_lite.explain.gradient`); "SHAP" under Captum maps to
  ``kernelshap`` (captum's KernelShap); Deep Feature Factorizations, Faster-ScoreCAM and TCAV
  have no registry method.

Example
-------
>>> frameworks_table()[["framework", "backend", "n_methods"]].iloc[0].tolist()
['tf-keras-vis', 'TensorFlow, Keras', 7]
"""
from __future__ import annotations

from importlib import metadata
from importlib.resources import files

__all__ = ["TABLE11_FRAMEWORKS", "TABLE11_METHODS", "frameworks_table", "table11_methods", "package_version",
           "package_licence"]

#: Rows of the survey's Table 11 (checked by the test-suite against the CSV).
TABLE11_FRAMEWORKS = 5
#: (framework, method) pairs listed in Table 11.
TABLE11_METHODS = 41


def _read(name: str):
    import pandas as pd

    with files(__package__).joinpath(name).open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, dtype=str, keep_default_na=False)


def package_version(package: str) -> str | None:
    """The installed version of the distribution ``package`` (``importlib.metadata``), or ``None``."""
    if not isinstance(package, str) or not package:
        raise ValueError(f"package must be a non-empty distribution name; got {package!r}")
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_licence(package: str) -> str | None:
    """The licence the installed distribution ``package`` declares, or ``None`` when it is not installed.

    Read from its metadata, in this order: the SPDX ``License-Expression``, the trove classifier
    ``License :: OSI Approved :: ...``, the first line of the free-text ``License`` field.
    ``"not declared"`` when none is there.
    """
    if not isinstance(package, str) or not package:
        raise ValueError(f"package must be a non-empty distribution name; got {package!r}")
    try:
        meta = metadata.metadata(package)
    except metadata.PackageNotFoundError:
        return None
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return classifiers[0]
    text = (meta.get("License") or "").strip()
    return text.splitlines()[0].strip() if text else "not declared"


def table11_methods():
    """Table 11 in long form: one row per (framework, method).

    Columns: ``framework``, ``method``, ``survey_ref`` (int or ``None``), ``registry`` (the book's
    method key or ``""``) and ``via_framework``: whether the book's adapter for that method calls
    this very framework (``METHODS[registry].library`` is the framework's library).
    """
    import pandas as pd

    from ..explain import METHODS

    methods = _read("table11_methods.csv")
    libraries = dict(_read("table11.csv")[["framework", "registry_library"]].values)
    methods["survey_ref"] = pd.Series([int(r) if r else None for r in methods["survey_ref"]], dtype=object)
    unknown = sorted({k for k in methods["registry"] if k and k not in METHODS})
    if unknown:  # pragma: no cover - guarded by the tests
        raise RuntimeError(f"table11_methods.csv names methods the registry lacks: {unknown}")
    methods["via_framework"] = [bool(k) and bool(libraries[f]) and METHODS[k].library == libraries[f]
                                for f, k in zip(methods["framework"], methods["registry"])]
    return methods


def frameworks_table():
    """The survey's Table 11, one row per framework, plus what this installation knows.

    Columns from the survey: ``framework``, ``methods`` (the listed methods, "; "-separated, each
    with its survey reference number in brackets), ``n_methods``, ``backend``, ``access_link``;
    from Section 4's footnotes: ``repository``. Added by the book: ``package`` (PyPI name),
    ``installed`` (bool), ``version`` (``importlib.metadata``; ``None`` when absent), ``licence``
    (:func:`package_licence`),
    ``registry_methods`` (the :data:`medxai_lite.explain.METHODS` keys whose adapter calls this
    framework, comma-separated), ``n_registry`` (their number) and ``listed_via_framework`` (how
    many of the methods the survey lists for it the book runs through it).

    Example
    -------
    >>> table = frameworks_table()
    >>> len(table) == TABLE11_FRAMEWORKS
    True
    """
    from ..explain import METHODS

    table = _read("table11.csv")
    long = table11_methods()

    def listed(framework: str) -> str:
        rows = long[long.framework == framework]
        return "; ".join(m if r is None else f"{m} [{r}]" for m, r in zip(rows["method"], rows["survey_ref"]))

    table.insert(1, "methods", [listed(f) for f in table["framework"]])
    table.insert(2, "n_methods", [int((long.framework == f).sum()) for f in table["framework"]])
    versions = [package_version(p) for p in table["package"]]
    table["installed"] = [v is not None for v in versions]
    table["version"] = versions
    table["licence"] = [package_licence(p) for p in table["package"]]
    via = [[k for k, info in METHODS.items() if lib and info.library == lib] for lib in table["registry_library"]]
    table["registry_methods"] = [", ".join(v) for v in via]
    table["n_registry"] = [len(v) for v in via]
    table["listed_via_framework"] = [int(long.loc[long.framework == f, "via_framework"].sum())
                                     for f in table["framework"]]
    return table

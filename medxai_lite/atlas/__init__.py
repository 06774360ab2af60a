"""The modality atlas: the survey's Tables 2-10 as data, and questions asked of them.

Section 3 of Dagnaw et al. (2025), "Explainable Artificial Intelligence in Biomedical Image
Analysis: A Comprehensive Survey" (BibTeX key ``dagnaw2025survey`` in ``book/references.bib``),
lists representative studies per imaging modality: Tables 2-9 give the imaging modality, the XAI
methods, the study's number in the survey's reference list and the task; Table 10 lists
interpretable vision-language models (image modality, reference, XAI method). The tables ship as
CSV files in ``medxai_lite/atlas/tables`` (one row per table row) and are read with
:mod:`importlib.resources`, so an editable and a regular install both find them.

Columns of Tables 2-9 (:data:`COLUMNS`): ``table`` (2-9), ``modality`` (the table's modality
group: Radiography, CT, MRI, Ultrasound, PET/SPECT, Optical, Microscopy, Multi-modality),
``sub_modality`` (the table's "Imaging Modality" cell, e.g. CXR, Mammography, Dermatology),
``methods`` (the survey's "XAI Method" cell, as printed), ``reference`` (the survey's reference
number, an ``int``), ``task`` and ``note`` (how an unclear cell was read; empty for most rows).
Table 10 has ``table, image_modality, reference, methods, note`` (:data:`VLM_COLUMNS`).

:func:`atlas_long` splits each ``methods`` cell into single methods (``"Grad-CAM/++"`` ->
Grad-CAM and Grad-CAM++; ``"TCAV/CBM"`` -> TCAV and CBM), maps each to a canonical name and to
its family of the survey's taxonomy (:data:`medxai_lite.taxonomy.FAMILIES`). On top of it,
:func:`family_matrix` counts studies per modality and family, :func:`find_methods` ranks the
methods used for a modality (and task), with the book chapter and ``explain`` registry key of
each, and :func:`plot_family_heatmap` draws the matrix with plotly.

Example
-------
>>> from medxai_lite.atlas import atlas, find_methods, family_matrix
>>> len(atlas())                                  # studies (rows) in Tables 2-9
171
>>> top = find_methods("CXR").iloc[0]
>>> top["method"], int(top["studies"]), top["chapter"], top["registry"]
('Grad-CAM', 15, 'book/cam', 'gradcam')
>>> int(family_matrix().loc["Dermatology", "Concept-based"])
2
"""
# ---------------------------------------------------------------------------------------------
# How the tables were transcribed (source: the survey's text, an OCR/PDF extraction).
#
# The "Imaging Modality" cell spans several rows and is printed once, near the middle of its
# block; every row of a block gets its label. Where the label was garbled or printed twice, the
# rows are the block between two labels' neighbourhoods, checked against the task text and the
# cited titles in the survey's reference list.
#
# Obvious OCR fixes (nothing else in the method and task strings was changed):
#   Table 2  modality label "Maninography"          -> Mammography (second copy of the label)
#   Table 2  modality label "тиотозсору"            -> Fluoroscopy (second copy of the label)
#   Table 2  "Digital" / "Tomosynthesis" (2 lines)  -> Digital Tomosynthesis
#   Table 2  [214], [171] task "Beast cancer ..."   -> "Breast cancer ..."
#   Table 2  [189] task "... lassification"         -> "... classification"
#   Table 2  [218] task "Tumor egmentation"         -> "Tumor segmentation"
#   Table 2  [88] and Table 4 [224]: the reference was glued to the task; split apart
#   Table 4  [134] task "disease(AD)"               -> "disease (AD)"
#   Table 5  label "Ultrasound" printed twice       -> one block
#   Table 6  modality label "SPECI"                 -> SPECT
#   Table 6  [165] task "... lassification"         -> "... classification"
#   Table 7  labels "OCI", "rundus", "P., J"        -> OCT, Fundus, Endoscopy (second copies)
#   Table 7  [264] task "... lcassification"        -> "... classification"
#   Table 8  modality label "Tiematology"           -> Hematology
#   All      a missing space after a comma in a methods cell ("Grad-CAM,LIME") is restored.
# Kept as the survey prints them: capitalisation ("Image captioning" / "Image Captioning" /
# "Image-Captioning"), "Grad-CAM /++" (Table 8 [93]), "HiRe-CAM", "Smooth-Grad", "T-SNE",
# lower-case task starts, and the repeated word in Table 7 [233] "Glaucoma detection detection".
#
# Judgement calls (also in each row's ``note``):
#   Table 4  The extraction prints the first 15 rows inline and scatters the last six cells of
#            each column ([132] [237] [248] [60] [209] [228]; five method cells; three labels
#            MRA, fMRI, "fMRI,MRI"; six tasks in another order). References are taken in their
#            printed order; methods follow it ([132] Attention, LIME, SHAP as Section 3.3 says;
#            [237] ProtoPNet, whose title is MProtoNet; [248] Grad-CAM, confirmed by Section
#            3.3; [209] Grad-CAM, named in its title). One method cell is missing: it is taken to
#            be [60]'s, and [228] gets the third Grad-CAM. Tasks are matched by the cited titles;
#            the two schizophrenia tasks are a guess ([60] "classification" in its title, [228]
#            "diagnosis"). Labels: MRI spans [134]...[237] (the label sits on the 9th of 17
#            rows), MRA is [248], fMRI is [60] and [209], "fMRI, MRI" is [228].
#   Table 4  [199] has no method cell in the extraction. Both unknown method cells are left
#            empty, not guessed: the rows count in the row totals and in :func:`atlas`, but not
#            in :func:`atlas_long`, :func:`family_matrix` or :func:`find_methods`.
#   Table 4  [132] sits in the MRI block by layout, though Section 3.3 calls it fMRI-based.
#   Table 9  The last row ([267], fMRI/sMRI, Score-CAM, schizophrenia diagnosis) is scattered.
#   Table 10 Rows 7-10 are scattered. The reference order [67] [169] [26] [238] matches the
#            modality labels (three Dermatology + Text, then Ultrasound, Fluorescence + Text:
#            [238] is on choroid neoplasias from multimodal data). The printed order of the method
#            cells cannot be right ([26]'s title is "explainable prompt learning"), so methods are
#            matched by content: [169] is the CBM with GPT-generated descriptions (Section 3.9:
#            concept bottlenecks combined with an LLM for skin lesions), [26] the explainable
#            prompt learning with t-SNE, [67] and [238] the two concept bottlenecks.
# ---------------------------------------------------------------------------------------------
from __future__ import annotations

import functools
from importlib import resources
from typing import Iterable

from ..taxonomy import FAMILIES, TAXONOMY

__all__ = [
    "COLUMNS",
    "VLM_COLUMNS",
    "TABLE_TITLES",
    "TABLE_ROWS",
    "TABLE_MODALITY",
    "FAMILY_ORDER",
    "METHOD_ALIASES",
    "EXTRA_FAMILIES",
    "OTHER_METHODS",
    "REGISTRY_KEYS",
    "FAMILY_CHAPTERS",
    "atlas_table",
    "atlas",
    "split_methods",
    "canonical_method",
    "method_family",
    "atlas_long",
    "modalities",
    "family_matrix",
    "family_references",
    "find_methods",
    "plot_family_heatmap",
]

#: Columns of Tables 2-9, in order.
COLUMNS: tuple[str, ...] = ("table", "modality", "sub_modality", "methods", "reference", "task", "note")
#: Columns of Table 10 (interpretable vision-language models), in order.
VLM_COLUMNS: tuple[str, ...] = ("table", "image_modality", "reference", "methods", "note")

#: The survey's caption of each table.
TABLE_TITLES: dict[int, str] = {
    2: "Representative XAI applications in radiographic image analysis",
    3: "Representative XAI applications in CT image analysis",
    4: "Representative XAI applications in MRI image analysis",
    5: "Representative XAI applications in ultrasound image analysis",
    6: "Representative XAI applications in PET image analysis",
    7: "Representative XAI applications in optical image analysis",
    8: "Representative XAI applications in microscopy image analysis",
    9: "Representative XAI applications in multi-modality biomedical image analysis",
    10: "Representative interpretable VLMs for biomedical image analysis",
}

#: Rows of each table in the survey (counted in its text; the CSVs are checked against it).
TABLE_ROWS: dict[int, int] = {2: 42, 3: 23, 4: 21, 5: 16, 6: 9, 7: 31, 8: 23, 9: 6, 10: 10}

#: The modality group of Tables 2-9 (the ``modality`` column).
TABLE_MODALITY: dict[int, str] = {
    2: "Radiography", 3: "CT", 4: "MRI", 5: "Ultrasound", 6: "PET/SPECT", 7: "Optical",
    8: "Microscopy", 9: "Multi-modality",
}

#: The eight family names of :data:`medxai_lite.taxonomy.FAMILIES`, in the survey's order.
FAMILY_ORDER: tuple[str, ...] = tuple(family for _, family in FAMILIES)


def _slug(name: str) -> str:
    """Lower case, ``+`` -> ``p``, letters and digits only (the taxonomy's matching rule)."""
    return "".join(ch for ch in name.lower().replace("+", "p") if ch.isalnum())


_TAXONOMY_BY_SLUG = {_slug(m.name): m for m in TAXONOMY}

#: Spellings in the tables that differ from a canonical name (keys are slugs, see
#: :func:`canonical_method`). Names that match :mod:`medxai_lite.taxonomy` after slugging
#: ("Smooth-Grad", "Deep SHAP", "Image-Captioning", "T-SNE", "occlusion" ...) need no entry.
METHOD_ALIASES: dict[str, str] = {
    "hirecam": "HiResCAM",                     # Table 3 [54] "HiRe-CAM"
    "ig": "Integrated Gradients",              # Table 3 [59]
    "guidedig": "Guided Integrated Gradients",  # Table 7 [232]
    "attentiongradcam": "Attention-guided Grad-CAM",  # Table 2 [181], named in its title
    "rawattention": "Raw attention",           # Table 8 [80]
    "prototype": "Prototypes",                 # Tables 3 [208], 8 [222]
}

#: Families of the canonical methods that :mod:`medxai_lite.taxonomy` does not list, each
#: checked against the survey's Section 2:
#:
#: - Guided Grad-CAM multiplies Guided Backpropagation (Sec. 2.1.2) by Grad-CAM; the fine map
#:   comes from the backward pass, and the book's registry files it with the gradient methods.
#: - Guided Integrated Gradients is a path variant of Integrated Gradients (Sec. 2.1.2).
#: - Attention-guided Grad-CAM and HR-CAM are class activation maps (Sec. 2.1.1).
#: - "Attention" (attention modules whose weights are shown) and raw attention maps are what
#:   Sec. 2.1.3 calls attention-based explanation.
#: - Prototypes: Sec. 2.2 and Fig. 4a describe example-based explanation as comparison with
#:   learned prototype examples (the taxonomy files ProtoPNet there too).
EXTRA_FAMILIES: dict[str, str] = {
    "Guided Grad-CAM": "Gradient-based",
    "Guided Integrated Gradients": "Gradient-based",
    "Attention-guided Grad-CAM": "CAM-based",
    "HR-CAM": "CAM-based",
    "Attention": "Attention-based",
    "Raw attention": "Attention-based",
    "Prototypes": "Example-based",
}

#: Methods that fit no family of the taxonomy, with the reason. Every method named in Tables
#: 2-9 fits one, so the list is empty; a new row with an unknown method raises instead of
#: landing here silently.
OTHER_METHODS: dict[str, str] = {}

#: The ``medxai_lite.explain`` registry key that runs each canonical method, where one does.
#: "SHAP" runs as KernelSHAP (the model-agnostic estimator), "LRP" as the epsilon rule the
#: survey writes down, and the generic "Attention" as a raw attention map.
REGISTRY_KEYS: dict[str, str] = {
    "CAM": "cam",
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcampp",
    "Score-CAM": "scorecam",
    "Ablation-CAM": "ablationcam",
    "Eigen-CAM": "eigencam",
    "HiResCAM": "hirescam",
    "Guided Grad-CAM": "guided_gradcam",
    "LRP": "lrp_epsilon",
    "Integrated Gradients": "integrated_gradients",
    "SmoothGrad": "smoothgrad",
    "XRAI": "xrai",
    "DeepSHAP": "deepshap",
    "LIME": "lime",
    "SHAP": "kernelshap",
    "Occlusion": "occlusion",
    "Attention": "attention",
    "Raw attention": "attention",
    "Attention Rollout": "attention_rollout",
    "Image Captioning": "captioner",
    "VQA": "vqa",
    "TCAV": "tcav",
    "CBM": "cbm_concepts",
    "Prototypes": "prototypes",
}

#: The book chapter (path without suffix, from the repository root) of each family that has one.
FAMILY_CHAPTERS: dict[str, str] = {
    "CAM-based": "book/cam",
    "Gradient-based": "book/gradient",
    "Attention-based": "book/attention",
    "Perturbation-based": "book/perturbation",
    "Example-based": "book/examples",
    "Concept-based": "book/concepts",
    "Text-based": "book/text",
    "Latent-based": "book/latent",
}


# ---- loading -------------------------------------------------------------------------------

def _check_table(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n not in TABLE_ROWS:
        raise ValueError(f"n must be one of the survey's atlas tables {sorted(TABLE_ROWS)}; got {n!r}")
    return n


@functools.lru_cache(maxsize=None)
def _load(n: int):
    import pandas as pd

    columns = VLM_COLUMNS if n == 10 else COLUMNS
    path = resources.files(__name__).joinpath("tables", f"table{n:02d}.csv")
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    if tuple(df.columns) != columns:
        raise ValueError(f"table{n:02d}.csv has columns {list(df.columns)}; expected {list(columns)}")
    if len(df) != TABLE_ROWS[n]:
        raise ValueError(f"table{n:02d}.csv has {len(df)} rows; the survey's Table {n} has {TABLE_ROWS[n]}")
    for col in ("table", "reference"):
        if not df[col].str.fullmatch(r"\d+").all():
            raise ValueError(f"table{n:02d}.csv: column {col!r} must hold integers")
        df[col] = df[col].astype(int)
    if not (df["table"] == n).all():
        raise ValueError(f"table{n:02d}.csv: column 'table' must be {n} in every row")
    if n != 10:
        if not (df["modality"] == TABLE_MODALITY[n]).all():
            raise ValueError(f"table{n:02d}.csv: column 'modality' must be {TABLE_MODALITY[n]!r}")
        for cell in df["methods"]:  # every printed method must have a family
            for piece in split_methods(cell):
                method_family(canonical_method(piece))
    return df


def atlas_table(n: int):
    """The survey's Table ``n`` (2-10) as a pandas DataFrame, one row per table row.

    Tables 2-9 have the columns :data:`COLUMNS`, Table 10 has :data:`VLM_COLUMNS`. A fresh copy
    is returned each time.

    >>> atlas_table(9)[["sub_modality", "methods"]].iloc[0].tolist()
    ['PET, MRI', 'Grad-CAM']
    >>> atlas_table(9)["reference"].tolist()
    [125, 266, 32, 58, 240, 267]
    """
    return _load(_check_table(n)).copy()


def atlas(tables: Iterable[int] | None = None):
    """Tables 2-9 (or the ``tables`` given, each in 2-9) in one DataFrame with :data:`COLUMNS`."""
    import pandas as pd

    tables = _check_tables(tables)
    return pd.concat([_load(n) for n in tables], ignore_index=True)


def _check_tables(tables) -> list[int]:
    if tables is None:
        return list(range(2, 10))
    if isinstance(tables, (int, str)):
        raise ValueError(f"tables must be a list of table numbers in 2..9; got {tables!r}")
    tables = list(tables)
    bad = [t for t in tables if isinstance(t, bool) or not isinstance(t, int) or not 2 <= t <= 9]
    if bad or not tables:
        raise ValueError(f"tables must be a non-empty list of table numbers in 2..9; got {tables!r}")
    return tables


# ---- methods: split, canonical name, family ------------------------------------------------

def split_methods(cell: str) -> list[str]:
    """Split a ``methods`` cell into single method names, in order, without repeats.

    Commas separate methods. A slash either abbreviates a variant, ``"Grad-CAM/++"`` ->
    ``["Grad-CAM", "Grad-CAM++"]`` (the part after the slash starts with ``+`` and is appended
    to the part before it), or joins two names, ``"TCAV/CBM"`` -> ``["TCAV", "CBM"]``.
    An empty cell gives ``[]``.

    >>> split_methods("Grad-CAM, Grad-CAM /++, LIME,SHAP")
    ['Grad-CAM', 'Grad-CAM++', 'LIME', 'SHAP']
    """
    if not isinstance(cell, str):
        raise ValueError(f"cell must be a string; got {type(cell).__name__}")
    out: list[str] = []
    for part in cell.split(","):
        part = part.strip()
        if not part:
            continue
        pieces = [p.strip() for p in part.split("/")]
        names = [pieces[0]]
        for p in pieces[1:]:
            names.append(pieces[0] + p if p.startswith("+") else p)
        for name in names:
            if name and name not in out:
                out.append(name)
    return out


def canonical_method(name: str) -> str:
    """The canonical name of a method as printed in the tables.

    The taxonomy's name when :mod:`medxai_lite.taxonomy` lists the method (matched after
    :func:`_slug`: case, spaces and hyphens ignored), else the entry of
    :data:`METHOD_ALIASES`, else one of :data:`EXTRA_FAMILIES` / :data:`OTHER_METHODS`.
    Unknown names raise ``ValueError``.

    >>> canonical_method("Smooth-Grad"), canonical_method("HiRe-CAM"), canonical_method("T-SNE")
    ('SmoothGrad', 'HiResCAM', 't-SNE')
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    key = _slug(name)
    if key in METHOD_ALIASES:
        return METHOD_ALIASES[key]
    if key in _TAXONOMY_BY_SLUG:
        return _TAXONOMY_BY_SLUG[key].name
    for known in (*EXTRA_FAMILIES, *OTHER_METHODS):
        if _slug(known) == key:
            return known
    raise ValueError(
        f"name={name!r} is not a method the atlas knows; add it to METHOD_ALIASES, "
        "EXTRA_FAMILIES or OTHER_METHODS in medxai_lite/atlas/__init__.py"
    )


def method_family(method: str) -> str:
    """Family of a canonical method: the taxonomy's, else :data:`EXTRA_FAMILIES`, else ``"Other"``
    for :data:`OTHER_METHODS`. Unknown names raise ``ValueError``."""
    key = _slug(method)
    if key in _TAXONOMY_BY_SLUG and _TAXONOMY_BY_SLUG[key].name == method:
        return _TAXONOMY_BY_SLUG[key].family
    if method in EXTRA_FAMILIES:
        return EXTRA_FAMILIES[method]
    if method in OTHER_METHODS:
        return "Other"
    raise ValueError(f"method={method!r} is not a canonical atlas method; pass it through canonical_method first")


def atlas_long(tables: Iterable[int] | None = None):
    """One row per (study, method) of Tables 2-9 (or ``tables``).

    Columns: ``table, modality, sub_modality, reference, task, method_text`` (the name as
    printed, after :func:`split_methods`), ``method`` (:func:`canonical_method`) and ``family``
    (:func:`method_family`). A study is a table row; rows whose methods cell is empty (two in
    Table 4, see the module notes) have no method and are left out.

    >>> long = atlas_long([2])
    >>> long[long.reference == 84]["method"].tolist()
    ['Grad-CAM', 'Grad-CAM++', 'Ablation-CAM']
    """
    import pandas as pd

    rows = []
    for rec in atlas(tables).itertuples(index=False):
        seen = set()
        for piece in split_methods(rec.methods):
            method = canonical_method(piece)
            if method in seen:  # e.g. "Grad-CAM, Grad-CAM /++"
                continue
            seen.add(method)
            rows.append({
                "table": rec.table, "modality": rec.modality, "sub_modality": rec.sub_modality,
                "reference": rec.reference, "task": rec.task, "method_text": piece,
                "method": method, "family": method_family(method),
            })
    return pd.DataFrame(rows, columns=["table", "modality", "sub_modality", "reference", "task",
                                       "method_text", "method", "family"])


# ---- questions -----------------------------------------------------------------------------

_LEVELS = ("sub_modality", "modality")


def modalities(level: str = "sub_modality") -> list[str]:
    """The modality names of Tables 2-9 at ``level`` (``"sub_modality"``: CXR, Mammography ...;
    ``"modality"``: Radiography, CT ...), in table order."""
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {list(_LEVELS)}; got {level!r}")
    return list(dict.fromkeys(atlas()[level]))


def _families_present(long) -> list[str]:
    fams = list(FAMILY_ORDER)
    if (long["family"] == "Other").any():
        fams.append("Other")
    return fams


def family_matrix(level: str = "sub_modality", tables: Iterable[int] | None = None):
    """Studies per modality (rows, in table order) and method family (columns, the survey's
    order): a cell counts the table rows of that modality that use at least one method of that
    family, so a row with Grad-CAM and Grad-CAM++ counts once under CAM-based.

    ``level`` is ``"sub_modality"`` (the tables' Imaging Modality cells) or ``"modality"`` (one
    row per table). Every one of the eight families is a column, zero where unused.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {list(_LEVELS)}; got {level!r}")
    long = atlas_long(tables)
    order = list(dict.fromkeys(atlas(tables)[level]))
    studies = long.drop_duplicates(["table", "reference", "sub_modality", "family"])
    counts = studies.groupby([level, "family"]).size().unstack("family", fill_value=0)
    counts = counts.reindex(index=order, columns=_families_present(long), fill_value=0).astype(int)
    counts.index.name, counts.columns.name = level, "family"
    return counts


def family_references(level: str = "sub_modality", tables: Iterable[int] | None = None):
    """The survey references behind each cell of :func:`family_matrix`: a DataFrame of the same
    shape whose cells are lists of reference numbers in table order (empty lists where zero)."""
    counts = family_matrix(level, tables)
    long = atlas_long(tables).drop_duplicates(["table", "reference", "sub_modality", "family"])
    refs = counts.astype(object)
    for mod in counts.index:
        for fam in counts.columns:
            sel = long[(long[level] == mod) & (long["family"] == fam)]
            refs.at[mod, fam] = [int(r) for r in sel["reference"]]
    return refs


def find_methods(modality: str, task: str | None = None):
    """The methods the survey's Tables 2-9 record for ``modality``, most used first.

    ``modality`` is a modality group (``"MRI"``, ``"Optical"`` ...) or an Imaging Modality cell
    (``"CXR"``, ``"Dermatology"``, ``"PET, MRI"`` ...), matched case-insensitively and exactly;
    a group includes all its cells (``"MRI"`` covers MRA and fMRI too). ``task`` keeps the rows
    whose task contains it (case-insensitive substring, e.g. ``"covid"``). Unknown modalities
    raise ``ValueError`` listing the valid ones; a task that matches nothing gives an empty frame.

    Returns a DataFrame with ``method, family, studies`` (table rows using the method),
    ``references`` (their survey numbers, in table order), ``chapter`` (the book chapter of the
    family, e.g. ``"book/cam"``, or ``None``) and ``registry`` (the ``medxai_lite.explain`` key,
    or ``None``). Ties in ``studies`` keep the family order of the survey, then the name.
    """
    import pandas as pd

    if not isinstance(modality, str):
        raise ValueError(f"modality must be a string; got {type(modality).__name__}")
    if task is not None and not isinstance(task, str):
        raise ValueError(f"task must be a string or None; got {type(task).__name__}")
    valid = list(dict.fromkeys(modalities("modality") + modalities("sub_modality")))
    wanted = modality.strip().lower()
    if wanted not in {v.lower() for v in valid}:
        raise ValueError(f"unknown modality {modality!r}; valid modalities: {', '.join(valid)}")
    long = atlas_long()
    sel = long[(long["modality"].str.lower() == wanted) | (long["sub_modality"].str.lower() == wanted)]
    if task is not None and task.strip():
        sel = sel[sel["task"].str.lower().str.contains(task.strip().lower(), regex=False)]
    columns = ["method", "family", "studies", "references", "chapter", "registry"]
    if sel.empty:
        return pd.DataFrame(columns=columns)
    fam_rank = {f: i for i, f in enumerate((*FAMILY_ORDER, "Other"))}
    out = []
    for method, grp in sel.groupby("method", sort=False):
        family = grp["family"].iloc[0]
        refs = list(dict.fromkeys(int(r) for r in grp["reference"]))
        out.append({
            "method": method, "family": family,
            "studies": int(len(grp.drop_duplicates(["table", "reference"]))),
            "references": refs, "chapter": FAMILY_CHAPTERS.get(family),
            "registry": REGISTRY_KEYS.get(method),
        })
    res = pd.DataFrame(out, columns=columns)
    res["_fam"] = res["family"].map(fam_rank)
    res = res.sort_values(["studies", "_fam", "method"], ascending=[False, True, True], kind="stable")
    res = res.drop(columns="_fam").reset_index(drop=True)
    for col in ("chapter", "registry"):  # None, not NaN, where the book has no chapter or adapter
        res[col] = res[col].astype(object).where(res[col].notna(), None)
    return res


def plot_family_heatmap(level: str = "sub_modality", tables: Iterable[int] | None = None,
                        title: str | None = None):
    """An interactive plotly heatmap of :func:`family_matrix`: modalities down, families across,
    each cell annotated with its count of studies; hovering shows the survey references.

    Returns a ``plotly.graph_objects.Figure``.
    """
    import numpy as np
    import plotly.graph_objects as go

    counts = family_matrix(level, tables)
    refs = family_references(level, tables)
    hover = np.array([[", ".join(f"[{r}]" for r in refs.at[m, f]) or "none" for f in counts.columns]
                      for m in counts.index], dtype=object)
    z = counts.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=list(counts.columns), y=list(counts.index), customdata=hover,
        colorscale="Blues", zmin=0, text=z, texttemplate="%{text}",
        colorbar={"title": {"text": "studies"}},
        hovertemplate="%{y} x %{x}<br>%{z} studies<br>references: %{customdata}<extra></extra>",
    ))
    label = "imaging modality" if level == "sub_modality" else "modality group"
    fig.update_layout(
        title=title or f"Studies per {label} and XAI method family (survey Tables 2-9)",
        xaxis_title="method family (survey Section 2)", yaxis_title=label,
        yaxis={"autorange": "reversed"}, height=max(360, 28 * len(counts) + 160),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig

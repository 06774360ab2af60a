"""The modality atlas (survey Tables 2-10): transcription, method mapping and the questions it answers."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medxai_lite import atlas as A
from medxai_lite.taxonomy import FAMILIES

ROOT = Path(__file__).resolve().parents[1]

# Rows per table, counted by hand in the survey's text (the seed text of Dagnaw et al. 2025): one
# row per "[n]" reference cell between a table's header line and the next section, with the
# scattered cells of Tables 4, 9 and 10 counted by their reference cells
# (Table 2: 28 CXR + 10 mammography + 2 tomosynthesis + 2 fluoroscopy; Table 3: 22 CT + 1 cone
# beam CT; Table 4: 15 inline + 6 scattered; Table 6: 6 SPECT + 3 PET; Table 7: 13 dermatology +
# 6 OCT + 6 fundus + 6 endoscopy; Table 8: 17 histopathology + 6 hematology).
SURVEY_ROWS = {2: 42, 3: 23, 4: 21, 5: 16, 6: 9, 7: 31, 8: 23, 9: 6, 10: 10}

# The reference numbers printed in each table of the survey's text, in printed order, copied with
# a regular expression over the table lines (for Table 4 the inline paragraph plus the six lone
# reference cells; the prose between tables is excluded).
SURVEY_REFS = {
    2: [56, 84, 90, 198, 88, 149, 25, 183, 8, 196, 205, 38, 105, 29, 118, 133, 176, 115, 161, 6,
        223, 65, 204, 108, 190, 107, 182, 41, 178, 63, 181, 69, 101, 214, 5, 171, 163, 129, 189,
        85, 256, 218],
    3: [121, 141, 170, 23, 244, 89, 184, 6, 54, 119, 157, 16, 59, 43, 91, 247, 208, 131, 111,
        217, 112, 41, 22],
    4: [134, 151, 45, 62, 216, 154, 86, 199, 135, 77, 4, 117, 83, 224, 139, 132, 237, 248, 60,
        209, 228],
    5: [260, 57, 206, 128, 242, 252, 92, 81, 106, 31, 102, 79, 78, 136, 9, 129],
    6: [152, 165, 36, 162, 116, 219, 46, 98, 55],
    7: [94, 3, 144, 159, 271, 137, 21, 258, 156, 212, 109, 126, 168, 76, 30, 229, 24, 13, 185,
        11, 177, 75, 97, 233, 232, 158, 147, 68, 264, 17, 2],
    8: [246, 39, 179, 120, 124, 123, 130, 243, 249, 51, 104, 142, 261, 52, 80, 194, 222, 93, 72,
        221, 138, 48, 164],
    9: [125, 266, 32, 58, 240, 267],
    10: [263, 87, 174, 148, 37, 175, 67, 169, 26, 238],
}
FAMILY_NAMES = [f for _, f in FAMILIES]


@pytest.mark.parametrize("n", sorted(SURVEY_ROWS))
def test_row_counts_match_the_survey(n):
    assert len(A.atlas_table(n)) == SURVEY_ROWS[n] == A.TABLE_ROWS[n]


@pytest.mark.parametrize("n", sorted(SURVEY_REFS))
def test_references_are_the_survey_numbers_in_table_order(n):
    refs = A.atlas_table(n)["reference"]
    assert all(isinstance(r, int) for r in refs.tolist())
    assert refs.tolist() == SURVEY_REFS[n]  # the same numbers, one per row, in printed order


def test_columns_and_modalities():
    df = A.atlas()
    assert tuple(df.columns) == A.COLUMNS
    assert tuple(A.atlas_table(10).columns) == A.VLM_COLUMNS
    assert len(df) == sum(SURVEY_ROWS[n] for n in range(2, 10)) == 171
    assert df.groupby("table")["modality"].unique().map(list).to_dict() == {
        n: [m] for n, m in A.TABLE_MODALITY.items()}
    # sub-modality blocks as read from the tables' layout
    t2 = A.atlas_table(2)["sub_modality"].value_counts().to_dict()
    assert t2 == {"CXR": 28, "Mammography": 10, "Digital Tomosynthesis": 2, "Fluoroscopy": 2}
    t7 = A.atlas_table(7)["sub_modality"].value_counts().to_dict()
    assert t7 == {"Dermatology": 13, "OCT": 6, "Fundus": 6, "Endoscopy": 6}
    assert A.atlas_table(4).set_index("reference").loc[248, "sub_modality"] == "MRA"


def test_ocr_fixes_are_applied():
    text = " ".join(A.atlas()["task"]) + " " + " ".join(A.atlas()["sub_modality"])
    for garbled in ("Beast", "lassification ", "egmentation", "lcassification", "Maninography",
                    "SPECI", "OCI", "rundus", "Tiematology"):
        assert f" {garbled}" not in f" {text}", garbled
    assert A.atlas_table(2).set_index("reference").loc[88, "task"] == "COPD diagnosis"


def test_only_the_two_unreadable_method_cells_are_empty():
    df = A.atlas()
    empty = df[df["methods"] == ""]
    assert sorted(empty["reference"]) == [60, 199]
    assert (empty["table"] == 4).all() and (empty["note"] != "").all()


def test_split_methods():
    assert A.split_methods("Grad-CAM/++, Ablation-CAM") == ["Grad-CAM", "Grad-CAM++", "Ablation-CAM"]
    assert A.split_methods("Grad-CAM, Grad-CAM /++, LIME,SHAP") == ["Grad-CAM", "Grad-CAM++", "LIME", "SHAP"]
    assert A.split_methods("TCAV/CBM") == ["TCAV", "CBM"]
    assert A.split_methods("") == []
    with pytest.raises(ValueError, match="cell"):
        A.split_methods(None)


def test_canonical_names_and_families():
    assert A.canonical_method("Smooth-Grad") == "SmoothGrad"
    assert A.canonical_method("HiRe-CAM") == "HiResCAM"
    assert A.canonical_method("Image-Captioning") == A.canonical_method("Image captioning") == "Image Captioning"
    assert A.canonical_method("IG") == "Integrated Gradients"
    assert A.canonical_method("Deep SHAP") == "DeepSHAP"
    # families as the survey's Section 2 files them
    assert A.method_family("LRP") == "Gradient-based"
    assert A.method_family("t-SNE") == "Latent-based"
    assert A.method_family("Image Captioning") == "Text-based"
    assert A.method_family("Prototypes") == "Example-based"
    assert A.method_family("Guided Grad-CAM") == "Gradient-based"
    with pytest.raises(ValueError, match="name="):
        A.canonical_method("Quantum saliency")
    with pytest.raises(ValueError, match="method="):
        A.method_family("gradcam")  # not canonical


def test_every_method_maps_to_a_family():
    long = A.atlas_long()
    assert set(long["family"]) <= set(FAMILY_NAMES) | {"Other"}
    assert not (long["family"] == "Other").any()  # every method in Tables 2-9 fits a family
    assert A.OTHER_METHODS == {}
    # one row per (study, method): 169 studies with a readable method cell, duplicates folded
    assert long.groupby(["table", "reference"]).ngroups == 169
    assert not long.duplicated(["table", "reference", "method"]).any()
    hema = long[(long.table == 8) & (long.reference == 93)]["method"].tolist()
    assert hema == ["Grad-CAM", "Grad-CAM++", "LIME", "SHAP"]


def test_registry_keys_and_chapters_exist():
    from medxai_lite.explain import METHODS

    for method, key in A.REGISTRY_KEYS.items():
        assert key in METHODS, (method, key)
        assert A.method_family(method) in FAMILY_NAMES
    for family, path in A.FAMILY_CHAPTERS.items():
        assert family in FAMILY_NAMES
        assert (ROOT / f"{path}.md").exists(), path


def test_family_matrix_known_cells():
    m = A.family_matrix()
    assert list(m.columns) == FAMILY_NAMES
    assert list(m.index[:4]) == ["CXR", "Mammography", "Digital Tomosynthesis", "Fluoroscopy"]
    # CXR: 15 Grad-CAM rows + CAM [56] + Grad-CAM++ [105] + Score-CAM [182] = 18 CAM-based studies
    assert m.loc["CXR", "CAM-based"] == 18
    assert m.loc["CXR", "Text-based"] == 6          # five captioning rows + VQA [41]
    assert m.loc["Dermatology", "Concept-based"] == 2  # TCAV/CBM [126], [168]
    assert m.loc["PET", "Latent-based"] == 1           # UMAP, t-SNE [46] counts once
    assert m.loc["PET, CT", "CAM-based"] == 0
    g = A.family_matrix("modality")
    assert g.loc["Radiography", "CAM-based"] == 30
    assert g.loc["Microscopy", "Attention-based"] == 3   # [142] rollout, [261], [80]
    refs = A.family_references()
    assert refs.loc["Dermatology", "Concept-based"] == [126, 168]
    assert refs.loc["PET, CT", "CAM-based"] == []


def test_family_totals_behind_the_chapter_prose():
    """book/atlas.md says CAM-based leads, perturbation comes second, and the rare families are
    example-, concept- and latent-based; this keeps those sentences true if the data change."""
    long = A.atlas_long()
    per_family = long.drop_duplicates(["table", "reference", "family"]).groupby("family").size()
    ranked = per_family.sort_values(ascending=False)
    assert list(ranked.index[:2]) == ["CAM-based", "Perturbation-based"]
    assert ranked["CAM-based"] == 112 and ranked["Perturbation-based"] == 39
    assert sorted(per_family[per_family <= 5].index) == ["Concept-based", "Example-based", "Latent-based"]
    assert (A.family_matrix("modality").idxmax(axis=1) == "CAM-based").all()


def test_find_methods_known_answers():
    cxr = A.find_methods("CXR")
    top = cxr.iloc[0]
    assert (top["method"], top["studies"], top["chapter"], top["registry"]) == ("Grad-CAM", 15, "book/cam", "gradcam")
    assert top["references"][:3] == [84, 90, 198]
    assert list(cxr["studies"]) == sorted(cxr["studies"], reverse=True)
    captioning = cxr.set_index("method").loc["Image Captioning"]
    assert (captioning["chapter"], captioning["registry"]) == ("book/text", "captioner")
    assert A.find_methods("Dermatology").set_index("method").loc["TCAV", "chapter"] == "book/concepts"
    # case-insensitive modality, task keyword as a substring
    covid_ct = A.find_methods("ct", task="COVID")
    assert covid_ct.iloc[0]["method"] == "Grad-CAM"
    assert covid_ct.set_index("method").loc["LIME", "references"] == [23, 244, 6, 59]
    # a modality group covers its cells: MRI includes the MRA row
    assert 248 in A.find_methods("MRI").set_index("method").loc["Grad-CAM", "references"]
    assert A.find_methods("Dermatology", task="no such task").empty


def test_bad_input_errors():
    with pytest.raises(ValueError, match="n must be one of"):
        A.atlas_table(1)
    with pytest.raises(ValueError, match="n must be one of"):
        A.atlas_table("2")
    with pytest.raises(ValueError, match="tables must be"):
        A.atlas([10])
    with pytest.raises(ValueError, match="unknown modality 'X-ray'.*CXR"):
        A.find_methods("X-ray")
    with pytest.raises(ValueError, match="task must be"):
        A.find_methods("CXR", task=3)
    with pytest.raises(ValueError, match="level must be"):
        A.family_matrix("organ")


def test_heatmap_figure():
    fig = A.plot_family_heatmap()
    trace = fig.data[0]
    assert list(trace.x) == FAMILY_NAMES and trace.y[0] == "CXR"
    assert trace.z[0][0] == 18
    assert "[126], [168]" in trace.customdata[list(trace.y).index("Dermatology")][FAMILY_NAMES.index("Concept-based")]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_tables_are_package_data():
    from importlib import resources

    files = {p.name for p in resources.files("medxai_lite.atlas").joinpath("tables").iterdir()}
    assert {f"table{n:02d}.csv" for n in range(2, 11)} <= files
    assert isinstance(A.atlas_table(2), pd.DataFrame)

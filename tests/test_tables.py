"""Tables that fit the reading column: medxai_lite.viz.tables, the registry's short references
and the benchmark's score labels. (The widths themselves are measured in a browser by
benchmarks/check_table_widths.py.)"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from medxai_lite.bench import SCORE_LABELS, TABLE_B_METRICS
from medxai_lite.explain import compatibility_matrix, list_methods, methods_table
from medxai_lite.explain.registry import short_reference
from medxai_lite.viz.tables import (TableGroup, compatibility_tables, footnotes, interactive_table, registry_tables,
                                    split_columns, split_table, vertical_headers)


@pytest.fixture
def wide():
    """Rows: methods; columns (dataset, metric), two datasets x three metrics, values 0..11."""
    columns = pd.MultiIndex.from_product([["brain", "skin"], ["RMA", "RRA", "pointing game"]],
                                         names=["dataset", "metric"])
    return pd.DataFrame(np.arange(12.0).reshape(2, 6), index=pd.Index(["gradcam", "random"], name="method"),
                        columns=columns)


def test_split_by_level_keeps_every_column_once_and_drops_the_level(wide):
    parts = split_columns(wide, level="dataset")
    assert [k for k, _ in parts] == ["brain", "skin"]
    assert all(list(p.columns) == ["RMA", "RRA", "pointing game"] for _, p in parts)
    assert parts[1][1].loc["random", "RRA"] == 10.0 and parts[0][1].loc["gradcam", "RMA"] == 0.0
    by_number = split_columns(wide, level=1)          # the metric level, by number
    assert [k for k, _ in by_number] == ["RMA", "RRA", "pointing game"]
    assert list(by_number[2][1].columns) == ["brain", "skin"] and by_number[2][1].loc["random", "skin"] == 11.0
    assert sum(p.shape[1] for _, p in by_number) == wide.shape[1]


def test_split_by_max_columns_cuts_groups_in_order(wide):
    parts = split_columns(wide, level="dataset", max_columns=2)
    assert [(k, p.shape[1]) for k, p in parts] == [("brain", 2), ("brain", 1), ("skin", 2), ("skin", 1)]
    flat = split_columns(wide.droplevel(0, axis=1).iloc[:, :3], max_columns=2)
    assert [list(p.columns) for _, p in flat] == [["RMA", "RRA"], ["pointing game"]]


def test_split_by_named_groups():
    table = pd.DataFrame({"title": ["A"], "ref": ["Doe 2020"], "options": ["x, y"]}, index=["a"])
    parts = split_columns(table, groups={"main": ["title", "ref"], "knobs": ["options"]})
    assert [(k, list(p.columns)) for k, p in parts] == [("main", ["title", "ref"]), ("knobs", ["options"])]


def test_split_rejects_bad_arguments(wide):
    with pytest.raises(ValueError, match="level"):
        split_columns(wide, level="modality")
    with pytest.raises(ValueError, match="level"):
        split_columns(wide, level=2)
    with pytest.raises(ValueError, match="max_columns"):
        split_columns(wide, max_columns=0)
    with pytest.raises(ValueError, match="groups"):
        split_columns(wide.droplevel(0, axis=1), groups={"g": ["AUC"]})
    with pytest.raises(ValueError, match="level or groups"):
        split_columns(wide, level=0, groups={"g": []})
    with pytest.raises(ValueError, match="frame"):
        split_columns(wide.to_numpy())


def test_split_table_styles_and_captions_each_part(wide):
    group = split_table(wide, lambda t: t.style.format("{:.1f}"), level="dataset", caption="Scores")
    assert isinstance(group, TableGroup) and len(group) == 2
    html = group._repr_html_()
    assert "<caption>Scores: brain</caption>" in html and "<caption>Scores: skin</caption>" in html
    assert ">11.0<" in html and ">11.000000<" not in html         # the style reached every part
    assert html.count("<table") == 2
    templated = split_table(wide, level="dataset", caption="Table B ({key})")
    assert templated[1].caption == "Table B (skin)"
    called = split_table(wide, level="dataset", caption=lambda key: f"{key.upper()}!")
    assert called[0].caption == "BRAIN!"
    numbered = split_table(wide, level="dataset", max_columns=2)
    assert [s.caption for s in numbered] == ["brain (1/2)", "brain (2/2)", "skin (1/2)", "skin (2/2)"]


def test_footnotes_number_distinct_reasons_in_reading_order():
    table = pd.DataFrame({"a": ["yes", "no: too deep"], "b": ["no: no ReLU", "no: too deep"], "c": ["x", "y"]})
    short, notes = footnotes(table)
    assert short.to_dict("list") == {"a": ["yes", "no [2]"], "b": ["no [1]", "no [2]"], "c": ["x", "y"]}
    assert list(notes.index) == ["[1]", "[2]"] and list(notes["note"]) == ["no ReLU", "too deep"]
    with pytest.raises(ValueError, match="sep"):
        footnotes(table, sep="")


def test_footnotes_of_the_compatibility_matrix_lose_nothing():
    matrix = compatibility_matrix(family="Gradient-based")
    short, notes = footnotes(matrix)
    text = notes["note"].to_dict()

    def restore(cell):
        match = re.fullmatch(r"(\w+) (\[\d+\])", cell)
        return f"{match[1]}: {text[match[2]]}" if match else cell

    pd.testing.assert_frame_equal(short.map(restore), matrix)
    assert all(len(v) <= len("no [99]") for v in short.stack())


def test_compatibility_tables_add_notes_only_where_something_is_refused():
    refused = compatibility_tables(compatibility_matrix(family="CAM-based"))
    assert len(refused) == 2 and "VGG16" in refused._repr_html_()
    assert "writing-mode: vertical-rl" in refused[0].to_html()
    everything_runs = compatibility_tables(compatibility_matrix(family="Perturbation-based"))
    assert len(everything_runs) == 1 and "no [" not in everything_runs._repr_html_()


def test_vertical_headers_keep_the_other_styles():
    styled = vertical_headers(pd.DataFrame({"efficientnet_b0": [1]}).style.set_table_styles(
        [{"selector": "td", "props": "color: red"}]))
    html = styled.to_html()
    assert "writing-mode: vertical-rl" in html and "color: red" in html


def test_registry_tables_show_the_short_reference_and_move_the_options():
    group = registry_tables(methods_table("CAM-based"))
    main, options = group[0].data, group[1].data
    assert list(main.columns) == ["title", "library", "needs_gradients", "cost", "ref"]
    assert list(options.columns) == ["options"] and "ratio_channels_to_ablate" in options.loc["ablationcam", "options"]
    assert main.loc["cam", "ref"] == "Zhou et al. 2016"


@pytest.mark.parametrize("paper, short", [
    ("Zhou et al. 2016, Learning Deep Features for Discriminative Localization (CVPR)", "Zhou et al. 2016"),
    ("Fong, Patrick & Vedaldi 2019, Understanding Deep Networks via Extremal Perturbations and Smooth Masks (ICCV); "
     "Fong & Vedaldi 2017, Interpretable Explanations of Black Boxes by Meaningful Perturbation (ICCV)",
     "Fong, Patrick & Vedaldi 2019; Fong & Vedaldi 2017"),
    ("Lundberg & Lee 2017 (NeurIPS); shap's Partition explainer (Owen values on a hierarchy of image blocks)",
     "Lundberg & Lee 2017"),
    ("pytorch-grad-cam (Gildenblat et al.): Eigen-CAM on gradient x activation", "pytorch-grad-cam (Gildenblat et al.)"),
    ("Omeiza et al. 2019, Smooth Grad-CAM++ (arXiv:1908.01224)", "Omeiza et al. 2019"),
    ("pytorch-grad-cam CamMultImageConfidenceChange; Chaddad et al. 2025", "Chaddad et al. 2025"),
])
def test_short_reference_keeps_authors_and_year(paper, short):
    assert short_reference(paper) == short


def test_every_registry_entry_has_a_short_reference():
    table = methods_table()
    assert list(table.index) == list_methods()
    for paper, ref in zip(table["paper"], table["ref"]):
        assert ref and len(ref) <= len(paper) and len(ref) <= 60
        assert re.search(r"(19|20)\d\d", ref) or not re.search(r"(19|20)\d\d", paper)
    with pytest.raises(ValueError, match="paper"):
        short_reference(None)


def test_score_labels_name_every_table_b_column_in_words():
    assert set(TABLE_B_METRICS) <= set(SCORE_LABELS)
    assert all("_" not in label for label in SCORE_LABELS.values())
    assert len(set(SCORE_LABELS.values())) == len(SCORE_LABELS)


def test_interactive_table_hides_the_secondary_columns_behind_a_button():
    pytest.importorskip("itables")
    frame = pd.DataFrame({"method_a": ["x"], "p_holm": [0.01], "t": [3.2], "d_z": [0.8]})
    html = interactive_table(frame, ["method_a", "p_holm"]).data
    assert '{"targets": [2, 3], "visible": false}' in html          # t and d_z, behind the button
    assert '"buttons": ["colvis"]' in html and "p holm" in html and "p_holm" not in html
    plain = interactive_table(frame).data
    assert "colvis" not in plain and '"visible": false' not in plain
    with pytest.raises(ValueError, match="visible"):
        interactive_table(frame, ["p"])

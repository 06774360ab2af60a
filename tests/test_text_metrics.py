"""medxai_lite.metrics.text: known answers computed by hand for the tokenizer, BLEU, ROUGE-L,
CIDEr-D, METEOR (when Java exists) and the SPICE-style tuple F1; the missing-Java path; bad input.

METEOR starts a JVM (seconds): the module starts it twice in all, through two module fixtures.
"""
from __future__ import annotations

import math
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import medxai_lite.metrics as M
from medxai_lite.metrics import text
from medxai_lite.metrics.text import (
    MissingJavaError, bleu, cider_d, meteor, report_tuples, rouge_l, spice_style_f1, text_scores, tokenize,
)

HAS_JAVA = shutil.which("java") is not None
needs_java = pytest.mark.skipif(not HAS_JAVA, reason="METEOR needs a Java runtime (no 'java' on PATH)")

# The example sentences of the phantom report grammar (medxai_lite.data.phantoms).
GLIOMA = ("Axial T1 post-contrast MRI: a 23 mm irregular ring-enhancing mass with a necrotic core and surrounding "
          "oedema in the right frontal lobe, in keeping with glioma.")
MENINGIOMA = ("Axial T1 post-contrast MRI: a 30 mm well-circumscribed, homogeneously enhancing extra-axial mass along "
              "the right parietal convexity, in keeping with meningioma.")
PITUITARY = "Axial T1 post-contrast MRI: a 29 mm enhancing lesion in the sella, in keeping with a pituitary tumour."
NO_TUMOUR = "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or abnormal enhancement."
NAEVUS = ("Dermoscopy: a symmetric pigmented lesion with regular borders, a uniform brown colour and a diameter of "
          "about 4 mm, in keeping with a benign naevus.")
MELANOMA = ("Dermoscopy: an asymmetric pigmented lesion with irregular borders, multiple colours and a diameter of "
            "about 7 mm, suspicious for melanoma.")
PNEUMONIA = ("Frontal chest radiograph: patchy airspace consolidation in the right lower and left lower zones, "
             "in keeping with pneumonia.")
NORMAL_CXR = "Frontal chest radiograph: clear lungs, no focal consolidation; normal heart size."


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_splits_punctuation_keeps_numbers_and_hyphenated_words():
    s = "Axial T1 post-contrast MRI: a 23mm, ring-enhancing (irregular) mass; 4.5 mm!"
    # lowercase; ':' ',' '(' ')' ';' '!' split off and dropped; "23mm" -> "23 mm"; 4.5 and t1 whole
    assert tokenize(s) == "axial t1 post-contrast mri a 23 mm ring-enhancing irregular mass 4.5 mm"
    assert tokenize(s, keep_punctuation=True) == (
        "axial t1 post-contrast mri : a 23 mm , ring-enhancing ( irregular ) mass ; 4.5 mm !")
    assert tokenize("Extra-axial   mass.\nNormal") == "extra-axial mass normal"
    assert tokenize("") == ""


# --------------------------------------------------------------------------- BLEU

CANDS = ["the cat sat on the mat", "a dog"]
REFS = ["the cat is on the mat", ["a dog runs fast", "the dog runs"]]
TINY, SMALL = 1e-15, 1e-9      # coco-caption's epsilons (bleu_scorer.py)


def coco_bleu(correct, guess, c, r):
    """coco-caption's BLEU-1..4 from hand-counted n-gram matches."""
    out, prod = [], 1.0
    for k, (m, g) in enumerate(zip(correct, guess)):
        prod *= (m + TINY) / (g + SMALL)
        out.append(prod ** (1 / (k + 1)))
    ratio = (c + TINY) / (r + SMALL)
    bp = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    return np.array(out) * bp


def test_bleu_matches_hand_counted_ngrams():
    # item 0: cand "the cat sat on the mat" vs "the cat is on the mat"
    #   1-grams: the x2 (clipped 2), cat, on, mat match; sat does not -> 5 / 6
    #   2-grams: the cat, on the, the mat -> 3 / 5;  3-grams: on the mat -> 1 / 4;  4-grams: 0 / 3
    #   lengths 6 and 6: no brevity penalty (up to coco's epsilons)
    # item 1: cand "a dog" vs {"a dog runs fast" (4), "the dog runs" (3)}: 1-grams 2/2, 2-grams 1/1,
    #   3- and 4-grams 0/0; closest reference length is 3 (|3-2| < |4-2|): BP = exp(1 - 3/2)
    # corpus: correct [7, 4, 1, 0] of guess [8, 6, 4, 3]; c = 8, r = 6 + 3 = 9: BP = exp(1 - 9/8)
    scores = bleu(CANDS, REFS)
    expected = coco_bleu([7, 4, 1, 0], [8, 6, 4, 3], 8, 9)
    assert list(scores) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4"]
    np.testing.assert_allclose([scores[f"bleu_{k}"] for k in range(1, 5)], expected, rtol=1e-9)
    assert scores["bleu_1"] == pytest.approx(7 / 8 * math.exp(-1 / 8), abs=1e-6)
    # no matching 4-gram: coco-caption's epsilons leave BLEU-4 tiny but not 0
    assert 0 < scores["bleu_4"] < 1e-3

    items = bleu(CANDS, REFS, per_item=True)
    assert items.shape == (2, 4)
    np.testing.assert_allclose(items[0], coco_bleu([5, 3, 1, 0], [6, 5, 4, 3], 6, 6), rtol=1e-9)
    np.testing.assert_allclose(items[0, :3], [5 / 6, math.sqrt(5 / 6 * 3 / 5), 0.5], atol=1e-6)
    # item 1 has no 3-gram at all: p_3 = 1e-15 / 1e-9 = 1e-6, so BLEU-3 = (1e-6)^(1/3) * BP = 0.01 * BP
    np.testing.assert_allclose(items[1], np.array([1, 1, 1e-2, 1e-3]) * math.exp(-0.5), rtol=1e-6)

    two = bleu(CANDS, REFS, n=2)
    assert list(two) == ["bleu_1", "bleu_2"] and two["bleu_2"] == pytest.approx(scores["bleu_2"])


# --------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_from_hand_lcs():
    # LCS("the cat sat on the mat", "the cat on mat") = "the cat on mat" = 4 tokens
    # P = 4/6, R = 4/4; F = (1 + 1.2^2) P R / (R + 1.2^2 P) = 2.44 * 2/3 / (1 + 1.44 * 2/3)
    f = 2.44 * (2 / 3) / (1 + 1.44 * 2 / 3)
    assert f == pytest.approx(0.8299319727891157)
    assert rouge_l(["the cat sat on the mat"], ["the cat on mat"]) == pytest.approx(f, abs=1e-12)
    # identical -> 1, disjoint -> 0; the corpus value is the mean over items
    items = rouge_l(["the cat sat on the mat", "a b", "x y"], ["the cat on mat", "a b", "p q"], per_item=True)
    np.testing.assert_allclose(items, [f, 1.0, 0.0])
    # several references: coco-caption takes the best P and the best R separately, here from
    # different references (ref 1: P 4/6, R 1; ref 2: P 6/6, R 6/7) -> P = R = 1 -> F = 1
    assert rouge_l(["the cat sat on the mat"], [["the cat on mat", "the cat sat on the mat today"]]) == 1.0


# --------------------------------------------------------------------------- CIDEr-D


def test_cider_d_identical_and_disjoint():
    # N = 2 items, every reference n-gram has df = 1: idf = log 2 for all (unseen n-grams too,
    # coco-caption uses max(1, df)). Identical 4-word candidate: cosine 1 for n = 1..4 -> 10;
    # disjoint: 0. Corpus = mean = 5.
    items = cider_d(["a b c d", "p q r s"], ["a b c d", "w x y z"], per_item=True)
    np.testing.assert_allclose(items, [10.0, 0.0], atol=1e-12)
    assert cider_d(["a b c d", "p q r s"], ["a b c d", "w x y z"]) == pytest.approx(5.0)
    # a 2-word identical caption has no 3- or 4-grams: (1 + 1 + 0 + 0) / 4 * 10 = 5
    np.testing.assert_allclose(cider_d(["a b", "c d"], ["a b", "c d"], per_item=True), [5.0, 5.0])


def test_cider_d_partial_clipping_and_length_penalty_by_hand():
    # 3 items whose references share no n-gram: every idf is log 3 and cancels in the cosines.
    cands = ["a b c e", "f f f f", "j k l"]
    refs = ["a b c d", "f g h i", "j k l m"]
    # item 0: 1-grams 3 shared of 4 and 4 -> 3/4; 2-grams {ab,bc,ce} vs {ab,bc,cd} -> 2/3;
    #   3-grams {abc,bce} vs {abc,bcd} -> 1/2; 4-grams 0; equal length -> 10 * (3/4 + 2/3 + 1/2) / 4
    item0 = 10 * (3 / 4 + 2 / 3 + 1 / 2) / 4
    # item 1: clipping - cand weight of f is 4w, ref's w: min(4w, w) * w / (|4w| |2w|) = 1/8
    #   (without clipping it would be 4/8); "f f" etc. match nothing -> 10 * (1/8) / 4
    item1 = 10 * (1 / 8) / 4
    # item 2: 1-grams 3 / (sqrt 3 * 2) = sqrt(3)/2; 2-grams 2 / (sqrt 2 sqrt 3); 3-grams 1 / sqrt 2;
    #   no 4-gram; coco's length is the bigram count, 2 vs 3: penalty exp(-1 / (2 * 6^2))
    item2 = 10 * (math.sqrt(3) / 2 + 2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    assert (item0, item1, item2) == pytest.approx((4.791666666666667, 0.3125, 5.891672), abs=1e-6)
    np.testing.assert_allclose(cider_d(cands, refs, per_item=True), [item0, item1, item2], rtol=1e-12)
    assert cider_d(cands, refs) == pytest.approx((item0 + item1 + item2) / 3)


def test_cider_d_depends_on_the_corpus():
    # The same pair as item 0 above, now next to an item whose reference holds "a b": a, b and
    # "a b" get df = 2 = N, idf log(2/2) = 0. 1-grams: only c matches among c, e vs c, d -> 1/2;
    # 2-grams {bc, ce} vs {bc, cd} (ab weighs 0) -> 1/2; 3-grams (df 1) -> 1/2 -> 10 * 1.5 / 4
    items = cider_d(["a b c e", "x y"], ["a b c d", "a b x y"], per_item=True)
    assert items[0] == pytest.approx(3.75, abs=1e-12)
    # one item alone: every idf is log(1/1) = 0 -> 0, with a warning
    with pytest.warns(RuntimeWarning, match="one-item corpus"):
        assert cider_d(["a b c d"], ["a b c d"]) == 0.0


# --------------------------------------------------------------------------- METEOR

# METEOR 1.5, English: F_mean = P R / (0.85 P + 0.15 R), Pen = 0.6 (chunks / matches)^0.2
_M_CANDS = ["a 23 mm ring-enhancing mass in the right frontal lobe", "clear lungs",
            "melanoma pneumonia meningioma glioma", "glioma meningioma pneumonia", ""]
_M_REFS = ["a 23 mm ring-enhancing mass in the right frontal lobe", "ring-enhancing mass",
           "glioma meningioma pneumonia melanoma", "glioma meningioma pneumonia melanoma", "normal brain"]


@pytest.fixture(scope="module")
def meteor_items():
    """One JVM: METEOR per item, with the pycocoevalcap scorer recorded to check it was closed."""
    from pycocoevalcap.meteor import meteor as coco_meteor

    made = []

    class Recorded(coco_meteor.Meteor):
        def __init__(self):
            super().__init__()
            made.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(coco_meteor, "Meteor", Recorded)
        scores = meteor(_M_CANDS, _M_REFS, per_item=True)
    return scores, made


@needs_java
def test_meteor_known_answers(meteor_items):
    scores, made = meteor_items
    # identical: METEOR 1.5 sets the fragmentation to 0 for a complete one-chunk match -> exactly 1
    assert scores[0] == pytest.approx(1.0, abs=1e-12)
    # no word, stem, synonym or paraphrase in common -> 0; an empty candidate -> 0
    assert scores[1] == 0.0 and scores[4] == 0.0
    # reversed order: P = R = 1, 4 chunks of 4 matches -> 1 - 0.6 * 1^0.2 = 0.4
    assert scores[2] == pytest.approx(0.4, abs=1e-9)
    # 3 of 4 words in order: P = 1, R = 3/4, one chunk of 3 matches
    fmean = 0.75 / (0.85 * 1 + 0.15 * 0.75)
    assert scores[3] == pytest.approx(fmean * (1 - 0.6 * (1 / 3) ** 0.2), abs=1e-9)
    # the Java process was shut down before meteor() returned
    assert len(made) == 1
    proc = made[0].meteor_p
    assert proc.poll() is not None and proc.stdin.closed and not made[0].lock.locked()


@needs_java
def test_text_scores_meteor_corpus_value_is_the_jars_aggregate():
    # corpus = [identical 4 words, reversed 4 words]. Summed statistics: P = R = 1, 8 matches; the
    # perfect item adds no chunk, the reversed one 4 -> 1 - 0.6 * (4/8)^0.2 (not the mean, 0.7)
    pair = "glioma meningioma pneumonia melanoma"
    table = text_scores([pair, "melanoma pneumonia meningioma glioma"], [pair, pair], meteor=True)
    assert table.loc["meteor", "value"] == pytest.approx(1 - 0.6 * 0.5 ** 0.2, abs=1e-9)
    assert table.loc["meteor", "note"] == "" and table.attrs["skipped"] == {}


def test_missing_java_raises_a_helpful_error_and_text_scores_skips_meteor(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MissingJavaError) as err:
        meteor(["a mass"], ["a mass"])
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    for part in ("METEOR needs a Java runtime", "apt-get install default-jre-headless", "Colab",
                 "BLEU, ROUGE-L, CIDEr-D and the SPICE-style F1 work without Java"):
        assert part in msg
    with pytest.raises(MissingJavaError):
        text_scores(["a mass"], ["a mass"], meteor=True)

    cands, refs = [GLIOMA.replace("right", "left"), NORMAL_CXR], [GLIOMA, NORMAL_CXR]
    with pytest.warns(UserWarning, match="METEOR skipped: no Java runtime"):
        table = text_scores(cands, refs, meteor="auto")
    assert math.isnan(table.loc["meteor", "value"]) and "no Java" in table.loc["meteor", "note"]
    assert "meteor" in table.attrs["skipped"]
    assert table.loc["bleu_1", "value"] == pytest.approx(bleu(cands, refs)["bleu_1"])
    assert table.drop(index="meteor")["value"].notna().all()


def test_meteor_process_is_killed_when_the_jar_fails(monkeypatch):
    """A jar that dies mid-call: RuntimeError, the process killed, the scorer's lock released
    (pycocoevalcap's Meteor.__del__ would otherwise block on it forever)."""
    from pycocoevalcap.meteor import meteor as coco_meteor

    made = []

    class Broken:
        def __init__(self):
            self.meteor_p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.lock = threading.Lock()
            made.append(self)

        def compute_score(self, gts, res):
            self.lock.acquire()
            return float(b"")        # what the wrapper does when Java printed nothing

    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: "/usr/bin/java")
    monkeypatch.setattr(coco_meteor, "Meteor", Broken)
    with pytest.raises(RuntimeError, match="METEOR jar stopped"):
        meteor(["a mass"], ["a mass"])
    assert made[0].meteor_p.poll() is not None and not made[0].lock.locked()


# --------------------------------------------------------------------------- SPICE-style tuples

EXPECTED_TUPLES = {
    GLIOMA: {("mass",), ("mass", "size 15-30 mm"), ("mass", "irregular"), ("mass", "ring-enhancing"),
             ("mass", "with", "necrotic core"), ("mass", "with", "surrounding oedema"),
             ("mass", "in", "right frontal lobe"), ("finding", "consistent with", "glioma")},
    MENINGIOMA: {("mass",), ("mass", "size >=30 mm"), ("mass", "well-circumscribed"),
                 ("mass", "homogeneously enhancing"), ("mass", "extra-axial"),
                 ("mass", "in", "right parietal convexity"), ("finding", "consistent with", "meningioma")},
    PITUITARY: {("lesion",), ("lesion", "size 15-30 mm"), ("lesion", "enhancing"), ("lesion", "in", "sella"),
                ("finding", "consistent with", "pituitary tumour")},
    NO_TUMOUR: {("brain parenchyma",), ("brain parenchyma", "normal"), ("mass", "absent"),
                ("enhancement", "absent")},
    NAEVUS: {("lesion",), ("lesion", "symmetric"), ("lesion", "pigmented"), ("lesion", "with", "regular border"),
             ("lesion", "with", "uniform brown colour"), ("lesion", "size <6 mm"),
             ("finding", "consistent with", "benign naevus")},
    MELANOMA: {("lesion",), ("lesion", "asymmetric"), ("lesion", "pigmented"),
               ("lesion", "with", "irregular border"), ("lesion", "with", "multiple colour"),
               ("lesion", "size 6-15 mm"), ("finding", "suspicious for", "melanoma")},
    PNEUMONIA: {("consolidation",), ("consolidation", "patchy"), ("consolidation", "airspace"),
                ("consolidation", "in", "right lower zone"), ("consolidation", "in", "left lower zone"),
                ("finding", "consistent with", "pneumonia")},
    NORMAL_CXR: {("lungs",), ("lungs", "clear"), ("consolidation", "absent"), ("heart size",),
                 ("heart size", "normal")},
}


@pytest.mark.parametrize("sentence", list(EXPECTED_TUPLES), ids=lambda s: s.split(":")[1][:28].strip())
def test_report_tuples_of_the_example_sentences(sentence):
    assert report_tuples(sentence) == EXPECTED_TUPLES[sentence]


def test_report_tuples_variants():
    # "a asymmetric" (older phantom text) reads like "an asymmetric"
    assert report_tuples(MELANOMA.replace("an asymmetric", "a asymmetric")) == EXPECTED_TUPLES[MELANOMA]
    # exact sizes on request; cm become mm; US spellings map to UK ones
    assert ("mass", "size 23 mm") in report_tuples(GLIOMA, size_bins=None)
    assert report_tuples("a 2.3 cm tumor", size_bins=None) == {("tumour",), ("tumour", "size 23 mm")}
    assert report_tuples("Frontal chest radiograph: patchy consolidation in the right upper zone.") == {
        ("consolidation",), ("consolidation", "patchy"), ("consolidation", "in", "right upper zone")}


def test_negation_gives_no_positive_tuple():
    assert report_tuples("no focal consolidation") == {("consolidation", "absent")}
    assert report_tuples("No mass, no oedema.") == {("mass", "absent"), ("oedema", "absent")}
    # the negation ends at the comma: the lungs after it are present
    assert report_tuples("no consolidation, clear lungs") == {("consolidation", "absent"), ("lungs",),
                                                             ("lungs", "clear")}
    # saying "consolidation" where the reference says "no consolidation" matches nothing
    f1 = spice_style_f1(["Frontal chest radiograph: focal consolidation."], ["no focal consolidation"])
    assert f1["f1"] == 0.0 and f1["precision"] == 0.0 and f1["recall"] == 0.0


def test_report_tuples_of_broken_generated_text():
    # unknown words are ignored, nothing raises; adjectives without their noun go to "finding"
    assert report_tuples("Axial T1 post-contrast MRI: a 23 mm irregular ring-enhancing") == {
        ("finding", "irregular"), ("finding", "ring-enhancing"), ("finding", "size 15-30 mm")}
    assert report_tuples("mass mass in the the right frontal lobe glioma in keeping with") == {
        ("mass",), ("mass", "in", "right frontal lobe")}
    assert report_tuples("in keeping with lymphoma") == {("finding", "consistent with", "lymphoma")}
    for s in ("", ":", "no", "the the the", "in keeping with with", "right frontal ,"):
        assert report_tuples(s) == set()


def test_spice_style_f1_by_hand():
    wrong_side = GLIOMA.replace("right frontal", "left frontal")
    # 8 tuples each, 7 shared (all but the location): P = R = F1 = 7/8
    one = spice_style_f1([wrong_side], [GLIOMA])
    assert (one["precision"], one["recall"], one["f1"]) == pytest.approx((7 / 8, 7 / 8, 7 / 8))
    # add "clear lungs." against the normal chest report: C = 2 tuples, R = 5, 2 shared ->
    # P = 1, R = 2/5, F1 = 2*2 / 7. Micro: 9 shared, 10 candidate, 13 reference tuples.
    both = spice_style_f1([wrong_side, "Frontal chest radiograph: clear lungs."], [GLIOMA, NORMAL_CXR])
    assert both["precision"] == pytest.approx(9 / 10) and both["recall"] == pytest.approx(9 / 13)
    assert both["f1"] == pytest.approx(18 / 23)
    assert both["precision_mean"] == pytest.approx((7 / 8 + 1) / 2)
    assert both["recall_mean"] == pytest.approx((7 / 8 + 2 / 5) / 2)
    assert both["f1_mean"] == pytest.approx((7 / 8 + 4 / 7) / 2)
    table = spice_style_f1([wrong_side, "Frontal chest radiograph: clear lungs."], [GLIOMA, NORMAL_CXR],
                           per_item=True)
    assert table[["matched", "n_candidate", "n_reference"]].values.tolist() == [[7, 8, 8], [2, 2, 5]]
    # several references: their tuples are pooled, so the wrong side is now matched too
    assert spice_style_f1([wrong_side], [[GLIOMA, wrong_side]])["precision"] == 1.0
    # nothing to compare on either side: undefined
    assert math.isnan(spice_style_f1(["hello"], ["world"])["f1"])


def test_phantom_captions_parse_and_match_themselves():
    from medxai_lite.data.phantoms import generate

    for name in ("phantom-brain-mri", "phantom-skin", "phantom-chest-xray"):
        caps = generate(name, 8, 32, seed=1)["captions"]
        assert all(len(report_tuples(c)) >= 4 for c in caps), name
        assert spice_style_f1(caps, caps)["f1"] == 1.0


# --------------------------------------------------------------------------- all metrics, attributes, input


def test_text_scores_agrees_with_the_single_metrics():
    cands = [GLIOMA.replace("right", "left"), "a 25 mm mass in the sella", NORMAL_CXR]
    refs = [GLIOMA, [PITUITARY, "an enhancing sellar lesion"], NORMAL_CXR]
    table = text_scores(cands, refs, meteor=False)
    assert list(table.index) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d",
                                 "spice_style_f1"]
    expected = {**bleu(cands, refs), "rouge_l": rouge_l(cands, refs), "cider_d": cider_d(cands, refs),
                "spice_style_f1": spice_style_f1(cands, refs)["f1"]}
    for name, value in expected.items():
        assert table.loc[name, "value"] == pytest.approx(value), name
    assert math.isnan(table.loc["meteor", "value"]) and table.loc["meteor", "note"] == "skipped: meteor=False"
    items = text_scores(cands, refs, meteor=False, per_item=True)
    assert items.shape == (3, 8)
    np.testing.assert_allclose(items["cider_d"], cider_d(cands, refs, per_item=True))
    np.testing.assert_allclose(items[["bleu_1", "bleu_2", "bleu_3", "bleu_4"]], bleu(cands, refs, per_item=True))
    np.testing.assert_allclose(items["spice_style_f1"], spice_style_f1(cands, refs, per_item=True)["f1"])


def test_metric_attributes_and_exports():
    assert set(text.TEXT_METRICS) == {"bleu", "meteor", "rouge_l", "cider_d", "spice_style_f1"}
    for func in text.TEXT_METRICS.values():
        assert func.category == "text" and func.higher_is_better is True
    assert M.bleu is bleu and M.text_scores is text_scores and M.MissingJavaError is MissingJavaError
    assert "report_tuples" in M.__all__ and "bleu" not in M.METRICS    # not an explanation-map metric


@pytest.mark.parametrize("func", [bleu, rouge_l, cider_d, spice_style_f1, text_scores, meteor])
def test_bad_input_names_the_parameter(func):
    cases = [
        (("a mass", ["a mass"]), r"candidates must be a sequence .* not a single string"),
        (([], []), r"candidates must hold at least one item"),
        ((["a"], "a mass"), r"references must be a sequence"),
        ((["a", "b"], ["a"]), r"candidates and references must have the same length"),
        (([3], ["a"]), r"candidates\[0\] must be a string"),
        ((["a"], [3]), r"references\[0\] must be a string or a sequence of strings"),
        ((["a"], [[]]), r"references\[0\] must hold at least one reference"),
        ((["a"], [["a", 3]]), r"references\[0\]\[1\] must be a string"),
        ((["a"], ["  ;"]), r"references\[0\]\[0\] is empty"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            func(*args)     # meteor included: the input is checked before Java is looked for


def test_bad_options_name_the_parameter():
    with pytest.raises(ValueError, match="n must be an integer"):
        bleu(["a"], ["a"], n=0)
    with pytest.raises(ValueError, match="meteor must be 'auto', True or False"):
        text_scores(["a"], ["a"], meteor="yes")
    with pytest.raises(ValueError, match="size_bins"):
        report_tuples("a 3 mm mass", size_bins=[10, 5])
    with pytest.raises(ValueError, match="text must be a string"):
        report_tuples(None)
    with pytest.raises(ValueError, match="text must be a string"):
        tokenize(3)


def test_a_score_table_of_several_corpora_matches_text_scores_of_each():
    from medxai_lite.metrics.text import text_score_table

    a = (["a mass in the sella", "normal brain"], ["a mass in the sella", "normal brain parenchyma"])
    b = (["clear lungs", "consolidation in the right lower zone"], ["clear lungs", "consolidation in the left lower zone"])
    table = text_score_table({("x", "1"): a, ("y", "2"): b}, meteor=False)
    assert list(table.index) == [("x", "1"), ("y", "2")] and table.attrs["skipped"]
    for key, pair in (("x", a), ("y", b)):
        single = text_scores(*pair, meteor=False)["value"]
        row = table.xs(key, level=0).iloc[0]
        np.testing.assert_allclose(row.drop("meteor").to_numpy(float), single.drop("meteor").to_numpy(float))
    with pytest.raises(ValueError, match="groups"):
        text_score_table({})


def test_diagnosis_agreement_compares_the_named_diagnoses_only():
    from medxai_lite.metrics.text import diagnosis_agreement

    glioma = ("Axial T1 post-contrast MRI: a 23 mm irregular ring-enhancing mass with a necrotic core and surrounding "
              "oedema in the right frontal lobe, in keeping with glioma.")
    same_words = glioma.replace("glioma.", "meningioma.")         # 1 word of 30 differs, diagnosis wrong
    terse = "Axial T1 post-contrast MRI: a mass, in keeping with glioma."
    normal = "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or abnormal enhancement."
    got = diagnosis_agreement([same_words, terse, normal, normal], [glioma, glioma, normal, glioma], per_item=True)
    np.testing.assert_array_equal(got, [False, True, True, False])
    assert diagnosis_agreement([terse], [[normal, glioma]]) == 1.0          # any reference
    with pytest.raises(ValueError, match="same length"):
        diagnosis_agreement([terse], [glioma, glioma])


def test_location_agreement_counts_a_swapped_side_or_a_missed_zone_as_wrong():
    from medxai_lite.metrics.text import bleu, location_agreement

    glioma = ("Axial T1 post-contrast MRI: a 23 mm irregular ring-enhancing mass with a necrotic core and surrounding "
              "oedema in the right frontal lobe, in keeping with glioma.")
    left = glioma.replace("right frontal", "left frontal")               # one word of 30: the wrong side
    chest2 = ("Frontal chest radiograph: patchy airspace consolidation in the right upper and left lower zones, "
              "in keeping with pneumonia.")
    chest1 = ("Frontal chest radiograph: patchy airspace consolidation in the left lower zone, "
              "in keeping with pneumonia.")
    normal = "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or abnormal enhancement."
    got = location_agreement([glioma, left, chest1, chest2, glioma], [glioma, glioma, chest2, chest2, normal],
                             per_item=True)
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0, 1.0, np.nan])   # a normal reference names no place
    assert location_agreement([left, glioma], [glioma, glioma]) == 0.5
    assert bleu([left], [glioma])["bleu_4"] > 0.8                       # what the n-gram score makes of it
    assert location_agreement([left], [[normal, left]]) == 1.0           # any reference that names one
    assert np.isnan(location_agreement([glioma], [normal]))
    with pytest.raises(ValueError, match="same length"):
        location_agreement([glioma], [glioma, glioma])

"""Metrics for generated text (captions, reports, VQA answers): BLEU, METEOR, ROUGE-L, CIDEr-D
and a SPICE-style tuple F1.

BLEU, METEOR, ROUGE-L and CIDEr-D are the coco-caption implementations from ``pycocoevalcap``
(``Bleu(4)``, ``Meteor()``, ``Rouge()``, ``Cider()``), fed with this module's own tokenizer
(:func:`tokenize`) instead of coco-caption's ``PTBTokenizer``, which starts Java for every
metric. Only METEOR needs Java (the METEOR 1.5 jar that ships inside pycocoevalcap); without a
``java`` executable :func:`meteor` raises :class:`MissingJavaError` and :func:`text_scores`
skips it with a one-line warning.

SPICE itself is not here: it parses sentences with the Stanford CoreNLP models, which it
downloads on first use, so it cannot run offline. :func:`spice_style_f1` keeps SPICE's idea
(F1 over object, attribute and relation tuples) but takes the tuples from a small
deterministic parser of the phantom report grammar (:func:`report_tuples`), not from a scene
graph parser. Call it a *SPICE-style* score, never SPICE.

Every metric takes ``candidates`` (one generated text per item) and ``references`` (for each
item one reference string or a sequence of several); all higher-is-better, all with
``category = "text"``. They are listed in :data:`TEXT_METRICS`; they are not in the
explanation-map registry :data:`medxai_lite.metrics.METRICS`, whose metrics take images and maps.

Example
-------
>>> from medxai_lite.metrics.text import text_scores, report_tuples
>>> text_scores(["a 23 mm ring-enhancing mass in the left frontal lobe", "clear lungs"],
...             ["a 25 mm ring-enhancing mass in the right frontal lobe", "clear lungs, no consolidation"],
...             meteor=False)                      # DataFrame: metric -> value
>>> sorted(report_tuples("Frontal chest radiograph: clear lungs, no focal consolidation."))
[('consolidation', 'absent'), ('lungs',), ('lungs', 'clear')]
"""
from __future__ import annotations

import contextlib
import math
import re
import shutil
import warnings
from typing import Callable, Sequence

import numpy as np

from .._utils import check_positive_int

__all__ = [
    "MissingJavaError", "TEXT_METRICS", "SIZE_BINS_MM", "tokenize", "bleu", "meteor", "rouge_l", "cider_d",
    "report_tuples", "spice_style_f1", "text_scores", "text_score_table", "TEXT_SCORE_NAMES", "diagnosis_agreement",
    "location_agreement",
]

#: Size bins (mm) for the size attribute of :func:`report_tuples`: 6 mm is the "D" of the ABCD
#: rule for pigmented skin lesions, 15 and 30 mm the phantom brain reports' small / medium /
#: large cut-offs (``medxai_lite.data.phantoms``).
SIZE_BINS_MM = (6.0, 15.0, 30.0)

#: name -> function, every text metric of this module.
TEXT_METRICS: dict[str, Callable] = {}


class MissingJavaError(RuntimeError):
    """METEOR was asked for, but no Java runtime (``java`` on ``PATH``) was found."""


def _text_metric(name: str, reference: str) -> Callable:
    def decorate(func: Callable) -> Callable:
        func.name = name
        func.category = "text"
        func.higher_is_better = True
        func.reference = reference
        TEXT_METRICS[name] = func
        return func
    return decorate


# --------------------------------------------------------------------------- tokenizer and input

_TOKEN = re.compile(
    r"[^\W\d_][^\W_]*(?:[-'\u2019][^\W_]+)*"   # words, hyphenated words, "t1", "patient's"
    r"|\d+(?:\.\d+)?(?:-[^\W_]+)*"             # numbers: 23, 4.5, 2-year-old ("23mm" -> 23, mm)
    r"|[^\w\s]"                                # one punctuation character
)


def tokenize(text: str, keep_punctuation: bool = False) -> str:
    """Lowercase ``text`` and split it into tokens joined by single spaces.

    Words keep their inner hyphens and apostrophes (``ring-enhancing``, ``extra-axial``),
    numbers stay whole (``23``, ``4.5``) and are split from a glued unit (``23mm`` -> ``23 mm``);
    punctuation is split off and, as coco-caption's PTB tokenizer does, dropped
    (``keep_punctuation=True`` keeps each mark as a token). Deterministic and Java-free.

    >>> tokenize("Axial T1 post-contrast MRI: a 23mm mass.")
    'axial t1 post-contrast mri a 23 mm mass'
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string; got {type(text).__name__}")
    tokens = _TOKEN.findall(text.lower())
    if not keep_punctuation:
        tokens = [t for t in tokens if t[0].isalnum()]
    return " ".join(tokens)


def _as_items(param: str, value) -> list:
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{param} must be a sequence with one entry per item, not a single string "
                         f"(wrap it in a list: [{param[:-1] if param.endswith('s') else param}])")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{param} must be a sequence with one entry per item; got {type(value).__name__}") from None
    if not items:
        raise ValueError(f"{param} must hold at least one item; got an empty sequence")
    return items


def _prepare(candidates, references) -> tuple[dict, dict, list, list]:
    """Validate and tokenize: coco-caption's ``res`` ({i: [candidate]}) and ``gts`` ({i: [refs]}),
    and the raw texts (candidates, lists of references)."""
    cands = _as_items("candidates", candidates)
    refs = _as_items("references", references)
    if len(cands) != len(refs):
        raise ValueError(f"candidates and references must have the same length (one reference entry per "
                         f"candidate); got {len(cands)} candidates and {len(refs)} references")
    res, gts, raw_refs = {}, {}, []
    for i, (c, r) in enumerate(zip(cands, refs)):
        if not isinstance(c, str):
            raise ValueError(f"candidates[{i}] must be a string; got {type(c).__name__}")
        if isinstance(r, str):
            r = [r]
        elif isinstance(r, bytes) or not isinstance(r, (Sequence, np.ndarray)):
            raise ValueError(f"references[{i}] must be a string or a sequence of strings; got {type(r).__name__}")
        r = list(r)
        if not r:
            raise ValueError(f"references[{i}] must hold at least one reference string; got none")
        toks = []
        for j, s in enumerate(r):
            if not isinstance(s, str):
                raise ValueError(f"references[{i}][{j}] must be a string; got {type(s).__name__}")
            t = tokenize(s)
            if not t:
                raise ValueError(f"references[{i}][{j}] is empty (no word after tokenization): {s!r}")
            toks.append(t)
        res[i] = [tokenize(c)]     # an empty candidate is allowed: it scores 0
        gts[i] = toks
        raw_refs.append(r)
    return res, gts, cands, raw_refs


def _coco(module: str, cls: str):
    try:
        mod = __import__(f"pycocoevalcap.{module}", fromlist=[cls])
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the text metrics need pycocoevalcap: pip install 'pycocoevalcap>=1.2'") from err
    return getattr(mod, cls)


# --------------------------------------------------------------------------- coco-caption metrics


def _bleu(res: dict, gts: dict, n: int) -> tuple[list, np.ndarray]:
    score, per_item = _coco("bleu.bleu", "Bleu")(n).compute_score(gts, res, verbose=0)
    return [float(s) for s in score], np.asarray(per_item, dtype=float).T


@_text_metric("bleu", "Papineni et al. 2002, coco-caption implementation")
def bleu(candidates: Sequence[str], references: Sequence, n: int = 4, *, per_item: bool = False):
    """Corpus BLEU-1..``n`` as coco-caption computes it (``pycocoevalcap.bleu.Bleu``).

    ``BLEU-k = BP * (prod_{j<=k} p_j) ** (1/k)`` with the clipped n-gram precisions
    ``p_j = (sum_i correct_ij + 1e-15) / (sum_i guess_ij + 1e-9)`` (counts clipped at the highest
    count in any reference; the two epsilons are coco-caption's, so a BLEU-k with no matching
    k-gram is tiny but not 0) and the brevity penalty ``BP = exp(1 - r / c)`` when ``c < r``
    (``c`` summed candidate length, ``r`` the summed length of each item's reference closest in
    length to its candidate). Returns ``{"bleu_1": ..., "bleu_n": ...}``; ``per_item=True``
    returns the per-sentence scores instead (same formula per item), float [N, n].
    """
    n = check_positive_int("n", n)
    res, gts, _, _ = _prepare(candidates, references)
    score, items = _bleu(res, gts, n)
    if per_item:
        return items
    return {f"bleu_{k + 1}": score[k] for k in range(n)}


JAVA_HELP = ("METEOR needs a Java runtime: it runs the METEOR 1.5 jar bundled with pycocoevalcap, and no "
             "'java' executable was found on PATH. Install one (Debian/Ubuntu: apt-get install "
             "default-jre-headless; conda: conda install -c conda-forge openjdk; Google Colab already has "
             "Java), or leave METEOR out: BLEU, ROUGE-L, CIDEr-D and the SPICE-style F1 work without Java.")


def _check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise MissingJavaError(JAVA_HELP)
    return java


@contextlib.contextmanager
def _meteor_scorer():
    """pycocoevalcap's ``Meteor`` (it starts one JVM), always shut down on exit.

    ``Meteor.__del__`` takes the scorer's lock before it kills the process; if an error left the
    lock held it would block forever at garbage collection, so it is released here too.
    """
    _check_java()
    scorer = _coco("meteor.meteor", "Meteor")()
    try:
        yield scorer
    finally:
        proc = scorer.meteor_p
        with contextlib.suppress(Exception):
            proc.stdin.close()
        with contextlib.suppress(Exception):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()
        if scorer.lock.locked():
            scorer.lock.release()


def _meteor(res: dict, gts: dict) -> tuple[float, np.ndarray]:
    with _meteor_scorer() as scorer:
        try:
            score, items = scorer.compute_score(gts, res)
        except (ValueError, BrokenPipeError, OSError) as err:
            with contextlib.suppress(Exception):
                scorer.meteor_p.kill()
            detail = ""
            with contextlib.suppress(Exception):
                detail = scorer.meteor_p.stderr.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"the METEOR jar stopped without a score ({err}); Java said: {detail or 'nothing'}") \
                from err
    return float(score), np.asarray(items, dtype=float)


@_text_metric("meteor", "Banerjee & Lavie 2005; METEOR 1.5, Denkowski & Lavie 2014")
def meteor(candidates: Sequence[str], references: Sequence, *, per_item: bool = False):
    """METEOR 1.5 (``pycocoevalcap.meteor.Meteor``: ``-l en -norm``, exact, stem, synonym and
    paraphrase matches), which needs Java (:class:`MissingJavaError` otherwise).

    Per sentence ``METEOR = F_mean * (1 - Pen)`` with ``F_mean = P R / (alpha P + (1 - alpha) R)``
    and ``Pen = gamma (chunks / matches) ** beta``; the English defaults are alpha = 0.85,
    beta = 0.2, gamma = 0.6 (and delta = 0.75 weighs content against function words in P and
    R). A candidate identical to a reference scores exactly 1 (METEOR 1.5 sets the
    fragmentation to 0 for a complete single-chunk match), a reordering in which every word is
    its own chunk scores 1 - gamma = 0.4. The corpus value is the jar's: the same formula on the
    statistics summed over items (a perfectly matched item adds its matches but no chunk), not
    the mean of the per-item scores (``per_item=True`` returns those, float [N]).
    One JVM per call (a few seconds to start); it is closed before the function returns.
    """
    res, gts, _, _ = _prepare(candidates, references)
    score, items = _meteor(res, gts)     # raises MissingJavaError without Java
    return items if per_item else score


def _rouge(res: dict, gts: dict) -> np.ndarray:
    return np.asarray(_coco("rouge.rouge", "Rouge")().compute_score(gts, res)[1], dtype=float)


@_text_metric("rouge_l", "Lin 2004, coco-caption implementation")
def rouge_l(candidates: Sequence[str], references: Sequence, *, per_item: bool = False):
    """ROUGE-L F-measure as coco-caption computes it (``pycocoevalcap.rouge.Rouge``, beta = 1.2).

    Per item ``P = LCS / len(candidate)``, ``R = LCS / len(reference)`` (LCS: longest common
    token subsequence) and ``F = (1 + beta^2) P R / (R + beta^2 P)``. With several references
    coco-caption takes the largest P and the largest R separately (they may come from different
    references). The corpus value is the mean over items; ``per_item=True`` returns float [N].
    """
    res, gts, _, _ = _prepare(candidates, references)
    items = _rouge(res, gts)
    return items if per_item else float(items.mean())


def _cider(res: dict, gts: dict) -> np.ndarray:
    if len(res) == 1:
        warnings.warn("CIDEr-D of a one-item corpus is 0 by construction: every n-gram's IDF is "
                      "log(1 / 1) = 0; score the whole corpus in one call", RuntimeWarning, stacklevel=3)
    return np.asarray(_coco("cider.cider", "Cider")().compute_score(gts, res)[1], dtype=float)


@_text_metric("cider_d", "Vedantam et al. 2015 (CIDEr-D), coco-caption implementation")
def cider_d(candidates: Sequence[str], references: Sequence, *, per_item: bool = False):
    """CIDEr-D as coco-caption's ``Cider`` computes it (its ``Cider`` *is* CIDEr-D).

    For n = 1..4, candidate and each reference become tf-idf vectors of their n-grams, with raw
    counts as tf and ``idf(g) = log(N / max(1, df(g)))``, where ``df`` counts the items whose
    references contain g and N is the number of items *in the evaluated corpus* - so the score of
    one sentence depends on the rest of the corpus, an n-gram found in every item's references
    weighs nothing, and a one-item corpus always scores 0. Per item::

        CIDEr-D = 10 / 4 * sum_n 1/|S| sum_s exp(-(l_c - l_s)^2 / (2 * 6^2))
                  * sum_g min(v_c(g), v_s(g)) v_s(g) / (|v_c| |v_s|)

    (Gaussian length penalty with sigma = 6, clipped candidate weights, times 10). An n-gram
    order that the candidate or reference lacks (a 3-word sentence has no 4-grams) adds 0, so an
    identical candidate scores 10 only when it has 4 or more words. The corpus value is the mean
    over items; ``per_item=True`` returns float [N].
    """
    res, gts, _, _ = _prepare(candidates, references)
    items = _cider(res, gts)
    return items if per_item else float(items.mean())


# --------------------------------------------------------------------------- SPICE-style tuples

_SPELLING = {"tumor": "tumour", "tumors": "tumours", "nevus": "naevus", "nevi": "naevi", "edema": "oedema",
             "color": "colour", "colors": "colours", "colored": "coloured"}


def _lexicon() -> dict:
    lex: dict[tuple, tuple[str, str]] = {}

    def add(kind: str, canonical: str, *phrases: str) -> None:
        for p in phrases or (canonical,):
            lex[tuple(p.split())] = (kind, canonical)

    for canon, *forms in [("mass", "mass", "masses"), ("lesion", "lesion", "lesions"), ("nodule", "nodule", "nodules"),
                          ("tumour", "tumour", "tumours"), ("consolidation", "consolidation", "consolidations"),
                          ("opacity", "opacity", "opacities"), ("effusion", "effusion", "effusions"),
                          ("enhancement", "enhancement"), ("pneumothorax", "pneumothorax"),
                          ("brain parenchyma", "brain parenchyma", "parenchyma"),
                          ("lungs", "lungs", "lung", "lung fields"), ("heart size", "heart size", "cardiac size"),
                          ("heart", "heart")]:
        add("finding", canon, *forms)
    for canon, *forms in [("core", "core"), ("oedema", "oedema"), ("border", "border", "borders", "margin", "margins"),
                          ("colour", "colour", "colours"), ("air bronchogram", "air bronchogram", "air bronchograms")]:
        add("feature", canon, *forms)
    for canon, *forms in [("ring-enhancing", "ring-enhancing", "ring enhancing", "rim-enhancing", "rim enhancing"),
                          ("homogeneously enhancing", "homogeneously enhancing"),
                          ("heterogeneously enhancing", "heterogeneously enhancing"),
                          ("enhancing", "enhancing"), ("non-enhancing", "non-enhancing", "nonenhancing"),
                          ("well-circumscribed", "well-circumscribed", "well circumscribed"),
                          ("ill-defined", "ill-defined", "ill defined"),
                          ("extra-axial", "extra-axial", "extra axial", "extraaxial"),
                          ("intra-axial", "intra-axial", "intra axial", "intraaxial"),
                          ("airspace", "airspace", "air-space", "air space")]:
        add("attr", canon, *forms)
    for word in ("irregular", "regular", "symmetric", "asymmetric", "pigmented", "patchy", "focal", "diffuse",
                 "normal", "clear", "necrotic", "surrounding", "perilesional", "uniform", "brown", "black", "blue",
                 "grey", "multiple", "abnormal", "cystic", "solid", "homogeneous", "heterogeneous", "large",
                 "small", "enlarged", "calcified"):
        add("attr", word)
    for word in ("right", "left", "bilateral", "upper", "middle", "lower", "frontal", "parietal", "occipital",
                 "temporal"):
        add("locmod", word)
    for canon, *forms in [("lobe", "lobe", "lobes"), ("convexity", "convexity", "convexities"),
                          ("zone", "zone", "zones", "lung zone", "lung zones"), ("sella", "sella"),
                          ("cerebellum", "cerebellum")]:
        add("lochead", canon, *forms)
    for canon, *forms in [("consistent with", "in keeping with", "consistent with", "compatible with",
                           "typical of", "characteristic of", "diagnostic of"),
                          ("suspicious for", "suspicious for", "concerning for", "suggestive of", "worrying for")]:
        add("dxcue", canon, *forms)
    for canon, *forms in [("glioma", "glioma"), ("glioblastoma", "glioblastoma"), ("meningioma", "meningioma"),
                          ("pituitary tumour", "pituitary tumour", "pituitary adenoma", "pituitary"),
                          ("benign naevus", "benign naevus", "naevus", "benign nevus"),
                          ("melanoma", "melanoma"), ("pneumonia", "pneumonia"), ("metastasis", "metastasis")]:
        add("dx", canon, *forms)
    for word in ("no", "without", "not"):
        add("neg", word)
    add("with", "with", "with", "containing")
    for unit, factor in (("mm", "1"), ("millimetres", "1"), ("cm", "10"), ("centimetres", "10")):
        add("unit", factor, unit)
    return lex


_LEX = _lexicon()
_MAXLEN = max(map(len, _LEX))
_CLAUSE_END = {";", ".", "!", "?"}
#: Words dropped from a diagnosis kept verbatim (one not in the lexicon).
_DX_STOP = {"a", "an", "the", "some", "of", "with", "in", "keeping", "for", "and", "or", "to", "is", "by", "likely"}


def _size_label(mm: float, size_bins) -> str:
    if size_bins is None:
        return f"size {mm:g} mm"
    edges = list(size_bins)
    k = int(np.searchsorted(edges, mm, side="right"))
    if k == 0:
        return f"size <{edges[0]:g} mm"
    if k == len(edges):
        return f"size >={edges[-1]:g} mm"
    return f"size {edges[k - 1]:g}-{edges[k]:g} mm"


def report_tuples(text: str, *, size_bins: Sequence[float] | None = SIZE_BINS_MM) -> set[tuple]:
    """The semantic tuples of one report sentence, read by a deterministic parser of the
    phantom report grammar (``medxai_lite.data.phantoms``); used by :func:`spice_style_f1`.

    Tuple scheme (SPICE's three kinds, filled with what a reader of the report checks):

    * ``(finding,)`` - a finding that is present: ``mass``, ``lesion``, ``consolidation``,
      ``brain parenchyma``, ``lungs``, ``heart size``...;
    * ``(finding, attribute)`` - its adjectives (``irregular``, ``ring-enhancing``,
      ``well-circumscribed``, ``extra-axial``, ``symmetric``, ``pigmented``, ``patchy``,
      ``normal``, ``clear``...) and its size, binned by ``size_bins`` (mm; default
      :data:`SIZE_BINS_MM`: ``"size <6 mm"``, ``"size 6-15 mm"``, ``"size 15-30 mm"``,
      ``"size >=30 mm"``; ``size_bins=None`` keeps the number: ``"size 23 mm"``; cm become mm);
      a negated finding gives ``(finding, "absent")`` and never ``(finding,)``;
    * ``(finding, relation, object)`` - ``(finding, "with", feature)`` for a described part
      (``"necrotic core"``, ``"surrounding oedema"``, ``"regular border"``,
      ``"uniform brown colour"``, ``"multiple colour"``: feature nouns in the singular),
      ``(finding, "in", location)`` for each location (``"right frontal lobe"``, ``"sella"``,
      ``"right lower zone"``; "in", "along", "within"... all read as "in"; "right lower and left
      lower zones" gives two) and ``("finding", hedge, diagnosis)`` with hedge
      ``"consistent with"`` (in keeping with, compatible with...) or ``"suspicious for"``
      (concerning for, suggestive of).

    Example: "Axial T1 post-contrast MRI: a 23 mm irregular ring-enhancing mass with a necrotic
    core and surrounding oedema in the right frontal lobe, in keeping with glioma." gives
    ``("mass",)``, ``("mass", "size 15-30 mm")``, ``("mass", "irregular")``,
    ``("mass", "ring-enhancing")``, ``("mass", "with", "necrotic core")``,
    ``("mass", "with", "surrounding oedema")``, ``("mass", "in", "right frontal lobe")`` and
    ``("finding", "consistent with", "glioma")``.

    Parsing: lowercase, US spellings mapped to UK ones (tumor, nevus, edema, color), the header
    before the first colon (modality) dropped, then one left-to-right pass over a fixed lexicon
    (longest phrase first). Adjectives wait for the next finding noun; "with" makes later
    feature nouns parts of the current finding; sizes and locations attach to the current
    finding at the end of the phrase, or to the next finding named; "no" / "without" negate
    every finding up to the next comma or clause end; a hedge takes the diagnoses up to the next
    comma (a diagnosis of unknown words is kept verbatim, minus articles). Any other unknown word
    is ignored and nothing raises on ungrammatical text: broken generated sentences give
    whatever tuples they contain. A location needs its head noun (lobe, convexity, zone, sella):
    "in the right frontal" alone gives no location.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string; got {type(text).__name__}")
    if size_bins is not None:
        size_bins = [float(b) for b in size_bins]
        if not size_bins or any(b <= a for a, b in zip(size_bins, size_bins[1:])) or size_bins[0] <= 0:
            raise ValueError(f"size_bins must be increasing positive bin edges in mm, or None; got {size_bins}")
    toks = [_SPELLING.get(t, t) for t in tokenize(text, keep_punctuation=True).split()]
    if ":" in toks:
        toks = toks[toks.index(":") + 1:]

    out: set[tuple] = set()
    state = dict(current=None, mode="normal")   # mode: normal | with | neg | dx
    attrs: list[str] = []       # adjectives waiting for a noun
    waiting: list[tuple] = []   # sizes / locations waiting for a finding: (kind, value)
    dx_words: list[str] = []
    dx_found: list[str] = []
    dx_hedge = [""]

    def finding_subject() -> str:
        return state["current"] or "finding"

    def emit_waiting(subject: str) -> None:
        for kind, value in waiting:
            out.add((subject, value) if kind == "size" else (subject, "in", value))
        waiting.clear()

    def flush() -> None:
        """End of a phrase: loose adjectives, sizes and locations go to the current finding."""
        if state["current"] is not None or attrs or waiting:
            subject = finding_subject()
            out.update((subject, a) for a in attrs)
            emit_waiting(subject)
        attrs.clear()

    def end_dx() -> None:
        if state["mode"] == "dx":
            names = dx_found or [" ".join(w for w in dx_words if w not in _DX_STOP)]
            out.update(("finding", dx_hedge[0], name) for name in names if name)
            dx_words.clear()
            dx_found.clear()
            state["mode"] = "normal"

    def match(i: int):
        for n in range(min(_MAXLEN, len(toks) - i), 0, -1):
            hit = _LEX.get(tuple(toks[i:i + n]))
            if hit is not None:
                return n, hit
        return 1, None

    def read_location(i: int) -> int:
        """Location modifiers (possibly in groups joined by and/or/comma) and a head noun."""
        groups, j, head, end = [[]], i, None, i + 1
        while j < len(toks):
            n, hit = match(j)
            if hit and hit[0] == "locmod":
                groups[-1].append(hit[1])
                end = j + n
            elif hit and hit[0] == "lochead":
                head, j = hit[1], j + n
                break
            elif toks[j] in ("and", "or", ",", "/") and groups[-1]:
                groups.append([])
            elif toks[j] != "the":
                break
            j += n
        if head is not None:
            places = [" ".join(g + [head]) for g in groups if g] or [head]
            waiting.extend(("loc", p) for p in places)
            if state["mode"] == "with" and state["current"] is not None:
                emit_waiting(state["current"])
            return j
        return end      # no head noun: the modifiers are dropped, the separators after them are not

    i = 0
    while i < len(toks):
        tok = toks[i]
        n, hit = match(i)
        kind, canon = hit if hit else (None, None)
        if tok in _CLAUSE_END:
            end_dx()
            flush()
            state.update(current=None, mode="normal")
        elif tok == ",":
            end_dx()
            if state["mode"] == "neg":
                state["mode"] = "normal"
            elif state["current"] is not None and state["mode"] == "normal":
                flush()
        elif kind == "dxcue":
            end_dx()
            flush()
            state["mode"], dx_hedge[0] = "dx", canon
        elif state["mode"] == "dx" and kind not in ("locmod", "lochead"):
            if kind == "dx":
                dx_found.append(canon)
            elif tok.isalpha() or "-" in tok:
                dx_words.append(tok)
        elif kind == "neg":
            flush()
            state["mode"] = "neg"
        elif state["mode"] == "neg":
            if kind in ("finding", "feature"):
                out.add((canon, "absent"))
        elif kind == "finding":
            state.update(current=canon, mode="normal")
            out.add((canon,))
            out.update((canon, a) for a in attrs)
            attrs.clear()
            emit_waiting(canon)
        elif kind == "feature":
            part = " ".join(dict.fromkeys(attrs + [canon]))
            out.add((finding_subject(), "with", part))
            attrs.clear()
        elif kind == "with":
            if state["current"] is not None:
                out.update((state["current"], a) for a in attrs)
                attrs.clear()
                emit_waiting(state["current"])
            state["mode"] = "with"
        elif kind == "attr":
            attrs.append(canon)
        elif kind in ("locmod", "lochead"):
            i = read_location(i)
            continue
        elif re.fullmatch(r"\d+(?:\.\d+)?", tok) and i + 1 < len(toks):
            m, unit = match(i + 1)
            if unit and unit[0] == "unit":
                size = _size_label(float(tok) * float(unit[1]), size_bins)
                if state["mode"] == "with" and state["current"] is not None:
                    out.add((state["current"], size))
                else:
                    waiting.append(("size", size))
                i += 1 + m
                continue
        i += n
    end_dx()
    flush()
    return out


def _tuple_counts(cands: list[str], refs: list[list[str]], size_bins) -> np.ndarray:
    """int [N, 3]: matched tuples, candidate tuples, reference tuples (union over the references)."""
    rows = []
    for c, rs in zip(cands, refs):
        ct = report_tuples(c, size_bins=size_bins)
        rt = set().union(*(report_tuples(r, size_bins=size_bins) for r in rs))
        rows.append((len(ct & rt), len(ct), len(rt)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _spice_table(counts: np.ndarray):
    import pandas as pd

    m, c, r = (counts[:, k].astype(float) for k in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({"matched": counts[:, 0], "n_candidate": counts[:, 1], "n_reference": counts[:, 2],
                              "precision": np.where(c > 0, m / c, np.nan), "recall": np.where(r > 0, m / r, np.nan),
                              "f1": np.where(c + r > 0, 2 * m / (c + r), np.nan)})
    return table


@_text_metric("spice_style_f1", "SPICE-style (Anderson et al. 2016), tuples from the phantom report grammar")
def spice_style_f1(candidates: Sequence[str], references: Sequence, *,
                   size_bins: Sequence[float] | None = SIZE_BINS_MM, per_item: bool = False):
    """A SPICE-style F1 (not SPICE): tuple overlap between candidate and references, with tuples
    from :func:`report_tuples` (the phantom report grammar) instead of SPICE's scene graphs.

    Per item, with C the candidate's tuples and R the union of its references' tuples (as SPICE
    merges the reference graphs) and exact matching: ``P = |C & R| / |C|``,
    ``R = |C & R| / |R|``, ``F1 = 2 |C & R| / (|C| + |R|)`` (NaN where a denominator is 0).
    Returns a dict: ``precision``, ``recall``, ``f1`` micro-averaged over the corpus (summed
    counts), ``precision_mean``, ``recall_mean``, ``f1_mean`` (mean over items, NaN skipped)
    and ``n_items``. ``per_item=True`` returns the per-item table instead (pandas DataFrame:
    matched, n_candidate, n_reference, precision, recall, f1).
    """
    _, _, cands, refs = _prepare(candidates, references)
    counts = _tuple_counts(cands, refs, size_bins)
    table = _spice_table(counts)
    if per_item:
        return table
    m, c, r = counts.sum(0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN columns: the mean is NaN
        means = {f"{k}_mean": float(np.nanmean(table[k])) for k in ("precision", "recall", "f1")}
    return {"precision": m / c if c else math.nan, "recall": m / r if r else math.nan,
            "f1": 2 * m / (c + r) if c + r else math.nan, **means, "n_items": len(cands)}


# --------------------------------------------------------------------------- all at once

#: Rows of :func:`text_scores`, in order.
TEXT_SCORE_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "spice_style_f1")


def text_scores(candidates: Sequence[str], references: Sequence, *, meteor="auto", per_item: bool = False,
                size_bins: Sequence[float] | None = SIZE_BINS_MM):
    """Every text metric in one call (the text is tokenized once).

    ``meteor="auto"`` runs METEOR when Java is found and otherwise skips it with a one-line
    warning (its value is NaN and the reason is in the ``note`` column and in
    ``df.attrs["skipped"]``); ``meteor=True`` insists (:class:`MissingJavaError` without Java);
    ``meteor=False`` skips it.

    Returns a pandas DataFrame indexed by metric (``bleu_1`` .. ``bleu_4``, ``meteor``,
    ``rouge_l``, ``cider_d``, ``spice_style_f1``) with columns ``value`` (the corpus score as
    the single-metric functions return it; ``spice_style_f1``: micro F1), ``higher_is_better``
    and ``note``. ``per_item=True`` returns one row per item and one column per metric instead
    (BLEU per sentence, SPICE-style F1 per item).
    """
    import pandas as pd

    if not (isinstance(meteor, bool) or (isinstance(meteor, str) and meteor == "auto")):
        raise ValueError(f"meteor must be 'auto', True or False; got {meteor!r}")
    res, gts, cands, refs = _prepare(candidates, references)
    skipped = {}
    if meteor is True:
        _check_java()
    elif meteor == "auto" and shutil.which("java") is None:
        skipped["meteor"] = "skipped: no Java runtime on PATH (METEOR runs a Java jar)"
        warnings.warn("METEOR skipped: no Java runtime found (apt-get install default-jre-headless; the other "
                      "metrics are computed)", UserWarning, stacklevel=2)
    elif meteor is False:
        skipped["meteor"] = "skipped: meteor=False"

    bleu_corpus, bleu_items = _bleu(res, gts, 4)
    met_corpus, met_items = (math.nan, np.full(len(res), np.nan)) if "meteor" in skipped else _meteor(res, gts)
    rouge_items = _rouge(res, gts)
    cider_items = _cider(res, gts)
    counts = _tuple_counts(cands, refs, size_bins)
    spice_items = _spice_table(counts)["f1"].to_numpy()

    if per_item:
        data = {f"bleu_{k + 1}": bleu_items[:, k] for k in range(4)}
        data.update(meteor=met_items, rouge_l=rouge_items, cider_d=cider_items, spice_style_f1=spice_items)
        table = pd.DataFrame(data, columns=list(TEXT_SCORE_NAMES))
        table.index.name = "item"
    else:
        m, c, r = counts.sum(0).astype(float)
        values = list(bleu_corpus) + [met_corpus, float(rouge_items.mean()), float(cider_items.mean()),
                                      2 * m / (c + r) if c + r else math.nan]
        table = pd.DataFrame({"value": values, "higher_is_better": True,
                              "note": [skipped.get(k, "") for k in TEXT_SCORE_NAMES]},
                             index=pd.Index(TEXT_SCORE_NAMES, name="metric"))
    table.attrs["skipped"] = skipped
    return table


def text_score_table(groups, *, meteor="auto", size_bins: Sequence[float] | None = SIZE_BINS_MM):
    """:func:`text_scores` for several corpora at once: ``groups`` maps a name (or a tuple of
    names) to ``(candidates, references)``; returns a DataFrame with one row per group and one
    column per metric (:data:`TEXT_SCORE_NAMES`), the corpus values of :func:`text_scores`.

    METEOR runs in one JVM for all groups (starting it costs seconds, scoring a corpus
    milliseconds), still with each group's own corpus statistics; CIDEr-D's IDF is, as always,
    each group's own reference set. ``meteor`` as in :func:`text_scores`.
    """
    import pandas as pd

    if not (isinstance(meteor, bool) or (isinstance(meteor, str) and meteor == "auto")):
        raise ValueError(f"meteor must be 'auto', True or False; got {meteor!r}")
    if not hasattr(groups, "items") or not groups:
        raise ValueError(f"groups must be a non-empty mapping name -> (candidates, references), got {groups!r}")
    prepared = {}
    for name, pair in groups.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"groups[{name!r}] must be a pair (candidates, references)")
        prepared[name] = _prepare(*pair)
    run_meteor = meteor is True or (meteor == "auto" and shutil.which("java") is not None)
    if meteor is True:
        _check_java()
    elif meteor == "auto" and not run_meteor:
        warnings.warn("METEOR skipped: no Java runtime found (apt-get install default-jre-headless; the other "
                      "metrics are computed)", UserWarning, stacklevel=2)
    met = {name: math.nan for name in prepared}
    if run_meteor:
        with _meteor_scorer() as scorer:
            for name, (res, gts, _, _) in prepared.items():
                met[name] = float(scorer.compute_score(gts, res)[0])
    rows = {}
    for name, (res, gts, cands, refs) in prepared.items():
        bleu_corpus, _ = _bleu(res, gts, 4)
        m, c, r = _tuple_counts(cands, refs, size_bins).sum(0).astype(float)
        rows[name] = list(bleu_corpus) + [met[name], float(_rouge(res, gts).mean()), float(_cider(res, gts).mean()),
                                          2 * m / (c + r) if c + r else math.nan]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(TEXT_SCORE_NAMES))
    if all(isinstance(k, tuple) for k in rows):
        table.index = pd.MultiIndex.from_tuples(list(rows))
    table.attrs["skipped"] = {} if run_meteor else {"meteor": "skipped: no Java runtime on PATH" if meteor == "auto"
                                                    else "skipped: meteor=False"}
    return table


def _locations(text: str, size_bins) -> frozenset:
    return frozenset(t[2] for t in report_tuples(text, size_bins=size_bins) if len(t) == 3 and t[1] == "in")


def location_agreement(candidates: Sequence[str], references: Sequence, *, per_item: bool = False,
                       size_bins: Sequence[float] | None = SIZE_BINS_MM):
    """Share of reports that name the same locations as their reference: the sets of ``(finding,
    "in", location)`` objects of :func:`report_tuples` (``"right parietal lobe"``, ``"sella"``,
    ``"right lower zone"``...) must be equal, so a missing, an added or a swapped location (the
    wrong side) all disagree. Scored over the items whose reference names a location; with several
    references an item agrees when it matches any of them that names one. A side is one or two
    words of a report: BLEU and the tuple F1 barely notice it, this count does.

    Returns the share (NaN when no reference names a location), or with ``per_item=True`` a float
    array [N]: 1.0 agree, 0.0 disagree, NaN where the references name no location."""
    _, _, cands, refs = _prepare(candidates, references)
    out = np.full(len(cands), np.nan)
    for i, (c, rs) in enumerate(zip(cands, refs)):
        named = [loc for loc in (_locations(r, size_bins) for r in rs) if loc]
        if named:
            out[i] = float(_locations(c, size_bins) in named)
    if per_item:
        return out
    return float(np.nanmean(out)) if np.isfinite(out).any() else math.nan


def _diagnoses(text: str, size_bins) -> frozenset:
    return frozenset(t[2] for t in report_tuples(text, size_bins=size_bins)
                     if len(t) == 3 and t[0] == "finding" and t[1] in ("consistent with", "suspicious for"))


def diagnosis_agreement(candidates: Sequence[str], references: Sequence, *, per_item: bool = False,
                        size_bins: Sequence[float] | None = SIZE_BINS_MM):
    """Share of reports that state the same diagnosis as their reference: the set of diagnoses of
    the ``("finding", "consistent with" | "suspicious for", diagnosis)`` tuples of
    :func:`report_tuples`, which is empty for a normal report. A clinical check that no n-gram
    score makes: a report can share most of its words with the reference and name the wrong
    disease. With several references an item agrees when it matches any of them.
    ``per_item=True`` returns a bool array [N]."""
    _, _, cands, refs = _prepare(candidates, references)
    agree = np.array([any(_diagnoses(c, size_bins) == _diagnoses(r, size_bins) for r in rs)
                      for c, rs in zip(cands, refs)], dtype=bool)
    return agree if per_item else float(agree.mean())

"""The survey's taxonomy of XAI methods for biomedical images, as plain data.

This module encodes Section 2 of Dagnaw et al. (2025), "Explainable Artificial Intelligence in
Biomedical Image Analysis: A Comprehensive Survey" (BibTeX key ``dagnaw2025survey`` in
``book/references.bib``). The survey sorts XAI methods into three categories and eight families:

* **Visualization-based** (Sec. 2.1): CAM-based, Gradient-based (gradient/backpropagation),
  Attention-based, Perturbation-based.
* **Non-visualization-based** (Sec. 2.2): Example-based, Concept-based, Text-based.
* **Latent-based** (Sec. 2.3): one family of the same name.

Every :class:`Method` records the family and category, the BibTeX key of the method's original
paper (``citation``), the number the survey gives that paper in its own reference list
(``survey_ref``, e.g. ``"[265]"``; empty where the survey names the method without a reference),
the year of the cited paper, a one-line description written for this book, and ``section``, the
place in the survey where the method is named. A handful of methods that the survey names outside
Section 2 (Table 11 of toolkits, the prototype rows of the modality tables) but that the book
runs are kept too, with ``supplementary=True``; pass ``include_supplementary=False`` to get
Section 2 alone.

Only the standard library is imported at module level; :func:`taxonomy_frame` imports pandas
when it is called.

Example
-------
>>> from medxai_lite.taxonomy import methods_in, FAMILIES
>>> FAMILIES[0]
('Visualization-based', 'CAM-based')
>>> methods_in("Attention-based")
['Attention Rollout', 'Attention Flow', 'Focused Attention']
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "Method",
    "CATEGORIES",
    "FAMILIES",
    "TAXONOMY",
    "FRAME_COLUMNS",
    "family_of",
    "methods_in",
    "taxonomy_records",
    "taxonomy_frame",
]

#: The three top-level categories, in the survey's order.
CATEGORIES: tuple[str, ...] = ("Visualization-based", "Non-visualization-based", "Latent-based")

#: The eight families as ``(category, family)`` pairs, in the survey's order.
FAMILIES: list[tuple[str, str]] = [
    ("Visualization-based", "CAM-based"),
    ("Visualization-based", "Gradient-based"),
    ("Visualization-based", "Attention-based"),
    ("Visualization-based", "Perturbation-based"),
    ("Non-visualization-based", "Example-based"),
    ("Non-visualization-based", "Concept-based"),
    ("Non-visualization-based", "Text-based"),
    ("Latent-based", "Latent-based"),
]

_CATEGORY_OF: dict[str, str] = {family: category for category, family in FAMILIES}

#: Columns of :func:`taxonomy_frame`, in order.
FRAME_COLUMNS: tuple[str, ...] = (
    "category",
    "family",
    "method",
    "year",
    "citation",
    "survey_ref",
    "description",
)


@dataclass(frozen=True)
class Method:
    """One XAI method of the taxonomy.

    Attributes
    ----------
    name: display name (e.g. ``"Grad-CAM++"``).
    family: one of the eight family names in :data:`FAMILIES`.
    citation: BibTeX key of the original paper in ``book/references.bib``.
    survey_ref: the survey's reference number(s) in brackets, or ``""`` when it gives none.
    year: year of the cited paper, or ``None`` for a broad approach without one origin.
    description: one line in the book's own words.
    section: where the survey names it (``"2.1.1"`` ... ``"2.3"``, ``"Table 11"``, ...).
    supplementary: True when the method is named outside Section 2 only.
    """

    name: str
    family: str
    citation: str
    survey_ref: str
    year: int | None
    description: str
    section: str
    supplementary: bool = False

    def __post_init__(self) -> None:
        if self.family not in _CATEGORY_OF:
            raise ValueError(
                f"family={self.family!r} is not a taxonomy family; expected one of "
                f"{[f for _, f in FAMILIES]}"
            )

    @property
    def category(self) -> str:
        """The top-level category of the method's family."""
        return _CATEGORY_OF[self.family]

    @property
    def slug(self) -> str:
        """Lower-case name with only letters and digits (``"Grad-CAM++"`` -> ``"gradcampp"``)."""
        return "".join(ch for ch in self.name.lower().replace("+", "p") if ch.isalnum())

    def as_dict(self) -> dict[str, Any]:
        """All fields plus ``category`` as a plain dict."""
        d = asdict(self)
        d["category"] = self.category
        return d


def _m(name, family, citation, survey_ref, year, description, section, supplementary=False):
    return Method(name, family, citation, survey_ref, year, description, section, supplementary)


#: Every method, grouped by family in the order of :data:`FAMILIES`, and within a family in the
#: order the survey discusses them (supplementary entries last).
TAXONOMY: list[Method] = [
    # ---- Sec. 2.1.1 CAM-based -------------------------------------------------------------
    _m("CAM", "CAM-based", "zhou2016learning", "[265]", 2016,
       "Weights the last convolutional feature maps by the classifier weights of a "
       "global-average-pooling network; needs that architecture.", "2.1.1"),
    _m("Grad-CAM", "CAM-based", "selvaraju2017gradcam", "[195]", 2017,
       "Weights each feature map by its spatially averaged gradient of the class score, then "
       "keeps the positive part; works on any CNN.", "2.1.1"),
    _m("Grad-CAM++", "CAM-based", "chattopadhay2018gradcam", "[33]", 2018,
       "Replaces the plain gradient average with pixel-wise coefficients from higher-order "
       "derivatives, helping with several instances of a class.", "2.1.1"),
    _m("Smooth Grad-CAM++", "CAM-based", "omeiza2019smooth", "[160]", 2019,
       "Averages Grad-CAM++ maps over Gaussian-noised copies of the input for steadier maps.",
       "2.1.1"),
    _m("XGrad-CAM", "CAM-based", "fu2020axiom", "[64]", 2020,
       "Derives channel weights from sensitivity and conservation axioms: gradients weighted "
       "by normalised activations.", "2.1.1"),
    _m("Score-CAM", "CAM-based", "wang2020score", "[235]", 2020,
       "Gradient-free: masks the input with each upsampled activation map and uses the class "
       "score gain as that map's weight.", "2.1.1"),
    _m("SS-CAM", "CAM-based", "wang2020sscam", "[234]", 2020,
       "Score-CAM whose masked-input scores are averaged over Gaussian noise added to the "
       "masks or input.", "2.1.1"),
    _m("IS-CAM", "CAM-based", "naidu2020iscam", "[150]", 2020,
       "Score-CAM with scores accumulated along a path of progressively scaled masks, in the "
       "spirit of Integrated Gradients.", "2.1.1"),
    _m("Layer-CAM", "CAM-based", "jiang2021layercam", "[99]", 2021,
       "Uses element-wise positive gradients as per-location weights, so shallow layers give "
       "fine-grained maps.", "2.1.1"),
    _m("Ablation-CAM", "CAM-based", "desai2020ablation", "[47]", 2020,
       "Gradient-free: a feature map's weight is the relative drop of the class score when "
       "that map is zeroed.", "2.1.1"),
    _m("Eigen-CAM", "CAM-based", "muhammad2020eigen", "[146]", 2020,
       "Projects the feature maps onto their first principal component; class-agnostic and "
       "gradient-free.", "2.1.1"),
    _m("HiResCAM", "CAM-based", "draelos2020hirescam", "[53]", 2020,
       "Multiplies gradients and activations element-wise before summing over channels, so "
       "the map stays faithful to the score.", "Table 11", True),
    _m("FullGrad", "CAM-based", "srinivas2019fullgrad", "[211]", 2019,
       "Adds input-gradient and bias-gradient maps from every layer into one full-gradient "
       "saliency map (shipped with the CAM toolkits).", "Table 11", True),
    _m("Eigen Grad-CAM", "CAM-based", "gildenblat2021pytorchgradcam", "", None,
       "Eigen-CAM applied to gradient-weighted activations; a pytorch-grad-cam variant "
       "without a paper of its own.", "Table 11", True),
    # ---- Sec. 2.1.2 Gradient/backpropagation-based ----------------------------------------
    _m("DeconvNet", "Gradient-based", "zeiler2014visualizing", "[254]", 2014,
       "Maps activations back to pixel space through unpooling, rectification and transposed "
       "convolutions.", "2.1.2"),
    _m("Guided Backpropagation", "Gradient-based", "springenberg2015striving", "[210]", 2015,
       "Backpropagates only positive gradients through ReLUs that were also active forward, "
       "giving sharp input-level maps.", "2.1.2"),
    _m("LRP", "Gradient-based", "bach2015pixel", "[19]", 2015,
       "Redistributes the output score layer by layer onto the inputs with conservation rules "
       "such as the epsilon rule.", "2.1.2"),
    _m("Integrated Gradients", "Gradient-based", "sundararajan2017axiomatic", "[215]", 2017,
       "Integrates gradients along the straight path from a baseline to the input, times the "
       "input-minus-baseline difference.", "2.1.2"),
    _m("XRAI", "Gradient-based", "kapishnikov2019xrai", "[103]", 2019,
       "Aggregates Integrated Gradients over segmented regions and ranks the regions rather "
       "than pixels.", "2.1.2"),
    _m("DeepLIFT", "Gradient-based", "shrikumar2017learning", "[201]", 2017,
       "Assigns contributions from differences of activations to a reference input, avoiding "
       "gradient saturation.", "2.1.2"),
    _m("Vanilla Saliency", "Gradient-based", "simonyan2014deep", "[202]", 2014,
       "Absolute gradient of the class score with respect to each input pixel.",
       "Table 11", True),
    _m("SmoothGrad", "Gradient-based", "smilkov2017smoothgrad", "[207]", 2017,
       "Averages gradient maps over many noisy copies of the input to suppress noise.",
       "Table 11", True),
    # ---- Sec. 2.1.3 Attention-based ------------------------------------------------------
    _m("Attention Rollout", "Attention-based", "abnar2020quantifying", "[1]", 2020,
       "Multiplies the residual-corrected attention matrices of all layers to trace how much "
       "each token reaches the output.", "2.1.3"),
    _m("Attention Flow", "Attention-based", "abnar2020quantifying", "[1]", 2020,
       "Treats the layers' attention as a flow network and takes maximum flow from input "
       "tokens to the output.", "2.1.3"),
    _m("Focused Attention", "Attention-based", "playout2022focused", "[177]", 2022,
       "Builds high-resolution attribution maps for transformers by iterative conditional "
       "resampling of patches (retinal images).", "2.1.3"),
    # ---- Sec. 2.1.4 Perturbation-based ---------------------------------------------------
    _m("LIME", "Perturbation-based", "ribeiro2016why", "[187]", 2016,
       "Fits a weighted linear surrogate to the model's outputs on perturbed copies "
       "(e.g. superpixels switched off) of one input.", "2.1.4"),
    _m("SHAP", "Perturbation-based", "lundberg2017unified", "[127]", 2017,
       "Attributes a prediction with Shapley values from cooperative game theory, estimated "
       "e.g. by KernelSHAP.", "2.1.4"),
    _m("DeepSHAP", "Perturbation-based", "chen2021explaining", "[34]", 2021,
       "Approximates Shapley values for deep networks by propagating them through the layers "
       "DeepLIFT-style.", "2.1.4"),
    _m("Anchors", "Perturbation-based", "ribeiro2018anchors", "[188]", 2018,
       "Searches for if-then rules over input features that keep the prediction fixed with "
       "high probability under perturbation.", "2.1.4"),
    _m("RISE", "Perturbation-based", "petsiuk2018rise", "[173]", 2018,
       "Averages many random smooth binary masks, each weighted by the class score of the "
       "masked image; black-box.", "2.1.4"),
    _m("SIDU", "Perturbation-based", "muddamsetty2020sidu", "[145]", 2020,
       "Masks the input with last-layer feature maps and scores each by similarity difference "
       "and uniqueness of the predictions.", "2.1.4"),
    _m("Occlusion", "Perturbation-based", "zeiler2014visualizing", "[254]", 2014,
       "Slides a grey patch over the image and records how much the class score drops at each "
       "position.", "2.1.4"),
    _m("Meaningful Perturbation", "Perturbation-based", "fong2017interpretable", "", 2017,
       "Optimises the smallest smooth mask whose blurring or deletion destroys the "
       "prediction.", "2.1.4"),
    _m("Real-Time Saliency", "Perturbation-based", "dabkowski2017real", "[42]", 2017,
       "Trains a masking network that predicts a perturbation mask in a single forward pass.",
       "2.1.4"),
    # ---- Sec. 2.2.1 Example-based --------------------------------------------------------
    _m("CoCoX", "Example-based", "akula2020cocox", "[7]", 2020,
       "Explains with 'fault-lines': minimal sets of semantic concepts to add or remove to "
       "flip the predicted class.", "2.2.1"),
    _m("Prototype-Guided Counterfactuals", "Example-based", "vanlooveren2021interpretable",
       "[227]", 2021,
       "Steers counterfactual search towards class prototypes from the training data so the "
       "altered input stays plausible.", "2.2.1"),
    _m("CEM", "Example-based", "dhurandhar2018explanations", "[50]", 2018,
       "Contrastive explanation: finds pertinent positives (minimally sufficient) and "
       "pertinent negatives (features that must stay absent).", "2.2.1"),
    _m("L2X", "Example-based", "chen2018learning", "[35]", 2018,
       "Trains an explainer network that selects the feature subset with the most mutual "
       "information with the model's output.", "2.2.1"),
    _m("ABELE", "Example-based", "guidotti2020black", "[74]", 2020,
       "Generates exemplars and counter-exemplars in an adversarial autoencoder's latent "
       "space and fits a local decision tree.", "2.2.1"),
    _m("TraCE", "Example-based", "thiagarajan2022training", "[220]", 2022,
       "Produces counterfactuals for medical images from a calibration-driven (Learn-by-"
       "Calibrating) model and an autoencoder latent space.", "2.2.1"),
    _m("Influence Functions", "Example-based", "koh2017understanding", "[113]", 2017,
       "Estimates how up-weighting one training example would change a prediction, using an "
       "inverse-Hessian approximation.", "2.2.1"),
    _m("ProtoPNet", "Example-based", "chen2019looks", "", 2019,
       "Interpretable network that classifies by similarity of image patches to learned "
       "prototype parts ('this looks like that').", "Fig. 4a; Tables 2-10", True),
    # ---- Sec. 2.2.2 Concept-based --------------------------------------------------------
    _m("CBM", "Concept-based", "koh2020concept", "[114]", 2020,
       "Concept bottleneck: predicts human-defined concepts first, then the label from the "
       "concepts alone, allowing interventions.", "2.2.2"),
    _m("PCBM", "Concept-based", "yuksekgonul2022posthoc", "[253]", 2022,
       "Post-hoc concept bottleneck on a frozen backbone, with concepts from other data or "
       "text and an optional residual.", "2.2.2"),
    _m("ProbCBM", "Concept-based", "kim2023probabilistic", "[253]", 2023,
       "Concept bottleneck whose concepts are probabilistic embeddings, so each concept "
       "carries an uncertainty.", "2.2.2"),
    _m("TCAV", "Concept-based", "kim2018interpretability", "[110]", 2018,
       "Learns a concept direction from example images with a linear probe and counts how "
       "often the class score rises along it.", "2.2.2"),
    _m("ACE", "Concept-based", "ghorbani2019towards", "[70]", 2019,
       "Discovers concepts automatically by clustering multi-resolution image segments in "
       "activation space, scored with TCAV.", "2.2.2"),
    _m("VCM", "Concept-based", "fang2020concept", "[61]", 2020,
       "Mines visual concepts from saliency-refined regions for fine-grained images "
       "(infectious keratitis) and tests them.", "2.2.2"),
    _m("ConceptSHAP", "Concept-based", "yeh2020completeness", "[245]", 2020,
       "Learns a set of concept vectors that is 'complete' for the prediction and shares "
       "credit among them with Shapley values.", "2.2.2"),
    _m("CaCE", "Concept-based", "goyal2019explaining", "[73]", 2019,
       "Measures the causal effect of intervening on a concept, using generated "
       "counterfactual images.", "2.2.2"),
    # ---- Sec. 2.2.3 Text-based -----------------------------------------------------------
    _m("VQA", "Text-based", "antol2015vqa", "[12]", 2015,
       "Answers free-form questions about an image, exposing what the model reads from it "
       "(e.g. lesion size or location).", "2.2.3"),
    _m("Image Captioning", "Text-based", "ayesha2021automatic", "[18]", None,
       "Generates a sentence or report describing the image (template, retrieval or neural "
       "encoder-decoder).", "2.2.3"),
    _m("Captioning with Visual Attention", "Text-based", "xu2015show", "[239]", 2015,
       "A captioner that attends to image regions for each word, so every word comes with a "
       "spatial map.", "2.2.3"),
    _m("Visual Dialog", "Text-based", "das2017visual", "[44]", 2017,
       "Holds a multi-turn conversation about an image, answering follow-up questions in "
       "context.", "2.2.3"),
    # ---- Sec. 2.3 Latent-based -----------------------------------------------------------
    _m("t-SNE", "Latent-based", "vandermaaten2008visualizing", "[46, 85, 149]", 2008,
       "Embeds learned features in 2-D by matching neighbour probabilities; shows clusters "
       "and class separation.", "2.3"),
    _m("UMAP", "Latent-based", "mcinnes2018umap", "[140]", 2018,
       "Graph-based manifold embedding of learned features that keeps more global structure "
       "than t-SNE and scales better.", "2.3"),
]


def _check_family(family: str) -> str:
    if family not in _CATEGORY_OF:
        raise ValueError(
            f"family={family!r} is unknown; expected one of {[f for _, f in FAMILIES]}"
        )
    return family


def family_of(method: str) -> str:
    """Family of the method called ``method`` (matched case-insensitively, ignoring
    punctuation, so ``"gradcam++"`` finds ``"Grad-CAM++"``)."""
    key = Method(method, "CAM-based", "", "", None, "", "").slug
    for m in TAXONOMY:
        if m.slug == key:
            return m.family
    raise ValueError(
        f"method={method!r} is not in the taxonomy; expected one of {[m.name for m in TAXONOMY]}"
    )


def methods_in(family: str, include_supplementary: bool = True) -> list[str]:
    """Names of the methods of ``family``, in the survey's order.

    ``include_supplementary=False`` keeps only the methods named in Section 2 of the survey.
    Unknown family names raise ``ValueError`` listing the valid ones.
    """
    _check_family(family)
    return [
        m.name
        for m in TAXONOMY
        if m.family == family and (include_supplementary or not m.supplementary)
    ]


def taxonomy_records(include_supplementary: bool = True) -> list[dict[str, Any]]:
    """The taxonomy as a list of dicts keyed by :data:`FRAME_COLUMNS` (plus ``section`` and
    ``supplementary``), without needing pandas."""
    rows = []
    for m in TAXONOMY:
        if m.supplementary and not include_supplementary:
            continue
        rows.append(
            {
                "category": m.category,
                "family": m.family,
                "method": m.name,
                "year": m.year,
                "citation": m.citation,
                "survey_ref": m.survey_ref,
                "description": m.description,
                "section": m.section,
                "supplementary": m.supplementary,
            }
        )
    return rows


def taxonomy_frame(include_supplementary: bool = True, with_source: bool = False):
    """The taxonomy as a pandas DataFrame, one row per method.

    Columns: ``category, family, method, year, citation, survey_ref, description`` (``year`` is
    a nullable integer). ``with_source=True`` appends ``section`` and ``supplementary``.
    ``include_supplementary=False`` drops the methods the survey names outside Section 2.

    Example
    -------
    >>> df = taxonomy_frame()
    >>> int((df["family"] == "Latent-based").sum())
    2
    """
    import pandas as pd

    columns = list(FRAME_COLUMNS) + (["section", "supplementary"] if with_source else [])
    df = pd.DataFrame(taxonomy_records(include_supplementary), columns=columns)
    df["year"] = df["year"].astype("Int64")
    return df

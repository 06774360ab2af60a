"""Concept example sets from the phantoms' concept labels, and the true interventions behind them.

Every phantom image carries its concept vector (``dataset.concepts``, names in
``dataset.concept_names``) and can be re-rendered with a concept forced
(:func:`medxai_lite.data.intervene`). This module turns both into what the concept methods need:

- :func:`concept_sets`: positive and negative example images of a concept, either **natural**
  examples chosen by the concept label (``source="labels"``: what a clinician's annotation gives,
  and what TCAV (Kim et al. 2018) uses) or **interventional** pairs, the same images rendered with
  the concept on and off (``source="intervention"``: nothing but the concept differs);
- :func:`random_sets`: random image sets, the counterparts of TCAV's significance test;
- :func:`intervention_arms`: the two arms ``do(c = high)`` and ``do(c = low)`` of a concept on the
  images where that intervention acts (see :func:`intervention_arms` for the rule), which the causal
  concept effect (:func:`medxai_lite.concepts.causal_concept_effect`) compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .._utils import check_choice, check_positive_int

__all__ = ["ConceptSet", "Arms", "concept_sets", "random_sets", "intervention_arms", "concept_names",
           "LESION_CONCEPT", "SOURCES"]

#: Where :func:`concept_sets` takes its examples from.
SOURCES = ("labels", "intervention")

#: The concept of each phantom that says whether there is a lesion at all; the phantom's other lesion
#: concepts have nothing to act on where it is 0 (``medxai_lite.data.phantoms``: "On 'no tumour'
#: images these three have nothing to act on", "Normal films have no opacity for these concepts").
LESION_CONCEPT = {"phantom-brain-mri": "mass present", "phantom-chest-xray": "consolidation"}


@dataclass
class ConceptSet:
    """Example images of one concept.

    Attributes
    ----------
    name : str
    positives, negatives : Tensor float32 [n, 3, H, W]
        Normalised images with the concept present / absent (``negatives`` may be empty).
    positive_index, negative_index : int arrays
        Positions of the examples in the source dataset (with ``source="intervention"`` both are the
        same images, re-rendered).
    source : str
        ``"labels"`` or ``"intervention"`` (:data:`SOURCES`).
    values : tuple
        ``(low, high)``: the concept values the two sets were chosen (labels: threshold) or forced at.
    """

    name: str
    positives: torch.Tensor
    negatives: torch.Tensor
    positive_index: np.ndarray
    negative_index: np.ndarray
    source: str
    values: tuple = (0.0, 1.0)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positives)


@dataclass
class Arms:
    """The two arms of a true intervention on one concept (see :func:`intervention_arms`).

    ``high`` and ``low`` are datasets of the same length as the source; ``index`` the positions
    where the intervention acts (both arms hold the same images there, the concept forced to
    ``values[1]`` and ``values[0]``); ``natural_high``: the high arm is the untouched image (a
    concept that can only be switched off, such as ``"mass present"``).
    """

    concept: str
    high: object
    low: object
    index: np.ndarray
    values: tuple
    natural_high: bool = False


def _is_phantom(dataset) -> bool:
    from ..data import PHANTOMS

    generation = getattr(dataset, "generation", None)
    return isinstance(generation, dict) and generation.get("name") in PHANTOMS


def concept_names(dataset, *, artefact: bool = True) -> list[str]:
    """The concepts of ``dataset``: its ``concept_names``, plus ``"artefact"`` (the shortcut
    artefact) for a phantom when ``artefact``."""
    names = list(getattr(dataset, "concept_names", None) or [])
    if not names:
        raise ValueError(f"dataset must carry concept labels (dataset.concepts); {dataset!r} has none")
    if artefact and _is_phantom(dataset):
        names.append("artefact")
    return names


def _batch(dataset, index) -> torch.Tensor:
    index = [int(i) for i in index]
    if not index:
        first = dataset[0]["image"]
        return torch.zeros((0, *first.shape), dtype=first.dtype)
    return dataset.batch(index)["image"]


def _labels_of(dataset, concept: str) -> np.ndarray:
    if concept == "artefact":
        meta = getattr(dataset, "meta", None) or {}
        if "artefact" not in meta or not np.asarray(meta["artefact"]).any():
            raise ValueError("concept 'artefact': no image of this dataset carries the shortcut artefact; draw it "
                             "with shortcut > 0 or use source='intervention'")
        return np.asarray(meta["artefact"], dtype=np.float32)
    names = list(getattr(dataset, "concept_names", None) or [])
    if concept not in names:
        valid = names + (["artefact"] if _is_phantom(dataset) else [])
        raise ValueError(f"unknown concept {concept!r}; valid concepts of {getattr(dataset, 'name', 'dataset')}: "
                         f"{', '.join(valid) or 'none (the dataset has no concept labels)'}")
    return np.asarray(dataset.concepts, dtype=np.float32)[:, names.index(concept)]


def intervention_arms(dataset, concept: str, *, low: float = 0.0, high: float = 1.0) -> Arms:
    """The two arms ``do(concept = high)`` and ``do(concept = low)`` of phantom ``dataset``.

    Which images an intervention acts on follows :data:`medxai_lite.data.INTERVENTIONS`:

    - a concept that accepts any value in [0, 1] (the dermoscopy ABCD attributes) is forced to
      ``low`` and ``high`` on every image;
    - a binary concept (0 or 1) is forced to 0 and 1; on the brain and chest phantoms only on the
      images with a lesion (:data:`LESION_CONCEPT` = 1), since on the others it has nothing to act on;
      ``"artefact"`` acts on every image;
    - a concept that can only be switched off (``"mass present"``, ``"consolidation"``: the images
      without a lesion have none to add) compares the natural images where it is 1 with the same
      images rendered with it at 0.

    ``low`` and ``high`` apply to the continuous concepts only (binary ones use 0 and 1).
    """
    from ..data import INTERVENTIONS, intervene

    if not _is_phantom(dataset):
        raise ValueError(f"dataset must be a phantom dataset made by load_dataset (true interventions re-render its "
                         f"images); got {dataset!r}")
    name = dataset.generation["name"]
    allowed = INTERVENTIONS[name]
    if concept not in allowed:
        raise ValueError(f"unknown concept {concept!r} for interventions on {name}; valid concepts: "
                         f"{', '.join(allowed)}")
    for label, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{label} must be a number in [0, 1]; got {value!r}")
    if allowed[concept] is None:
        if not float(low) < float(high):
            raise ValueError(f"low must be smaller than high; got low={low!r}, high={high!r}")
        values = (float(low), float(high))
    else:
        values = (0.0, 1.0)
    n = len(dataset)
    if allowed[concept] == (0.0,):
        index = np.flatnonzero(_labels_of(dataset, concept) > 0.5)
        return Arms(concept, dataset, intervene(dataset, {concept: 0.0}), index, values, natural_high=True)
    lesion = LESION_CONCEPT.get(name)
    if concept != "artefact" and lesion is not None:
        index = np.flatnonzero(_labels_of(dataset, lesion) > 0.5)
    else:
        index = np.arange(n)
    return Arms(concept, intervene(dataset, {concept: values[1]}), intervene(dataset, {concept: values[0]}),
                index, values)


def concept_sets(dataset, concepts: str | Sequence[str] | None = None, *, n: int = 50, threshold: float = 0.5,
                 source: str = "labels", low: float = 0.0, high: float = 1.0, seed: int = 0) -> dict[str, ConceptSet]:
    """Positive and negative example images of each concept in ``concepts``.

    Parameters
    ----------
    dataset : BiomedDataset with concept labels (the phantoms)
    concepts : str, sequence of str or None
        Concept names (``dataset.concept_names``, plus ``"artefact"`` for a phantom); ``None``: all
        of :func:`concept_names`.
    n : int
        Examples per set (fewer when the dataset holds fewer).
    threshold : float
        ``source="labels"``: positives have a concept value above it, negatives at or below.
    source : {"labels", "intervention"}
        ``"labels"``: natural images chosen by their concept value (``"artefact"``: by
        ``meta["artefact"]``); ``"intervention"``: the same ``n`` images rendered with the concept
        forced on (``high``) and off (``low``), on the images the intervention acts on
        (:func:`intervention_arms`).
    seed : int
        Which images are drawn (NumPy ``default_rng``).

    Returns
    -------
    dict name -> :class:`ConceptSet`, in the order asked.

    Example
    -------
    >>> sets = concept_sets(load_dataset("phantom-skin", "train", image_size=64, n=200), "colour variegation")
    >>> sets["colour variegation"].positives.shape
    torch.Size([50, 3, 64, 64])
    """
    check_choice("source", source, SOURCES)
    n = check_positive_int("n", n)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be a number in [0, 1); got {threshold!r}")
    check_positive_int("seed", seed, minimum=0)
    if concepts is None:
        concepts = concept_names(dataset)
    elif isinstance(concepts, str):
        concepts = [concepts]
    concepts = list(concepts)
    if not concepts or not all(isinstance(c, str) for c in concepts) or len(set(concepts)) != len(concepts):
        raise ValueError(f"concepts must be distinct concept names; got {concepts!r}")
    out = {}
    for k, concept in enumerate(concepts):
        rng = np.random.default_rng([int(seed), k])
        if source == "labels":
            values = _labels_of(dataset, concept)
            pos, neg = np.flatnonzero(values > threshold), np.flatnonzero(values <= threshold)
            if len(pos) < 2:
                raise ValueError(f"concept {concept!r} has {len(pos)} positive example(s) above threshold={threshold} "
                                 "in this dataset; at least 2 are needed (draw more images, lower the threshold or "
                                 "use source='intervention')")
            pos = np.sort(rng.choice(pos, min(n, len(pos)), replace=False))
            neg = np.sort(rng.choice(neg, min(n, len(neg)), replace=False)) if len(neg) else neg
            out[concept] = ConceptSet(concept, _batch(dataset, pos), _batch(dataset, neg), pos, neg, source,
                                      (float(threshold), float(threshold)))
        else:
            arms = intervention_arms(dataset, concept, low=low, high=high)
            if len(arms.index) < 2:
                raise ValueError(f"concept {concept!r}: the intervention acts on {len(arms.index)} image(s) of this "
                                 "dataset; at least 2 are needed")
            idx = np.sort(rng.choice(arms.index, min(n, len(arms.index)), replace=False))
            out[concept] = ConceptSet(concept, _batch(arms.high, idx), _batch(arms.low, idx), idx, idx, source,
                                      arms.values)
    return out


def random_sets(images, n: int, n_sets: int, *, seed: int = 0) -> list[torch.Tensor]:
    """``n_sets`` random sets of ``n`` images each (each drawn without replacement; sets may share
    images), from a dataset or a normalised image tensor ``[M, 3, H, W]``: TCAV's random
    counterparts (Kim et al. 2018 draw them from a broad image collection; here from the same
    distribution as the data)."""
    n = check_positive_int("n", n)
    n_sets = check_positive_int("n_sets", n_sets)
    check_positive_int("seed", seed, minimum=0)
    is_tensor = isinstance(images, torch.Tensor)
    if not is_tensor and not (hasattr(images, "batch") and hasattr(images, "__len__")):
        raise ValueError(f"images must be a dataset or an image tensor [M, 3, H, W]; got {type(images).__name__}")
    if is_tensor and images.ndim != 4:
        raise ValueError(f"images must have shape [M, 3, H, W]; got {list(images.shape)}")
    total = len(images)
    if total < 2:
        raise ValueError(f"images must hold at least 2 images to draw random sets from; got {total}")
    size = min(n, total)
    rng = np.random.default_rng([int(seed), 1_000_003])
    out = []
    for _ in range(n_sets):
        idx = np.sort(rng.choice(total, size, replace=False))
        out.append(images[torch.from_numpy(idx)] if is_tensor else _batch(images, idx))
    return out

"""The dataset contract shared by the phantoms and the public datasets.

Every item is a dict:

- ``image``: float32 tensor ``[3,H,W]``, normalised with the ImageNet mean and std
  (use :func:`denormalize` to get back to [0,1] for display);
- ``label``: int;
- ``mask``: bool tensor ``[H,W]`` (the lesion), only where the dataset has masks;
- ``concepts``: float32 tensor ``[K]``, only where the dataset has concept labels;
- ``caption``: str, only where the dataset has report sentences;
- ``qa``: list of ``(question, answer)`` pairs, only where the dataset has them;
- ``index``: int, the item's position.

Every dataset carries ``name``, ``classes``, ``concept_names``, ``modality`` and ``split``.
"""
from __future__ import annotations

import abc
from typing import Sequence

import numpy as np
import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "denormalize", "BiomedDataset", "ArrayDataset"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(x: torch.Tensor):
    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(shape)
    return mean, std


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0,1] images ``[3,H,W]`` or ``[N,3,H,W]`` -> ImageNet-normalised."""
    mean, std = _stats(images)
    return (images - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised ``[3,H,W]`` or ``[N,3,H,W]`` -> [0,1] (clipped), for display."""
    mean, std = _stats(images)
    return (images * std + mean).clamp(0.0, 1.0)


class BiomedDataset(torch.utils.data.Dataset, abc.ABC):
    """Base class: subclasses implement ``__len__`` and ``raw(i)``.

    ``raw(i)`` returns a dict with ``image`` as uint8 ``[H,W,3]`` (or float in [0,1]), ``label``
    and optionally ``mask``, ``concepts``, ``caption``, ``qa``.
    """

    name: str = ""
    classes: Sequence[str] = ()
    concept_names: Sequence[str] = ()
    modality: str = ""
    split: str = "train"

    @abc.abstractmethod
    def raw(self, i: int) -> dict:
        """The ``i``-th item before normalisation (see the class docstring)."""

    def __getitem__(self, i: int) -> dict:
        if not 0 <= int(i) < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} items")
        r = self.raw(int(i))
        img = np.asarray(r["image"])
        if img.dtype == np.uint8:
            img = img.astype(np.float32) / 255.0
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        item = {
            "image": normalize(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))),
            "label": int(r["label"]),
            "index": int(i),
        }
        if r.get("mask") is not None:
            item["mask"] = torch.from_numpy(np.asarray(r["mask"], dtype=bool))
        if r.get("concepts") is not None:
            item["concepts"] = torch.as_tensor(np.asarray(r["concepts"], dtype=np.float32))
        if r.get("caption") is not None:
            item["caption"] = str(r["caption"])
        if r.get("qa") is not None:
            item["qa"] = list(r["qa"])
        return item

    @property
    def labels(self) -> np.ndarray:
        """All labels as an int array (subclasses may override with a faster version)."""
        return np.array([self.raw(i)["label"] for i in range(len(self))], dtype=np.int64)

    def batch(self, indices: Sequence[int] | None = None) -> dict:
        """Stack items into tensors: ``image`` [N,3,H,W], ``label`` [N], ``mask`` [N,H,W] where present."""
        indices = range(len(self)) if indices is None else indices
        items = [self[i] for i in indices]
        out = {"image": torch.stack([it["image"] for it in items]),
               "label": torch.tensor([it["label"] for it in items]),
               "index": torch.tensor([it["index"] for it in items])}
        if all("mask" in it for it in items) and items:
            out["mask"] = torch.stack([it["mask"] for it in items])
        if all("concepts" in it for it in items) and items:
            out["concepts"] = torch.stack([it["concepts"] for it in items])
        if all("caption" in it for it in items) and items:
            out["caption"] = [it["caption"] for it in items]
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"classes={list(self.classes)}, modality={self.modality!r})")


class ArrayDataset(BiomedDataset):
    """A dataset held in memory as arrays (the phantoms).

    ``generation``: the ``load_dataset`` arguments that made a phantom dataset (``None`` otherwise),
    so that :func:`medxai_lite.data.intervene` can re-render it with a concept forced.
    """

    def __init__(self, *, name, split, images, labels, classes, modality, masks=None, concepts=None,
                 concept_names=(), captions=None, qa=None, meta=None, generation=None):
        self.name, self.split, self.modality = name, split, modality
        self.images = images            # uint8 [N,H,W,3]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.masks = masks              # bool [N,H,W] or None
        self.concepts = concepts        # float32 [N,K] or None
        self.concept_names = list(concept_names)
        self.captions = captions
        self.qa = qa
        self.meta = meta or {}
        self.generation = generation

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def raw(self, i: int) -> dict:
        return {
            "image": self.images[i],
            "label": self._labels[i],
            "mask": None if self.masks is None else self.masks[i],
            "concepts": None if self.concepts is None else self.concepts[i],
            "caption": None if self.captions is None else self.captions[i],
            "qa": None if self.qa is None else self.qa[i],
        }

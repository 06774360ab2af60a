"""The public biomedical datasets: load a prepared one, and the one import for all the rest.

This module holds :class:`PublicImageDataset` and :func:`load_public`, which read a prepared
dataset from ``<root>/<name>/<split>/<class>/*.png``. It also re-exports the names of the
modules that get the data there, so that ``from medxai_lite.data.public import ...`` serves
every task:

- :mod:`medxai_lite.data.specs`: the registry :data:`PUBLIC_DATASETS` of five datasets
  (``brain-tumor-mri``, ``figshare-brain-tumor``, ``ham10000``, ``isic-benign-malignant``,
  ``chest-xray-pneumonia``), :class:`DatasetSpec`, :func:`get_spec`;
- :mod:`medxai_lite.data.remote`: :class:`RemoteFile` and :class:`Source`, where the files
  come from (plain URLs, Kaggle, the figshare and Dataverse APIs, files fetched by hand);
- :mod:`medxai_lite.data.fetch`: :func:`fetch` (download + prepare), :func:`download_public`,
  :func:`prepare_public`, :func:`verify_public`, :func:`data_root`, the prepared layout and
  the mirror override (``MEDXAI_DATA_MIRROR``);
- :mod:`medxai_lite.data.prepare`: the per-dataset preparers, the splits and
  :class:`PrepareReport`;
- :mod:`medxai_lite.data.download`: verified, resumable downloads and safe extraction.

The ``medxai data list | fetch | verify | prepare`` commands and the entry point of the
``data_scripts/`` (``register_cli``, ``main_for``) are in :mod:`medxai_lite.cli`.

Example
-------
>>> from medxai_lite.data.public import fetch, load_public
>>> fetch("brain-tumor-mri")                                              # doctest: +SKIP
>>> ds = load_public("brain-tumor-mri", split="test", image_size=224)     # doctest: +SKIP
>>> ds[0]["image"].shape                                                  # doctest: +SKIP
torch.Size([3, 224, 224])
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .base import BiomedDataset
from .fetch import (
    DATA_ENV,
    MIRROR_ENV,
    _fetch_command,
    data_root,
    download_public,
    download_state,
    fetch,
    prepare_public,
    verify_public,
)
from .prepare import PrepareReport
from .remote import RemoteFile, Source
from .specs import PUBLIC_DATASETS, DatasetSpec, get_spec

__all__ = [
    "DATA_ENV",
    "MIRROR_ENV",
    "RemoteFile",
    "Source",
    "DatasetSpec",
    "PrepareReport",
    "PUBLIC_DATASETS",
    "get_spec",
    "data_root",
    "download_public",
    "download_state",
    "prepare_public",
    "fetch",
    "verify_public",
    "load_public",
    "PublicImageDataset",
]


class PublicImageDataset(BiomedDataset):
    """A prepared public dataset, read lazily from ``<root>/<name>/<split>/<class>/*.png``.

    Items follow :mod:`medxai_lite.data.base`: ``image`` float32 ``[3,H,W]`` (ImageNet-normalised;
    grayscale files are repeated to RGB), ``label`` int, ``mask`` bool ``[H,W]`` where the
    dataset has masks (resized with nearest neighbour), ``index``.
    """

    def __init__(self, name: str, split: str = "train", image_size=None, n: int | None = None,
                 seed: int = 0, root: str | os.PathLike | None = None):
        spec = get_spec(name)
        root = data_root(root)
        base = root / name
        manifest_path = base / "manifest.json"
        if not manifest_path.is_file():
            state = download_state(name, root)
            hint = (f"the files are downloaded but not prepared: run `medxai data prepare {name} --root {root}`"
                    if state == "downloaded" else
                    f"its download is incomplete: run `{_fetch_command(name, root)}` again (it resumes)"
                    if state == "partial" else
                    f"run `{_fetch_command(name, root)}` (or `python data_scripts/"
                    f"{name.replace('-', '_')}.py --root {root}`)")
            raise FileNotFoundError(f"dataset {name!r} is not available under {root.resolve()}: {hint}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if split not in manifest["splits"]:
            raise ValueError(f"split {split!r} does not exist for {name}; available: "
                             f"{', '.join(sorted(manifest['splits']))}")
        self.name, self.split, self.modality = name, split, manifest.get("modality", spec.modality)
        self.classes = list(manifest["classes"])
        self.concept_names = ()
        self.has_masks = bool(manifest.get("has_masks"))
        self.root = base
        self.image_size = _check_size(image_size)
        paths, labels = [], []
        for label, cls in enumerate(self.classes):
            files = sorted((base / split / cls).glob("*.png"))
            paths += files
            labels += [label] * len(files)
        self._labels = np.asarray(labels, dtype=np.int64)
        keep = _subsample(self._labels, n, seed)
        self.paths = [paths[i] for i in keep]
        self._labels = self._labels[keep]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def mask_path(self, i: int) -> Path:
        p = self.paths[i]
        return p.parent.parent / "masks" / p.parent.name / p.name

    def raw(self, i: int) -> dict:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            if self.image_size is not None and im.size != self.image_size[::-1]:
                im = im.resize(self.image_size[::-1], Image.BILINEAR)
            image = np.asarray(im, dtype=np.uint8)
        mask = None
        if self.has_masks:
            mp = self.mask_path(i)
            if mp.is_file():
                with Image.open(mp) as m:
                    m = m.convert("L")
                    if m.size != (image.shape[1], image.shape[0]):
                        m = m.resize((image.shape[1], image.shape[0]), Image.NEAREST)
                    mask = np.asarray(m) > 127
        return {"image": image, "label": int(self._labels[i]), "mask": mask}


def _check_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (isinstance(image_size, (tuple, list)) and len(image_size) == 2
          and all(isinstance(s, (int, np.integer)) for s in image_size)):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be an int, a pair (H, W) of ints, or None; got {image_size!r}")
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size  # (H, W)


def _subsample(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of ``n`` items chosen by ``seed``, class proportions kept (largest remainders)."""
    total = len(labels)
    if n is None:
        return np.arange(total)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / total
    quota = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[j] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def load_public(name: str, split: str = "train", image_size=None, n: int | None = None, seed: int = 0,
                root: str | os.PathLike | None = None) -> PublicImageDataset:
    """Load a prepared public dataset (see :class:`PublicImageDataset`).

    ``image_size``: int or ``(H, W)``, or None for the prepared size (which varies between
    images). ``n``: keep ``n`` items, drawn by ``seed`` with class proportions kept. Raises
    ``ValueError`` for an unknown name or split, ``FileNotFoundError`` with the command that
    fetches the data when it is missing.
    """
    return PublicImageDataset(name, split=split, image_size=image_size, n=n, seed=seed, root=root)


def __getattr__(name: str):
    # The command-line helpers live in medxai_lite.cli; they stay importable from here.
    if name in ("register_cli", "main_for"):
        from .. import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

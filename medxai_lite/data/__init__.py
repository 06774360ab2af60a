"""Datasets: the embedded phantoms and the public datasets, behind one ``load_dataset``."""
from __future__ import annotations

import functools
import zlib
from typing import Mapping, Sequence

from .base import IMAGENET_MEAN, IMAGENET_STD, ArrayDataset, BiomedDataset, denormalize, normalize
from .phantoms import CLASS_DEFINING, INTERVENTIONS, PHANTOMS, SHORTCUT_CLASS, check_interventions, generate

__all__ = [
    "load_dataset", "list_datasets", "lesion_batch", "intervene", "PHANTOMS", "SHORTCUT_CLASS", "INTERVENTIONS",
    "CLASS_DEFINING", "SPLITS", "DEFAULT_SIZES",
    "BiomedDataset", "ArrayDataset", "normalize", "denormalize", "IMAGENET_MEAN", "IMAGENET_STD",
]

SPLITS = ("train", "val", "test")
#: Items per split when ``n`` is not given (phantoms).
DEFAULT_SIZES = {"train": 1200, "val": 300, "test": 400}


def list_datasets() -> list[str]:
    """Names ``load_dataset`` accepts: the phantoms, then the public datasets."""
    names = list(PHANTOMS)
    try:
        from .specs import PUBLIC_DATASETS
        names += list(PUBLIC_DATASETS)
    except ImportError:  # pragma: no cover - public registry optional
        pass
    return names


def _split_seed(name: str, split: str, seed: int) -> int:
    # independent streams per (dataset, split, seed): the test set never repeats a training image
    return zlib.crc32(f"{name}|{split}|{int(seed)}".encode()) & 0x7FFFFFFF


@functools.lru_cache(maxsize=16)
def _phantom_arrays(name, split, image_size, n, seed, difficulty, class_balance, shortcut, shortcut_class=None,
                    interventions=()):
    # ``interventions``: a sorted tuple of (concept, value) pairs, so that it can key the cache
    return generate(name, n, size=image_size, seed=_split_seed(name, split, seed), difficulty=difficulty,
                    class_balance=class_balance, shortcut=shortcut, shortcut_class=shortcut_class,
                    interventions=dict(interventions))


def load_dataset(name: str, split: str = "train", image_size: int = 128, n: int | None = None, seed: int = 0,
                 *, difficulty: float = 0.3, class_balance: Sequence[float] | None = None,
                 shortcut: float = 0.0, shortcut_class: int | None = None,
                 interventions: Mapping[str, float] | None = None, root=None) -> BiomedDataset:
    """Load a dataset by name as a torch ``Dataset`` of dict items (see :mod:`medxai_lite.data.base`).

    Phantoms (``phantom-brain-mri``, ``phantom-skin``, ``phantom-chest-xray``) are generated on
    the fly, deterministically for ``(split, seed)``; ``difficulty``, ``class_balance``,
    ``shortcut`` and ``shortcut_class`` are their knobs (see :mod:`medxai_lite.data.phantoms`;
    ``dataset.meta["artefact_mask"]`` holds the shortcut artefact's pixels). ``interventions``
    (``{concept: value}``, phantoms only) re-renders the same items with those concepts forced
    (see :func:`medxai_lite.data.phantoms.generate`, :data:`INTERVENTIONS` for what each phantom can
    force and :data:`CLASS_DEFINING` for the ones that change labels); :func:`intervene` makes the
    counterpart of a dataset already loaded. A phantom dataset records its arguments in
    ``dataset.generation``. Public datasets must have been fetched first
    (``medxai data fetch NAME``); ``root`` overrides where they live.

    Example
    -------
    >>> ds = load_dataset("phantom-skin", split="test", image_size=64, n=8)
    >>> ds[0]["image"].shape
    torch.Size([3, 64, 64])
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
    if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer between 32 and 1024 pixels, got {image_size!r}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if name in PHANTOMS:
        n = DEFAULT_SIZES[split] if n is None else n
        cb = None if class_balance is None else tuple(float(c) for c in class_balance)
        forced = check_interventions(name, interventions)
        arr = _phantom_arrays(name, split, image_size, n, int(seed), float(difficulty), cb, float(shortcut),
                              shortcut_class, tuple(sorted(forced.items())))
        spec = PHANTOMS[name]
        generation = dict(name=name, split=split, image_size=image_size, n=n, seed=int(seed),
                          difficulty=float(difficulty), class_balance=cb, shortcut=float(shortcut),
                          shortcut_class=shortcut_class, interventions=dict(forced))
        return ArrayDataset(name=name, split=split, images=arr["images"], labels=arr["labels"],
                            classes=spec.classes, modality=spec.modality, masks=arr["masks"],
                            concepts=arr["concepts"], concept_names=spec.concept_names,
                            captions=arr["captions"], qa=arr["qa"], meta=arr["meta"], generation=generation)
    if interventions is not None:
        raise ValueError(f"interventions apply to the phantoms only ({', '.join(PHANTOMS)}), not to {name!r}")
    given = dict(difficulty=difficulty, class_balance=class_balance, shortcut=shortcut, shortcut_class=shortcut_class)
    defaults = load_dataset.__kwdefaults__
    changed = [k for k, v in given.items() if (v is not None if defaults[k] is None else v != defaults[k])]
    if changed:          # a real dataset cannot be re-drawn: refuse rather than silently ignore the knob
        raise ValueError(f"{', '.join(changed)} shape(s) the generated phantoms only ({', '.join(PHANTOMS)}); "
                         f"{name!r} is a real dataset, loaded as it was published: leave "
                         f"{'it' if len(changed) == 1 else 'them'} at the default")
    try:
        from .public import PUBLIC_DATASETS, load_public
    except ImportError:  # pragma: no cover
        PUBLIC_DATASETS, load_public = {}, None
    if name in PUBLIC_DATASETS:
        return load_public(name, split=split, image_size=image_size, n=n, seed=seed, root=root)
    raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(list_datasets())}")


def intervene(dataset: BiomedDataset, interventions: Mapping[str, float]) -> BiomedDataset:
    """The counterpart of phantom ``dataset`` with ``interventions`` forced: same items, same seed.

    ``dataset`` must come from :func:`load_dataset` (it records its arguments in
    ``dataset.generation``); the result has the same name, split, size, ``n``, seed and knobs, and
    the interventions already applied to ``dataset`` plus ``interventions`` (which win where both
    name a concept). See :func:`medxai_lite.data.phantoms.generate` for what each intervention does.

    Example
    -------
    >>> test = load_dataset("phantom-brain-mri", split="test", image_size=64, n=8)
    >>> twin = intervene(test, {"ring enhancement": 0})
    >>> bool((twin.concepts[:, 1] == 0).all())
    True
    """
    generation = getattr(dataset, "generation", None)
    if not isinstance(generation, dict) or generation.get("name") not in PHANTOMS:
        raise ValueError(f"dataset must be a phantom dataset made by load_dataset (it records how it was "
                         f"generated); got {dataset!r}")
    if not isinstance(interventions, Mapping):
        raise ValueError(f"interventions must be a mapping {{concept: value}}, got {interventions!r}")
    return load_dataset(**{**generation, "interventions": {**generation["interventions"], **interventions}})


def lesion_batch(dataset: BiomedDataset, n: int) -> dict:
    """A stacked batch (see :meth:`BiomedDataset.batch`) of the first ``n`` items with a lesion.

    "With a lesion" means a non-empty mask; a dataset without masks gives its first ``n`` items.
    Fewer than ``n`` come back when the dataset holds fewer.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    with_mask = [i for i in range(len(dataset)) if "mask" in dataset[i] and bool(dataset[i]["mask"].any())]
    return dataset.batch(with_mask[:n] if with_mask else list(range(min(n, len(dataset)))))

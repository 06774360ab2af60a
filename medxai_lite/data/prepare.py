"""Preparation: from the extracted downloads to the prepared layout, one preparer per dataset.

A preparer (``prepare_<dataset>(src, writer, progress)``) walks the extracted source files in
``src``, decides the split and class of every image, and hands it to an :class:`ImageWriter`.
The writer opens and fully decodes every image once, so that training never meets a broken
file mid-epoch (the ones that fail are skipped and listed in ``prepare_report.json``),
converts it to grayscale (MRI, X-ray) or RGB, downscales it so that its longer side is at most
``max_size`` (512 px by default; 0 keeps the original size) and saves it as PNG at
``<split>/<class>/<id>.png``, with its mask at ``<split>/masks/<class>/<id>.png``. What was
written and what was skipped is collected in a :class:`PrepareReport`.

Splits: ``train``, ``val`` and ``test`` everywhere. Where the source gives train and test
folders they are kept and ``val`` is a fixed :data:`VAL_FRACTION` (10 %) of the training
images, chosen by a hash of the file name, never by the seed; the Kaggle chest X-rays bring
their own ``val``. Where the source gives no split (figshare-brain-tumor, ham10000), patients /
lesions are split 70 / 10 / 20 % by a hash, so that no patient or lesion appears in two splits.

The preparers run inside :func:`medxai_lite.data.fetch.prepare_public`, which extracts the
archives, writes the manifest and moves the finished folder into place.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "VAL_FRACTION",
    "TEST_FRACTION",
    "PrepareReport",
    "ImageWriter",
    "prepare_brain_tumor_mri",
    "prepare_isic_benign_malignant",
    "prepare_chest_xray_pneumonia",
    "kermany_patient",
    "prepare_figshare_brain_tumor",
    "prepare_ham10000",
]

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
#: Share held out as ``val`` where the source has no validation split (of the training images
#: for the folder datasets, of the patients / lesions for figshare-brain-tumor and ham10000).
VAL_FRACTION = 0.1
#: Share of patients / lesions that form ``test`` where the source has no test split.
TEST_FRACTION = 0.2


@dataclass
class PrepareReport:
    """What preparation wrote and what it skipped, by file name."""

    name: str
    counts: dict = field(default_factory=dict)     # split -> class -> number of images
    masks: int = 0
    corrupt: list = field(default_factory=list)    # {"file", "error"}: could not be decoded
    skipped: list = field(default_factory=list)    # {"file", "reason"}: unknown label, no image, ...
    missing_masks: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for per in self.counts.values() for n in per.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{self.name}: {self.total} images prepared"
                 + (f", {self.masks} masks" if self.masks else "")]
        for split in sorted(self.counts):
            per = ", ".join(f"{c} {n}" for c, n in self.counts[split].items())
            lines.append(f"  {split}: {per}")
        if self.corrupt:
            lines.append(f"  {len(self.corrupt)} corrupt file(s) skipped:")
            lines += [f"    {c['file']}: {c['error']}" for c in self.corrupt[:20]]
            if len(self.corrupt) > 20:
                lines.append(f"    ... and {len(self.corrupt) - 20} more (see prepare_report.json)")
        if self.skipped:
            lines.append(f"  {len(self.skipped)} item(s) skipped (see prepare_report.json)")
        if self.missing_masks:
            lines.append(f"  {len(self.missing_masks)} image(s) without a mask")
        return "\n".join(lines)


class ImageWriter:
    """Writes images (and masks) into the prepared layout, checking that each one decodes."""

    def __init__(self, out: Path, report: PrepareReport, classes: Sequence[str], *, max_size: int,
                 grayscale: bool, src_root: Path):
        self.out, self.report, self.max_size, self.grayscale = out, report, int(max_size or 0), grayscale
        self.classes = list(classes)
        self.src_root = src_root
        self.used: set = set()

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.src_root).as_posix()
        except ValueError:
            return path.name

    def _stem(self, split: str, cls: str, stem: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
        cand, k = stem, 1
        while (split, cls, cand.lower()) in self.used:
            k += 1
            cand = f"{stem}-{k}"
        self.used.add((split, cls, cand.lower()))
        return cand

    def add(self, split: str, cls: str, stem: str, *, source: Path | None = None,
            array: np.ndarray | None = None, mask: np.ndarray | Path | None = None, what: str = "") -> bool:
        """Decode ``source`` (a file) or take ``array``; save PNG; save ``mask`` beside. False if the
        image is corrupt; a corrupt mask is listed in ``corrupt`` and the image kept without one."""
        from PIL import Image

        what = what or (self.rel(source) if source is not None else stem)
        try:
            if array is not None:
                im = Image.fromarray(array)
            else:
                with Image.open(source) as opened:
                    opened.load()  # full decode: truncated and broken files fail here, not mid-epoch
                    im = opened.copy()
            im = im.convert("L" if self.grayscale else "RGB")
            if self.max_size and max(im.size) > self.max_size:
                scale = self.max_size / max(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                               Image.BILINEAR)
        except Exception as exc:  # any decoder error: PIL raises OSError, ValueError, SyntaxError, ...
            self.report.corrupt.append({"file": what, "error": f"{type(exc).__name__}: {exc}"})
            return False
        mask_im = None
        if mask is not None:
            # a broken mask is reported under its own name, and the good image is kept without a
            # mask, as an image whose mask is absent is
            try:
                if isinstance(mask, (str, os.PathLike)):
                    with Image.open(mask) as m:
                        m.load()
                        mask_im = m.convert("L").point(lambda v: 255 if v > 127 else 0)
                else:
                    mask_im = Image.fromarray(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8))
                if mask_im.size != im.size:
                    mask_im = mask_im.resize(im.size, Image.NEAREST)
            except Exception as exc:
                name = self.rel(Path(mask)) if isinstance(mask, (str, os.PathLike)) else f"{what} (mask)"
                self.report.corrupt.append({"file": name, "error": f"{type(exc).__name__}: {exc}"})
                self.report.missing_masks.append(what)
                mask_im = None
        stem = self._stem(split, cls, stem)
        folder = self.out / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{stem}.png", format="PNG")
        if mask_im is not None:
            mfolder = self.out / split / "masks" / cls
            mfolder.mkdir(parents=True, exist_ok=True)
            mask_im.save(mfolder / f"{stem}.png", format="PNG")
            self.report.masks += 1
        per = self.report.counts.setdefault(split, {c: 0 for c in self.classes})
        per[cls] += 1
        return True


def _walk_files(root: Path):
    """All files under ``root`` in a stable order, skipping macOS resource forks and hidden folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__MACOSX" and not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("._") and not f.startswith("."):
                yield Path(dirpath) / f


def _progress(items, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled, leave=False, unit="img")


def _prepare_folders(src: Path, writer: ImageWriter, *, split_map: dict, class_map: dict, progress: bool,
                     group=None) -> None:
    """Class-folder layouts: ``.../<split folder>/<class folder>/<image>``, duplicates taken once.

    ``group`` maps a lower-case file name to the patient it belongs to, where the names say so: the
    ``val`` hold-out then takes whole patients, so that no patient is in both ``train`` and ``val``
    (default: every image its own group)."""
    split_map = {k.lower(): v for k, v in split_map.items()}
    class_map = {k.lower(): v for k, v in class_map.items()}
    todo, seen = [], set()
    for path in _walk_files(src):
        if path.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        cls = class_map.get(path.parent.name.lower())
        split = split_map.get(path.parent.parent.name.lower())
        if cls is None or split is None:
            continue
        key = (split, cls, path.name.lower())
        if key in seen:  # the same file twice (Kaggle zips often carry a duplicate tree)
            continue
        seen.add(key)
        todo.append((split, cls, path))
    if not any(split == "val" for split, _, _ in todo):
        # No validation folder at the source: hold out a fixed 10 % of the training images.
        key = group or (lambda name: name)
        todo = [("val" if split == "train" and _hash_fraction(f"val:{cls}/{key(path.name.lower())}") < VAL_FRACTION
                 else split, cls, path) for split, cls, path in todo]
    for split, cls, path in _progress(todo, writer.report.name, progress):
        writer.add(split, cls, path.stem, source=path)


def _hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key``: for group-wise splits that never depend on a seed."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def _group_split(key: str) -> str:
    """``test`` for 20 % of the groups (patients, lesions), ``val`` for 10 %, ``train`` for the rest."""
    f = _hash_fraction(key)
    return "test" if f < TEST_FRACTION else "val" if f < TEST_FRACTION + VAL_FRACTION else "train"


def prepare_brain_tumor_mri(src: Path, writer: ImageWriter, progress: bool = True) -> None:
    """Kaggle / GitHub layout ``Training|Testing/<glioma_tumor|meningioma_tumor|no_tumor|pituitary_tumor>/``."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"Training": "train", "Testing": "test"},
                     class_map={"glioma_tumor": "glioma", "meningioma_tumor": "meningioma",
                                "no_tumor": "no_tumor", "pituitary_tumor": "pituitary"})


def prepare_isic_benign_malignant(src: Path, writer: ImageWriter, progress: bool = True) -> None:
    """Kaggle layout ``train|test/<benign|malignant>/`` (a duplicate ``data/`` tree is taken once)."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"train": "train", "test": "test"},
                     class_map={"benign": "benign", "malignant": "malignant"})


#: Kermany et al.'s file names carry the patient: ``person<id>_bacteria|virus_<n>.jpeg`` for the
#: pneumonia films, ``IM-<id>-<n>.jpeg`` and ``NORMAL2-IM-<id>-<n>.jpeg`` for the normal ones.
_KERMANY_PATIENT = re.compile(r"^(person\d+)_|^((?:normal2-)?im-\d+)-")


def kermany_patient(name: str) -> str:
    """The patient part of a Kermany et al. chest X-ray file name (lower case), or the name itself.

    >>> kermany_patient("person12_bacteria_3.jpeg"), kermany_patient("NORMAL2-IM-0851-0001.jpeg")
    ('person12', 'normal2-im-0851')
    """
    found = _KERMANY_PATIENT.match(name.lower())
    return (found.group(1) or found.group(2)) if found else name.lower()


def prepare_chest_xray_pneumonia(src: Path, writer: ImageWriter, progress: bool = True) -> None:
    """Layout ``chest_xray/train|val|test/<NORMAL|PNEUMONIA>/`` (Kaggle; Mendeley has no ``val``,
    which is then held out of ``train`` like for the other folder datasets, by patient: a patient
    can have several films, and one split per film would put the same patient in ``train`` and
    ``val``, so that early stopping would select on patients the network has seen)."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"train": "train", "val": "val", "test": "test"},
                     class_map={"NORMAL": "normal", "PNEUMONIA": "pneumonia"}, group=kermany_patient)


def _read_cjdata(path: Path) -> dict:
    """Read one Cheng et al. ``.mat`` file: MATLAB v7.3 (HDF5, via h5py), else older MAT (scipy)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            cj = f["cjdata"]
            # MATLAB writes column-major arrays: h5py sees them transposed.
            image = np.array(cj["image"]).T
            mask = np.array(cj["tumorMask"]).T
            label = int(np.array(cj["label"]).ravel()[0])
            pid = ("".join(chr(int(c)) for c in np.array(cj["PID"]).ravel()).strip("\x00 ")
                   if "PID" in cj else "")
        return {"image": image, "mask": mask, "label": label, "pid": pid}
    except OSError:
        pass  # not HDF5: try the pre-v7.3 format below
    from scipy.io import loadmat

    cj = loadmat(path, squeeze_me=True, struct_as_record=False)["cjdata"]
    return {"image": np.asarray(cj.image), "mask": np.asarray(cj.tumorMask),
            "label": int(np.asarray(cj.label).ravel()[0]), "pid": str(getattr(cj, "PID", ""))}


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """MRI intensities (int16, arbitrary range) -> uint8, robust to a few extreme voxels."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    if not np.isfinite([lo, hi]).all():
        raise ValueError("image holds NaN or infinite values")
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((img - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def prepare_figshare_brain_tumor(src: Path, writer: ImageWriter, progress: bool = True) -> None:
    """``<n>.mat`` files from the brainTumorDataPublic_*.zip parts; labels 1/2/3; patient-wise split.

    The record has no train/test split (only 5 cross-validation folds in ``cvind.mat``), so the
    *patients* (``cjdata.PID``) are split 70 / 10 / 20 % into train / val / test by a hash of
    the PID: no patient has slices on two sides.
    """
    mats = [p for p in _walk_files(src) if p.suffix.lower() == ".mat" and p.stem.isdigit()]
    mats.sort(key=lambda p: (int(p.stem), p.as_posix()))
    seen = set()
    for path in _progress(mats, writer.report.name, progress):
        if path.stem in seen:
            continue
        seen.add(path.stem)
        try:
            rec = _read_cjdata(path)
            image = _to_uint8(rec["image"])
        except Exception as exc:
            writer.report.corrupt.append({"file": writer.rel(path), "error": f"{type(exc).__name__}: {exc}"})
            continue
        if rec["label"] not in (1, 2, 3):
            writer.report.skipped.append({"file": writer.rel(path), "reason": f"label {rec['label']} not in 1/2/3"})
            continue
        cls = writer.classes[rec["label"] - 1]
        split = _group_split(f"figshare-pid:{rec['pid'] or path.stem}")
        mask = rec["mask"] if rec["mask"].shape == image.shape else None
        if mask is None:
            writer.report.missing_masks.append(writer.rel(path))
        writer.add(split, cls, path.stem, array=image, mask=mask, what=writer.rel(path))


def _read_table(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delim = "\t" if first.count("\t") > first.count(",") else ","
    return [{(k or "").strip().strip('"').lower(): (v or "").strip().strip('"') for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text), delimiter=delim)]


def prepare_ham10000(src: Path, writer: ImageWriter, progress: bool = True) -> None:
    """``HAM10000_metadata`` (dx column) + ``ISIC_*.jpg`` images + ``ISIC_*_segmentation.png`` masks.

    The record has no split (the ISIC 2018 test images are separate), so the *lesions*
    (``lesion_id``) are split 70 / 10 / 20 % into train / val / test by a hash: the several
    images of one lesion never straddle two splits.
    """
    files = list(_walk_files(src))
    metas = [p for p in files if p.name.lower().startswith("ham10000_metadata")]
    if not metas:
        raise FileNotFoundError(f"no HAM10000_metadata file among the downloaded files of {writer.report.name}")
    images, masks = {}, {}
    for p in files:
        low = p.name.lower()
        if low.endswith("_segmentation.png"):
            masks.setdefault(p.name[: -len("_segmentation.png")].upper(), p)
        elif p.suffix.lower() in (".jpg", ".jpeg", ".png") and low.startswith("isic_"):
            images.setdefault(p.stem.upper(), p)
    rows = _read_table(metas[0])
    if not rows or "dx" not in rows[0] or "image_id" not in rows[0]:
        raise ValueError(f"{metas[0].name} lacks the columns image_id and dx")
    for row in _progress(sorted(rows, key=lambda r: r["image_id"]), writer.report.name, progress):
        image_id, dx = row["image_id"].upper(), row["dx"].lower()
        if dx not in writer.classes:
            writer.report.skipped.append({"file": image_id, "reason": f"unknown dx {dx!r}"})
            continue
        path = images.get(image_id)
        if path is None:
            writer.report.skipped.append({"file": image_id, "reason": "listed in the metadata, image not found"})
            continue
        mask = masks.get(image_id)
        if mask is None:
            writer.report.missing_masks.append(image_id)
        split = _group_split(f"ham10000-lesion:{row.get('lesion_id') or image_id}")
        writer.add(split, dx, path.stem, source=path, mask=mask)


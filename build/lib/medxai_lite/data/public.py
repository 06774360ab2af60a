"""The public biomedical datasets: registry, fetch (download + prepare), verify, load, CLI.

Five datasets are registered in :data:`PUBLIC_DATASETS`:

==========================  ======================================  ========  =====
name                        what                                    classes   masks
==========================  ======================================  ========  =====
``brain-tumor-mri``         Kaggle "Brain Tumor Classification      4         no
                            (MRI)" (Bhuvaji et al.), T1 MRI slices
``figshare-brain-tumor``    Cheng et al. 2015, figshare 1512427,    3         yes
                            T1-CE MRI slices, MATLAB v7.3 files
``ham10000``                HAM10000 dermoscopy (Tschandl et al.    7         yes
                            2018), lesion masks published later
``isic-benign-malignant``   Kaggle "Skin Cancer: Malignant vs.      2         no
                            Benign" (ISIC Archive images)
``chest-xray-pneumonia``    Kermany et al. 2018 paediatric chest    2         no
                            X-rays, NORMAL / PNEUMONIA
==========================  ======================================  ========  =====

Prepared layout (one for all datasets), under the data root (``--root``, else ``$MEDXAI_DATA``,
else ``./DATA``)::

    DATA/
      checksums.lock.json                 sha256 of every first download (trust on first use)
      downloads/<name>/...                the archives as downloaded
      <name>/manifest.json                classes, splits, counts, modality, source files
      <name>/prepare_report.json          corrupt / missing files, by name
      <name>/<split>/<class>/<id>.png     images (grayscale PNG for MRI and X-ray, RGB otherwise)
      <name>/<split>/masks/<class>/<id>.png   lesion masks (0 / 255), same size as the image

Splits: ``train``, ``val`` and ``test`` everywhere. Where the source gives train and test
folders, they are kept and ``val`` is a fixed 10 % of the training images (chosen by a hash
of the file name, never by the seed); the Kaggle chest X-rays bring their own ``val``. Where
the source gives no split (figshare-brain-tumor, ham10000), patients / lesions are split
70 / 10 / 20 %, by a hash, so that no patient or lesion appears in two splits.

Images are downscaled at preparation so that their longer side is at most ``max_size``
(512 px by default; ``max_size=0`` keeps the original size). Every image is opened and fully
decoded once at preparation; the ones that fail are listed in ``prepare_report.json`` and
skipped, so that training never meets them mid-epoch.

A mirror: setting the environment variable ``MEDXAI_DATA_MIRROR`` to a base URL (or passing
``mirror=``) makes :func:`fetch` take every file from ``<mirror>/<name>/<file name>`` (the file
names are in each spec's ``mirror_files``) instead of the original sources; the checksums are
checked exactly as for the original source. This serves an institutional cache, an offline
machine with a local web server, and the tests.

Example
-------
>>> from medxai_lite.data.public import fetch, load_public
>>> fetch("brain-tumor-mri")                                              # doctest: +SKIP
>>> ds = load_public("brain-tumor-mri", split="test", image_size=224)     # doctest: +SKIP
>>> ds[0]["image"].shape                                                  # doctest: +SKIP
torch.Size([3, 224, 224])
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._utils import atomic_path
from .base import BiomedDataset
from .download import (
    LOCK_FILENAME,
    ArchiveError,
    ChecksumError,
    ChecksumLock,
    DownloadError,
    KaggleCredentialsError,
    UnsafeArchiveError,
    check_disk_space,
    file_digest,
    is_archive,
    kaggle_download,
    download,
    safe_extract,
)

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
    "prepare_public",
    "fetch",
    "verify_public",
    "load_public",
    "PublicImageDataset",
    "register_cli",
    "main_for",
]

#: Environment variable giving the data root (default ``./DATA``).
DATA_ENV = "MEDXAI_DATA"
#: Environment variable giving a mirror base URL: files come from ``<mirror>/<name>/<file>``.
MIRROR_ENV = "MEDXAI_DATA_MIRROR"

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
#: Share held out as ``val`` where the source has no validation split (of the training images
#: for the folder datasets, of the patients / lesions for figshare-brain-tumor and ham10000).
VAL_FRACTION = 0.1
#: Share of patients / lesions that form ``test`` where the source has no test split.
TEST_FRACTION = 0.2
_FORMAT = 1  # version of the prepared layout; bump when it changes


# =========================================================================== registry

@dataclass(frozen=True)
class RemoteFile:
    """One file to download: its name on disk, its URL, and a checksum if the source publishes one."""

    filename: str
    url: str
    checksum: str | None = None  # "sha256:<hex>" / "md5:<hex>" from the source itself, else None
    size: int | None = None      # bytes, when the source says


@dataclass(frozen=True)
class Source:
    """Where a dataset (or a part of it) comes from.

    ``kind`` is ``"url"`` (the files in ``files``), ``"kaggle"`` (the dataset ``ref`` =
    ``owner/name`` through the official client), ``"figshare"`` (article ``ref``; file list and
    MD5 checksums from the figshare API), ``"dataverse"`` (dataset DOI ``ref``; file list and
    MD5 checksums from the Dataverse API) or ``"manual"`` (files the user downloads by hand from
    ``ref`` and puts in ``DATA/downloads/<name>/``). Sources sharing a ``label`` are fetched
    together; ``fetch(name, source=label)`` picks one.
    """

    label: str
    kind: str
    ref: str
    files: tuple[RemoteFile, ...] = ()
    wanted: tuple[str, ...] = ()  # figshare / dataverse: file-name patterns to fetch
    api: str = ""

    @property
    def needs_credentials(self) -> bool:
        return self.kind == "kaggle"

    def expected_names(self) -> tuple[str, ...]:
        """File names this source leaves in the download folder (best knowledge before any request)."""
        if self.kind == "kaggle":
            return (f"{self.ref.split('/')[1]}.zip",)
        return tuple(f.filename for f in self.files)

    def resolve(self, *, session=None, timeout: float = 30.0) -> list[RemoteFile]:
        """The files to download, asking the figshare / Dataverse API for names, URLs and MD5s."""
        if self.kind in ("url", "manual"):
            return list(self.files)
        if self.kind == "kaggle":
            return [RemoteFile(self.expected_names()[0], f"kaggle:{self.ref}")]
        import requests

        sess = session or requests.Session()
        try:
            if self.kind == "figshare":
                url = f"{self.api.rstrip('/')}/articles/{self.ref}/files"
                items = _get_json(sess, url, timeout)
                out = []
                for it in items:
                    if _wanted(it.get("name", ""), self.wanted):
                        md5 = it.get("computed_md5") or it.get("supplied_md5")
                        out.append(RemoteFile(it["name"], it["download_url"],
                                              f"md5:{md5}" if md5 else None, it.get("size")))
            elif self.kind == "dataverse":
                url = (f"{self.api.rstrip('/')}/api/datasets/:persistentId/versions/:latest-published/files"
                       f"?persistentId={self.ref}")
                items = _get_json(sess, url, timeout).get("data", [])
                out = []
                for it in items:
                    df = it.get("dataFile", {})
                    name = df.get("originalFileName") or df.get("filename", "")
                    if not _wanted(name, self.wanted):
                        continue
                    ingested = bool(df.get("originalFileFormat"))
                    link = f"{self.api.rstrip('/')}/api/access/datafile/{df['id']}"
                    ck = df.get("checksum") or {}
                    md5 = ck.get("value") if str(ck.get("type", "")).upper() == "MD5" else None
                    md5 = md5 or df.get("md5")
                    # A tabular file ingested by Dataverse is served in its original form with
                    # format=original; its published MD5 is then not used (TOFU instead), to be safe.
                    out.append(RemoteFile(name, link + ("?format=original" if ingested else ""),
                                          None if ingested or not md5 else f"md5:{md5}",
                                          None if ingested else df.get("filesize")))
            else:
                raise ValueError(f"unknown source kind {self.kind!r}")
        finally:
            if session is None:
                sess.close()
        if not out:
            raise DownloadError(f"the {self.kind} record {self.ref} lists none of the files {self.wanted}")
        return out


def _wanted(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)


def _get_json(sess, url: str, timeout: float):
    import requests

    try:
        r = sess.get(url, timeout=(10.0, timeout))
    except (requests.ConnectionError, requests.Timeout) as exc:
        from .download import OfflineError, _offline_message

        raise OfflineError(_offline_message(url, exc)) from exc
    if r.status_code >= 400:
        raise DownloadError(f"HTTP {r.status_code} {r.reason} for {url}")
    return r.json()


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the package knows about one public dataset.

    ``checksums`` maps a file name to a SHA-256 / MD5 published by the source and copied from
    it; it is empty where the source publishes none (then the first download is recorded in
    ``DATA/checksums.lock.json``). figshare and Dataverse publish MD5s through their APIs,
    which :meth:`Source.resolve` reads at download time.
    """

    name: str
    title: str
    citation: str
    modality: str
    classes: tuple[str, ...]
    has_masks: bool
    licence: str
    homepage: str
    sources: tuple[Source, ...]
    mirror_files: tuple[str, ...]
    approx_size_bytes: int
    prepare: Callable[..., None]
    grayscale: bool = False
    checksums: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def kaggle_slug(self) -> str | None:
        """The main Kaggle ``owner/name`` for this dataset, if any."""
        for s in self.sources:
            if s.kind == "kaggle":
                return s.ref
        return None

    @property
    def source_labels(self) -> tuple[str, ...]:
        seen = []
        for s in self.sources:
            if s.label not in seen:
                seen.append(s.label)
        return tuple(seen)

    def sources_for(self, label: str) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.label == label)


# =========================================================================== preparation

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


class _Writer:
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
        """Decode ``source`` (a file) or take ``array``; save PNG; save ``mask`` beside. False if corrupt."""
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
            mask_im = None
            if mask is not None:
                if isinstance(mask, (str, os.PathLike)):
                    with Image.open(mask) as m:
                        m.load()
                        mask_im = m.convert("L").point(lambda v: 255 if v > 127 else 0)
                else:
                    mask_im = Image.fromarray(np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8))
                if mask_im.size != im.size:
                    mask_im = mask_im.resize(im.size, Image.NEAREST)
        except Exception as exc:  # any decoder error: PIL raises OSError, ValueError, SyntaxError, ...
            self.report.corrupt.append({"file": what, "error": f"{type(exc).__name__}: {exc}"})
            return False
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


def _prepare_folders(src: Path, writer: _Writer, *, split_map: dict, class_map: dict, progress: bool) -> None:
    """Class-folder layouts: ``.../<split folder>/<class folder>/<image>``, duplicates taken once."""
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
        todo = [("val" if split == "train" and _hash_fraction(f"val:{cls}/{path.name.lower()}") < VAL_FRACTION
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


def prepare_brain_tumor_mri(src: Path, writer: _Writer, progress: bool = True) -> None:
    """Kaggle / GitHub layout ``Training|Testing/<glioma_tumor|meningioma_tumor|no_tumor|pituitary_tumor>/``."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"Training": "train", "Testing": "test"},
                     class_map={"glioma_tumor": "glioma", "meningioma_tumor": "meningioma",
                                "no_tumor": "no_tumor", "pituitary_tumor": "pituitary"})


def prepare_isic_benign_malignant(src: Path, writer: _Writer, progress: bool = True) -> None:
    """Kaggle layout ``train|test/<benign|malignant>/`` (a duplicate ``data/`` tree is taken once)."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"train": "train", "test": "test"},
                     class_map={"benign": "benign", "malignant": "malignant"})


def prepare_chest_xray_pneumonia(src: Path, writer: _Writer, progress: bool = True) -> None:
    """Layout ``chest_xray/train|val|test/<NORMAL|PNEUMONIA>/`` (Kaggle; Mendeley has no ``val``,
    which is then held out of ``train`` like for the other folder datasets)."""
    _prepare_folders(src, writer, progress=progress,
                     split_map={"train": "train", "val": "val", "test": "test"},
                     class_map={"NORMAL": "normal", "PNEUMONIA": "pneumonia"})


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


def prepare_figshare_brain_tumor(src: Path, writer: _Writer, progress: bool = True) -> None:
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


def prepare_ham10000(src: Path, writer: _Writer, progress: bool = True) -> None:
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


_GiB = 1 << 30
_MiB = 1 << 20

PUBLIC_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="brain-tumor-mri",
            title="Brain Tumor Classification (MRI)",
            citation="S. Bhuvaji, A. Kadam, P. Bhumkar, S. Dedge, S. Kanchan: Brain Tumor "
                     "Classification (MRI), Kaggle, 2020. doi:10.34740/KAGGLE/DSV/1183165",
            modality="MRI",
            classes=("glioma", "meningioma", "no_tumor", "pituitary"),
            has_masks=False,
            licence="see source (the Kaggle page states the licence)",
            homepage="https://www.kaggle.com/datasets/sartajbhuvaji/brain-tumor-classification-mri",
            sources=(
                Source("github", "url", "https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet",
                       files=(RemoteFile(
                           "Brain-Tumor-Classification-DataSet-master.zip",
                           "https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet/"
                           "archive/refs/heads/master.zip"),)),
                Source("kaggle", "kaggle", "sartajbhuvaji/brain-tumor-classification-mri"),
            ),
            mirror_files=("brain-tumor-classification-mri.zip",),
            approx_size_bytes=100 * _MiB,
            prepare=prepare_brain_tumor_mri,
            grayscale=True,
            notes="The dataset of the Chaddad et al. experiment. The GitHub repository is the "
                  "authors' own open copy (no account needed); Kaggle needs credentials.",
        ),
        DatasetSpec(
            name="figshare-brain-tumor",
            title="Brain tumor dataset (Cheng et al.)",
            citation="J. Cheng et al., Enhanced performance of brain tumor classification via tumor "
                     "region augmentation and partition, PLoS ONE 10(10): e0140381, 2015 "
                     "(doi:10.1371/journal.pone.0140381); data: figshare, "
                     "doi:10.6084/m9.figshare.1512427",
            modality="MRI",
            classes=("meningioma", "glioma", "pituitary"),
            has_masks=True,
            licence="CC BY 4.0 (as given on the figshare record; see source)",
            homepage="https://figshare.com/articles/dataset/brain_tumor_dataset/1512427",
            sources=(
                Source("figshare", "figshare", "1512427", api="https://api.figshare.com/v2",
                       wanted=("brainTumorDataPublic_*.zip",)),
            ),
            mirror_files=("brainTumorDataPublic_1-766.zip", "brainTumorDataPublic_767-1532.zip",
                          "brainTumorDataPublic_1533-2298.zip", "brainTumorDataPublic_2299-3064.zip"),
            approx_size_bytes=880 * _MiB,
            prepare=prepare_figshare_brain_tumor,
            grayscale=True,
            notes="3064 T1-weighted contrast-enhanced slices of 233 patients; labels 1 meningioma, "
                  "2 glioma, 3 pituitary; tumour masks. MD5 checksums come from the figshare API.",
        ),
        DatasetSpec(
            name="ham10000",
            title="HAM10000 dermoscopic images with lesion segmentations",
            citation="P. Tschandl, C. Rosendahl, H. Kittler: The HAM10000 dataset, Sci. Data 5, "
                     "180161 (2018); data: Harvard Dataverse, doi:10.7910/DVN/DBW86T",
            modality="dermoscopy",
            classes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
            has_masks=True,
            licence="CC BY-NC-SA 4.0",
            homepage="https://doi.org/10.7910/DVN/DBW86T",
            sources=(
                Source("dataverse", "dataverse", "doi:10.7910/DVN/DBW86T", api="https://dataverse.harvard.edu",
                       wanted=("HAM10000_images_part_1*", "HAM10000_images_part_2*", "HAM10000_metadata*",
                               "HAM10000_segmentations_lesion_tschandl*")),
                Source("kaggle", "kaggle", "kmader/skin-cancer-mnist-ham10000"),
                Source("kaggle", "kaggle", "tschandl/ham10000-lesion-segmentations"),
            ),
            mirror_files=("HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip",
                          "HAM10000_metadata.csv", "HAM10000_segmentations_lesion_tschandl.zip"),
            approx_size_bytes=3 * _GiB,
            prepare=prepare_ham10000,
            notes="10015 images; also in the ISIC Archive (ISIC 2018 task 3 training set). "
                  "MD5 checksums come from the Dataverse API.",
        ),
        DatasetSpec(
            name="isic-benign-malignant",
            title="Skin Cancer: Malignant vs. Benign (ISIC Archive images)",
            citation="C. Fanconi: Skin Cancer: Malignant vs. Benign, Kaggle, 2019; images from "
                     "the ISIC Archive (https://www.isic-archive.com)",
            modality="dermoscopy",
            classes=("benign", "malignant"),
            has_masks=False,
            licence="see source (images from the ISIC Archive; the Kaggle page states the licence)",
            homepage="https://www.kaggle.com/datasets/fanconic/skin-cancer-malignant-vs-benign",
            sources=(Source("kaggle", "kaggle", "fanconic/skin-cancer-malignant-vs-benign"),),
            mirror_files=("skin-cancer-malignant-vs-benign.zip",),
            approx_size_bytes=350 * _MiB,
            prepare=prepare_isic_benign_malignant,
        ),
        DatasetSpec(
            name="chest-xray-pneumonia",
            title="Chest X-Ray Images (Pneumonia), Kermany et al.",
            citation="D. S. Kermany et al., Identifying medical diagnoses and treatable diseases by "
                     "image-based deep learning, Cell 172(5), 2018; data: Mendeley Data, "
                     "doi:10.17632/rscbjbr9sj",
            modality="X-ray",
            classes=("normal", "pneumonia"),
            has_masks=False,
            licence="CC BY 4.0 (as given on the Mendeley Data record; see source)",
            homepage="https://doi.org/10.17632/rscbjbr9sj",
            sources=(
                Source("kaggle", "kaggle", "paultimothymooney/chest-xray-pneumonia"),
                Source("mendeley", "manual", "https://data.mendeley.com/datasets/rscbjbr9sj",
                       files=(RemoteFile("ChestXRay2017.zip", "https://data.mendeley.com/datasets/rscbjbr9sj"),)),
            ),
            mirror_files=("chest-xray-pneumonia.zip",),
            approx_size_bytes=2400 * _MiB,
            prepare=prepare_chest_xray_pneumonia,
            grayscale=True,
            notes="Kaggle splits train / val / test (val holds only 16 images); the Mendeley "
                  "archive has train / test only.",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in PUBLIC_DATASETS:
        raise ValueError(f"unknown public dataset {name!r}; valid names: {', '.join(PUBLIC_DATASETS)}")
    return PUBLIC_DATASETS[name]


# =========================================================================== fetch / prepare / verify

def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$MEDXAI_DATA``, else ``./DATA`` (or ``../DATA``
    when only that one exists, so that notebooks run from ``notebooks/`` find it)."""
    if root:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    here, up = Path("DATA"), Path("..") / "DATA"
    if not here.is_dir() and up.is_dir():
        return up
    return here


def _fetch_command(name: str, root: Path) -> str:
    return f"medxai data fetch {name} --root {root}"


def _lock(root: Path) -> ChecksumLock:
    return ChecksumLock(root / LOCK_FILENAME)


def _download_dir(root: Path, name: str) -> Path:
    return root / "downloads" / name


def download_public(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    source: str = "auto",
    mirror: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
) -> list[Path]:
    """Download (or verify, when already there) the files of dataset ``name``.

    ``source`` is ``"auto"`` (a source whose files are already in the download folder, else the
    first that needs no account, else the first) or one of the spec's source labels
    (``"kaggle"``, ``"github"``, ``"figshare"``, ``"dataverse"``, ``"mendeley"``). ``mirror``
    (default ``$MEDXAI_DATA_MIRROR``) replaces every source by ``<mirror>/<name>/<file>``.
    Returns the paths of the downloaded files.
    """
    spec = get_spec(name)
    root = data_root(root)
    folder = _download_dir(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    lock = _lock(root)
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    common = dict(lock=lock, retries=retries, backoff=backoff, progress=progress)
    if mirror:
        base = mirror.rstrip("/")
        return [download(f"{base}/{name}/{f}", folder / f, checksum=spec.checksums.get(f),
                         lock_key=f"{name}/{f}", **common) for f in spec.mirror_files]
    labels = spec.source_labels
    if source == "auto":
        local = [lb for lb in labels
                 if all(_local_files(folder, s) is not None for s in spec.sources_for(lb))]
        open_ = [lb for lb in labels if not any(s.needs_credentials or s.kind == "manual"
                                               for s in spec.sources_for(lb))]
        source = (local or open_ or list(labels))[0]
    elif source not in labels:
        raise ValueError(f"unknown source {source!r} for {name}; valid: auto, {', '.join(labels)}")
    paths = []
    for src in spec.sources_for(source):
        if src.kind == "kaggle":
            paths.append(kaggle_download(src.ref, folder, lock=lock,
                                         lock_key=f"{name}/{src.expected_names()[0]}",
                                         expected_size=spec.approx_size_bytes, progress=progress))
            continue
        if src.kind == "manual":
            for f in src.files:
                if not (folder / f.filename).is_file():
                    raise FileNotFoundError(
                        f"{name} from {source} must be downloaded by hand: open {src.ref}, download "
                        f"{f.filename}, put it at {folder / f.filename}, then run "
                        f"`medxai data fetch {name} --source {source} --root {root}`")
                paths.append(download(f.url, folder / f.filename, lock=lock, lock_key=f"{name}/{f.filename}"))
            continue
        files = _local_files(folder, src)
        if files is None:
            files = src.resolve()
            if src.kind in ("figshare", "dataverse"):
                # Keep the resolved list (names, URLs, published MD5s): later runs verify offline.
                with atomic_path(folder / f".source-{src.label}.json") as tmp:
                    tmp.write_text(json.dumps([asdict(f) for f in files], indent=2), encoding="utf-8")
        todo = sum((f.size or 0) for f in files if not (folder / f.filename).exists())
        check_disk_space(folder, todo, what=name)
        for f in files:
            paths.append(download(f.url, folder / f.filename, checksum=f.checksum or spec.checksums.get(f.filename),
                                  expected_size=f.size, lock_key=f"{name}/{f.filename}", **common))
    return paths


def _local_files(folder: Path, src: Source) -> list[RemoteFile] | None:
    """The files of ``src`` when all are already in ``folder`` (no network needed), else None."""
    if src.kind in ("figshare", "dataverse"):
        record = folder / f".source-{src.label}.json"
        if not record.is_file():
            return None
        try:
            files = [RemoteFile(**d) for d in json.loads(record.read_text(encoding="utf-8"))]
        except (ValueError, TypeError):
            return None
    elif src.kind == "kaggle":
        files = [RemoteFile(src.expected_names()[0], f"kaggle:{src.ref}")]
    else:
        files = list(src.files)
    return files if files and all((folder / f.filename).is_file() for f in files) else None


def _unpack(files: Sequence[Path], dest: Path) -> None:
    """Extract every archive (and archives inside archives, two levels) into ``dest``; copy the rest.

    A top-level archive ``a.zip`` goes to ``dest/a/``; a nested ``dest/a/b.zip`` to ``dest/a/b/``
    (and is then deleted from the work folder). An :class:`ArchiveError` gets the attribute
    ``download``: the downloaded file it came from.
    """
    dest.mkdir(parents=True, exist_ok=True)

    def target_for(p: Path) -> Path:
        stem = re.sub(r"(\.tar)?\.(zip|tar|gz|tgz|bz2|tbz2|xz|txz)$", "", p.name, flags=re.I) or "archive"
        cand, k = p.with_name(stem), 1
        while cand.exists():
            k += 1
            cand = p.with_name(f"{stem}-{k}")
        return cand

    for f in files:
        try:
            if not is_archive(f):
                shutil.copy2(f, dest / f.name)
                continue
            top = target_for(dest / f.name)
            safe_extract(f, top)
            for _ in range(2):
                nested = [p for p in _walk_files(top) if is_archive(p)]
                for p in nested:
                    safe_extract(p, target_for(p))
                    p.unlink()
                if not nested:
                    break
        except ArchiveError as exc:
            exc.download = f
            raise


def _swap_in(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``; an older ``final`` is moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prepare_public(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    max_size: int = 512,
    progress: bool = True,
) -> PrepareReport:
    """Build ``<root>/<name>/`` from the files in ``<root>/downloads/<name>/``, atomically.

    Archives are extracted safely into a temporary folder, every image is decoded, written as
    PNG (longer side at most ``max_size``; 0 keeps the size) with its mask, and the finished
    folder is renamed into place, replacing an older one. Corrupt files are skipped and listed
    by name in ``prepare_report.json``. Returns the :class:`PrepareReport`.
    """
    spec = get_spec(name)
    root = data_root(root)
    folder = _download_dir(root, name)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(".part")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"nothing downloaded for {name!r} in {folder}; run `{_fetch_command(name, root)}`")
    if not isinstance(max_size, int) or max_size < 0:
        raise ValueError(f"max_size must be a non-negative int (0 keeps the original size), got {max_size!r}")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".work-{name}-"))
    out = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".part"))
    try:
        src = work / "src"
        _unpack(files, src)
        report = PrepareReport(name=name, sources=[f.name for f in files])
        writer = _Writer(out, report, spec.classes, max_size=max_size, grayscale=spec.grayscale, src_root=src)
        spec.prepare(src, writer, progress=progress)
        if report.total == 0:
            raise ValueError(
                f"no {name} images found in {', '.join(report.sources)} ({len(report.corrupt)} corrupt): "
                f"is this the right archive? Expected the layout described in medxai_lite.data.public")
        manifest = {
            "format": _FORMAT,
            "name": name,
            "classes": list(spec.classes),
            "modality": spec.modality,
            "has_masks": spec.has_masks,
            "splits": report.counts,
            "layout": "<split>/<class>/<id>.png; masks: <split>/masks/<class>/<id>.png",
            "max_size": max_size,
            "licence": spec.licence,
            "citation": spec.citation,
            "homepage": spec.homepage,
            "sources": report.sources,
            "prepared": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (out / "prepare_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        _swap_in(out, root / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return report


def fetch(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    source: str = "auto",
    mirror: str | None = None,
    max_size: int = 512,
    force: bool = False,
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
) -> PrepareReport | None:
    """Download, verify, extract and prepare dataset ``name`` (what ``medxai data fetch`` runs).

    Does nothing and returns None when ``<root>/<name>`` is already prepared, unless ``force``.
    An archive refused as unsafe is deleted with its checksum record, so that a later run
    fetches a corrected file afresh. See :func:`download_public` and :func:`prepare_public`.
    """
    spec = get_spec(name)
    root = data_root(root)
    if not force and (root / name / "manifest.json").is_file():
        return None
    download_public(name, root, source=source, mirror=mirror, retries=retries, backoff=backoff,
                    progress=progress)
    try:
        return prepare_public(name, root, max_size=max_size, progress=progress)
    except UnsafeArchiveError as exc:
        bad = getattr(exc, "download", None)
        if bad is not None and Path(bad).exists():
            Path(bad).unlink()
            _lock(root).forget(f"{spec.name}/{Path(bad).name}")
        raise


def verify_public(name: str, root: str | os.PathLike | None = None) -> dict:
    """Check the downloads against the checksum lock and the prepared folder against its manifest.

    Returns ``{"ok": bool, "checked": [...], "problems": [...]}``; raises ``FileNotFoundError``
    (with the fetch command) when there is nothing to verify.
    """
    get_spec(name)
    root = data_root(root)
    folder, prepared = _download_dir(root, name), root / name
    checked, problems = [], []
    if not folder.is_dir() and not prepared.is_dir():
        raise FileNotFoundError(f"{name!r} is neither downloaded nor prepared under {root}; "
                                f"run `{_fetch_command(name, root)}`")
    lock = _lock(root)
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if not p.is_file() or p.name.startswith("."):
                continue
            if p.name.endswith(".part"):
                problems.append(f"{p.name}: unfinished download (the next fetch resumes it)")
                continue
            entry = lock.get(f"{name}/{p.name}")
            if entry is None:
                problems.append(f"{p.name}: no checksum recorded in {lock.path}")
            elif entry["sha256"] != file_digest(p):
                problems.append(f"{p.name}: sha256 differs from the one recorded at first download")
            else:
                checked.append(f"{p.name}: sha256 ok")
    manifest_path = prepared / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for split, per in manifest["splits"].items():
            for cls, n in per.items():
                have = len(list((prepared / split / cls).glob("*.png")))
                if have != n:
                    problems.append(f"{split}/{cls}: {have} images, the manifest says {n}")
        if not any(": " in q and "manifest says" in q for q in problems):
            total = sum(sum(per.values()) for per in manifest["splits"].values())
            checked.append(f"{name}/: {total} prepared images match the manifest")
    else:
        problems.append(f"{name} is not prepared: run `medxai data prepare {name} --root {root}`")
    return {"ok": not problems, "checked": checked, "problems": problems}


# =========================================================================== loading

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
            hint = (f"the files are downloaded but not prepared: run `medxai data prepare {name} --root {root}`"
                    if _download_dir(root, name).is_dir() and any(_download_dir(root, name).iterdir())
                    else f"run `{_fetch_command(name, root)}` (or `python data_scripts/"
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


# =========================================================================== command line

_KNOWN_ERRORS = (FileNotFoundError, ValueError, DownloadError, ChecksumError, ArchiveError,
                 KaggleCredentialsError, OSError, ImportError)


def _cmd_list(args) -> int:
    root = data_root(args.root)
    print(f"data root: {root}")
    for spec in PUBLIC_DATASETS.values():
        state = "prepared" if (root / spec.name / "manifest.json").is_file() else (
            "downloaded" if _download_dir(root, spec.name).is_dir() else "-")
        print(f"\n{spec.name}  [{state}]\n  {spec.title}; {spec.modality}; {len(spec.classes)} classes "
              f"({', '.join(spec.classes)}); masks: {'yes' if spec.has_masks else 'no'}; "
              f"about {spec.approx_size_bytes / (1 << 30):.1f} GiB\n  licence: {spec.licence}\n"
              f"  sources: {', '.join(spec.source_labels)} ({spec.homepage})\n  cite: {spec.citation}")
    return 0


def _cmd_fetch(args) -> int:
    report = fetch(args.name, args.root, source=args.source, mirror=args.mirror, max_size=args.max_size,
                   force=args.force, progress=not args.quiet)
    root = data_root(args.root)
    if report is None:
        print(f"{args.name} is already prepared in {root / args.name} (use --force to rebuild)")
    else:
        print(report.summary())
        print(f"written to {root / args.name}")
    return 0


def _cmd_prepare(args) -> int:
    report = prepare_public(args.name, args.root, max_size=args.max_size, progress=not args.quiet)
    print(report.summary())
    return 0


def _cmd_verify(args) -> int:
    result = verify_public(args.name, args.root)
    for line in result["checked"]:
        print(f"ok: {line}")
    for line in result["problems"]:
        print(f"problem: {line}", file=sys.stderr)
    return 0 if result["ok"] else 1


def _guard(func):
    def run(args) -> int:
        try:
            return func(args)
        except _KNOWN_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None,
                   help=f"data folder (default: ${DATA_ENV}, else ./DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_fetch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="auto",
                   help="auto (default), or a source label: github, kaggle, figshare, dataverse, mendeley")
    p.add_argument("--mirror", default=None,
                   help=f"base URL serving <mirror>/<name>/<file> (default: ${MIRROR_ENV})")
    p.add_argument("--max-size", type=int, default=512, dest="max_size",
                   help="longer image side after preparation in pixels; 0 keeps the original (default 512)")
    p.add_argument("--force", action="store_true", help="prepare again even if already prepared")


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add ``data list | fetch NAME | verify NAME | prepare NAME`` to a ``medxai`` CLI.

    Each leaf sets ``func`` (``args -> int`` exit code). Returns the ``data`` parser.
    """
    data = subparsers.add_parser("data", help="download, verify and prepare the public datasets",
                                 description="Public datasets: " + ", ".join(PUBLIC_DATASETS))
    sub = data.add_subparsers(dest="data_command", metavar="{list,fetch,verify,prepare}")
    sub.required = True
    names = list(PUBLIC_DATASETS)
    p = sub.add_parser("list", help="list the datasets, their licences and what is on disk")
    _add_common(p)
    p.set_defaults(func=_guard(_cmd_list))
    p = sub.add_parser("fetch", help="download, verify, extract and prepare a dataset")
    p.add_argument("name", choices=names)
    _add_common(p)
    _add_fetch_args(p)
    p.set_defaults(func=_guard(_cmd_fetch))
    p = sub.add_parser("verify", help="check downloads against recorded checksums and the prepared folder")
    p.add_argument("name", choices=names)
    _add_common(p)
    p.set_defaults(func=_guard(_cmd_verify))
    p = sub.add_parser("prepare", help="(re)build the prepared folder from the downloaded files")
    p.add_argument("name", choices=names)
    _add_common(p)
    p.add_argument("--max-size", type=int, default=512, dest="max_size",
                   help="longer image side in pixels; 0 keeps the original (default 512)")
    p.set_defaults(func=_guard(_cmd_prepare))
    return data


def main_for(name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``data_scripts/<name>.py``: fetch (default), ``--verify`` or ``--prepare-only``."""
    spec = get_spec(name)
    parser = argparse.ArgumentParser(description=f"Fetch and prepare {spec.title} ({spec.licence}).")
    _add_common(parser)
    _add_fetch_args(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help="only verify what is on disk")
    mode.add_argument("--prepare-only", action="store_true", help="only (re)prepare the downloaded files")
    args = parser.parse_args(argv)
    args.name = name
    if args.verify:
        return _guard(_cmd_verify)(args)
    if args.prepare_only:
        return _guard(_cmd_prepare)(args)
    return _guard(_cmd_fetch)(args)

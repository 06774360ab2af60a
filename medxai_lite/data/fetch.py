"""Getting a public dataset onto disk: download, prepare, fetch (both), verify.

Prepared layout (one for all datasets), under the data root (``--root``, else ``$MEDXAI_DATA``,
else ``./DATA``; see :func:`data_root`)::

    DATA/
      checksums.lock.json                 sha256 of every first download (trust on first use)
      downloads/<name>/...                the archives as downloaded
      <name>/manifest.json                classes, splits, counts, modality, source files
      <name>/prepare_report.json          corrupt / missing files, by name
      <name>/<split>/<class>/<id>.png     images (grayscale PNG for MRI and X-ray, RGB otherwise)
      <name>/<split>/masks/<class>/<id>.png   lesion masks (0 / 255), same size as the image

:func:`download_public` downloads (or, when they are there, verifies) the files of one
dataset from the source chosen among its spec's sources; :func:`prepare_public` extracts them
safely and runs the dataset's preparer (:mod:`medxai_lite.data.prepare`) into a temporary
folder that replaces ``<name>/`` only when complete; :func:`fetch` does both (what ``medxai
data fetch`` runs); :func:`verify_public` checks the downloads against the checksum lock and
the prepared folder against its manifest.

A mirror: setting the environment variable ``MEDXAI_DATA_MIRROR`` to a base URL (or passing
``mirror=``) makes :func:`fetch` take every file from ``<mirror>/<name>/<file name>`` (the file
names are in each spec's ``mirror_files``) instead of the original sources; the checksums are
checked exactly as for the original source. This serves an institutional cache, an offline
machine with a local web server, and the tests.
"""
from __future__ import annotations

import enum
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .._utils import atomic_dir, atomic_path
from .download import (
    LOCK_FILENAME,
    ArchiveError,
    ChecksumLock,
    UnsafeArchiveError,
    check_disk_space,
    download,
    file_digest,
    is_archive,
    kaggle_download,
    safe_extract,
)
from .prepare import ImageWriter, PrepareReport, _walk_files
from .remote import RemoteFile, Source
from .specs import get_spec

__all__ = [
    "DATA_ENV",
    "MIRROR_ENV",
    "data_root",
    "download_public",
    "prepare_public",
    "fetch",
    "verify_public",
    "VerifyStatus",
    "Finding",
]

#: Environment variable giving the data root (default ``./DATA``).
DATA_ENV = "MEDXAI_DATA"
#: Environment variable giving a mirror base URL: files come from ``<mirror>/<name>/<file>``.
MIRROR_ENV = "MEDXAI_DATA_MIRROR"
_FORMAT = 1  # version of the prepared layout; bump when it changes


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


def download_state(name: str, root: str | os.PathLike | None = None) -> str:
    """How far the download of ``name`` got: ``"none"``, ``"partial"`` or ``"downloaded"``.

    ``"partial"``: an interrupted file (``*.part``) is there, or a resolved file list
    (``.source-<label>.json``) names files that are missing. ``"downloaded"``: every file of one
    source (or of the mirror) is there, or files were put there by hand (nothing says what is
    missing, so they are taken as whole). ``"none"``: no data file at all (an empty folder, or
    only the bookkeeping a failed first attempt left).
    """
    spec = get_spec(name)
    folder = _download_dir(data_root(root), name)
    if not folder.is_dir():
        return "none"
    entries = list(folder.iterdir())
    if any(p.name.endswith(".part") for p in entries):
        return "partial"
    if any(all(_local_files(folder, s) is not None for s in spec.sources_for(lb)) for lb in spec.source_labels):
        return "downloaded"
    if spec.mirror_files and all((folder / f).is_file() for f in spec.mirror_files):
        return "downloaded"
    if any(p.name.startswith(".source-") for p in entries):
        return "partial"
    return "downloaded" if any(p.is_file() and not p.name.startswith(".") for p in entries) else "none"


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
    if download_state(name, root) == "partial":      # half a dataset must not become a prepared one
        raise FileNotFoundError(f"the download of {name!r} in {folder} is incomplete (an interrupted file or "
                                f"missing parts); run `{_fetch_command(name, root)}` again: it resumes")
    _check_max_size(max_size)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".work-{name}-"))
    try:
        with atomic_dir(root / name) as out:
            src = work / "src"
            _unpack(files, src)
            report = PrepareReport(name=name, sources=[f.name for f in files])
            writer = ImageWriter(out, report, spec.classes, max_size=max_size, grayscale=spec.grayscale,
                                 src_root=src)
            spec.prepare(src, writer, progress=progress)
            if report.total == 0:
                raise ValueError(
                    f"no {name} images found in {', '.join(report.sources)} ({len(report.corrupt)} corrupt): "
                    f"is this the right archive? Expected the layout described in medxai_lite.data.prepare")
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
            (out / "prepare_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n",
                                                     encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _check_max_size(max_size) -> None:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise ValueError(f"max_size must be a non-negative int (0 keeps the original size), got {max_size!r}")


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
    _check_max_size(max_size)           # before a download of several gigabytes, not after it
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


class VerifyStatus(enum.Enum):
    """The outcome of one check made by :func:`verify_public`."""

    OK = "ok"
    UNFINISHED = "unfinished"              # a ``.part`` file: a download that did not complete
    NO_CHECKSUM = "no-checksum"            # a downloaded file with no entry in the checksum lock
    CHECKSUM_CHANGED = "checksum-changed"  # a downloaded file whose sha256 differs from the lock
    COUNT_MISMATCH = "count-mismatch"      # a prepared class folder holds another number of images
    NOT_PREPARED = "not-prepared"          # no ``manifest.json``: the dataset is not prepared


@dataclass(frozen=True)
class Finding:
    """One check made by :func:`verify_public`: its status and the line that reports it."""

    status: VerifyStatus
    message: str

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK


def _verify_downloads(name: str, folder: Path, lock: ChecksumLock) -> list[Finding]:
    """One finding per downloaded file: its sha256 against the one recorded at first download."""
    findings = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.name.endswith(".part"):
            findings.append(Finding(VerifyStatus.UNFINISHED,
                                    f"{p.name}: unfinished download (the next fetch resumes it)"))
            continue
        entry = lock.get(f"{name}/{p.name}")
        if entry is None:
            findings.append(Finding(VerifyStatus.NO_CHECKSUM, f"{p.name}: no checksum recorded in {lock.path}"))
        elif entry["sha256"] != file_digest(p):
            findings.append(Finding(VerifyStatus.CHECKSUM_CHANGED,
                                    f"{p.name}: sha256 differs from the one recorded at first download"))
        else:
            findings.append(Finding(VerifyStatus.OK, f"{p.name}: sha256 ok"))
    return findings


def _verify_prepared(name: str, prepared: Path, root: Path) -> list[Finding]:
    """The prepared folder against its manifest: one finding per class folder whose image count
    differs, or a single OK finding when all match."""
    manifest_path = prepared / "manifest.json"
    if not manifest_path.is_file():
        return [Finding(VerifyStatus.NOT_PREPARED,
                        f"{name} is not prepared: run `medxai data prepare {name} --root {root}`")]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    findings = []
    for split, per in manifest["splits"].items():
        for cls, n in per.items():
            have = len(list((prepared / split / cls).glob("*.png")))
            if have != n:
                findings.append(Finding(VerifyStatus.COUNT_MISMATCH,
                                        f"{split}/{cls}: {have} images, the manifest says {n}"))
    if not findings:
        total = sum(sum(per.values()) for per in manifest["splits"].values())
        findings.append(Finding(VerifyStatus.OK, f"{name}/: {total} prepared images match the manifest"))
    return findings


def verify_public(name: str, root: str | os.PathLike | None = None) -> dict:
    """Check the downloads against the checksum lock and the prepared folder against its manifest.

    Returns ``{"ok": bool, "checked": [...], "problems": [...], "findings": [...]}``: ``findings``
    lists every check as a :class:`Finding` (a :class:`VerifyStatus` and a message), ``checked``
    and ``problems`` the messages of the passed and the failed ones. Raises
    ``FileNotFoundError`` (with the fetch command) when there is nothing to verify.
    """
    get_spec(name)
    root = data_root(root)
    folder, prepared = _download_dir(root, name), root / name
    if not folder.is_dir() and not prepared.is_dir():
        raise FileNotFoundError(f"{name!r} is neither downloaded nor prepared under {root}; "
                                f"run `{_fetch_command(name, root)}`")
    findings = _verify_downloads(name, folder, _lock(root)) if folder.is_dir() else []
    findings += _verify_prepared(name, prepared, root)
    return {
        "ok": all(f.ok for f in findings),
        "checked": [f.message for f in findings if f.ok],
        "problems": [f.message for f in findings if not f.ok],
        "findings": findings,
    }

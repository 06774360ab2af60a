"""Verified, resumable, atomic downloads and safe archive extraction for the public datasets.

What this module promises, whatever goes wrong on the way:

- **Nothing half-written under a final name.** A download is written to ``<dest>.part`` and
  renamed to ``<dest>`` only once it is complete and its checksum matches. An archive is
  extracted into a temporary folder beside its destination and renamed at the end.
- **Resume.** An interrupted download leaves its ``.part`` file; the next attempt (in the same
  call or in a later run) asks the server for the rest with an HTTP ``Range`` request.
- **Bounded retries.** Server errors (5xx, 429) and dropped connections are retried with
  exponential backoff (``backoff * 2**k`` seconds), at most ``retries`` times.
- **Checksums.** A checksum published by the source (``"sha256:<hex>"`` or ``"md5:<hex>"``) is
  checked when given. Otherwise the first complete download records its SHA-256 in a JSON lock
  file (trust on first use, :class:`ChecksumLock`) and every later download of the same file is
  checked against it. No checksum is ever written by hand into this package.
- **Safe extraction.** :func:`safe_extract` reads the whole member list first and refuses
  absolute paths, ``..`` components, symbolic and hard links and device files, naming the
  offending member, before anything is written.
- **Kaggle** sources go through the official ``kaggle`` client; :func:`kaggle_credentials`
  says exactly which credential is missing and where to put it, without touching the network.

Example
-------
>>> from medxai_lite.data.download import download, ChecksumLock, safe_extract
>>> lock = ChecksumLock("DATA/checksums.lock.json")                      # doctest: +SKIP
>>> path = download("https://example.org/a.zip", "DATA/downloads/a.zip",
...                 lock=lock, lock_key="example/a.zip")                 # doctest: +SKIP
>>> safe_extract(path, "DATA/tmp/a")                                     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import tarfile
import time
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .._utils import atomic_dir, atomic_path

__all__ = [
    "DownloadError",
    "OfflineError",
    "ChecksumError",
    "ArchiveError",
    "UnsafeArchiveError",
    "KaggleCredentialsError",
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "LOCK_FILENAME",
    "parse_checksum",
    "file_digest",
    "verify_checksum",
    "ChecksumLock",
    "check_disk_space",
    "download",
    "is_archive",
    "safe_extract",
    "kaggle_credentials",
    "kaggle_download",
]

#: Seconds to wait for a TCP connection: short, so that an offline machine fails fast.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for the next bytes of a response before the attempt counts as failed.
READ_TIMEOUT = 60.0
#: File name of the trust-on-first-use checksum record, kept at the data root.
LOCK_FILENAME = "checksums.lock.json"

_RETRY_STATUS = {429, 500, 502, 503, 504}
_CHUNK = 1 << 20
# Network reads are small: a dropped connection loses at most one read, which the resume re-fetches.
_NET_CHUNK = 1 << 16
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class DownloadError(RuntimeError):
    """A download failed (HTTP error, too many retries, ...)."""


class OfflineError(DownloadError):
    """The server could not be reached at all: most likely no network."""


class ChecksumError(DownloadError):
    """A file's checksum differs from the published or the recorded one."""


class ArchiveError(RuntimeError):
    """An archive could not be read or extracted."""

    def __init__(self, message: str, archive: str | os.PathLike | None = None, member: str | None = None):
        super().__init__(message)
        self.archive = None if archive is None else Path(archive)
        self.member = member


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the destination or is a link / device file."""


class KaggleCredentialsError(RuntimeError):
    """Kaggle credentials are missing or incomplete."""


# --------------------------------------------------------------------------- checksums

def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"sha256:<hex>"`` / ``"md5:<hex>"`` (or a bare 64-digit SHA-256) into (algorithm, hex).

    Raises ``ValueError`` naming the expected form when the string is malformed.
    """
    text = str(checksum).strip().lower()
    algo, _, digest = text.rpartition(":")
    algo = algo or "sha256"
    lengths = {"sha256": 64, "md5": 32, "sha1": 40}
    if algo not in lengths or not re.fullmatch(r"[0-9a-f]+", digest or "") or len(digest) != lengths[algo]:
        raise ValueError(
            f"checksum must look like 'sha256:<64 hex digits>' or 'md5:<32 hex digits>', got {checksum!r}"
        )
    return algo, digest


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, checksum: str, *, what: str | None = None) -> None:
    """Raise :class:`ChecksumError` when ``path`` does not have ``checksum`` (``"algo:hex"``)."""
    algo, expected = parse_checksum(checksum)
    actual = file_digest(path, algo)
    if actual != expected:
        raise ChecksumError(
            f"{what or Path(path).name}: {algo} is {actual}, expected {expected} "
            f"(the file is corrupt or was changed at the source)"
        )


class ChecksumLock:
    """Trust-on-first-use record of SHA-256 digests, a JSON file.

    The first complete download of a file records ``{"sha256", "size", "source", "recorded"}``
    under a key such as ``"ham10000/HAM10000_metadata.csv"``; every later download of that key
    must match. The file is rewritten atomically. Delete an entry (or the file) only when you
    know the source has published a new version.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _read(self) -> dict:
        if not self.path.exists():
            return {"version": 1, "files": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data.get("files"), dict):
                raise ValueError("no 'files' table")
        except (ValueError, AttributeError) as exc:
            raise ChecksumError(
                f"checksum lock file {self.path} is not valid JSON ({exc}); restore it, or delete it "
                f"to trust the next downloads afresh"
            ) from exc
        return data

    def get(self, key: str) -> dict | None:
        """The recorded entry for ``key``, or None."""
        return self._read()["files"].get(key)

    def entries(self) -> dict:
        """All recorded entries, key -> entry."""
        return dict(self._read()["files"])

    def record(self, key: str, sha256: str, size: int, source: str = "") -> None:
        """Record the digest of a first complete download of ``key``."""
        data = self._read()
        data["files"][key] = {
            "sha256": sha256,
            "size": int(size),
            "source": source,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._write(data)

    def forget(self, key: str) -> None:
        """Remove the entry for ``key`` (e.g. after a downloaded archive was refused as unsafe)."""
        data = self._read()
        if data["files"].pop(key, None) is not None:
            self._write(data)

    def _write(self, data: dict) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _check_file(path: Path, *, checksum: str | None, lock: ChecksumLock | None, lock_key: str,
                source: str, what: str) -> None:
    """Verify ``path`` against the published checksum and/or the lock; record it on first use."""
    sha = None
    if checksum:
        verify_checksum(path, checksum, what=what)
    if lock is not None:
        sha = file_digest(path, "sha256")
        entry = lock.get(lock_key)
        if entry is None:
            lock.record(lock_key, sha, path.stat().st_size, source)
        elif entry.get("sha256") != sha:
            raise ChecksumError(
                f"{what}: sha256 is {sha}, but the first download recorded {entry.get('sha256')} "
                f"in {lock.path} (key {lock_key!r}). The file changed since it was first fetched; "
                f"if the source really published a new version, remove that entry and fetch again"
            )


# --------------------------------------------------------------------------- disk space

def check_disk_space(folder: str | os.PathLike, needed: int | None, *, what: str = "") -> None:
    """Raise ``OSError`` when the file system holding ``folder`` has less than ``needed`` bytes free.

    A margin of 5 % + 50 MiB is kept. ``needed=None`` (size unknown) checks nothing.
    """
    if not needed or needed <= 0:
        return
    probe = Path(folder).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    want = int(needed * 1.05) + (50 << 20)
    if free < want:
        raise OSError(
            28,  # ENOSPC
            f"not enough disk space{' for ' + what if what else ''}: about {_human(want)} needed "
            f"in {probe}, only {_human(free)} free; free some space or choose another --root",
        )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------- HTTP download

class _Retry(Exception):
    """An attempt failed in a way that is worth retrying."""


def _offline_message(url: str, exc: BaseException) -> str:
    from urllib.parse import urlparse

    host = urlparse(url).netloc or url
    return (
        f"cannot reach {host} ({type(exc).__name__}). This machine seems to be offline or the "
        f"server is down. Fetch the data on a machine with internet access (Colab, a workstation) "
        f"and copy the DATA folder here, or point MEDXAI_DATA_MIRROR at a mirror you can reach."
    )


def _is_dns_failure(exc: BaseException) -> bool:
    text = repr(exc)
    return any(s in text for s in ("NameResolutionError", "Name or service not known",
                                   "Temporary failure in name resolution", "nodename nor servname",
                                   "getaddrinfo failed", "No address associated with hostname"))


@contextlib.contextmanager
def _progress(total: int | None, initial: int, desc: str, enabled: bool) -> Iterator:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
               desc=desc, disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()


class _PartialDownload:
    """One file on its way into ``<dest>.part``, across the attempts of :func:`download`.

    Keeps what one attempt tells the next: the total size once a response announced it, and
    whether the server ever answered (when it never did, the machine is most likely offline).
    """

    def __init__(self, url: str, dest: Path, *, total: int | None, session, timeout: tuple[float, float],
                 progress: bool):
        self.url, self.dest, self.total = url, dest, total
        self.part = dest.with_name(dest.name + ".part")
        self.session, self.timeout, self.progress = session, timeout, progress
        self.connected = False

    def attempt(self) -> None:
        """Make one request for the bytes ``<dest>.part`` lacks and append them to it.

        Returns when the ``.part`` file holds the whole file. Raises :class:`_Retry` when
        another attempt may succeed (a 5xx or 429 answer, a transfer cut short; a ``.part``
        file the server cannot resume is deleted first), :class:`DownloadError` for an HTTP
        error that no retry fixes, the ``requests`` connection, timeout and chunked-encoding
        errors when the network fails, and ``OSError`` when the disk is too full.
        """
        dest, part = self.dest, self.part
        have = part.stat().st_size if part.exists() else 0
        if self.total is not None:
            check_disk_space(dest.parent, self.total - have, what=dest.name)
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        with self.session.get(self.url, stream=True, headers=headers, allow_redirects=True,
                              timeout=self.timeout) as r:
            self.connected = True
            if r.status_code == 416 and have:
                # The range starts at or past the end: complete if the size says so, else stale.
                cr = r.headers.get("Content-Range", "")
                size = int(cr.rsplit("/", 1)[1]) if re.search(r"/\d+$", cr) else self.total
                if size is not None and have == size:
                    return
                part.unlink()
                raise _Retry("the server refused to resume; starting over")
            if r.status_code in _RETRY_STATUS:
                raise _Retry(f"HTTP {r.status_code} {r.reason}")
            if r.status_code >= 400:
                raise DownloadError(f"HTTP {r.status_code} {r.reason} for {self.url}")
            mode = "wb"
            if have and r.status_code == 206:
                m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", r.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    part.unlink()
                    raise _Retry("the server answered a different byte range; starting over")
                if m.group(3) != "*":
                    self.total = int(m.group(3))
                mode = "ab"
            else:
                have = 0  # a plain 200: the whole body, from the start
                length = r.headers.get("Content-Length")
                if length and length.isdigit():
                    self.total = int(length)
            if self.total is not None:
                check_disk_space(dest.parent, self.total - have, what=dest.name)
            with open(part, mode) as fh, _progress(self.total, have, dest.name, self.progress) as bar:
                for chunk in r.iter_content(chunk_size=_NET_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
        size = part.stat().st_size
        if self.total is not None and size < self.total:
            raise _Retry(f"transfer ended early ({size} of {self.total} bytes)")
        if self.total is not None and size > self.total:
            part.unlink()
            raise _Retry(f"received {size} bytes, more than the {self.total} announced; starting over")

    def give_up(self, exc: BaseException, attempts: int) -> DownloadError:
        """The error to raise when the last allowed attempt failed with ``exc``."""
        if not self.connected:
            return OfflineError(_offline_message(self.url, exc))
        kept = f"; the partial file {self.part} is kept and the next run resumes from it" \
            if self.part.exists() else ""
        return DownloadError(f"giving up on {self.url} after {attempts} attempts: {exc}{kept}")


def _finish(part: Path, dest: Path, *, checksum: str | None, lock: ChecksumLock | None, lock_key: str,
            source: str, what: str) -> None:
    """Check the complete ``part`` file, rename it to ``dest``, and record it in ``lock`` on first use.

    On a checksum mismatch the ``part`` file is deleted (its bytes are wrong, not merely
    incomplete) and :class:`ChecksumError` propagates.
    """
    try:
        _check_file(part, checksum=checksum, lock=None, lock_key=lock_key, source=source, what=what)
        if lock is not None:
            entry = lock.get(lock_key)
            if entry is not None:
                _check_file(part, checksum=None, lock=lock, lock_key=lock_key, source=source, what=what)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    if lock is not None and lock.get(lock_key) is None:
        lock.record(lock_key, file_digest(dest), dest.stat().st_size, source)


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    checksum: str | None = None,
    lock: ChecksumLock | None = None,
    lock_key: str | None = None,
    expected_size: int | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    progress: bool = True,
    session=None,
) -> Path:
    """Download ``url`` to ``dest``: resumable, retried, checksum-verified, renamed when complete.

    Parameters
    ----------
    url : the http(s) address.
    dest : the final path. The transfer goes to ``<dest>.part`` first.
    checksum : a checksum the source publishes, ``"sha256:<hex>"`` or ``"md5:<hex>"``.
    lock, lock_key : the trust-on-first-use record and this file's key in it (default: the
        file name). The first complete download is recorded; later ones must match.
    expected_size : bytes, when known before the request (for the disk-space check).
    retries, backoff : at most ``retries`` further attempts after a server error (5xx, 429) or a
        dropped connection, waiting ``backoff * 2**k`` seconds before attempt ``k + 1``.
    connect_timeout, read_timeout : seconds (see :data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`).

    Returns the final path. If ``dest`` already exists it is verified, not fetched again.

    Raises :class:`OfflineError` when the host cannot be reached, :class:`ChecksumError` on a
    mismatch (the ``.part`` file is then deleted: its bytes are wrong, not merely incomplete),
    :class:`DownloadError` on an HTTP error or when the retries are spent (the ``.part`` file is
    kept, so the next run resumes), ``OSError`` when the disk is too full.
    """
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_key = lock_key or dest.name
    what = f"{dest.name} (from {url})"
    if dest.exists():
        _check_file(dest, checksum=checksum, lock=lock, lock_key=lock_key, source=url, what=what)
        return dest
    sess = session or requests.Session()
    transfer = _PartialDownload(url, dest, total=expected_size, session=sess,
                                timeout=(connect_timeout, read_timeout), progress=progress)
    try:
        for failures in itertools.count(1):
            try:
                transfer.attempt()
                break
            except (_Retry, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if not transfer.connected and _is_dns_failure(exc):
                    raise OfflineError(_offline_message(url, exc)) from exc
                if failures > retries:
                    raise transfer.give_up(exc, failures) from exc
                wait = backoff * 2 ** (failures - 1)
                warnings.warn(f"{dest.name}: {exc}; retrying in {wait:.1f} s "
                              f"(attempt {failures + 1} of {retries + 1})", RuntimeWarning, stacklevel=2)
                time.sleep(wait)
    finally:
        if session is None:
            sess.close()
    _finish(transfer.part, dest, checksum=checksum, lock=lock, lock_key=lock_key, source=url, what=what)
    return dest


# --------------------------------------------------------------------------- safe extraction

def is_archive(path: str | os.PathLike) -> bool:
    """True for the archive types :func:`safe_extract` handles (judged by the file name)."""
    name = Path(path).name.lower()
    return name.endswith(_ARCHIVE_SUFFIXES)


def _member_parts(archive: Path, name: str) -> list[str]:
    norm = name.replace("\\", "/")
    if "\x00" in norm:
        raise UnsafeArchiveError(f"refusing to extract {archive.name}: member {name!r} has a NUL byte",
                                 archive, name)
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UnsafeArchiveError(
            f"refusing to extract {archive.name}: member {name!r} has an absolute path", archive, name)
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"refusing to extract {archive.name}: member {name!r} has a '..' component and would "
            f"land outside the destination", archive, name)
    return parts


def _zip_plan(archive: Path, zf: zipfile.ZipFile) -> list[tuple[list[str], object, int]]:
    plan = []
    for info in zf.infolist():
        parts = _member_parts(archive, info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(
                f"refusing to extract {archive.name}: member {info.filename!r} is a symbolic link",
                archive, info.filename)
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise UnsafeArchiveError(
                f"refusing to extract {archive.name}: member {info.filename!r} is a device or special file",
                archive, info.filename)
        if parts:
            plan.append((parts, info, 0 if info.is_dir() else info.file_size))
    return plan


def _tar_plan(archive: Path, tf: tarfile.TarFile) -> list[tuple[list[str], object, int]]:
    plan = []
    for m in tf.getmembers():
        parts = _member_parts(archive, m.name)
        if m.issym() or m.islnk():
            kind = "symbolic" if m.issym() else "hard"
            raise UnsafeArchiveError(
                f"refusing to extract {archive.name}: member {m.name!r} is a {kind} link "
                f"(to {m.linkname!r})", archive, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise UnsafeArchiveError(
                f"refusing to extract {archive.name}: member {m.name!r} is a device or special file",
                archive, m.name)
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"refusing to extract {archive.name}: member {m.name!r} has an unsupported type",
                archive, m.name)
        if parts:
            plan.append((parts, m, m.size if m.isfile() else 0))
    return plan


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a zip or tar archive into the new folder ``dest``, refusing anything unsafe.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    symbolic and hard links, device files and FIFOs raise :class:`UnsafeArchiveError` naming the
    member. Files are written into a temporary folder beside ``dest``, which is renamed to
    ``dest`` at the end; on any error the temporary folder is removed. ``dest`` must not exist.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"extraction target {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            opener = zipfile.ZipFile(archive)
        elif name.endswith(_ARCHIVE_SUFFIXES):
            opener = tarfile.open(archive, "r:*")
        else:
            raise ArchiveError(f"{archive.name}: not a zip or tar archive", archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ArchiveError(f"{archive.name} is not a readable archive ({exc})", archive) from exc
    with opener as arc:
        try:
            plan = _zip_plan(archive, arc) if isinstance(arc, zipfile.ZipFile) else _tar_plan(archive, arc)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{archive.name} is corrupt ({exc})", archive) from exc
        check_disk_space(dest.parent, sum(size for _, _, size in plan), what=f"extracting {archive.name}")
        try:
            with atomic_dir(dest) as tmp:
                for parts, member, _ in plan:
                    target = tmp.joinpath(*parts)
                    is_dir = member.is_dir() if isinstance(member, zipfile.ZipInfo) else member.isdir()
                    if is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = arc.open(member) if isinstance(arc, zipfile.ZipFile) else arc.extractfile(member)
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{archive.name} is corrupt ({exc})", archive) from exc
    return dest


# --------------------------------------------------------------------------- Kaggle

def _kaggle_config_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser())
    home = Path.home()
    dirs.append(home / ".kaggle")
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    dirs.append(Path(xdg).expanduser() / "kaggle")
    return dirs


def kaggle_credentials(for_what: str = "") -> str:
    """Say where Kaggle credentials were found, or raise :class:`KaggleCredentialsError`.

    Checks, without any network access: the ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` environment
    variables, ``kaggle.json`` (in ``$KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or
    ``~/.config/kaggle``), and the newer token forms (``KAGGLE_API_TOKEN``,
    ``~/.kaggle/access_token``, ``~/.kaggle/credentials.json``). The error names exactly what
    is missing. A ``kaggle.json`` readable by other users gives a warning (``chmod 600`` it).
    """
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if user and key:
        return "environment variables KAGGLE_USERNAME and KAGGLE_KEY"
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "environment variable KAGGLE_API_TOKEN"
    looked = []
    for folder in _kaggle_config_dirs():
        path = folder / "kaggle.json"
        looked.append(str(path))
        if not path.is_file():
            continue
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KaggleCredentialsError(
                f"{path} exists but cannot be read as JSON ({exc}); it must contain "
                f'{{"username": "<your Kaggle user name>", "key": "<your API key>"}}') from exc
        missing = [k for k in ("username", "key") if not cfg.get(k)] if isinstance(cfg, dict) else ["username", "key"]
        if missing:
            raise KaggleCredentialsError(
                f"{path} lacks {' and '.join(repr(m) for m in missing)}; it must contain "
                f'{{"username": "<your Kaggle user name>", "key": "<your API key>"}}')
        if os.name == "posix" and path.stat().st_mode & 0o077:
            warnings.warn(f"{path} is readable by other users; run: chmod 600 {path}", UserWarning,
                          stacklevel=2)
        return str(path)
    home = Path.home()
    for token in (home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt",
                  home / ".kaggle" / "credentials.json"):
        if token.is_file():
            return str(token)
    need = f" to download {for_what}" if for_what else ""
    if user or key:
        have, lack = ("KAGGLE_USERNAME", "KAGGLE_KEY") if user else ("KAGGLE_KEY", "KAGGLE_USERNAME")
        raise KaggleCredentialsError(
            f"Kaggle credentials are incomplete{need}: {have} is set but {lack} is not. "
            f"Set both environment variables (the values are in the kaggle.json file that "
            f"https://www.kaggle.com/settings -> API -> 'Create New Token' gives you).")
    raise KaggleCredentialsError(
        f"Kaggle credentials not found{need}. Give them in one of two ways:\n"
        f"  1. environment variables KAGGLE_USERNAME and KAGGLE_KEY (neither is set), or\n"
        f"  2. the file ~/.kaggle/kaggle.json holding "
        f'{{"username": "...", "key": "..."}}, then run: chmod 600 ~/.kaggle/kaggle.json\n'
        f"     (looked in: {', '.join(looked)}).\n"
        f"Get the file from https://www.kaggle.com/settings -> API -> 'Create New Token', and accept "
        f"the dataset's terms on its Kaggle page once. In Colab: upload kaggle.json with "
        f"google.colab.files.upload(), or set the two variables from Colab secrets.")


def kaggle_download(
    slug: str,
    dest_dir: str | os.PathLike,
    *,
    lock: ChecksumLock | None = None,
    lock_key: str | None = None,
    expected_size: int | None = None,
    progress: bool = True,
) -> Path:
    """Download the Kaggle dataset ``owner/name`` as ``<dest_dir>/<name>.zip`` with the official client.

    Credentials are checked first (:func:`kaggle_credentials`). The client writes into a
    temporary folder (where it can resume an interrupted transfer); the zip is checked against
    the lock (trust on first use; Kaggle publishes no checksum) and renamed into place.
    """
    if slug.count("/") != 1:
        raise ValueError(f"Kaggle slug must look like 'owner/dataset', got {slug!r}")
    dest_dir = Path(dest_dir)
    final = dest_dir / f"{slug.split('/')[1]}.zip"
    lock_key = lock_key or final.name
    what = f"{final.name} (Kaggle dataset {slug})"
    if final.exists():
        _check_file(final, checksum=None, lock=lock, lock_key=lock_key, source=f"kaggle:{slug}", what=what)
        return final
    kaggle_credentials(f"the Kaggle dataset {slug}")
    check_disk_space(dest_dir, expected_size, what=slug)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise ImportError(f"the Kaggle client is needed for this dataset and could not be imported "
                          f"({exc}): pip install kaggle") from exc
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit as exc:  # the client exits instead of raising when it finds no credentials
        raise KaggleCredentialsError(
            "the Kaggle client rejected the credentials; check KAGGLE_USERNAME / KAGGLE_KEY or "
            "~/.kaggle/kaggle.json") from exc
    import requests

    work = dest_dir / f".kaggle-{final.stem}.part"
    work.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_files(slug, path=str(work), force=False, quiet=not progress, unzip=False)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise OfflineError(_offline_message("https://www.kaggle.com", exc)) from exc
    except requests.HTTPError as exc:
        code = getattr(exc.response, "status_code", None)
        if code in (401, 403):
            raise KaggleCredentialsError(
                f"Kaggle refused the download of {slug} (HTTP {code}): check that KAGGLE_USERNAME / "
                f"KAGGLE_KEY (or ~/.kaggle/kaggle.json) are current, and accept the dataset's terms once "
                f"at https://www.kaggle.com/datasets/{slug}") from exc
        raise DownloadError(f"Kaggle download of {slug} failed: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            work.rmdir()  # only when empty: a partial file stays for the client to resume
    got = work / final.name
    if not got.exists():
        zips = sorted(work.glob("*.zip"))
        if len(zips) != 1:
            raise DownloadError(f"the Kaggle client did not leave one zip file in {work} for {slug}")
        got = zips[0]
    try:
        _check_file(got, checksum=None, lock=lock, lock_key=lock_key, source=f"kaggle:{slug}", what=what)
    except ChecksumError:
        got.unlink(missing_ok=True)
        raise
    os.replace(got, final)
    shutil.rmtree(work, ignore_errors=True)
    return final

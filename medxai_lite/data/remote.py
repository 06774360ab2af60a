"""Where the files of a public dataset come from: :class:`RemoteFile` and :class:`Source`.

A :class:`Source` names one origin of a dataset (plain URLs, a Kaggle dataset, a figshare
article, a Dataverse dataset, or files downloaded by hand). :meth:`Source.resolve` turns it into
the list of :class:`RemoteFile` to download, asking the figshare or Dataverse REST API for the
file names, download links and published MD5 checksums where needed. The downloads themselves
are done by :mod:`medxai_lite.data.download`; which sources a dataset has is written in
:mod:`medxai_lite.data.specs`.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Sequence

from .download import DownloadError, OfflineError, _offline_message

__all__ = ["RemoteFile", "Source"]


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
        raise OfflineError(_offline_message(url, exc)) from exc
    if r.status_code >= 400:
        raise DownloadError(f"HTTP {r.status_code} {r.reason} for {url}")
    return r.json()


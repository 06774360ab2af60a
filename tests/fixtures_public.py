"""Fixtures for the public-data tests: tiny archives in each source's real layout, and a
loopback HTTP server that honours Range requests and injects faults on demand.

Nothing here touches the network beyond 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- HTTP server


class FixtureServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 with optional one-shot faults.

    Faults, consumed in order per path: ``"503"`` / ``"500"`` (an error status), ``"truncate"``
    (announce the full length, send half, close), ``"ignore_range"`` (answer 200 with the whole
    body even when a Range was asked). Every request is logged as (path, Range header, status).
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                path = self.path
                data = server.files.get(path)
                if data is None:
                    data = server.files.get(path.split("?", 1)[0])
                queue = server.faults.get(path) or server.faults.get(path.split("?", 1)[0]) or []
                fault = queue.pop(0) if queue else None
                rng = self.headers.get("Range")
                if fault in ("500", "503"):
                    server.requests.append((path, rng, int(fault)))
                    self.send_error(int(fault))
                    return
                if data is None:
                    server.requests.append((path, rng, 404))
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and fault != "ignore_range":
                    start = int(m.group(1))
                    if start >= len(data):
                        server.requests.append((path, rng, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                else:
                    status = 200
                body = data[start:]
                server.requests.append((path, rng, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def put(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path

    def fault(self, path: str, *faults: str) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        return [r for r in self.requests if r[0].split("?", 1)[0] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- tiny files


def image_bytes(seed: int, fmt: str = "JPEG", size=(20, 16), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def corrupt_images() -> dict[str, bytes]:
    """Two broken images: random bytes with a .jpg name, and a JPEG cut in half."""
    good = image_bytes(99, size=(64, 64))
    return {"broken.jpg": b"this is not an image at all" * 3, "truncated.jpg": good[: len(good) // 2]}


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- source layouts

BRAIN_CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")


def brain_tumor_mri_files(extra: dict[str, bytes] | None = None, prefix: str = "") -> dict[str, bytes]:
    """Kaggle 'Brain Tumor Classification (MRI)': Training/Testing/<class>/*.jpg; 2 + 1 per class."""
    entries, k = {}, 0
    for split, per in (("Training", 2), ("Testing", 1)):
        for cls in BRAIN_CLASSES:
            for i in range(per):
                k += 1
                entries[f"{prefix}{split}/{cls}/image({i + 1}).jpg"] = image_bytes(k, size=(24, 20), mode="L")
    entries.update(extra or {})
    return {"brain-tumor-classification-mri.zip": zip_bytes(entries)}


def isic_files() -> dict[str, bytes]:
    """Kaggle 'Skin Cancer: Malignant vs. Benign': train|test/benign|malignant, plus a duplicate data/ tree."""
    entries, k = {}, 100
    for split, per in (("train", 3), ("test", 1)):
        for cls in ("benign", "malignant"):
            for i in range(per):
                k += 1
                data = image_bytes(k)
                entries[f"{split}/{cls}/{k}.jpg"] = data
                entries[f"data/{split}/{cls}/{k}.jpg"] = data
    return {"skin-cancer-malignant-vs-benign.zip": zip_bytes(entries)}


def chest_files(top: str = "chest_xray", splits=("train", "val", "test")) -> dict[str, bytes]:
    """Kermany et al.: chest_xray/<split>/NORMAL|PNEUMONIA/*.jpeg, with the duplicate tree and
    __MACOSX resource forks the Kaggle zip carries."""
    entries, k = {}, 200
    for split in splits:
        for cls in ("NORMAL", "PNEUMONIA"):
            for i in range(2 if split == "train" else 1):
                k += 1
                name = f"IM-{k:04d}-0001.jpeg" if cls == "NORMAL" else f"person{k}_bacteria_{i}.jpeg"
                data = image_bytes(k, mode="L")
                entries[f"{top}/{split}/{cls}/{name}"] = data
                entries[f"{top}/{top}/{split}/{cls}/{name}"] = data
                entries[f"__MACOSX/{top}/{split}/{cls}/._{name}"] = b"\x00\x05\x16\x07 resource fork"
    return entries


def chest_kaggle_files() -> dict[str, bytes]:
    return {"chest-xray-pneumonia.zip": zip_bytes(chest_files())}


def mat_v73_bytes(label: int, pid: str, seed: int, size: int = 16) -> bytes:
    """A MATLAB v7.3 file (HDF5 with a 512-byte MATLAB header) holding the ``cjdata`` struct of
    Cheng et al.: image (int16), label, PID (char), tumorMask, tumorBorder. Arrays are stored
    transposed, as MATLAB writes them."""
    import h5py

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 2000, (size, size)).astype(np.int16)
    mask = np.zeros((size, size), np.uint8)
    mask[3:9, 4:12] = 1  # a non-square mask: a missing transpose would show
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.mat"
        with h5py.File(path, "w", userblock_size=512) as f:
            g = f.create_group("cjdata")
            g["image"] = image.T
            g["label"] = np.array([[float(label)]])
            g["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16)
            g["tumorMask"] = mask.T
            g["tumorBorder"] = np.array([[3.0, 4.0, 9.0, 12.0]])
        with open(path, "r+b") as fh:
            fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 00:00:00 2015 HDF5 schema 1.00 .")
        return path.read_bytes()


FIGSHARE_PARTS = ("brainTumorDataPublic_1-766.zip", "brainTumorDataPublic_767-1532.zip",
                  "brainTumorDataPublic_1533-2298.zip", "brainTumorDataPublic_2299-3064.zip")


def figshare_files(n_per_part: int = 3) -> dict[str, bytes]:
    """Four zip parts of numbered .mat files; labels cycle 1/2/3; 2 slices per patient."""
    out, k = {}, 0
    for part in FIGSHARE_PARTS:
        entries = {}
        for _ in range(n_per_part):
            k += 1
            entries[f"{k}.mat"] = mat_v73_bytes(label=(k - 1) % 3 + 1, pid=f"{100004 + (k + 1) // 2}", seed=k)
        out[part] = zip_bytes(entries)
    return out


HAM_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def ham10000_rows(n: int = 21) -> list[tuple[str, str, str]]:
    """(lesion_id, image_id, dx): 3 images per class, some lesions with two images."""
    rows = []
    for i in range(n):
        rows.append((f"HAM_{(i // 2):07d}" if i % 5 else f"HAM_{1000 + i:07d}", f"ISIC_{24306 + i:07d}",
                     HAM_DX[i % len(HAM_DX)]))
    return rows


def ham10000_files(n: int = 21, missing_mask: int = 0) -> dict[str, bytes]:
    """The Dataverse record: two image zips, HAM10000_metadata.csv, the lesion segmentation zip."""
    rows = ham10000_rows(n)
    lines = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    lines += [f"{les},{img},{dx},histo,50.0,male,back" for les, img, dx in rows]
    part1, part2, masks = {}, {}, {}
    for i, (_, img, _) in enumerate(rows):
        (part1 if i < n // 2 else part2)[f"{img}.jpg"] = image_bytes(300 + i, size=(30, 22))
        if i != missing_mask:
            m = np.zeros((22, 30), np.uint8)
            m[5:15, 8:20] = 255
            buf = io.BytesIO()
            Image.fromarray(m, "L").save(buf, format="PNG")
            masks[f"HAM10000_segmentations_lesion_tschandl/{img}_segmentation.png"] = buf.getvalue()
    return {
        "HAM10000_images_part_1.zip": zip_bytes(part1),
        "HAM10000_images_part_2.zip": zip_bytes(part2),
        "HAM10000_metadata.csv": ("\n".join(lines) + "\n").encode(),
        "HAM10000_segmentations_lesion_tschandl.zip": zip_bytes(masks),
    }


def serve(server: FixtureServer, name: str, files: dict[str, bytes]) -> None:
    """Put a dataset's files where a mirror keeps them: ``/<name>/<file>``."""
    for fn, data in files.items():
        server.put(f"/{name}/{fn}", data)


# --------------------------------------------------------------------------- unsafe archives


def unsafe_zip(kind: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/fine.txt", b"fine")
        if kind == "dotdot":
            zf.writestr("ok/../../evil.txt", b"evil")
        elif kind == "absolute":
            info = zipfile.ZipInfo("ok/x")
            info.filename = "/tmp/evil-absolute.txt"  # ZipInfo() strips a leading '/', the attack does not
            zf.writestr(info, b"evil")
        elif kind == "symlink":
            info = zipfile.ZipInfo("ok/link")
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
        elif kind == "device":
            info = zipfile.ZipInfo("ok/dev")
            info.create_system = 3
            info.external_attr = (0o020644 << 16)
            zf.writestr(info, b"")
    return buf.getvalue()


def unsafe_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        def add(name: str, data: bytes = b"x", **attrs):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)

        add("ok/fine.txt", b"fine")
        if kind == "dotdot":
            add("../evil.txt", b"evil")
        elif kind == "absolute":
            add("/tmp/evil-absolute.txt", b"evil")
        elif kind == "symlink":
            add("ok/link", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd", size=0)
        elif kind == "hardlink":
            add("ok/hard", b"", type=tarfile.LNKTYPE, linkname="ok/fine.txt", size=0)
        elif kind == "device":
            add("ok/dev", b"", type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)
    return buf.getvalue()


def figshare_api_json(server_url: str, files: dict[str, bytes], *, bad_md5: str | None = None) -> bytes:
    """The figshare API answer for /articles/<id>/files, pointing at the loopback server."""
    items = [{"id": 1000 + i, "name": fn, "size": len(data), "is_link_only": False,
              "download_url": f"{server_url}/ndownloader/files/{1000 + i}",
              "supplied_md5": "", "computed_md5": bad_md5 if bad_md5 and i == 0 else md5(data),
              "mimetype": "application/zip"}
             for i, (fn, data) in enumerate(files.items())]
    items.append({"id": 999, "name": "README.txt", "size": 3, "is_link_only": False,
                  "download_url": f"{server_url}/ndownloader/files/999", "supplied_md5": "",
                  "computed_md5": md5(b"abc"), "mimetype": "text/plain"})
    return json.dumps(items).encode()


def dataverse_api_json(server_url: str, files: dict[str, bytes]) -> bytes:
    """The Dataverse API answer listing a dataset's files (the CSV as an ingested tabular file)."""
    data = []
    for i, (fn, blob) in enumerate(files.items()):
        df = {"id": 5000 + i, "filename": fn, "filesize": len(blob), "md5": md5(blob),
              "checksum": {"type": "MD5", "value": md5(blob)}}
        if fn.endswith(".csv"):
            df.update(filename=fn[:-4] + ".tab", originalFileFormat="text/csv", originalFileName=fn,
                      filesize=len(blob) + 7, md5="0" * 32, checksum={"type": "MD5", "value": "0" * 32})
        data.append({"label": df["filename"], "dataFile": df})
    data.append({"label": "ISIC2018_Task3_Test_Images.zip",
                 "dataFile": {"id": 4999, "filename": "ISIC2018_Task3_Test_Images.zip", "filesize": 9,
                              "md5": "1" * 32}})
    return json.dumps({"status": "OK", "data": data}).encode()

"""Public datasets, end to end and under faults, with no internet.

Fixture archives in each source's real layout are served from 127.0.0.1 by
:class:`tests.fixtures_public.FixtureServer`; the package is pointed at it with the documented
mirror override (``mirror=`` / ``MEDXAI_DATA_MIRROR``). After every fault the test checks that
nothing half-written sits under a final name and that a rerun succeeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medxai_lite.cli import register_cli
from medxai_lite.data import public
from medxai_lite.data.download import (
    ChecksumError,
    ChecksumLock,
    DownloadError,
    KaggleCredentialsError,
    OfflineError,
    UnsafeArchiveError,
    check_disk_space,
    download,
    file_digest,
    kaggle_credentials,
    parse_checksum,
    safe_extract,
)
from medxai_lite.data.public import (
    MIRROR_ENV,
    PUBLIC_DATASETS,
    fetch,
    load_public,
    prepare_public,
    verify_public,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_public as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    srv = fx.FixtureServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No mirror, no data root, and no Kaggle credentials from the person running the tests."""
    for var in (MIRROR_ENV, public.DATA_ENV, "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


@pytest.fixture
def root(tmp_path):
    return tmp_path / "DATA"


@pytest.fixture(scope="module")
def built():
    """The fixture files of every dataset, built once (h5py and PIL work is the slow part)."""
    return {
        "brain-tumor-mri": fx.brain_tumor_mri_files(),
        "figshare-brain-tumor": fx.figshare_files(),
        "ham10000": fx.ham10000_files(),
        "isic-benign-malignant": fx.isic_files(),
        "chest-xray-pneumonia": fx.chest_kaggle_files(),
    }


# Images expected per split, from the fixture builders above ("train+val": the source's
# training folder, of which a fixed 10 % is held out as val).
EXPECTED = {
    "brain-tumor-mri": {"train+val": 8, "test": 4},
    "figshare-brain-tumor": None,  # patient-wise split: checked by total
    "ham10000": None,              # lesion-wise split: checked by total
    "isic-benign-malignant": {"train+val": 6, "test": 2},
    "chest-xray-pneumonia": {"train": 4, "val": 2, "test": 2},  # the source's own val
}
TOTAL = {"brain-tumor-mri": 12, "figshare-brain-tumor": 12, "ham10000": 21,
         "isic-benign-malignant": 8, "chest-xray-pneumonia": 8}


def assert_nothing_half_written(root: Path) -> None:
    """Final names hold only complete things: prepared folders have their manifest, downloads
    match their recorded checksum, and no temporary work folder is left behind."""
    if not root.exists():
        return
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".work-") or p.name.endswith(".part")]
    assert not leftovers, leftovers
    lock = ChecksumLock(root / "checksums.lock.json")
    for name in PUBLIC_DATASETS:
        if (root / name).exists():
            assert (root / name / "manifest.json").is_file(), f"{name}/ exists without its manifest"
        folder = root / "downloads" / name
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".part"):
                    entry = lock.get(f"{name}/{p.name}")
                    assert entry is not None and entry["sha256"] == file_digest(p), p
            assert not [p for p in folder.iterdir() if p.is_dir()], "a temporary folder is left"


# --------------------------------------------------------------------------- registry


def test_registry_is_complete_and_honest():
    assert set(PUBLIC_DATASETS) == {"brain-tumor-mri", "figshare-brain-tumor", "ham10000",
                                    "isic-benign-malignant", "chest-xray-pneumonia"}
    n_classes = {"brain-tumor-mri": 4, "figshare-brain-tumor": 3, "ham10000": 7,
                 "isic-benign-malignant": 2, "chest-xray-pneumonia": 2}
    for name, spec in PUBLIC_DATASETS.items():
        assert len(spec.classes) == n_classes[name]
        assert spec.licence and spec.homepage and spec.citation and spec.modality
        assert spec.approx_size_bytes > 0 and spec.mirror_files and spec.sources
        for value in spec.checksums.values():  # only well-formed, source-published checksums
            parse_checksum(value)
    assert PUBLIC_DATASETS["figshare-brain-tumor"].has_masks and PUBLIC_DATASETS["ham10000"].has_masks
    assert PUBLIC_DATASETS["brain-tumor-mri"].kaggle_slug == "sartajbhuvaji/brain-tumor-classification-mri"
    assert PUBLIC_DATASETS["chest-xray-pneumonia"].kaggle_slug == "paultimothymooney/chest-xray-pneumonia"


def test_unknown_name_lists_valid_names(root):
    for call in (lambda: load_public("brain-mri", root=root), lambda: fetch("brain-mri", root)):
        with pytest.raises(ValueError, match="brain-tumor-mri.*ham10000"):
            call()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "512"])
def test_a_bad_max_size_is_refused_before_anything_is_downloaded(bad, server, root, built):
    fx.serve(server, "ham10000", built["ham10000"])
    with pytest.raises(ValueError, match="max_size must be a non-negative int"):
        fetch("ham10000", root, mirror=server.url, max_size=bad, progress=False, backoff=0)
    assert not root.exists() or not any(root.rglob("*.*"))      # nothing fetched, nothing half-written


@pytest.mark.parametrize("knob, name", [({"shortcut": 0.5}, "shortcut"), ({"difficulty": 0.8}, "difficulty"),
                                        ({"class_balance": [0.5, 0.5]}, "class_balance"),
                                        ({"shortcut_class": 1}, "shortcut_class"),
                                        ({"interventions": {"asymmetry": 1.0}}, "interventions")])
def test_phantom_knobs_are_refused_for_a_real_dataset(knob, name, root):
    from medxai_lite.data import load_dataset

    with pytest.raises(ValueError, match=f"{name}.*phantom"):
        load_dataset("ham10000", "train", root=root, **knob)
    # at their defaults the knobs pass, and the missing data is what is reported
    with pytest.raises(FileNotFoundError, match="medxai data fetch ham10000"):
        load_dataset("ham10000", "train", root=root, difficulty=0.3, shortcut=0.0)


def test_the_model_cache_key_follows_the_prepared_data(server, root, built, monkeypatch):
    """Re-preparing with another max_size trains anew; re-preparing the same way does not."""
    from medxai_lite.models import PROFILES, cache_key

    monkeypatch.setenv(public.DATA_ENV, str(root))
    settings = dict(PROFILES["cpu"])
    unprepared = cache_key("ham10000", "resnet14", "cpu", 0, settings)
    fx.serve(server, "ham10000", built["ham10000"])
    fetch("ham10000", root, mirror=server.url, progress=False, backoff=0)
    prepared = cache_key("ham10000", "resnet14", "cpu", 0, settings)
    manifest_path = root / "ham10000" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "prepared": "2030-01-01T00:00:00+00:00"}))
    assert cache_key("ham10000", "resnet14", "cpu", 0, settings) == prepared != unprepared
    manifest_path.write_text(json.dumps({**manifest, "max_size": 256}))
    assert cache_key("ham10000", "resnet14", "cpu", 0, settings) not in (prepared, unprepared)


def test_missing_data_names_the_fetch_command(root):
    with pytest.raises(FileNotFoundError, match="medxai data fetch ham10000"):
        load_public("ham10000", split="train", root=root)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", list(PUBLIC_DATASETS))
def test_fetch_verify_prepare_load(name, server, root, built):
    fx.serve(server, name, built[name])
    report = fetch(name, root, mirror=server.url, progress=False, backoff=0)
    assert report.total == TOTAL[name] and not report.corrupt
    manifest = json.loads((root / name / "manifest.json").read_text())
    assert manifest["classes"] == list(PUBLIC_DATASETS[name].classes)
    sizes = {s: sum(c.values()) for s, c in manifest["splits"].items()}
    assert {"train", "test"} <= set(sizes) <= {"train", "val", "test"}
    if EXPECTED[name] and "train+val" in EXPECTED[name]:
        sizes = {"train+val": sizes["train"] + sizes.get("val", 0), "test": sizes["test"]}
    if EXPECTED[name]:
        assert sizes == EXPECTED[name]
    spec = PUBLIC_DATASETS[name]
    for split in manifest["splits"]:
        ds = load_public(name, split=split, image_size=32, root=root)
        assert len(ds) == sum(manifest["splits"][split].values())
        assert ds.classes == list(spec.classes) and ds.modality == spec.modality
        assert ds.name == name and ds.split == split and tuple(ds.concept_names) == ()
        item = ds[0]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert 0 <= item["label"] < len(spec.classes)
        if spec.has_masks:
            batch = ds.batch(range(len(ds)))
            masked = [i for i in range(len(ds)) if "mask" in ds[i]]
            assert masked and ds[masked[0]]["mask"].shape == (32, 32)
            assert ds[masked[0]]["mask"].dtype == torch.bool and ds[masked[0]]["mask"].any()
            if len(masked) == len(ds):
                assert batch["mask"].shape == (len(ds), 32, 32)
        else:
            assert "mask" not in item
    assert verify_public(name, root)["ok"]
    assert_nothing_half_written(root)
    # A second fetch finds everything in place and asks the server for nothing.
    before = len(server.requests)
    assert fetch(name, root, mirror=server.url, progress=False) is None
    assert len(server.requests) == before


def test_figshare_mat_files_are_read_the_right_way_round(server, root, built):
    fx.serve(server, "figshare-brain-tumor", built["figshare-brain-tumor"])
    fetch("figshare-brain-tumor", root, mirror=server.url, progress=False)
    ds = load_public("figshare-brain-tumor", split="train", root=root)
    # Fixture slices k.mat have label (k-1) % 3 + 1 and a tumour mask at rows 3:9, columns 4:12.
    raw = ds.raw(0)
    assert raw["image"].shape == (16, 16, 3)
    rows, cols = np.nonzero(raw["mask"])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 8, 4, 11)
    labels = {p.stem: ds.classes[ds.labels[i]] for i, p in enumerate(ds.paths)}
    for stem, cls in labels.items():
        assert cls == ("meningioma", "glioma", "pituitary")[(int(stem) - 1) % 3]


def test_ham10000_split_is_lesion_wise_and_missing_masks_are_reported(server, root):
    files = fx.ham10000_files(missing_mask=0)
    fx.serve(server, "ham10000", files)
    report = fetch("ham10000", root, mirror=server.url, progress=False)
    assert report.missing_masks == ["ISIC_0024306"]
    where = {}
    for split in ("train", "val", "test"):
        for p in load_public("ham10000", split=split, root=root).paths:
            where[p.stem] = split
    for lesion, image, _ in fx.ham10000_rows():
        partner = [img for les, img, _ in fx.ham10000_rows() if les == lesion]
        assert len({where[i] for i in partner}) == 1, f"lesion {lesion} straddles the split"


@pytest.mark.parametrize("name, patient", [
    ("person12_bacteria_3.jpeg", "person12"), ("PERSON1000_virus_1681.jpeg", "person1000"),
    ("IM-0115-0001.jpeg", "im-0115"), ("NORMAL2-IM-0851-0001.jpeg", "normal2-im-0851"), ("x.png", "x.png")])
def test_kermany_file_names_give_the_patient(name, patient):
    from medxai_lite.data.prepare import kermany_patient

    assert kermany_patient(name) == patient


def test_chest_val_is_held_out_by_patient_where_the_source_has_no_val(tmp_path):
    """Mendeley's layout has train and test only: the val hold-out takes whole patients (several
    films each), where one draw per file name would split them."""
    from medxai_lite.data.prepare import (VAL_FRACTION, ImageWriter, PrepareReport, _hash_fraction,
                                          prepare_chest_xray_pneumonia)

    src = tmp_path / "src"
    films = {}
    for p in range(30):
        for cls, name in (("PNEUMONIA", f"person{p}_bacteria_{{}}.jpeg"), ("NORMAL", f"IM-{p:04d}-{{:04d}}.jpeg")):
            folder = src / "chest_xray" / "train" / cls
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(3):
                (folder / name.format(k)).write_bytes(fx.image_bytes(100 * p + k, mode="L"))
                films[Path(name.format(k)).stem] = (cls, p)
    (src / "chest_xray" / "test" / "NORMAL").mkdir(parents=True)
    (src / "chest_xray" / "test" / "NORMAL" / "IM-9999-0001.jpeg").write_bytes(fx.image_bytes(1, mode="L"))
    report = PrepareReport(name="chest-xray-pneumonia")
    writer = ImageWriter(tmp_path / "out", report, ["normal", "pneumonia"], max_size=64, grayscale=True,
                         src_root=src)
    prepare_chest_xray_pneumonia(src, writer, progress=False)
    where = {}
    for path in (tmp_path / "out").glob("*/*/*.png"):
        where.setdefault(films.get(path.stem), set()).add(path.parts[-3])
    where.pop(None)                                                        # the test film
    assert all(len(splits) == 1 for splits in where.values()), "a patient straddles train and val"
    held = sum(splits == {"val"} for splits in where.values())
    assert 0 < held < len(where)
    # a draw per file (the rule before) would have split patients of this very set
    per_file = {}
    for stem, (cls, p) in films.items():
        per_file.setdefault((cls, p), set()).add(_hash_fraction(f"val:{cls.lower()}/{stem.lower()}.jpeg") < VAL_FRACTION)
    assert any(len(v) == 2 for v in per_file.values())


def test_mirror_from_environment_variable(server, root, built, monkeypatch):
    fx.serve(server, "isic-benign-malignant", built["isic-benign-malignant"])
    monkeypatch.setenv(MIRROR_ENV, server.url + "/")
    assert fetch("isic-benign-malignant", root, progress=False).total == 8


def test_subsample_is_deterministic_and_stratified(server, root, built):
    fx.serve(server, "ham10000", built["ham10000"])
    fetch("ham10000", root, mirror=server.url, progress=False)
    full = load_public("ham10000", split="train", root=root)
    a = load_public("ham10000", split="train", n=7, seed=0, root=root)
    b = load_public("ham10000", split="train", n=7, seed=0, root=root)
    assert len(a) == 7 and [p.name for p in a.paths] == [p.name for p in b.paths]
    share = np.bincount(a.labels, minlength=7) - np.bincount(full.labels, minlength=7) * 7 / len(full)
    assert np.abs(share).max() < 1.0  # largest-remainder allocation: within one item per class
    with pytest.raises(ValueError, match="available: test, train, val"):
        load_public("ham10000", split="validation", root=root)
    with pytest.raises(ValueError, match="n must be"):
        load_public("ham10000", n=0, root=root)
    with pytest.raises(ValueError, match="image_size"):
        load_public("ham10000", image_size="big", root=root)


def test_cli_data_commands(server, root, built, capsys):
    fx.serve(server, "isic-benign-malignant", built["isic-benign-malignant"])
    parser = argparse.ArgumentParser(prog="medxai")
    register_cli(parser.add_subparsers(dest="command"))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    assert run("data", "list", "--root", str(root)) == 0
    assert "chest-xray-pneumonia" in capsys.readouterr().out
    assert run("data", "fetch", "isic-benign-malignant", "--root", str(root), "--mirror", server.url,
               "--quiet") == 0
    assert run("data", "verify", "isic-benign-malignant", "--root", str(root)) == 0
    assert run("data", "prepare", "isic-benign-malignant", "--root", str(root), "--max-size", "16",
               "--quiet") == 0
    assert max(load_public("isic-benign-malignant", root=root).raw(0)["image"].shape[:2]) <= 16
    # A failure is an exit code and a one-line message, not a traceback.
    assert run("data", "fetch", "chest-xray-pneumonia", "--root", str(root), "--quiet") == 1
    assert "KAGGLE_USERNAME" in capsys.readouterr().err


def test_data_script_runs_as_a_program(server, root, built):
    fx.serve(server, "isic-benign-malignant", built["isic-benign-malignant"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "data_scripts" / "isic_benign_malignant.py"),
                           "--root", str(root), "--mirror", server.url, "--quiet"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "8 images prepared" in done.stdout


# --------------------------------------------------------------------------- download faults


def test_truncated_transfer_is_not_renamed_and_resumes(server, tmp_path):
    data = bytes(range(256)) * 1600  # 400 KiB: the cut at half leaves whole 64 KiB reads behind
    url = server.put("/t/trunc.bin", data)
    server.fault("/t/trunc.bin", "truncate")
    lock = ChecksumLock(tmp_path / "lock.json")
    dest = tmp_path / "dl" / "trunc.bin"
    with pytest.raises(DownloadError, match="next run resumes"):
        download(url, dest, lock=lock, retries=0, progress=False)
    assert not dest.exists() and lock.get("trunc.bin") is None
    part = dest.with_name("trunc.bin.part")
    kept = part.stat().st_size
    assert 0 < kept <= len(data) // 2 and part.read_bytes() == data[:kept]
    download(url, dest, lock=lock, retries=0, progress=False)  # the rerun
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests_for("/t/trunc.bin")[-1][1:] == (f"bytes={kept}-", 206)
    assert lock.get("trunc.bin")["sha256"] == fx.sha256(data)


def test_truncated_transfer_retried_within_one_call(server, tmp_path):
    data = os.urandom(300_000)
    url = server.put("/t/trunc2.bin", data)
    server.fault("/t/trunc2.bin", "truncate")
    with pytest.warns(RuntimeWarning, match="retrying"):
        path = download(url, tmp_path / "trunc2.bin", retries=2, backoff=0, progress=False)
    assert path.read_bytes() == data
    assert [r[2] for r in server.requests_for("/t/trunc2.bin")] == [200, 206]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = os.urandom(80_000)
    url = server.put("/t/resume.bin", data)
    dest = tmp_path / "resume.bin"
    dest.with_name("resume.bin.part").write_bytes(data[:30_000])  # what a killed process leaves
    download(url, dest, checksum="sha256:" + fx.sha256(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests_for("/t/resume.bin") == [("/t/resume.bin", "bytes=30000-", 206)]


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    data = os.urandom(20_000)
    url = server.put("/t/norange.bin", data)
    server.fault("/t/norange.bin", "ignore_range")
    dest = tmp_path / "norange.bin"
    dest.with_name("norange.bin.part").write_bytes(b"junk that is not the start of the file")
    download(url, dest, checksum="md5:" + fx.md5(data), progress=False)
    assert dest.read_bytes() == data


def test_server_error_then_success(server, tmp_path):
    data = b"payload" * 1000
    url = server.put("/t/flaky.bin", data)
    server.fault("/t/flaky.bin", "503", "500")
    with pytest.warns(RuntimeWarning, match="HTTP 50"):
        download(url, tmp_path / "flaky.bin", retries=3, backoff=0, progress=False)
    assert [r[2] for r in server.requests_for("/t/flaky.bin")] == [503, 500, 200]


def test_server_errors_exhaust_bounded_retries_then_rerun_succeeds(server, tmp_path):
    data = b"payload" * 1000
    url = server.put("/t/down.bin", data)
    server.fault("/t/down.bin", "503", "503", "503")
    dest = tmp_path / "down.bin"
    with pytest.raises(DownloadError, match="after 2 attempts"), pytest.warns(RuntimeWarning):
        download(url, dest, retries=1, backoff=0, progress=False)
    assert not dest.exists() and not dest.with_name("down.bin.part").exists()
    assert len(server.requests_for("/t/down.bin")) == 2
    server.faults["/t/down.bin"].clear()
    assert download(url, dest, retries=1, backoff=0, progress=False).read_bytes() == data


def test_http_404_fails_at_once_naming_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match="404.*/t/missing.bin"):
        download(server.url + "/t/missing.bin", tmp_path / "missing.bin", retries=3, backoff=0, progress=False)
    assert len(server.requests_for("/t/missing.bin")) == 1


def test_offline_gives_a_clear_message(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OfflineError, match="offline"), pytest.warns(RuntimeWarning):
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=1, backoff=0, progress=False)
    assert not (tmp_path / "x.zip").exists()


def test_wrong_published_checksum(server, tmp_path):
    data = b"the real file"
    url = server.put("/t/pinned.bin", data)
    dest = tmp_path / "pinned.bin"
    with pytest.raises(ChecksumError, match="expected 0000"):
        download(url, dest, checksum="sha256:" + "0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("pinned.bin.part").exists()
    download(url, dest, checksum="sha256:" + fx.sha256(data), progress=False)
    assert dest.read_bytes() == data


def test_trust_on_first_use_catches_a_changed_file(server, root, built):
    name = "isic-benign-malignant"
    fx.serve(server, name, built[name])
    fetch(name, root, mirror=server.url, progress=False)
    recorded = ChecksumLock(root / "checksums.lock.json").get(f"{name}/skin-cancer-malignant-vs-benign.zip")
    assert recorded["sha256"] == fx.sha256(built[name]["skin-cancer-malignant-vs-benign.zip"])
    # Another machine shares the lock file; the mirror now serves different bytes.
    other = root.parent / "OTHER"
    other.mkdir()
    (other / "checksums.lock.json").write_bytes((root / "checksums.lock.json").read_bytes())
    server.put(f"/{name}/skin-cancer-malignant-vs-benign.zip", fx.isic_files()["skin-cancer-malignant-vs-benign.zip"][:-1] + b"!")
    with pytest.raises(ChecksumError, match="first download recorded"):
        fetch(name, other, mirror=server.url, progress=False)
    assert not (other / name).exists()
    assert_nothing_half_written(other)
    fx.serve(server, name, built[name])  # the mirror is repaired
    assert fetch(name, other, mirror=server.url, progress=False).total == 8
    assert_nothing_half_written(other)


def test_disk_space_is_checked_before_downloading(server, tmp_path):
    with pytest.raises(OSError, match="not enough disk space"):
        check_disk_space(tmp_path, 1 << 60)
    url = server.put("/t/huge.bin", b"x")
    before = len(server.requests)
    with pytest.raises(OSError, match="not enough disk space"):
        download(url, tmp_path / "huge.bin", expected_size=1 << 60, progress=False)
    assert len(server.requests) == before


# --------------------------------------------------------------------------- source APIs


def test_figshare_api_md5_is_checked(server, tmp_path):
    files = {"brainTumorDataPublic_1-766.zip": b"part one", "brainTumorDataPublic_767-1532.zip": b"part two"}
    for i, data in enumerate(files.values()):
        server.put(f"/ndownloader/files/{1000 + i}", data)
    server.put("/api/articles/1512427/files", fx.figshare_api_json(server.url, files))
    src = dataclasses.replace(PUBLIC_DATASETS["figshare-brain-tumor"].sources[0], api=server.url + "/api")
    resolved = src.resolve()
    assert [f.filename for f in resolved] == list(files)  # README.txt is not wanted
    assert resolved[0].checksum == "md5:" + fx.md5(b"part one") and resolved[0].size == 8
    download(resolved[0].url, tmp_path / resolved[0].filename, checksum=resolved[0].checksum, progress=False)
    server.put("/api/articles/1512427/files", fx.figshare_api_json(server.url, files, bad_md5="f" * 32))
    bad = src.resolve()[0]
    with pytest.raises(ChecksumError, match="md5"):
        download(bad.url, tmp_path / "again.zip", checksum=bad.checksum, progress=False)
    assert not (tmp_path / "again.zip").exists()


def test_dataverse_api_listing(server):
    files = {"HAM10000_images_part_1.zip": b"one", "HAM10000_metadata.csv": b"lesion_id,image_id,dx\n"}
    server.put("/api/datasets/:persistentId/versions/:latest-published/files", fx.dataverse_api_json(server.url, files))
    src = dataclasses.replace(PUBLIC_DATASETS["ham10000"].sources[0], api=server.url)
    got = {f.filename: f for f in src.resolve()}
    assert set(got) == set(files)  # the ISIC 2018 test images are not wanted
    assert got["HAM10000_images_part_1.zip"].checksum == "md5:" + fx.md5(b"one")
    assert got["HAM10000_images_part_1.zip"].url.endswith("/api/access/datafile/5000")
    # An ingested table is fetched in its original form, verified by trust on first use.
    assert got["HAM10000_metadata.csv"].url.endswith("/api/access/datafile/5001?format=original")
    assert got["HAM10000_metadata.csv"].checksum is None


# --------------------------------------------------------------------------- extraction


UNSAFE = [("zip", "dotdot", "'..'"), ("zip", "absolute", "absolute"), ("zip", "symlink", "symbolic link"),
          ("zip", "device", "device"), ("tar.gz", "dotdot", "'..'"), ("tar.gz", "absolute", "absolute"),
          ("tar.gz", "symlink", "symbolic link"), ("tar.gz", "hardlink", "hard link"),
          ("tar.gz", "device", "device")]


@pytest.mark.parametrize("fmt,kind,words", UNSAFE, ids=[f"{f}-{k}" for f, k, _ in UNSAFE])
def test_unsafe_archive_members_are_refused(tmp_path, fmt, kind, words):
    archive = tmp_path / f"bad.{fmt}"
    archive.write_bytes(fx.unsafe_zip(kind) if fmt == "zip" else fx.unsafe_tar(kind))
    out = tmp_path / "out" / "bad"
    with pytest.raises(UnsafeArchiveError, match=words) as err:
        safe_extract(archive, out)
    assert err.value.member and err.value.member in str(err.value)
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_safe_archive_extracts(tmp_path):
    archive = tmp_path / "good.zip"
    archive.write_bytes(fx.zip_bytes({"a/b.txt": b"b", "c.txt": b"c"}))
    out = safe_extract(archive, tmp_path / "good")
    assert (out / "a" / "b.txt").read_bytes() == b"b" and (out / "c.txt").read_bytes() == b"c"


def test_unsafe_archive_through_fetch_leaves_nothing_and_rerun_succeeds(server, root, tmp_path):
    name = "brain-tumor-mri"
    evil = fx.brain_tumor_mri_files(extra={"Training/../../../escaped.png": b"evil"})
    fx.serve(server, name, evil)
    with pytest.raises(UnsafeArchiveError, match="escaped.png"):
        fetch(name, root, mirror=server.url, progress=False)
    assert not (root / name).exists()
    assert not list(tmp_path.rglob("escaped.png"))
    # The refused archive and its first-use record are dropped, so a corrected file is accepted.
    assert not (root / "downloads" / name / "brain-tumor-classification-mri.zip").exists()
    assert ChecksumLock(root / "checksums.lock.json").get(f"{name}/brain-tumor-classification-mri.zip") is None
    assert_nothing_half_written(root)
    fx.serve(server, name, fx.brain_tumor_mri_files())
    assert fetch(name, root, mirror=server.url, progress=False).total == 12
    assert_nothing_half_written(root)


def test_corrupt_images_are_reported_by_name_and_skipped(server, root):
    name = "brain-tumor-mri"
    bad = {f"Training/glioma_tumor/{fn}": data for fn, data in fx.corrupt_images().items()}
    fx.serve(server, name, fx.brain_tumor_mri_files(extra=bad))
    report = fetch(name, root, mirror=server.url, progress=False)
    assert report.total == 12
    assert sorted(c["file"] for c in report.corrupt) == [
        "brain-tumor-classification-mri/Training/glioma_tumor/broken.jpg",
        "brain-tumor-classification-mri/Training/glioma_tumor/truncated.jpg"]
    saved = json.loads((root / name / "prepare_report.json").read_text())
    assert len(saved["corrupt"]) == 2
    ds = load_public(name, split="train", image_size=8, root=root)
    assert len(ds) == 8 and all(ds[i]["image"].shape == (3, 8, 8) for i in range(len(ds)))


def test_prepare_without_downloads_names_the_command(root):
    with pytest.raises(FileNotFoundError, match="medxai data fetch chest-xray-pneumonia"):
        prepare_public("chest-xray-pneumonia", root)


def test_an_interrupted_download_is_not_prepared_and_the_hint_says_fetch(root, capsys):
    """Two of four figshare parts complete and the third cut off: 'prepare' would make half a
    dataset (and fetch would then call it done), so both the hint and prepare say to fetch again."""
    from medxai_lite.cli import main as cli_main
    from medxai_lite.data.fetch import download_state

    name = "figshare-brain-tumor"
    folder = root / "downloads" / name
    assert download_state(name, root) == "none"
    folder.mkdir(parents=True)                       # what a failed first attempt leaves: still nothing
    assert download_state(name, root) == "none"
    parts = fx.figshare_files(n_per_part=2)
    names = list(parts)
    for fn in names[:2]:
        (folder / fn).write_bytes(parts[fn])
    (folder / f"{names[2]}.part").write_bytes(parts[names[2]][:100])
    assert download_state(name, root) == "partial"
    with pytest.raises(FileNotFoundError, match=f"incomplete.*medxai data fetch {name}"):
        load_public(name, root=root)
    with pytest.raises(FileNotFoundError, match=f"incomplete.*medxai data fetch {name}"):
        prepare_public(name, root, progress=False)
    assert not (root / name).exists()                # nothing half-prepared
    assert cli_main(["data", "list", "--root", str(root)]) == 0
    assert f"{name}  [download incomplete]" in capsys.readouterr().out
    for fn in names[2:]:                             # the rest arrives: whole again (hand-placed files)
        (folder / fn).write_bytes(parts[fn])
    (folder / f"{names[2]}.part").unlink()
    assert download_state(name, root) == "downloaded"
    with pytest.raises(FileNotFoundError, match=f"downloaded but not prepared.*medxai data prepare {name}"):
        load_public(name, root=root)


def test_a_broken_mask_is_reported_by_its_own_name_and_the_image_kept(tmp_path):
    import io

    from PIL import Image

    from medxai_lite.data.prepare import ImageWriter, PrepareReport

    src = tmp_path / "src"
    src.mkdir()
    image = src / "ISIC_0024306.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (22, 30, 3), dtype=np.uint8)).save(image)
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((22, 30)) > 0.5).astype(np.uint8) * 255).save(buf, "PNG")
    mask = src / "ISIC_0024306_segmentation.png"
    mask.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])          # truncated
    report = PrepareReport(name="ham10000")
    writer = ImageWriter(tmp_path / "out", report, ["mel"], max_size=512, grayscale=False, src_root=src)
    assert writer.add("train", "mel", image.stem, source=image, mask=mask)
    assert report.total == 1 and report.masks == 0
    assert [c["file"] for c in report.corrupt] == ["ISIC_0024306_segmentation.png"]
    assert report.missing_masks == ["ISIC_0024306.jpg"]
    assert (tmp_path / "out" / "train" / "mel" / "ISIC_0024306.png").is_file()
    assert not (tmp_path / "out" / "train" / "masks").exists()


# --------------------------------------------------------------------------- Kaggle and manual sources


def test_missing_kaggle_credentials_say_which_and_where(root, monkeypatch, server, built):
    with pytest.raises(KaggleCredentialsError) as err:
        fetch("chest-xray-pneumonia", root, progress=False)  # auto -> kaggle, the only online source
    msg = str(err.value)
    for needle in ("KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json", "chmod 600", "paultimothymooney/chest-xray-pneumonia"):
        assert needle in msg
    assert not (root / "chest-xray-pneumonia").exists()
    assert_nothing_half_written(root)

    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    with pytest.raises(KaggleCredentialsError, match="KAGGLE_USERNAME is set but KAGGLE_KEY is not"):
        kaggle_credentials()
    monkeypatch.delenv("KAGGLE_USERNAME")

    cfg = Path(os.environ["HOME"]) / ".kaggle" / "kaggle.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"username": "someone"}))
    with pytest.raises(KaggleCredentialsError, match="lacks 'key'"):
        kaggle_credentials()
    cfg.write_text(json.dumps({"username": "someone", "key": "abc"}))
    cfg.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        assert kaggle_credentials() == str(cfg)
    cfg.chmod(0o600)
    assert kaggle_credentials() == str(cfg)

    # The rerun, through a mirror, succeeds.
    fx.serve(server, "chest-xray-pneumonia", built["chest-xray-pneumonia"])
    assert fetch("chest-xray-pneumonia", root, mirror=server.url, progress=False).total == 8


def test_manual_mendeley_source(root):
    with pytest.raises(FileNotFoundError, match="ChestXRay2017.zip"):
        fetch("chest-xray-pneumonia", root, source="mendeley", progress=False)
    folder = root / "downloads" / "chest-xray-pneumonia"
    (folder / "ChestXRay2017.zip").write_bytes(fx.zip_bytes(fx.chest_files(splits=("train", "test"))))
    report = fetch("chest-xray-pneumonia", root, progress=False)  # auto picks the files already here
    assert set(report.counts) <= {"train", "val", "test"} and report.total == 6
    assert verify_public("chest-xray-pneumonia", root)["ok"]


def test_fetch_through_the_figshare_api_then_verify_offline(server, root, built, monkeypatch):
    """A dataset registered in PUBLIC_DATASETS (here a copy whose API is the loopback server)
    is fetched through its API; later runs need no network: the resolved list is kept."""
    parts = built["figshare-brain-tumor"]
    for i, data in enumerate(parts.values()):
        server.put(f"/ndownloader/files/{1000 + i}", data)
    server.put("/api2/articles/1512427/files", fx.figshare_api_json(server.url, parts))
    spec = PUBLIC_DATASETS["figshare-brain-tumor"]
    local = dataclasses.replace(spec, name="figshare-local",
                                sources=(dataclasses.replace(spec.sources[0], api=server.url + "/api2"),))
    monkeypatch.setitem(PUBLIC_DATASETS, "figshare-local", local)
    report = fetch("figshare-local", root, progress=False)
    assert report.total == 12 and report.masks == 12
    assert (root / "downloads" / "figshare-local" / ".source-figshare.json").is_file()
    for path in list(server.files):
        if path.startswith(("/ndownloader/", "/api2/")):
            del server.files[path]  # the source goes away
    before = len(server.requests)
    assert fetch("figshare-local", root, progress=False, force=True).total == 12
    assert len(server.requests) == before
    assert verify_public("figshare-local", root)["ok"]


def test_verify_reports_structured_findings(server, root, built):
    from medxai_lite.data.fetch import VerifyStatus

    fx.serve(server, "isic-benign-malignant", built["isic-benign-malignant"])
    fetch("isic-benign-malignant", root, mirror=server.url, progress=False)
    result = verify_public("isic-benign-malignant", root)
    assert result["ok"] and all(f.status is VerifyStatus.OK for f in result["findings"])
    assert result["checked"] == [f.message for f in result["findings"]]
    # One prepared image gone, one download changed, one unfinished download left over.
    next((root / "isic-benign-malignant" / "train" / "benign").glob("*.png")).unlink()
    zip_path = next((root / "downloads" / "isic-benign-malignant").glob("*.zip"))
    zip_path.write_bytes(zip_path.read_bytes() + b"x")
    (root / "downloads" / "isic-benign-malignant" / "more.zip.part").write_bytes(b"x")
    result = verify_public("isic-benign-malignant", root)
    statuses = [f.status for f in result["findings"]]
    assert not result["ok"]
    assert VerifyStatus.COUNT_MISMATCH in statuses and VerifyStatus.CHECKSUM_CHANGED in statuses
    assert VerifyStatus.UNFINISHED in statuses and VerifyStatus.OK not in statuses
    assert result["problems"] == [f.message for f in result["findings"]]
    assert any("train/benign" in p and "manifest says" in p for p in result["problems"])

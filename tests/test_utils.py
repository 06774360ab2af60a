"""Shared helpers in medxai_lite._utils."""
from __future__ import annotations

import pytest

from medxai_lite._utils import atomic_dir


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_dir_puts_the_finished_folder_in_place(tmp_path):
    final = tmp_path / "parent" / "out"  # the parent is created as well
    with atomic_dir(final) as tmp:
        assert tmp.is_dir() and tmp.parent == final.parent
        assert tmp.name.startswith(".out.") and not final.exists()
        (tmp / "a.txt").write_text("new")
    assert _names(final) == ["a.txt"] and (final / "a.txt").read_text() == "new"
    assert _names(final.parent) == ["out"]  # no temporary folder left beside it


def test_atomic_dir_failure_leaves_the_previous_folder_intact(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert _names(final) == ["old.txt"] and (final / "old.txt").read_text() == "old"
    assert _names(tmp_path) == ["out"]


def test_atomic_dir_failure_without_a_previous_folder_leaves_nothing(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("half")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_atomic_dir_replaces_an_existing_folder(tmp_path):
    final = tmp_path / "out"
    (final / "sub").mkdir(parents=True)
    (final / "sub" / "old.txt").write_text("old")
    (final / "keep-not.txt").write_text("old")
    with atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _names(final) == ["new.txt"]  # replaced as a whole, not merged
    assert _names(tmp_path) == ["out"]   # the previous folder, moved aside, is removed


def test_profile_settings_copies_updates_and_names_bad_keys():
    from medxai_lite._utils import profile_settings

    profiles = {"cpu": {"epochs": 2, "lr": 0.1}}
    got = profile_settings(profiles, "cpu", {"lr": 0.5})
    assert got == {"epochs": 2, "lr": 0.5}
    assert profiles["cpu"] == {"epochs": 2, "lr": 0.1}          # the profile itself is untouched
    with pytest.raises(ValueError, match=r"unknown widget\(s\) \['epoch'\]; valid: \['epochs', 'lr'\]"):
        profile_settings(profiles, "cpu", {"epoch": 3}, "widget")
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        profile_settings(profiles, "gpu", {})


def test_check_fraction_open_and_closed():
    import numpy as np

    from medxai_lite._utils import check_fraction

    assert check_fraction("p", 0.25) == 0.25 and check_fraction("p", np.float32(0.5)) == 0.5
    assert check_fraction("level", 1, closed=True) == 1.0
    for bad, closed in ((1, False), (0, True), (1.5, True), (float("nan"), True), (True, True), ("0.5", True)):
        with pytest.raises(ValueError, match="level must be a number in"):
            check_fraction("level", bad, closed=closed)

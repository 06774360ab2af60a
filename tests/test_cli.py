"""The `medxai` command line."""
from __future__ import annotations

import json
import subprocess
import sys

from medxai_lite.cli import main


def test_info_lists_datasets_archs_profiles(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("phantom-brain-mri", "resnet50", "efficientnet_b0", "cpu", "paper"):
        assert word in out


def test_train_bad_arch_is_a_clear_error(capsys, tmp_cache):
    assert main(["train", "--dataset", "phantom-skin", "--arch", "alexnet", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "arch" in err and "resnet18" in err


def test_train_unknown_profile(capsys, tmp_cache):
    assert main(["train", "--profile", "tpu", "--quiet"]) == 2
    assert "profile" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "medxai_lite.cli", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "architectures" in out.stdout

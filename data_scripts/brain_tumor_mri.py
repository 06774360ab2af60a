#!/usr/bin/env python
"""Download, verify, extract and prepare the Kaggle 'Brain Tumor Classification (MRI)' set (4 classes; the dataset of the
Chaddad et al. experiment). Default source: the authors' open GitHub copy; `--source kaggle`
uses the Kaggle client and needs Kaggle credentials.

    python data_scripts/brain_tumor_mri.py --root DATA            # fetch and prepare
    python data_scripts/brain_tumor_mri.py --root DATA --verify   # check checksums and the prepared folder
    python data_scripts/brain_tumor_mri.py --root DATA --prepare-only --max-size 0   # rebuild, full size

The same as `medxai data fetch brain-tumor-mri`; see data_scripts/README.md for sources and licences.
"""
import sys
from pathlib import Path

try:
    from medxai_lite.cli import main_for
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai_lite.cli import main_for

if __name__ == "__main__":
    sys.exit(main_for("brain-tumor-mri"))

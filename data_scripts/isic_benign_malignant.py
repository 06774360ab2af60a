#!/usr/bin/env python
"""Download, verify, extract and prepare the Kaggle 'Skin Cancer: Malignant vs. Benign' set (ISIC Archive images; 2 classes).
Needs Kaggle credentials.

    python data_scripts/isic_benign_malignant.py --root DATA            # fetch and prepare
    python data_scripts/isic_benign_malignant.py --root DATA --verify   # check checksums and the prepared folder
    python data_scripts/isic_benign_malignant.py --root DATA --prepare-only --max-size 0   # rebuild, full size

The same as `medxai data fetch isic-benign-malignant`; see data_scripts/README.md for sources and licences.
"""
import sys
from pathlib import Path

try:
    from medxai_lite.cli import main_for
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai_lite.cli import main_for

if __name__ == "__main__":
    sys.exit(main_for("isic-benign-malignant"))

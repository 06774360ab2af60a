#!/usr/bin/env python
"""Download, verify, extract and prepare the paediatric chest X-ray set of Kermany et al. (NORMAL / PNEUMONIA). Kaggle (needs
credentials) or, with `--source mendeley`, the archive downloaded by hand from Mendeley Data.

    python data_scripts/chest_xray_pneumonia.py --root DATA            # fetch and prepare
    python data_scripts/chest_xray_pneumonia.py --root DATA --verify   # check checksums and the prepared folder
    python data_scripts/chest_xray_pneumonia.py --root DATA --prepare-only --max-size 0   # rebuild, full size

The same as `medxai data fetch chest-xray-pneumonia`; see data_scripts/README.md for sources and licences.
"""
import sys
from pathlib import Path

try:
    from medxai_lite.cli import main_for
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai_lite.cli import main_for

if __name__ == "__main__":
    sys.exit(main_for("chest-xray-pneumonia"))

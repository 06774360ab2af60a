#!/usr/bin/env python
"""Download, verify, extract and prepare the HAM10000 dermoscopy set (7 classes) with its lesion segmentation masks, from
Harvard Dataverse (doi:10.7910/DVN/DBW86T; MD5 checksums from the Dataverse API), or from
Kaggle with `--source kaggle`.

    python data_scripts/ham10000.py --root DATA            # fetch and prepare
    python data_scripts/ham10000.py --root DATA --verify   # check checksums and the prepared folder
    python data_scripts/ham10000.py --root DATA --prepare-only --max-size 0   # rebuild, full size

The same as `medxai data fetch ham10000`; see data_scripts/README.md for sources and licences.
"""
import sys
from pathlib import Path

try:
    from medxai_lite.cli import main_for
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai_lite.cli import main_for

if __name__ == "__main__":
    sys.exit(main_for("ham10000"))

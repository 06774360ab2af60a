#!/usr/bin/env python
"""Download, verify, extract and prepare the figshare brain tumour set of Cheng et al. (3 classes, tumour masks, MATLAB v7.3
files read with h5py). The figshare API supplies the file list and the MD5 checksums.

    python data_scripts/figshare_brain_tumor.py --root DATA            # fetch and prepare
    python data_scripts/figshare_brain_tumor.py --root DATA --verify   # check checksums and the prepared folder
    python data_scripts/figshare_brain_tumor.py --root DATA --prepare-only --max-size 0   # rebuild, full size

The same as `medxai data fetch figshare-brain-tumor`; see data_scripts/README.md for sources and licences.
"""
import sys
from pathlib import Path

try:
    from medxai_lite.cli import main_for
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai_lite.cli import main_for

if __name__ == "__main__":
    sys.exit(main_for("figshare-brain-tumor"))

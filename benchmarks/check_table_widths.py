"""Does every table of the built book fit its reading column? A headless-browser check.

Opens each page of ``_build/html`` in headless Chromium (``@sparticuz/chromium`` driven by
``puppeteer-core``, both from the npm registry, installed into ``benchmarks/headless``) with a
1,400 px wide window, measures every visible table against the article column, and prints one
line per table: its width, the room it has (a notebook cell's output area is a little narrower
than the article column), how many pixels a reader cannot see without scrolling sideways, and
the section heading it sits under. Screenshots of the tables that overflow go to ``--shots``;
``--json`` keeps every measurement. Exit status 1 when any table overflows.

    make book
    (cd benchmarks/headless && npm install)
    python benchmarks/check_table_widths.py                 # every page
    python benchmarks/check_table_widths.py --width 1400 --pages book/cam.html notebooks/benchmark.html
    python benchmarks/check_table_widths.py --html /tmp/patched_copy --json /tmp/widths.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "headless"
SKIP = {"genindex.html", "search.html", "py-modindex.html", "index.html"}   # index.html only redirects


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book (default: _build/html)")
    parser.add_argument("--width", type=int, default=1400, help="browser window width in px (default 1400)")
    parser.add_argument("--shots", default=str(ROOT / "_build" / "table_shots"),
                        help="folder for screenshots of overflowing tables")
    parser.add_argument("--pages", nargs="*", help="pages relative to --html (default: every page)")
    parser.add_argument("--json", help="also write every table's measurements to this JSON file")
    args = parser.parse_args()

    html = Path(args.html)
    if not (html / "index.html").exists():
        sys.exit(f"--html {html} holds no built book: run `make book` first")
    if shutil.which("node") is None:
        sys.exit("node is not installed: the check needs Node.js to drive headless Chromium")
    if not (HERE / "node_modules" / "puppeteer-core").exists():
        sys.exit(f"the headless browser is not installed: run `npm install` in {HERE}")
    pages = args.pages or sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                                 if p.name not in SKIP and "_static" not in p.parts and "_sources" not in p.parts)
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["node", str(HERE / "tables.mjs"), str(html), str(args.width), str(shots), *pages],
                         capture_output=True, text=True, timeout=900, cwd=HERE)
    if run.returncode != 0:
        sys.exit(f"headless browser failed:\n{run.stderr[-2000:]}")
    tables = json.loads(run.stdout.strip().splitlines()[-1])
    bad = [t for t in tables if t["overflow_px"] > 1]
    print(f"{len(tables)} tables on {len(pages)} pages at a {args.width} px window")
    if args.json:
        Path(args.json).write_text(json.dumps(tables, indent=1))
    for t in tables:
        flag = "CUT " if t["overflow_px"] > 1 else "fits"
        # room: the width the table can take without a reader scrolling sideways (the output area
        # of a notebook cell is a little narrower than the article column)
        print(f"{flag} {t['page']:32s} table {t['index']:2d}: {t['table_width']:5d} px in {t['room_px']:4d} px of room, "
              f"{t['overflow_px']:4d} px hidden  [{t['section']}] {t['caption']!r}")
    print(f"{len(bad)} table(s) overflow" + (f"; screenshots in {shots}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

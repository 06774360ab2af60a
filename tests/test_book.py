"""The book's configuration, table of contents, notebook pairs, citations and CI files."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _config():
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[str]:
    """Every file named in _toc.yml (without suffix), in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return out


def toc_notebooks() -> list[Path]:
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def test_config_executes_strictly_with_a_cache():
    cfg = _config()
    ex = cfg["execute"]
    assert ex["execute_notebooks"] == "cache"
    assert ex["allow_errors"] is False and int(ex["timeout"]) > 0
    assert "book/references.bib" in cfg["bibtex_bibfiles"]
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    assert cfg["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert cfg["launch_buttons"]["binderhub_url"]
    assert cfg["repository"]["url"].startswith("https://github.com/")


def test_every_toc_entry_exists_and_nothing_is_empty():
    for f in toc_files():
        candidates = [ROOT / f"{f}{s}" for s in (".md", ".ipynb")]
        existing = [p for p in candidates if p.exists()]
        assert existing, f"_toc.yml names {f}, which does not exist"
        text = existing[0].read_text()
        assert len(text) > 1500, f"{f} looks like a placeholder ({len(text)} characters)"


@pytest.mark.parametrize("nb", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_pair_in_sync(nb):
    import jupytext

    py = nb.with_suffix(".py")
    assert py.exists(), f"{nb.name} has no py:percent pair"
    a = jupytext.read(py)
    b = nbformat.read(nb, as_version=4)
    cells = lambda n: [(c.cell_type, c.source.strip()) for c in n.cells]
    assert cells(a) == cells(b), f"{nb.name} and {py.name} differ: run `make sync`"


@pytest.mark.parametrize("nb", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_in_colab(nb):
    """First code cell installs medxai_lite from the configured repository; a parameters cell follows."""
    book = nbformat.read(nb, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    url = _config()["repository"]["url"]
    assert "import medxai_lite" in code[0].source and f"git+{url}" in code[0].source
    assert "parameters" in code[1].metadata.get("tags", [])
    assert not any(c.get("outputs") for c in code), "commit notebooks without outputs"
    assert all(c.source.strip() for c in code), "empty code cell (two blank lines after the jupytext header?)"


def _bib_keys():
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book/references.bib").read_text(), re.M))


def test_every_citation_is_in_the_bibliography():
    keys = _bib_keys()
    cited = set()
    for f in toc_files():
        for suffix in (".md", ".py"):
            p = ROOT / f"{f}{suffix}"
            if p.exists():
                for group in re.findall(r"\{cite[pt]?\}`([^`]+)`", p.read_text()):
                    cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found"
    assert cited <= keys, f"missing from references.bib: {sorted(cited - keys)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M)


def test_publishing_workflow_is_valid():
    wf = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in on and "workflow_dispatch" in on
    steps = wf["jobs"]["build"]["steps"]
    assert any(s.get("run") == "make book" for s in steps)
    assert any("upload-pages-artifact" in s.get("uses", "") for s in steps)
    assert any("deploy-pages" in s.get("uses", "") for s in wf["jobs"]["deploy"]["steps"])
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"


def test_wheel_carries_every_subpackage_and_the_console_command(tmp_path):
    """What the Colab install cell installs: the built wheel must hold the whole package."""
    import subprocess
    import sys
    import zipfile

    import shutil

    src = tmp_path / "src"   # build from a copy: setuptools writes build/ beside the sources
    shutil.copytree(ROOT / "medxai_lite", src / "medxai_lite", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("medxai_lite-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("data", "models", "explain", "metrics", "viz", "atlas", "frameworks"):
        assert f"medxai_lite/{sub}/__init__.py" in names, f"medxai_lite.{sub} missing from the wheel"
    assert sum(n.startswith("medxai_lite/atlas/tables/") and n.endswith(".csv") for n in names) == 9
    assert {"medxai_lite/frameworks/table11.csv", "medxai_lite/frameworks/table11_methods.csv"} <= set(names)
    assert "medxai_lite/taxonomy.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "medxai = medxai_lite.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def _toc_captions() -> list[str]:
    return [part["caption"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]]


def test_the_introduction_lists_exactly_the_parts_of_the_toc():
    """The introduction's "How to read it" list names the book's parts in the order of _toc.yml, so
    the book never promises a part it does not have; every page it links to exists."""
    intro = (ROOT / "book/intro.md").read_text()
    section = intro.split("## How to read it", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\d+\. \*\*(.+?)\*\*", section, re.M)
    assert listed == _toc_captions()
    for target in re.findall(r"\]\(([^)#:]+?\.(?:md|ipynb))\)", intro):
        assert (ROOT / "book" / target).resolve().exists(), f"the introduction links to {target}, which does not exist"


#: Toc pages that are chapters in the sense of CHAPTER.md (the others: the introduction, the
#: real-data how-to, the course page and the glossary).
NOT_CHAPTERS = {"book/intro", "book/real_data", "book/course", "book/glossary"}


def _chapters() -> list[tuple[str, str]]:
    """(page, notebook) for every chapter: a prose page with its notebook, or a notebook alone."""
    files = toc_files()
    out = []
    for f in files:
        if f in NOT_CHAPTERS or f.startswith("notebooks/") and f"book/{f.split('/')[1]}" in files:
            continue
        nb = f"notebooks/{f.split('/')[1]}"
        out.append((f, nb))
    return out


@pytest.mark.parametrize("page, nb", _chapters(), ids=lambda v: v)
def test_every_chapter_opens_and_closes_as_chapter_md_asks(page, nb):
    """Objectives, prerequisites and a time line glued from the last build at the start; two or
    more exercises with solutions and "What to remember" at the end; the notebook glues its time."""
    texts = [(ROOT / f"{f}{s}").read_text() for f in {page, nb} for s in (".md", ".py") if (ROOT / f"{f}{s}").exists()]
    text = "\n".join(texts)
    assert "Learning objectives" in text and "Prerequisites:" in text, page
    assert re.search(r"\*Time:\*.*\{glue:text\}`[^`]*time_cpu_note(:[^`]*)?`", text, re.S), f"{page}: no glued time line"
    exercises = len(re.findall(r"\{exercise-start\}|```\{exercise\}", text))
    solutions = len(re.findall(r"\{solution-start\}|```\{solution\}", text))
    assert exercises >= 2 and solutions >= exercises, f"{page}: {exercises} exercises, {solutions} solutions"
    assert "What to remember" in text, page
    py = (ROOT / f"{nb}.py").read_text()
    assert py.rstrip().endswith("timer.glue()"), f"{nb}.py must end with the cell that glues its time"


def _pipe_tables(text: str):
    """Each block of consecutive lines starting with '|' (outside code fences), as lists of lines."""
    block, fenced = [], False
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            block.append(line)
        elif block:
            yield block
            block = []


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


@pytest.mark.parametrize("page", sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("book/*.md"))
                         + sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*.py")))
def test_every_pipe_table_has_as_many_columns_in_each_row(page):
    """A separator row with more columns than the header makes MyST print the table as a paragraph
    of pipes (the course page's syllabus did), which no table-width check sees."""
    text = (ROOT / page).read_text(encoding="utf-8")
    if page.endswith(".py"):                       # jupytext: markdown cells are '# ' comment lines
        text = "\n".join(line[2:] if line.startswith("# |") else "" for line in text.splitlines())
    for block in _pipe_tables(text):
        if len(block) < 2 or not re.fullmatch(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?", block[1].strip()):
            continue                               # not a table (no separator row)
        widths = [_cells(row) for row in block]
        assert len(set(widths)) == 1, f"{page}: table starting {block[0][:60]!r} has rows of {widths} cells"

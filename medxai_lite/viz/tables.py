"""Tables that fit the reading column: wide frames split into narrower ones, long cells moved
into numbered notes, and sortable tables that open with their main columns only.

A table in the rendered book is as wide as the sum of its columns' longest unbreakable words
(``relevance_mass_accuracy`` does not wrap; ``phantom-chest-xray`` does, at its hyphens).
At a 1,400 px browser window a notebook cell's output has about 780 px; ``benchmarks/
check_table_widths.py`` measures every table of a built book against it. The helpers here do
not compute anything: they regroup a computed table for display.

Example
-------
>>> wide = pd.concat({"accuracy": acc, "macro-F1": f1}, axis=1)      # columns (metric, arch)
>>> split_table(wide, lambda t: t.style.format("{:.3f}"), level=0, caption="Table A")
"""
from __future__ import annotations

import html
from typing import Callable, Mapping, Sequence

__all__ = ["TableGroup", "split_columns", "split_table", "footnotes", "vertical_headers", "interactive_table",
           "registry_tables", "compatibility_tables"]


class TableGroup:
    """Several tables shown one under the other as one cell output (``parts``: Stylers or
    DataFrames, each rendered by its own ``_repr_html_``)."""

    def __init__(self, parts: Sequence):
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i):
        return self.parts[i]

    def to_html(self) -> str:
        return "\n".join(p._repr_html_() if hasattr(p, "_repr_html_") else html.escape(str(p)) for p in self.parts)

    def _repr_html_(self) -> str:
        return self.to_html()


def _level_number(columns, level) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        if not -columns.nlevels <= level < columns.nlevels:
            raise ValueError(f"level must be a column level of the table (0 to {columns.nlevels - 1} or a name "
                             f"in {list(columns.names)}); got {level!r}")
        return level % columns.nlevels
    if level in list(columns.names) and level is not None:
        return list(columns.names).index(level)
    raise ValueError(f"level must be a column level of the table (0 to {columns.nlevels - 1} or a name "
                     f"in {list(columns.names)}); got {level!r}")


def split_columns(frame, *, level=None, max_columns: int | None = None,
                  groups: Mapping[object, Sequence] | None = None) -> list[tuple[object, object]]:
    """The columns of ``frame`` in narrower groups, each a DataFrame with the full index.

    ``level`` (a column level's number or name): one group per value of that level, in the
    order the values first appear; the level is dropped from the group's columns (its value is
    the group's key). ``groups`` instead: ``{key: [column, ...]}``, the groups named explicitly
    (columns named in no group are left out). ``max_columns``: no group wider than that; a
    longer group is cut into consecutive pieces. Returns ``[(key, part), ...]``: ``key`` is the
    level's value or the group's key (``None`` for the whole frame) and repeats over the pieces
    of one group. With ``level`` or without either, every column lands in exactly one part, in
    the original order.

    >>> [k for k, _ in split_columns(table, level="metric")]      # columns (metric, dataset)
    ['RMA', 'pointing game']
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    if max_columns is not None and (isinstance(max_columns, bool) or not isinstance(max_columns, int)
                                    or max_columns < 1):
        raise ValueError(f"max_columns must be an integer >= 1 or None; got {max_columns!r}")
    if level is not None and groups is not None:
        raise ValueError("give level or groups, not both")
    if groups is not None:
        if not isinstance(groups, Mapping) or not groups:
            raise ValueError(f"groups must be a non-empty mapping {{key: [column, ...]}}; got {groups!r}")
        named = [c for cols in groups.values() for c in cols]
        unknown = [c for c in named if c not in frame.columns]
        if unknown:
            raise ValueError(f"groups names unknown column(s) {unknown}; the table has {list(frame.columns)}")
        groups = [(key, frame[list(cols)]) for key, cols in groups.items()]
    elif level is None:
        groups = [(None, frame)]
    else:
        number = _level_number(frame.columns, level)
        keys = list(dict.fromkeys(frame.columns.get_level_values(number)))
        groups = []
        for key in keys:
            part = frame.loc[:, frame.columns.get_level_values(number) == key]
            if frame.columns.nlevels > 1:
                part = part.droplevel(number, axis=1)
            groups.append((key, part))
    if max_columns is None:
        return groups
    return [(key, part.iloc[:, start:start + max_columns])
            for key, part in groups for start in range(0, max(part.shape[1], 1), max_columns)]


def split_table(frame, style: Callable | None = None, *, level=None, max_columns: int | None = None,
                groups: Mapping[object, Sequence] | None = None, caption: str | Callable | None = None) -> TableGroup:
    """:func:`split_columns`, each part styled by ``style(part) -> Styler`` (default:
    ``part.style``) and captioned: ``caption(key)`` when ``caption`` is a function, ``caption``
    with ``{key}`` replaced by the part's key, or ``"<caption>: <key>"`` when it has no
    ``{key}`` (the key alone without a caption, the caption alone without a key); numbered
    ``(1/2)`` where a group was cut by ``max_columns``.

    Colour scales computed per column (``background_gradient(axis=0)``) or with a fixed
    ``vmin``/``vmax`` look the same as on the whole table; a scale over each row does not.
    """
    parts = split_columns(frame, level=level, max_columns=max_columns, groups=groups)
    counts: dict = {}
    for key, _ in parts:
        counts[key] = counts.get(key, 0) + 1
    seen: dict = {}
    styled = []
    for key, part in parts:
        seen[key] = seen.get(key, 0) + 1
        styler = style(part) if style is not None else part.style
        if callable(caption):
            label = caption(key)
        elif caption is not None and "{key}" in caption:
            label = caption.replace("{key}", "" if key is None else str(key))
        else:
            label = ": ".join(str(s) for s in (caption, key) if s is not None)
        if counts[key] > 1:
            label = f"{label} ({seen[key]}/{counts[key]})".strip()
        styled.append(styler.set_caption(label) if label else styler)
    return TableGroup(styled)


def footnotes(frame, sep: str = ": ", start: int = 1):
    """Long cells moved into numbered notes: a cell ``"<label><sep><text>"`` becomes
    ``"<label> [k]"``, and note ``k`` holds ``text`` (equal texts share one number, numbered in
    reading order, row by row). Other cells are kept. Returns ``(table, notes)``: the short
    table and a DataFrame with one row per note (index ``[k]``, column ``note``).

    >>> short, notes = footnotes(compatibility_matrix(family="CAM-based"))
    >>> short.loc["cam", "vgg16"], notes.iloc[0, 0][:6]
    ('no [1]', 'VGG16:')
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty string; got {sep!r}")
    numbers: dict[str, int] = {}

    def short(value):
        if not isinstance(value, str) or sep not in value:
            return value
        label, text = value.split(sep, 1)
        k = numbers.setdefault(text, start + len(numbers))
        return f"{label} [{k}]"

    table = frame.copy()
    for i in range(table.shape[0]):              # row by row, so the numbers follow the reading order
        for j in range(table.shape[1]):
            table.iat[i, j] = short(frame.iat[i, j])
    notes = pd.DataFrame({"note": list(numbers)}, index=pd.Index([f"[{k}]" for k in numbers.values()]))
    return table, notes


def interactive_table(frame, visible: Sequence[str] | None = None, caption: str | None = None, *,
                      spaces: bool = True, **options):
    """A sortable, paged table (itables, the HTML ``itables.show`` displays) that opens with the
    ``visible`` columns only; a "Column visibility" button above it shows the others.
    ``options`` go to itables (e.g. ``pageLength=10``, ``classes="display compact"``). Returns an
    ``IPython.display.HTML``: the last line of a cell shows it, or pass it to ``display``.

    ``spaces``: show column names with spaces for underscores (``p_holm`` as ``p holm``), so
    that headers can wrap; ``visible`` names the columns as the frame does. The index is not
    shown: put what identifies a row in the columns (``reset_index()``).
    """
    import itables
    from IPython.display import HTML

    columns = [str(c) for c in frame.columns]
    if visible is not None:
        visible = [str(c) for c in visible]
        unknown = [c for c in visible if c not in columns]
        if unknown:
            raise ValueError(f"visible names unknown column(s) {unknown}; the table has {columns}")
        hidden = [i for i, c in enumerate(columns) if c not in visible]
        if hidden:
            options["columnDefs"] = [*options.get("columnDefs", []), {"targets": hidden, "visible": False}]
            options.setdefault("buttons", ["colvis"])
    if spaces:
        frame = frame.rename(columns=lambda c: c.replace("_", " ") if isinstance(c, str) else c)
    return HTML(itables.to_html_datatable(frame, caption, showIndex=False, **options))


def vertical_headers(styler):
    """``styler`` with its column headers written bottom to top, so that a matrix of short
    cells (``yes``, ``no [1]``) is as narrow as its cells, not as its column names."""
    return styler.set_table_styles([{"selector": "th.col_heading",
                                     "props": "writing-mode: vertical-rl; transform: rotate(180deg); "
                                              "text-align: left; vertical-align: bottom; white-space: nowrap"},
                                    {"selector": "td", "props": "padding: 0.1em 0.5em"}],
                                   overwrite=False)


def registry_tables(table, columns: Sequence[str] = ("title", "library", "needs_gradients", "cost", "ref"),
                    second: Sequence[str] = ("options",), *,
                    captions: Sequence[str] = ("What each method needs and costs (ref: first author and year)",
                                               "The options each method takes (keywords of explain)")) -> TableGroup:
    """A registry table (:func:`medxai_lite.explain.methods_table`, possibly with added columns)
    as two tables: ``columns`` (short entries; ``ref`` is the paper's author and year, the
    chapter cites it in full) and ``second`` (long lists such as ``options``, or presets)."""
    return split_table(table, groups={captions[0]: list(columns), captions[1]: list(second)}, caption="{key}")


def compatibility_tables(matrix, caption: str = "Which method runs on which architecture "
                                                "(no: see the note of that number)") -> TableGroup:
    """:func:`medxai_lite.explain.compatibility_matrix` as a narrow table and its notes: each
    cell ``yes`` or ``no [k]`` (green or red), the reasons in full below it (one note per
    distinct reason), architectures by their titles, headers written vertically."""
    from ..models import arch_spec
    from .evaluation import style_verdicts

    short, notes = footnotes(matrix.rename(columns=lambda a: arch_spec(a).title))
    parts = [vertical_headers(style_verdicts(short, columns=None, default="#f8d7da", caption=caption))]
    if len(notes):
        parts.append(notes.style.set_caption("Why a method does not run there"))
    return TableGroup(parts)

"""Figures of the latent chapter: interactive maps of a network's feature space, and small multiples.

- :func:`latent_scatter`: a plotly scatter of a 2-D embedding with a dropdown that switches the
  colouring (class, correctness, a concept's value on a colour bar, shortcut artefact).
- :func:`with_thumbnails`: the same figure as self-contained HTML that shows the image under the
  pointer beside the plot. Plotly's hover box cannot hold an image, so a small ``plotly_hover``
  handler puts the hovered point's thumbnail (a small base64 WebP or PNG; grey images stay grey) in an
  ``<img>`` next to the plot, with its class and prediction. The HTML loads plotly.js from its
  CDN only when the page does not have it yet and draws once it is there, so it works in the
  static pages of the built book, in Jupyter and in Colab.
- :func:`plot_projection_grid`: matplotlib small multiples (one panel per setting or per set),
  each titled with its parameters and scores; colour and marker shape both encode a grouping,
  so the panels stay readable in grey.

Nothing here computes a projection or a score: they come from :mod:`medxai_lite.latent`.
"""
from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
from typing import Mapping, Sequence

import numpy as np

__all__ = ["PALETTE", "THUMBNAIL_FORMATS", "latent_scatter", "with_thumbnails", "ThumbnailScatter", "thumbnail_uris",
           "plot_projection_grid"]

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), dark ones first.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
_PLOTLY_SYMBOLS = ("circle", "square", "diamond", "cross", "x", "triangle-up", "star", "hexagon")
_MPL_MARKERS = ("o", "s", "D", "P", "X", "^", "*", "h")
#: Marker shapes of a second grouping (``style``): a circle and a triangle stay apart even when small.
_MPL_STYLE_MARKERS = ("o", "^", "s", "D", "P", "X")


def _check_embedding(embedding) -> np.ndarray:
    e = np.asarray(embedding, dtype=float)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"embedding must have shape [N, 2]; got {list(e.shape)}")
    if not np.isfinite(e).all():
        raise ValueError("embedding contains NaN or infinite values")
    return e


def _categories(values) -> list:
    cats = getattr(values, "categories", None)
    if cats is not None:
        return [c for c in cats if (np.asarray(values) == c).any()]
    return sorted(set(np.asarray(values).tolist()), key=str)


def _is_continuous(values) -> bool:
    v = np.asarray(values)
    return v.dtype.kind == "f" and len(np.unique(v)) > 10


def latent_scatter(embedding, colours: Mapping[str, object], *, hover: Sequence[str] | None = None,
                   title: str | None = None, axis_label: str = "dimension", continuous: Sequence[str] | None = None,
                   height: int = 500, marker_size: int = 7):
    """Interactive scatter of a 2-D embedding whose colouring a dropdown switches.

    Parameters
    ----------
    embedding : float [N, 2]
    colours : dict name -> values [N]
        One colouring per entry, in dropdown order (the first is shown first), e.g.
        :meth:`medxai_lite.latent.LatentFeatures.colours`. Categorical values (strings, booleans,
        integers, or floats with at most 10 distinct values) get one legend entry per category,
        with a colour and a marker shape each; continuous ones a colour bar titled with the name.
    hover : list of N str, optional
        Text shown when the pointer is on a point (e.g. ``LatentFeatures.hover_text()``).
    title : str
    axis_label : str
        The axes read ``"<axis_label> 1"`` and ``"<axis_label> 2"`` (e.g. ``"t-SNE"``).
    continuous : names in ``colours`` to draw with a colour bar whatever their values.

    Every trace carries the point's index as ``customdata``, which :func:`with_thumbnails` uses.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    e = _check_embedding(embedding)
    n = len(e)
    if not colours:
        raise ValueError("colours must name at least one colouring (name -> values [N])")
    if hover is not None and len(hover) != n:
        raise ValueError(f"hover must hold one text per point ({n}); got {len(hover)}")
    continuous = set(continuous or ())
    unknown = continuous - set(colours)
    if unknown:
        raise ValueError(f"continuous names {sorted(unknown)}, which are not in colours ({', '.join(colours)})")
    hover = [str(h) for h in hover] if hover is not None else [f"point {i}" for i in range(n)]
    fig = go.Figure()
    groups = []                                         # (colouring name, number of traces)
    for g, (name, values) in enumerate(colours.items()):
        v = np.asarray(values)
        if v.shape != (n,):
            raise ValueError(f"colours[{name!r}] must hold one value per point ({n}); got shape {list(v.shape)}")
        first = g == 0
        if name in continuous or _is_continuous(v):
            v = v.astype(float)
            if not np.isfinite(v).all():
                raise ValueError(f"colours[{name!r}] contains NaN or infinite values")
            fig.add_trace(go.Scatter(
                x=e[:, 0], y=e[:, 1], mode="markers", name=name, visible=first, showlegend=False,
                customdata=np.arange(n), text=hover,
                marker=dict(size=marker_size, color=v, colorscale="Viridis", showscale=True,
                            colorbar=dict(title=dict(text=name, side="right"), thickness=14),
                            line=dict(width=0.4, color="white")),
                hovertemplate="%{text}<br>" + f"{name}: " + "%{marker.color:.2f}<extra></extra>"))
            groups.append((name, 1))
            continue
        cats = _categories(values)
        for k, c in enumerate(cats):
            m = np.flatnonzero(v == c)
            fig.add_trace(go.Scatter(
                x=e[m, 0], y=e[m, 1], mode="markers", name=str(c), visible=first, legendgroup=name,
                legendgrouptitle_text=name, customdata=m, text=[hover[i] for i in m],
                marker=dict(size=marker_size, color=PALETTE[k % len(PALETTE)],
                            symbol=_PLOTLY_SYMBOLS[k % len(_PLOTLY_SYMBOLS)], line=dict(width=0.4, color="white")),
                hovertemplate="%{text}" + f"<extra>{name}: {c}</extra>"))
        groups.append((name, len(cats)))
    buttons = []
    total = sum(count for _, count in groups)
    start = 0
    for name, count in groups:
        visible = [start <= i < start + count for i in range(total)]
        buttons.append(dict(label=name, method="update", args=[{"visible": visible}]))
        start += count
    fig.update_layout(
        title=title, height=height, template="plotly_white", hovermode="closest",
        margin=dict(l=60, r=20, t=90 if title else 60, b=50),
        legend=dict(itemsizing="constant", groupclick="toggleitem"),
        updatemenus=[dict(buttons=buttons, direction="down", showactive=True, x=0.0, xanchor="left", y=1.0,
                          yanchor="bottom", pad=dict(b=6))] if len(buttons) > 1 else [],
        annotations=[dict(text="colour by", x=0.0, xref="paper", y=1.0, yref="paper", xanchor="right",
                          yanchor="bottom", showarrow=False, xshift=-6, yshift=8)] if len(buttons) > 1 else [])
    fig.update_xaxes(title_text=f"{axis_label} 1", zeroline=False)
    fig.update_yaxes(title_text=f"{axis_label} 2", zeroline=False, scaleanchor="x", scaleratio=1)
    return fig


#: Image formats of :func:`thumbnail_uris`: PIL format name, MIME type, save options.
THUMBNAIL_FORMATS = {"webp": ("WEBP", "image/webp", {"quality": 75, "method": 6}),
                     "png": ("PNG", "image/png", {"optimize": True}),
                     "jpeg": ("JPEG", "image/jpeg", {"quality": 75})}


def thumbnail_uris(images, size: int = 40, format: str = "webp") -> list[str]:
    """Small thumbnails as ``data:<mime>;base64,...`` URIs, ``size`` pixels a side.

    ``images``: uint8 or [0, 1] float ``[N, H, W, 3]`` / ``[N, H, W]``, or normalised tensors
    ``[N, 3, H, W]``. An image whose three channels are equal is encoded from one grey channel,
    so it stays grey (PNG stores it as a one-channel image). ``format`` is ``"webp"`` (default:
    lossy at quality 75, about 0.5 kB for a 40 px phantom, which keeps a page with hundreds of
    thumbnails light; every current browser shows it), ``"png"`` (lossless, 3 to 8 times
    larger on noisy images) or ``"jpeg"``.
    """
    from PIL import Image

    from .._utils import check_choice
    from .plots import to_display

    check_choice("format", format, THUMBNAIL_FORMATS)
    kind, mime, options = THUMBNAIL_FORMATS[format]
    size = int(size)
    if not 8 <= size <= 256:
        raise ValueError(f"size must be between 8 and 256 pixels; got {size}")
    if hasattr(images, "detach"):
        images = [to_display(x) for x in images]
    out = []
    for img in images:
        a = (to_display(img) * 255 + 0.5).astype(np.uint8)
        spread = a.max(-1).astype(int) - a.min(-1)
        gray = bool(spread.max() <= 1)          # one level of rounding between channels is still grey
        pil = Image.fromarray(a[..., 0] if gray else a, mode="L" if gray else "RGB")
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        pil.save(buf, format=kind, **options)
        out.append(f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


_FIGURE_COUNT = itertools.count()


class ThumbnailScatter:
    """A plotly figure with image thumbnails on hover, as HTML (``.html``); notebooks display it."""

    def __init__(self, html: str, div_id: str, n_points: int):
        self.html, self.div_id, self.n_points = html, div_id, n_points

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        kb = len(self.html) / 1024
        return f"ThumbnailScatter(div_id={self.div_id!r}, points={self.n_points}, {kb:.0f} kB of HTML)"


_LOADER = """(function () {
  var id = %(id)s, fig = %(fig)s, thumbs = %(thumbs)s, captions = %(captions)s, cdn = %(cdn)s;
  function show(ev) {
    if (!ev || !ev.points || !ev.points.length) return;
    var i = ev.points[0].customdata;
    if (Array.isArray(i)) i = i[0];
    if (typeof i !== "number" || !(i >= 0 && i < thumbs.length)) return;
    var img = document.getElementById(id + "-thumb"), cap = document.getElementById(id + "-caption");
    if (img) { img.src = thumbs[i]; img.style.visibility = "visible"; }
    if (cap) cap.textContent = captions[i];
  }
  function draw() {
    var gd = document.getElementById(id);
    if (!gd || gd.getAttribute("data-drawn")) return;
    gd.setAttribute("data-drawn", "1");
    window.Plotly.newPlot(gd, fig.data, fig.layout, fig.config).then(function (g) {
      g.on("plotly_hover", show);
      g.on("plotly_click", show);
    });
  }
  if (window.Plotly) { draw(); return; }
  var s = document.querySelector("script[data-medxai-plotly]");
  if (!s) {
    s = document.createElement("script");
    s.src = cdn;
    s.charset = "utf-8";
    s.setAttribute("data-medxai-plotly", "1");
    document.head.appendChild(s);
  }
  s.addEventListener("load", draw);
})();"""


def _script_json(value) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def with_thumbnails(fig, images, *, captions: Sequence[str] | None = None, size: int = 40, display_size: int = 128,
                    format: str = "webp", div_id: str | None = None) -> ThumbnailScatter:
    """HTML of ``fig`` that shows the image under the pointer beside the plot.

    Parameters
    ----------
    fig : plotly Figure whose traces carry each point's index as ``customdata`` (as
        :func:`latent_scatter` makes them)
    images : the N images (see :func:`thumbnail_uris`), in point order
    captions : N str, shown under the thumbnail (default: ``"point i"``)
    size, format : thumbnail side in pixels as stored, and image format (see :func:`thumbnail_uris`);
        keep them small: every thumbnail is in the page
    display_size : side in CSS pixels at which it is shown (pixelated, not smoothed)
    div_id : id of the plot's ``<div>``; the thumbnail is ``<div_id>-thumb`` and its caption
        ``<div_id>-caption``. Default: a hash of the figure, the thumbnails and the number of
        figures made so far in this process, so a rerun of a notebook writes the same HTML

    The page loads plotly.js from the CDN of the installed plotly version only where no
    ``window.Plotly`` exists yet, and draws when it has loaded: an external script added to a
    notebook's output runs after the output's inline scripts, so drawing at once would fail there.

    Returns
    -------
    ThumbnailScatter (``.html``; displays itself in Jupyter and in the built book)
    """
    import plotly.io as pio
    from plotly.io._utils import plotly_cdn_url

    uris = thumbnail_uris(images, size=size, format=format)
    n = len(uris)
    indices = set()
    for trace in fig.data:
        cd = trace.customdata
        if cd is None:
            raise ValueError("fig's traces must carry each point's index as customdata (use latent_scatter)")
        indices.update(int(np.ravel(c)[0]) for c in cd)
    if indices and (min(indices) < 0 or max(indices) >= n):
        raise ValueError(f"images must hold one image per point: the figure refers to point {max(indices)}, "
                         f"and {n} images were given")
    captions = [f"point {i}" for i in range(n)] if captions is None else [str(c) for c in captions]
    if len(captions) != n:
        raise ValueError(f"captions must hold one text per image ({n}); got {len(captions)}")
    spec = json.loads(pio.to_json(fig, validate=False))
    if div_id is None:
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode() + "".join(uris).encode()
                              + str(next(_FIGURE_COUNT)).encode()).hexdigest()
        div_id = f"medxai-latent-{digest[:10]}"
    if not div_id.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"div_id must hold letters, digits, '-' and '_' only; got {div_id!r}")
    spec["config"] = {"responsive": True, "displaylogo": False}
    height = int(fig.layout.height or 500)
    script = _LOADER % {"id": _script_json(div_id), "fig": _script_json(spec), "thumbs": _script_json(uris),
                        "captions": _script_json(captions), "cdn": _script_json(plotly_cdn_url())}
    px = int(display_size)
    html = (
        f'<div class="medxai-latent" style="display:flex;flex-wrap:wrap;align-items:flex-start;gap:12px">\n'
        f'<div id="{div_id}" class="plotly-graph-div" style="flex:1 1 520px;min-width:320px;height:{height}px"></div>\n'
        f'<figure style="margin:0;width:{px + 32}px;font:12px/1.35 sans-serif;text-align:center">\n'
        f'<img id="{div_id}-thumb" alt="the image under the pointer" width="{px}" height="{px}" '
        f'style="visibility:hidden;image-rendering:pixelated;border:1px solid #bbb;background:#eee">\n'
        f'<figcaption id="{div_id}-caption" style="white-space:pre-line">Point at a dot (or tap it) to see '
        f'its image here.</figcaption>\n</figure>\n</div>\n'
        f'<script type="text/javascript">\n{script}\n</script>\n')
    return ThumbnailScatter(html, div_id, n)


# --------------------------------------------------------------------------------------------- matplotlib
def _per_panel(value, names, n_of, what: str):
    if value is None:
        return {k: None for k in names}
    if isinstance(value, Mapping):
        missing = set(names) - set(value)
        if missing:
            raise ValueError(f"{what} has no entry for panel(s) {sorted(missing)}")
        out = {k: np.asarray(value[k]) for k in names}
    else:
        out = {k: np.asarray(value) for k in names}
    for k, v in out.items():
        if v.shape != (n_of[k],):
            raise ValueError(f"{what} for panel {k!r} must hold one value per point ({n_of[k]}); got {list(v.shape)}")
    return out


def plot_projection_grid(embeddings: Mapping[str, object], groups, *, style=None,
                         subtitles: Mapping[str, str] | None = None, ncols: int = 3, axis_label=None,
                         group_title: str = "class", style_title: str = "", title: str | None = None,
                         size: float = 2.7, order: Sequence | None = None):
    """Small multiples of 2-D embeddings, one panel per entry, titled with its key and subtitle.

    Parameters
    ----------
    embeddings : dict panel title -> float [N, 2]
    groups : values [N] shared by every panel, or dict panel -> values: the point colours
    style : values [N] or dict panel -> values, optional: a second grouping drawn as marker shapes
        (without it, the shape repeats the colour's group, so the panels read in grey)
    subtitles : dict panel -> str, a second title line (e.g. its trustworthiness)
    axis_label : str or dict panel -> str: the axes read ``"<label> 1"`` / ``"<label> 2"``
        (default: the panel title's first word when it names a projection, else "dimension")
    order : the category order of ``groups`` (default: sorted)

    Panels have no tick labels: a t-SNE or UMAP coordinate has no unit. Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not embeddings:
        raise ValueError("embeddings must hold at least one panel")
    names = list(embeddings)
    embs = {k: _check_embedding(v) for k, v in embeddings.items()}
    n_of = {k: len(v) for k, v in embs.items()}
    colour_of = _per_panel(groups, names, n_of, "groups")
    style_of = _per_panel(style, names, n_of, "style")
    cats = list(order) if order is not None else sorted({c for v in colour_of.values() for c in v.tolist()}, key=str)
    styles = sorted({c for v in style_of.values() if v is not None for c in v.tolist()}, key=str)
    ncols = max(1, min(int(ncols), len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.9), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        e, g, s = embs[name], colour_of[name], style_of[name]
        for ci, c in enumerate(cats):
            for si, st in enumerate(styles if s is not None else [None]):
                m = (g == c) if st is None else (g == c) & (s == st)
                if m.any():
                    marker = (_MPL_STYLE_MARKERS[si % len(_MPL_STYLE_MARKERS)] if st is not None
                              else _MPL_MARKERS[ci % len(_MPL_MARKERS)])
                    ax.scatter(e[m, 0], e[m, 1], s=9 if st is None else 13, marker=marker,
                               color=PALETTE[ci % len(PALETTE)], linewidths=0.25, edgecolors="white", alpha=0.85)
        label = axis_label.get(name) if isinstance(axis_label, Mapping) else axis_label
        if label is None:
            first = str(name).split()[0]
            label = first if first in ("t-SNE", "UMAP", "PCA") else "dimension"
        ax.set_xlabel(f"{label} 1", fontsize=7, labelpad=1)
        ax.set_ylabel(f"{label} 2", fontsize=7, labelpad=1)
        ax.set_xticks([])
        ax.set_yticks([])
        sub = (subtitles or {}).get(name)
        ax.set_title(f"{name}\n{sub}" if sub else str(name), fontsize=8)
    handles = [Line2D([], [], ls="", marker="o" if style is not None else _MPL_MARKERS[i % len(_MPL_MARKERS)],
                      color=PALETTE[i % len(PALETTE)], label=str(c)) for i, c in enumerate(cats)]
    if style is not None:
        handles += [Line2D([], [], ls="", marker=_MPL_STYLE_MARKERS[i % len(_MPL_STYLE_MARKERS)], color="0.35",
                           label=f"{style_title}: {st}" if style_title else str(st)) for i, st in enumerate(styles)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               title=group_title if style is None else f"colour: {group_title}; shape: {style_title or 'group'}",
               title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.11 if nrows == 1 else 0.07, 1, 0.95 if title else 1))
    return fig

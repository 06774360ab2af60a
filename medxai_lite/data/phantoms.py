"""Procedural phantoms of three modalities, with the ground truth real data lacks.

Each generator draws a whole batch at once with NumPy (no Python loop over images) and returns
uint8 RGB images ``[N,S,S,3]``, integer labels, lesion masks ``[N,S,S]``, a concept matrix
``[N,K]``, one report sentence per image and question/answer pairs. All geometry is written in
normalised coordinates (-1..1), so the same drawn anatomy renders alike at any image size. The
draws themselves depend on the size (the noise fields take a size-dependent share of the random
stream), so one seed at two sizes gives the same labels but other images, concepts and reports.

Knobs shared by the three generators:

- ``size``: image side in pixels (32..1024);
- ``difficulty`` in [0, 1]: 0 gives large, high-contrast lesions; 1 small, faint ones;
- ``class_balance``: class proportions (``None`` = equal);
- ``shortcut`` in [0, 1]: probability that an image of the *shortcut class* (glioma, melanoma,
  pneumonia: see ``SHORTCUT_CLASS``) carries a label-correlated artefact, while images of the
  other classes never do. 0 (default) disables it. The artefact is a ruler for dermoscopy,
  a laterality marker for chest X-ray and a burnt-in scanner annotation for MRI: the book uses it
  to show an explanation catching a "Clever Hans" model. ``meta["artefact"]`` flags the images
  that carry it and ``meta["artefact_mask"]`` (bool ``[N,S,S]``) gives its pixels, so a map's
  relevance on the artefact can be scored like relevance on the lesion;
- ``shortcut_class``: the class that carries the artefact (default ``SHORTCUT_CLASS[name]``).
  Another class gives the same images with the artefact moved to that class (same seed, same
  random stream), e.g. a test set that reverses the training correlation.

Lesion sizes follow the real datasets (:data:`LESION_SIZES`, the share of the image the lesion
mask covers, at the default ``difficulty=0.3``): each lesion's target area is drawn from a
log-normal distribution with the median and spread of the real masks or boxes, clipped to the
range seen there. Sources:

- brain MRI: the figshare T1 post-contrast set (Cheng et al. 2015, 512 x 512 slices). No per-class
  mask statistics are published; the medians are estimates from the tumour bounding boxes
  distributed with that set's detection labels (a box fills about 4/pi of its tumour);
- dermoscopy: ISIC 2018 task 1 masks (the HAM10000 images), lesions cover 21.4 % of the image on
  average (Abraham & Khan 2019, ISBI); the wide, right-skewed spread and melanomas larger than
  naevi (the "D" of ABCD, Nachbar et al. 1994) are built in;
- chest X-ray: the RSNA Pneumonia Detection Challenge boxes (Shih et al. 2019, Radiology: AI):
  9,555 boxes on 6,012 positive films, i.e. one or two opacities (55 % have two, nearly always
  one per lung), the mean box about 220 x 330 px of a 1,024 px film and 7-8 % of the image in area
  (more than the 6.9 % of the mean sides' product: wide boxes also tend to be tall).

Generation is deterministic for a seed.

Concept interventions
---------------------
``generate(..., interventions={concept: value})`` re-renders the same images from the same seed
with a concept forced for every image (``load_dataset`` and :func:`medxai_lite.data.intervene`
pass it through). Every random number is drawn exactly as without the intervention, and the
forced value replaces the drawn one where the renderer uses it, so anatomy, noise, position and
the other concepts stay as they were; the mask, the concept vector, the report and the
question/answer pairs are made from the forced values. :data:`INTERVENTIONS` lists what each
phantom can force; ``"artefact"`` (0 or 1) forces the shortcut artefact off or on for every image,
whatever its class and ``shortcut`` (``meta["artefact"]`` and ``meta["artefact_mask"]`` follow);
the artefact belongs to the acquisition, so an image that carried it keeps it when an
intervention changes its class. Pixels change only where the forced concept renders: on the
artefact, or at the lesion and its soft edge (a few pixels), the glioma's oedema (out to 1.6
lesion radii) and, on chest films, the opacity's faint patchy tail, which can move a grey level
by one a little further out (``tests/test_interventions.py`` holds the measured tolerances).

Which concepts define the class (:data:`CLASS_DEFINING`):

- brain MRI: the class is the tumour type, and a tumour type is defined by where the mass grows
  (a meningioma on the dura, outside the brain; a pituitary tumour in the sella; a glioma inside
  the brain). ``"mass present"`` = 0 removes the mass, its oedema and all its attributes: the
  label becomes "no tumour", the mask empty, the concept vector zero and the report normal.
  ``"extra-axial"`` and ``"sellar location"`` would move a mass between compartments, for which
  the generator draws no position: they cannot be forced (ValueError). ``"ring enhancement"``,
  ``"necrotic core"`` and ``"perilesional oedema"`` are imaging signs, not the type: they switch
  on or off on every image with a mass and the label stays (a non-enhancing glioma is still a
  glioma, as low-grade ones are). Without ring enhancement a glioma's rim is T1-hypointense
  non-enhancing tumour; without a necrotic core its centre is that tissue too; with ring
  enhancement a meningioma or pituitary tumour keeps an enhancing rim around a non-enhancing (or
  necrotic) centre; a necrotic core inside an enhancing meningioma is a dark centre in a bright
  rim. On "no tumour" images these three have nothing to act on: the image and its zeros stay.
- dermoscopy: the label is drawn first and the ABCD attributes from class-dependent ranges, so
  the label is the truth and the attributes its evidence: forcing ``"asymmetry"`` (the outline's
  low harmonics), ``"border irregularity"`` (the high harmonics and the edge's blur),
  ``"colour variegation"`` (the dark, blue-grey and red zones) or ``"diameter"`` (the lesion's
  area, log scale from 3 % to 75 % of the image) never changes the label. The pigment network
  (typical for naevi, atypical for melanomas) follows the class, not a concept.
- chest X-ray: ``"consolidation"`` = 0 removes every opacity: label "normal", empty mask, zero
  concept vector, normal report. ``"lower zone"`` moves every opacity to the lower (1) or upper
  (0) zone, at the height the generator drew for that zone. ``"right lung"`` = 1 adds, on a film
  whose only opacity lies in the left lung, a copy of that opacity in the right lung (same shape
  and texture, at the same height); ``"right lung"`` = 0 drops the right opacity of a film with
  two, and moves a film's only right opacity to the left lung (its "left lung" entry then turns
  1: a pneumonia film keeps its opacity somewhere); ``"left lung"`` likewise. Forcing both lungs
  to 0 needs ``"consolidation"`` = 0. ``"air bronchogram"`` = 0 removes the air bronchogram;
  1 keeps the rendered one. Dropping or moving an opacity can also change ``"lower zone"`` (the
  dropped one was the film's only lower one) and, on the odd film, ``"air bronchogram"``, which is
  measured where the bronchial pattern crosses the rendered opacity (about 1 natural pneumonia
  film in 200 has none). Normal films have no opacity for these concepts to act on: they stay as
  they were.

``"mass present"`` = 1 and ``"consolidation"`` = 1 cannot be forced: the images without a lesion
have no drawn lesion to add. Binary concepts take 0 or 1, the ABCD concepts any value in [0, 1].
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["PhantomSpec", "PHANTOMS", "GENERATOR_VERSION", "LESION_SIZES", "INTERVENTIONS", "CLASS_DEFINING",
           "generate", "check_interventions", "fractal_noise", "lesion_shares"]

#: Bump whenever a change alters the generated pixels: trained-model cache keys include it.
GENERATOR_VERSION = 3

#: Calibrated lesion sizes: per (phantom, class), the share of the image covered by the lesion mask
#: at the default difficulty, as ``(median, log-normal sigma, low, high)``; ``source`` says where
#: the numbers come from (see the module docstring). A fast test keeps the generated masks inside
#: these ranges.
LESION_SIZES = {
    ("phantom-brain-mri", "glioma"): dict(median=0.023, sigma=0.55, low=0.005, high=0.07,
                                          source="figshare tumour boxes (estimate)"),
    ("phantom-brain-mri", "meningioma"): dict(median=0.016, sigma=0.5, low=0.004, high=0.05,
                                              source="figshare tumour boxes (estimate)"),
    ("phantom-brain-mri", "pituitary"): dict(median=0.007, sigma=0.45, low=0.002, high=0.025,
                                             source="figshare tumour boxes (estimate)"),
    ("phantom-skin", "benign naevus"): dict(median=0.15, sigma=0.55, low=0.03, high=0.6,
                                            source="ISIC 2018 masks: mean 21.4 % (Abraham & Khan 2019)"),
    ("phantom-skin", "melanoma"): dict(median=0.27, sigma=0.5, low=0.05, high=0.75,
                                       source="ISIC 2018 masks: mean 21.4 % (Abraham & Khan 2019)"),
    # per opacity (a film has one or two): the ellipse inside a ~7.7 % box covers pi/4 of it
    ("phantom-chest-xray", "pneumonia"): dict(median=0.06, sigma=0.55, low=0.015, high=0.2,
                                              source="RSNA pneumonia boxes: 1-2 per film, ~7.7 % each (Shih et al. 2019)"),
}
#: Difficulty at which :data:`LESION_SIZES` hold; other difficulties scale the lesion's side.
DEFAULT_DIFFICULTY = 0.3

F32 = np.float32


# ----------------------------------------------------------------------------- primitives
@functools.lru_cache(maxsize=64)
def _spectral_filter(size: int, beta: float, fmax: float | None) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None] * size
    fx = np.fft.fftfreq(size)[None, :] * size
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    filt = f ** (-beta / 2.0)
    if fmax is not None:
        filt = filt * np.exp(-(f / fmax) ** 2)
    filt[0, 0] = 0.0
    return (filt / np.sqrt((filt ** 2).mean())).astype(np.complex64)


def fractal_noise(rng: np.random.Generator, n: int, size: int, beta: float = 2.0,
                  fmax: float | None = None) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum ``1/f**beta`` (``[n,size,size]`` float32).

    ``beta`` near 1 looks like fine tissue texture, 3-4 like a smooth bias field; ``fmax`` (in
    cycles per image) low-passes, so the look does not depend on ``size``. One complex FFT
    yields two independent fields (its real and imaginary parts), so ``n`` fields cost ``n/2``
    transforms.
    """
    from scipy import fft as sfft

    half = (n + 1) // 2
    white = rng.standard_normal((half, size, size), dtype=F32) + 1j * rng.standard_normal((half, size, size), dtype=F32)
    field = sfft.ifft2(sfft.fft2(white.astype(np.complex64), workers=1) * _spectral_filter(size, float(beta), fmax),
                       workers=1)
    out = np.concatenate([field.real, field.imag])[:n].astype(F32, copy=False)
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-6
    return out


def _grid(size: int):
    c = (np.arange(size, dtype=F32) + 0.5) / size * 2.0 - 1.0
    return c[None, :, None], c[None, None, :]  # yy [1,S,1], xx [1,1,S]


def _col(a) -> np.ndarray:
    return np.asarray(a, dtype=F32).reshape(-1, 1, 1)


def _smoothstep(edge0, edge1, x):
    t = np.subtract(x, edge0, dtype=F32)
    t *= np.reciprocal(np.subtract(edge1, edge0, dtype=F32))
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (3.0 - 2.0 * t)


def _soft_inside(dist, radius, width):
    """1 inside ``radius``, 0 outside, with a soft edge of ``width`` (all broadcastable)."""
    return 1.0 - _smoothstep(radius - width, radius + width, dist)


def _polar(yy, xx, cy, cx, sy=1.0, sx=1.0, rot=0.0):
    dy, dx = yy - _col(cy), xx - _col(cx)
    c, s = np.cos(_col(rot)), np.sin(_col(rot))
    u, v = c * dx + s * dy, -s * dx + c * dy
    u, v = u / _col(sx), v / _col(sy)
    return np.sqrt(u * u + v * v), np.arctan2(v, u)


def _wobbly_coeffs(rng, n, amp, kmin, kmax, odd_weight=1.0):
    """The random harmonics of :func:`_wobbly_radius`: ``[(k, a_k [n,1,1], phi_k [n,1,1]), ...]``."""
    out = []
    for k in range(kmin, kmax + 1):
        a = _col(rng.uniform(0.0, 1.0, n)) * _col(amp) / k ** 0.7
        if k % 2 == 1:
            a = a * odd_weight
        out.append((k, a, _col(rng.uniform(0, 2 * np.pi, n))))
    return out


def _wobbly_eval(theta, base, coeffs):
    r = np.ones_like(theta)
    for k, a, phi in coeffs:
        r = r + a * np.cos(k * theta + phi)
    return _col(base) * r


def _wobbly_radius(rng, n, theta, base, amp, kmin, kmax, odd_weight=1.0):
    """Radius ``base * (1 + sum_k a_k cos(k*theta + phi_k))`` for harmonics kmin..kmax."""
    return _wobbly_eval(theta, base, _wobbly_coeffs(rng, n, amp, kmin, kmax, odd_weight))


def _blur(x: np.ndarray, sigma_frac: float) -> np.ndarray:
    """Gaussian blur of ``[n,S,S]`` with sigma given as a fraction of the side (FFT, vectorised)."""
    size = x.shape[-1]
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    sigma = sigma_frac * size
    g = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx * fx + fy * fy)).astype(F32)
    return np.fft.irfft2(np.fft.rfft2(x) * g, s=(size, size)).astype(F32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _labels(rng, n, n_classes, class_balance):
    if class_balance is None:
        p = np.full(n_classes, 1.0 / n_classes)
    else:
        p = np.asarray(class_balance, dtype=float)
        if p.shape != (n_classes,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(
                f"class_balance must be {n_classes} non-negative proportions summing to 1, got {class_balance!r}")
    counts = np.floor(p * n).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(p * n - counts), kind="stable")
    counts[order[:rest]] += 1
    labels = np.repeat(np.arange(n_classes), counts)
    return rng.permutation(labels)


def _glyph_mask(yy, xx, y0, x0, h, kind: str):
    """Block-letter glyph masks ('L', 'R' and a text bar) drawn from rectangles, ``[n,S,S]``."""
    y0, x0, h = _col(y0), _col(x0), _col(h)
    w = 0.55 * h
    t = 0.2 * h
    inside = lambda ya, yb, xa, xb: (yy >= y0 + ya) & (yy <= y0 + yb) & (xx >= x0 + xa) & (xx <= x0 + xb)
    if kind == "L":
        return inside(0, h, 0, t) | inside(h - t, h, 0, w)
    if kind == "text":  # three short "words" of a burnt-in annotation
        m = inside(0, t * 1.5, 0, w * 1.1) | inside(0, t * 1.5, w * 1.35, w * 2.3) | inside(0, t * 1.5, w * 2.55, w * 3.0)
        return m | inside(t * 2.6, t * 4.1, 0, w * 1.7) | inside(t * 2.6, t * 4.1, w * 1.95, w * 2.6)
    raise ValueError(kind)


def _size_scale(difficulty: float) -> float:
    """Side scale relative to the calibrated default difficulty (0 larger, 1 smaller lesions)."""
    return (1.0 - 0.4 * difficulty) / (1.0 - 0.4 * DEFAULT_DIFFICULTY)


def _draw_share(rng, m: int, phantom: str, cls: str) -> np.ndarray:
    """Target mask shares of ``m`` lesions: log-normal around the calibrated median, clipped to its range."""
    c = LESION_SIZES[(phantom, cls)]
    return np.clip(c["median"] * np.exp(rng.normal(0.0, c["sigma"], m)), c["low"], c["high"]).astype(F32)


def _disc_radius(share) -> np.ndarray:
    """Radius (normalised units, image side 2) of a disc covering ``share`` of the image: pi r^2 / 4 = share."""
    return np.sqrt(np.asarray(share, F32) * 4.0 / np.pi).astype(F32)


def lesion_shares(masks: np.ndarray) -> np.ndarray:
    """Share of each image that its lesion mask covers, ``[N]`` float (``masks`` bool ``[N,H,W]``)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W]; got shape {masks.shape}")
    return masks.reshape(len(masks), -1).mean(1)


def _size_words(diam_mm):
    return np.where(diam_mm < 15, "small", np.where(diam_mm < 30, "medium", "large"))


# ----------------------------------------------------------------------------- brain MRI
#: Radius factors that turn a disc of the target share into each class's shape of that share
#: (irregular outlines, the skull clipping a meningioma, the pituitary's oval); fitted once by
#: measuring generated masks (see ``tests/test_phantoms.py::test_lesion_sizes_follow_calibration``).
_FIT = {"glioma": 1.0, "meningioma": 1.05, "pituitary": 1.1, "naevus": 1.01, "melanoma": 0.95, "pneumonia": 1.2}

BRAIN_CLASSES = ("glioma", "meningioma", "pituitary", "no tumour")
BRAIN_CONCEPTS = ("mass present", "ring enhancement", "necrotic core", "perilesional oedema",
                  "extra-axial", "sellar location")


def _artefact_flags(rng, labels, shortcut, shortcut_class, forced):
    """Which images carry the shortcut artefact: drawn as always, then forced by ``"artefact"``."""
    art = (labels == shortcut_class) & (rng.random(len(labels)) < shortcut)
    if "artefact" in forced:
        art = np.full(len(labels), forced["artefact"] > 0.5)
    return art


def _brain_mass(bg, lesion, rim, core, oedema, contrast, enhancing, enh_tex, tex, ring, necrotic, oed,
                homogeneous):
    """A brain mass rendered from its signs (an intervention; the natural masses keep their own formula).

    ``rim`` and ``core`` weight the mass's outer and inner parts. An enhancing part takes the
    class's post-contrast value ``enhancing + enh_tex``; non-enhancing tumour is T1-hypointense
    (``0.36 - 0.12 * contrast``); necrosis is darker still (the glioma core's value). The rim
    enhances with ring enhancement or in a homogeneously enhancing tumour (meningioma, pituitary);
    the core is necrotic, or else non-enhancing under ring enhancement and in a glioma, or else
    enhancing. Oedema darkens the surrounding brain as in the glioma.
    """
    enh = enhancing + enh_tex
    plain = 0.36 - 0.12 * contrast + 0.04 * tex
    necrosis = 0.30 - 0.16 * contrast + 0.04 * tex
    rim_v = enh if ring or homogeneous else plain
    core_v = necrosis if necrotic else plain if ring or not homogeneous else enh
    if oed:
        bg = bg * (1 - 0.35 * oedema * contrast)
    return bg * (1 - lesion) + lesion * (rim * rim_v + core * core_v)


def _brain(rng, n, size, difficulty, labels, shortcut, shortcut_class, forced):
    yy, xx = _grid(size)
    # head outline: ellipse, slightly rotated and scaled per image
    rot = rng.normal(0, 0.06, n)
    sy, sx = rng.uniform(0.86, 0.93, n), rng.uniform(0.72, 0.80, n)
    cy, cx = rng.normal(0.0, 0.015, n), rng.normal(0.0, 0.015, n)
    d, th = _polar(yy, xx, cy, cx, sy, sx, rot)
    edge = 1.5 / size / 0.8
    head = _soft_inside(d, 1.0, edge)
    skull_in = _soft_inside(d, 0.93, edge)
    brain_r = _wobbly_radius(rng, n, th, 0.90, 0.012, 2, 5)
    brain = _soft_inside(d, brain_r, edge)
    # gyri: the grey/white boundary folds with many angular harmonics plus noise
    gyri = _wobbly_radius(rng, n, th, 0.74, 0.10, 9, 16)
    tex_fine = fractal_noise(rng, n, size, beta=1.6, fmax=size / 2.5)
    tex_mid = fractal_noise(rng, n, size, beta=2.6)
    wm = _soft_inside(d + 0.035 * tex_mid, gyri, 0.03)
    # sulci: thin CSF clefts running inward from the surface
    sulc_noise = fractal_noise(rng, n, size, beta=2.2)
    sulci = (np.abs(sulc_noise) < 0.12) & (d > gyri * 0.92) & (d < brain_r - 0.01)
    # ventricles: two crescent ellipses beside the midline, plus the interhemispheric fissure
    vent_y = _col(rng.normal(-0.06, 0.02, n))
    vsize = _col(rng.uniform(0.8, 1.25, n))
    ventricles = np.zeros_like(d)
    for side in (-1, 1):
        dv, tv = _polar(yy, xx, vent_y, cx + side * 0.06, 0.22 * vsize, 0.05 * vsize, side * 0.3)
        horn = _soft_inside(dv, 1.0 + 0.25 * np.cos(tv * 2), 0.15)
        ventricles = np.maximum(ventricles, horn)
    fissure = np.exp(-((xx - _col(cx)) / 0.012) ** 2) * (np.abs(yy - _col(cy)) > 0.42 * _col(sy))

    # T1 post-contrast intensities
    img = 0.05 + 0.55 * head * (1 - skull_in)            # scalp fat bright
    skull_ring = skull_in * (1 - _soft_inside(d, 0.905, edge))
    img = img * (1 - skull_ring) + 0.08 * skull_ring      # cortical bone dark
    tissue = 0.34 + 0.2 * wm + 0.03 * tex_fine
    tissue = np.where(sulci, 0.16, tissue)
    tissue = tissue * (1 - 0.82 * ventricles)
    tissue = tissue * (1 - 0.7 * fissure)
    csf_rim = skull_in * (1 - brain)
    img = img * (1 - skull_in) + skull_in * (0.14 * csf_rim + brain * tissue)

    mask = np.zeros((n, size, size), dtype=bool)
    concepts = np.zeros((n, len(BRAIN_CONCEPTS)), dtype=F32)
    contrast = 1.0 - 0.6 * difficulty
    scale = _size_scale(difficulty)
    loc_y = np.zeros(n, F32)
    loc_x = np.zeros(n, F32)
    diam = np.zeros(n, F32)

    # interventions (see the module docstring): the draws below are made for every image as
    # always; a forced value only changes what is rendered from them
    keep = forced.get("mass present", 1.0) > 0.5          # False: every mass is removed
    signs = {k: forced[k] > 0.5 for k in ("ring enhancement", "necrotic core", "perilesional oedema") if k in forced}
    out_labels = labels.copy() if keep else np.where(labels < 3, 3, labels)

    for cls in range(3):
        idx = np.flatnonzero(labels == cls)
        if idx.size == 0:
            continue
        m = idx.size
        natural = (True, True, True) if cls == 0 else (False, False, False)
        ring, necrotic, oed = (signs.get(k, d) for k, d in zip(("ring enhancement", "necrotic core",
                                                                  "perilesional oedema"), natural))
        altered = (ring, necrotic, oed) != natural
        if cls == 0:  # glioma: irregular ring-enhancing mass with necrotic core and oedema
            r0 = _disc_radius(_draw_share(rng, m, "phantom-brain-mri", "glioma")) * _FIT["glioma"] * scale
            ang = rng.uniform(0, 2 * np.pi, m)
            rad = rng.uniform(0.15, 1.0, m) * np.clip(0.68 - 1.2 * r0, 0.08, 0.5)   # the mass stays inside the brain
            ty, tx = cy[idx] + rad * np.sin(ang) * 0.85, cx[idx] + rad * np.cos(ang) * 0.7
            dt, tt = _polar(yy, xx, ty, tx, 1.0, 1.0, 0.0)
            rr = _wobbly_radius(rng, m, tt, r0, 0.35, 2, 6)
            tex = fractal_noise(rng, m, size, beta=1.8)
            lesion = _soft_inside(dt + 0.02 * tex, rr, 0.015)
            core = _soft_inside(dt + 0.03 * tex, rr * rng.uniform(0.45, 0.65, m)[:, None, None], 0.02)
            oedema = _soft_inside(dt + 0.05 * tex, rr * 1.6, 0.05) * (1 - lesion)
            rim = lesion * (1 - core)
            if not keep:
                pass
            elif altered:
                img[idx] = _brain_mass(img[idx], lesion, rim, core, oedema, contrast, 0.36 + 0.45 * contrast,
                                       0.08 * tex, tex, ring, necrotic, oed, homogeneous=False)
            else:
                val = (img[idx] * (1 - 0.35 * oedema * contrast)) * (1 - lesion) \
                    + lesion * (rim * (0.36 + 0.45 * contrast + 0.08 * tex) + core * (0.30 - 0.16 * contrast + 0.04 * tex))
                img[idx] = val
        elif cls == 1:  # meningioma: round, homogeneous, dural-based (touching the skull)
            ang = rng.uniform(0, 2 * np.pi, m)
            r0 = _disc_radius(_draw_share(rng, m, "phantom-brain-mri", "meningioma")) * _FIT["meningioma"] * scale
            # centre just inside the inner skull table, along the head's own ellipse
            rad = 0.9 - r0 * 0.85
            ty = cy[idx] + rad * np.sin(ang) * sy[idx]
            tx = cx[idx] + rad * np.cos(ang) * sx[idx]
            dt, tt = _polar(yy, xx, ty, tx, 1.0, 1.0, 0.0)
            rr = _wobbly_radius(rng, m, tt, r0, 0.05, 2, 3)
            tex = fractal_noise(rng, m, size, beta=2.5)
            lesion = _soft_inside(dt, rr, 0.012) * skull_in[idx]
            if not keep:
                pass
            elif altered:
                core = _soft_inside(dt + 0.03 * tex, rr * 0.55, 0.02)
                oedema = _soft_inside(dt + 0.05 * tex, rr * 1.6, 0.05) * (1 - lesion) * brain[idx]
                img[idx] = _brain_mass(img[idx], lesion, 1 - core, core, oedema, contrast, 0.40 + 0.38 * contrast,
                                       0.025 * tex, tex, ring, necrotic, oed, homogeneous=True)
            else:
                val = img[idx] * (1 - lesion) + lesion * (0.40 + 0.38 * contrast + 0.025 * tex)
                img[idx] = val
        else:  # pituitary: small bright oval at the sella, on the midline
            ty = cy[idx] - 0.30 * sy[idx] + rng.normal(0, 0.02, m)
            tx = cx[idx] + rng.normal(0, 0.012, m)
            r0 = _disc_radius(_draw_share(rng, m, "phantom-brain-mri", "pituitary")) * _FIT["pituitary"] * scale
            dt, _ = _polar(yy, xx, ty, tx, r0 * 0.8, r0, 0.0)
            lesion = _soft_inside(dt, 1.0, 0.15)
            if not keep:
                pass
            elif altered:                      # dt is in lesion radii here
                core = _soft_inside(dt, 0.55, 0.15)
                oedema = _soft_inside(dt, 1.6, 0.15) * (1 - lesion) * brain[idx]
                img[idx] = _brain_mass(img[idx], lesion, 1 - core, core, oedema, contrast, 0.45 + 0.4 * contrast,
                                       0.0, 0.0, ring, necrotic, oed, homogeneous=True)
            else:
                img[idx] = img[idx] * (1 - lesion) + lesion * (0.45 + 0.4 * contrast)
        if keep:
            mask[idx] = lesion > 0.5
            concepts[idx] = (1, ring, necrotic, oed, cls == 1, cls == 2)
            loc_y[idx], loc_x[idx] = ty - cy[idx], tx - cx[idx]
            diam[idx] = 2 * r0 * 110.0   # field of view 220 mm

    # bias field and Rician-like noise
    bias = 1.0 + 0.12 * fractal_noise(rng, n, size, beta=4.0)
    img = img * bias
    sigma = _col(rng.uniform(0.025, 0.04, n))
    n1 = rng.standard_normal(img.shape, dtype=F32) * sigma
    n2 = rng.standard_normal(img.shape, dtype=F32) * sigma
    img = np.sqrt((img + n1) ** 2 + n2 ** 2)

    art = _artefact_flags(rng, labels, shortcut, shortcut_class, forced)
    art_mask = np.zeros((n, size, size), dtype=bool)
    if art.any():
        g = _glyph_mask(yy, xx, np.full(art.sum(), -0.93), np.full(art.sum(), -0.93), max(0.1, 14.0 / size), "text")
        img[art] = np.where(g, 0.95, img[art])
        art_mask[art] = g

    # report sentences, from the (possibly forced) class and signs
    side = np.where(loc_x < 0, "right", "left")          # radiological convention
    region = np.where(loc_y < -0.15, "frontal", np.where(loc_y > 0.2, "occipital", "parietal"))
    captions, qa = [], []
    for i in range(n):
        c = out_labels[i]
        ring, necrotic, oed = (bool(v) for v in concepts[i, 1:4])
        feats = [f for f, on in (("a necrotic core", necrotic), ("surrounding oedema", oed)) if on]
        with_ = " with " + " and ".join(feats) if feats else ""
        if c == 0:
            enh = "ring-enhancing" if ring else "non-enhancing"
            s = (f"Axial T1 post-contrast MRI: a {diam[i]:.0f} mm irregular {enh} mass{with_} "
                 f"in the {side[i]} {region[i]} lobe, in keeping with glioma.")
            loc = f"{side[i]} {region[i]} lobe"
        elif c == 1:
            enh = "ring-enhancing" if ring else "enhancing" if necrotic else "homogeneously enhancing"
            s = (f"Axial T1 post-contrast MRI: a {diam[i]:.0f} mm well-circumscribed, {enh} "
                 f"extra-axial mass{with_} along the {side[i]} {region[i]} convexity, in keeping with meningioma.")
            loc = f"{side[i]} {region[i]} convexity"
        elif c == 2:
            enh = "ring-enhancing" if ring else "enhancing"
            s = (f"Axial T1 post-contrast MRI: a {diam[i]:.0f} mm {enh} lesion{with_} in the sella, "
                 f"in keeping with a pituitary tumour.")
            loc = "sella"
        else:
            s = "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or abnormal enhancement."
            loc = "none"
        captions.append(s)
        qa.append([
            ("What is the diagnosis?", BRAIN_CLASSES[c]),
            ("Is there a tumour?", "no" if c == 3 else "yes"),
            ("Where is the lesion?", loc),
            ("How large is the lesion?", "none" if c == 3 else str(_size_words(diam[i]))),
            ("Does the lesion show ring enhancement?", "yes" if ring else "no"),
        ])
    rgb = np.repeat(_to_uint8(img)[..., None], 3, axis=-1)
    meta = {"artefact": art, "artefact_mask": art_mask, "lesion_diameter_mm": diam}
    return rgb, mask, concepts, captions, qa, meta, out_labels


# ----------------------------------------------------------------------------- dermoscopy
SKIN_CLASSES = ("benign naevus", "melanoma")
SKIN_CONCEPTS = ("asymmetry", "border irregularity", "colour variegation", "diameter")


def _skin(rng, n, size, difficulty, labels, shortcut, shortcut_class, forced):
    yy, xx = _grid(size)
    mel = labels == 1
    # skin tone (light to medium), subtle texture, skin lines and pores
    tone = np.stack([rng.uniform(0.78, 0.93, n), rng.uniform(0.55, 0.72, n), rng.uniform(0.45, 0.62, n)], 1)
    tex = fractal_noise(rng, n, size, beta=1.4, fmax=size / 3)
    blotch = fractal_noise(rng, n, size, beta=3.0)
    ang = _col(rng.uniform(0, np.pi, n))
    lines = np.cos((np.cos(ang) * xx + np.sin(ang) * yy) * 70 + 1.5 * blotch)
    lines *= lines
    lines *= lines
    lines *= lines                                  # cos**8: thin skin furrows

    # ABCD attributes: melanoma high on all four, naevi low, overlap grows with difficulty
    sep = 1.0 - 0.55 * difficulty
    def attr(lo_b, hi_b, lo_m, hi_m):
        b = rng.uniform(lo_b, hi_b, n)
        mm = rng.uniform(lo_m, hi_m, n)
        mix = np.where(mel, mm, b)
        return np.clip(mix * sep + rng.uniform(0, 1, n) * (1 - sep), 0, 1)
    asym = attr(0.0, 0.3, 0.55, 1.0)
    border = attr(0.0, 0.3, 0.55, 1.0)
    colour = attr(0.0, 0.3, 0.55, 1.0)
    # size: the calibrated share per class (melanomas larger, the D of ABCD); the diameter concept
    # is the size itself on a log scale over the calibrated range
    share = np.where(mel, _draw_share(rng, n, "phantom-skin", "melanoma"),
                     _draw_share(rng, n, "phantom-skin", "benign naevus"))
    diamc = np.clip(np.log(share / 0.03) / np.log(0.75 / 0.03), 0, 1).astype(F32)
    # interventions: the drawn values above are replaced where the renderer reads them
    if "asymmetry" in forced:
        asym = np.full(n, forced["asymmetry"])
    if "border irregularity" in forced:
        border = np.full(n, forced["border irregularity"])
    if "colour variegation" in forced:
        colour = np.full(n, forced["colour variegation"])
    if "diameter" in forced:                         # the concept's inverse: share = 3 % * 25**diameter
        diamc = np.full(n, forced["diameter"], F32)
        share = np.full(n, 0.03 * (0.75 / 0.03) ** forced["diameter"], F32)

    cy, cx = rng.normal(0, 0.08, n), rng.normal(0, 0.08, n)
    elong = 1.0 + 0.35 * rng.random(n)
    fit = np.where(mel, _FIT["melanoma"], _FIT["naevus"])
    r0 = _disc_radius(share) / np.sqrt(elong) * fit * _size_scale(difficulty)
    d, th = _polar(yy, xx, cy, cx, 1.0, elong, rng.uniform(0, np.pi, n))
    shape_r = _wobbly_radius(rng, n, th, r0, 0.05 + 0.55 * asym, 1, 4, odd_weight=1.0)
    edge_r = _wobbly_radius(rng, n, th, 1.0, 0.02 + 0.22 * border, 7, 18)
    rr = shape_r * edge_r
    lesion_soft = _soft_inside(d + 0.02 * tex, rr, 0.01 + 0.03 * _col(border))
    mask = lesion_soft > 0.5

    # pigment: brown base; melanoma adds dark, black, blue-grey and red zones
    u = d / np.maximum(rr, 1e-3)
    base = np.array([0.48, 0.30, 0.20], F32)
    dark = np.array([0.25, 0.14, 0.09], F32)
    blue = np.array([0.42, 0.45, 0.55], F32)
    red = np.array([0.72, 0.35, 0.33], F32)
    zones = fractal_noise(rng, n, size, beta=2.8)
    zones2 = fractal_noise(rng, n, size, beta=2.8)
    # pigment network (the 7-point checklist, Argenziano et al. 1998): naevi show a typical one,
    # fine, regular and even throughout the lesion; melanomas an atypical one, coarse, distorted
    # and broken up into patches
    typical = ~mel[:, None, None]
    freq = np.where(typical, 55.0, 38.0)
    warp = np.where(typical, 1.5, 7.0)
    network = np.cos(xx * freq + warp * tex) * np.cos(yy * freq + warp * zones)
    patches = np.where(typical, 1.0, _smoothstep(-0.2, 0.6, zones2))
    net = _smoothstep(0.2, 0.9, network) * patches * _col(np.where(mel, 0.3, 0.45) + 0.2 * rng.random(n))
    cv = _col(colour)
    w_dark = np.minimum(np.clip(zones - 0.2, 0, 1) * (0.3 + 1.2 * cv), 0.9)
    w_blue = np.minimum(np.clip(zones2 - 0.6, 0, 1) * 2 * cv * cv, 0.8)
    w_red = np.minimum(np.clip(-zones2 - 0.8, 0, 1) * 2 * cv * cv, 0.6)
    centre = 1 + 0.25 * (u - 0.5)                 # slightly darker towards the centre
    contrast = 1.0 - 0.5 * difficulty
    alpha = lesion_soft * contrast
    shade = 1 + 0.04 * tex + 0.05 * blotch - 0.05 * lines
    netf = (1 - 0.5 * net) * alpha
    img = np.empty((n, size, size, 3), F32)
    for c in range(3):  # one channel at a time: [n,S,S] temporaries instead of [n,S,S,3]
        pig = ((base[c] * centre * (1 - w_dark) + dark[c] * w_dark) * (1 - w_blue) + blue[c] * w_blue) \
            * (1 - w_red) + red[c] * w_red
        img[..., c] = _col(tone[:, c]) * shade * (1 - alpha) + pig * netf

    # hair: a few thin dark curved strands (random across classes)
    n_hair = rng.poisson(2.0, n) * (rng.random(n) < 0.6)
    hair = np.zeros((n, size, size), F32)
    for k in range(int(n_hair.max(initial=0))):
        sel = np.flatnonzero(n_hair > k)          # only the images with a k-th hair
        m = sel.size
        a = _col(rng.uniform(0, np.pi, m))
        off = _col(rng.uniform(-0.9, 0.9, m))
        bend = _col(rng.uniform(-0.4, 0.4, m))
        s_coord = np.cos(a) * xx + np.sin(a) * yy
        t_coord = -np.sin(a) * xx + np.cos(a) * yy
        dist = np.abs(t_coord - off - bend * s_coord ** 2)
        hair[sel] = np.maximum(hair[sel], _soft_inside(dist, 0.006 + 1.0 / size, 1.0 / size))
    img *= (1 - 0.8 * hair)[..., None]

    # ruler (the shortcut): a light strip with dark ticks along the bottom edge
    art = _artefact_flags(rng, labels, shortcut, shortcut_class, forced)
    art_mask = np.zeros((n, size, size), dtype=bool)
    if art.any():
        k = art.sum()
        strip = (yy > 0.74) & (yy < 0.9) & (np.abs(xx) < 0.8)
        ticks = (np.abs(((xx + 1) * 20) % 1.0 - 0.5) < 0.12) & (yy > 0.74) & (yy < np.where(((xx + 1) * 20 // 1) % 5 == 0, 0.84, 0.8))
        r = np.where(strip, 0.92, 1.0)[..., None] * np.ones((k, 1, 1, 3), F32)
        sub = img[art]
        sub = np.where(strip[..., None], 0.9, sub)
        sub = np.where(ticks[..., None], 0.15, sub)
        img[art] = sub * r
        art_mask[art] = strip | ticks               # the strip and its ticks (which run past its ends)

    # dermoscope: circular field of view with dark vignette, sensor noise
    rad = np.sqrt(yy * yy + xx * xx)
    fov = _col(rng.uniform(1.05, 1.35, n))
    vign = _soft_inside(rad, fov, 0.06) * (1 - 0.18 * rad ** 2)
    img *= vign[..., None]
    art_mask &= vign > 0                            # the ruler's ends can lie outside the field of view
    img += (rng.standard_normal((n, size, size), dtype=F32) * 0.012)[..., None]  # luminance noise

    concepts = np.stack([asym, border, colour, diamc], 1).astype(F32)
    diam_mm = 2 * r0 * np.sqrt(elong) * 6.0          # 12 mm field of view: naevi ~5 mm, melanomas ~7 mm
    captions, qa = [], []
    for i in range(n):
        A = "asymmetric" if asym[i] > 0.5 else "symmetric"
        B = "irregular" if border[i] > 0.5 else "regular"
        C = "multiple colours" if colour[i] > 0.5 else "a uniform brown colour"
        verdict = "suspicious for melanoma" if labels[i] == 1 else "in keeping with a benign naevus"
        article = "an" if A[0] in "aeiou" else "a"
        captions.append(f"Dermoscopy: {article} {A} pigmented lesion with {B} borders, {C} and a diameter of "
                        f"about {diam_mm[i]:.0f} mm, {verdict}.")
        qa.append([
            ("What is the diagnosis?", SKIN_CLASSES[labels[i]]),
            ("Is the lesion symmetric?", "no" if asym[i] > 0.5 else "yes"),
            ("Is the border regular?", "no" if border[i] > 0.5 else "yes"),
            ("How many colours does the lesion show?", "several" if colour[i] > 0.5 else "one"),
            ("Is the diameter larger than 6 mm?", "yes" if diam_mm[i] > 6 else "no"),
        ])
    meta = {"artefact": art, "artefact_mask": art_mask, "hair": n_hair > 0,
            "lesion_diameter_mm": diam_mm.astype(F32)}
    return _to_uint8(img), mask, concepts, captions, qa, meta, labels


# ----------------------------------------------------------------------------- chest X-ray
CXR_CLASSES = ("normal", "pneumonia")
CXR_CONCEPTS = ("consolidation", "right lung", "left lung", "lower zone", "air bronchogram")


def _chest_plans(m, right, two, rows1, ops, forced):
    """Per pneumonia film, the opacities to render as ``(opacity, row, on_right, lower)``.

    Without interventions: the first opacity in the drawn lung and, on films with two, the second
    in the other lung, each in its drawn zone. ``"consolidation"`` = 0 renders none; ``"lower
    zone"`` sets every zone; a lung forced to 0 loses its opacity (a film's only one moves to the
    other lung); a lung forced to 1 without an opacity gets a copy of the film's first one.
    """
    if forced.get("consolidation", 1.0) < 0.5:
        return [[] for _ in range(m)]
    plans = []
    for i in range(m):
        plan = [(0, i, bool(right[i]), bool(ops[0]["lower"][i]))]
        if two[i]:
            plan.append((1, int(rows1[i]), not right[i], bool(ops[1]["lower"][rows1[i]])))
        if "lower zone" in forced:
            plan = [(k, row, r, forced["lower zone"] > 0.5) for k, row, r, _ in plan]
        for lung, value in sorted(forced.items()):
            if lung in ("right lung", "left lung") and value < 0.5:
                side = lung == "right lung"
                kept = [e for e in plan if e[2] != side]
                plan = kept or [(k, row, not side, lo) for k, row, _, lo in plan[:1]]
        for lung, value in sorted(forced.items()):
            if lung in ("right lung", "left lung") and value > 0.5:
                side = lung == "right lung"
                if not any(e[2] == side for e in plan):
                    k, row, _, lo = plan[0]
                    plan.append((k, row, side, lo))
        plans.append(plan)
    return plans


def _chest(rng, n, size, difficulty, labels, shortcut, shortcut_class, forced):
    yy, xx = _grid(size)
    cx = _col(rng.normal(0, 0.02, n))
    X = xx - cx
    aX = np.abs(X)
    width = _col(rng.uniform(0.84, 0.95, n))
    # trunk: widens from the neck to the shoulders, then straight chest wall; air outside is black
    neck = _soft_inside(aX, 0.16, 0.02) * (yy < -0.7)
    trunk_w = width * (0.72 + 0.28 * _smoothstep(-1.0, -0.55, yy))
    body = np.maximum(_soft_inside(aX, trunk_w, 0.03) * (yy > -0.92), neck)
    # diaphragm domes (the right one a little higher) and the two lungs
    dome = _col(rng.uniform(0.38, 0.52, n))
    lungs = np.zeros((n, size, size), F32)
    lung_masks = []
    for side in (-1, 1):                                  # -1: image left = patient's right lung
        Xs = X * side
        lat = width * (0.50 + 0.30 * np.sqrt(np.clip((yy + 0.78) / 1.3, 0, 1)))
        med = 0.09 + (0.22 if side == 1 else 0.07) * np.exp(-((yy - 0.28) / 0.26) ** 2)
        diaph = dome + (0.04 if side == 1 else -0.02) - 0.13 * (1 - ((Xs - 0.4) / 0.38) ** 2)
        apex = -0.74 + 0.5 * ((Xs - 0.32) / 0.3) ** 2
        inside = (_smoothstep(-0.03, 0.03, Xs - med) * _smoothstep(-0.03, 0.03, lat - Xs)
                  * _smoothstep(-0.03, 0.03, diaph - yy) * _smoothstep(-0.03, 0.03, yy - apex))
        lung_masks.append(inside)
        lungs = np.maximum(lungs, inside)
    below = _smoothstep(-0.02, 0.04, yy - (dome + 0.05 - 0.13 * (1 - ((aX - 0.4) / 0.38) ** 2)))
    gastric = _soft_inside(np.sqrt(((X - 0.35) / 0.11) ** 2 + ((yy - dome - 0.1) / 0.06) ** 2), 1.0, 0.3)
    # ribs: posterior ribs rise laterally from the spine then curve down; thin cortical bands
    period = _col(rng.uniform(0.155, 0.18, n))
    rib_y = yy + 0.62 - 0.55 * (aX - 0.15) ** 2 + 0.25 * np.clip(aX - 0.55, 0, None)
    phase = rib_y / (period * (1 + 0.25 * np.clip(yy + 0.5, 0, None)))
    ribs = _smoothstep(0.6, 0.95, np.cos(2 * np.pi * phase) * 0.5 + 0.5) * (aX < trunk_w - 0.02) * (1 - below)
    clav = np.zeros_like(lungs)
    for side in (-1, 1):
        t = X * side - 0.08
        cl = np.abs(yy - (-0.64 - 0.12 * t + 0.2 * t ** 2))
        clav = np.maximum(clav, _soft_inside(cl, 0.022, 0.01) * (t > 0) * (t < 0.62))
    spine = _soft_inside(aX, 0.075, 0.015) * (0.75 + 0.25 * _smoothstep(0.2, 0.8, np.cos(yy * 2 * np.pi / _col(period * 0.55)) * 0.5 + 0.5))
    tex = fractal_noise(rng, n, size, beta=2.2)
    vessels = _smoothstep(0.6, 1.8, fractal_noise(rng, n, size, beta=1.7)) * (0.5 + 0.5 * np.clip(1 - aX / 0.6, 0, 1))
    density = 0.06 + 0.50 * body + 0.08 * body * below          # soft tissue, abdomen below the domes
    density = density - 0.34 * lungs - 0.12 * gastric * below * body
    density = density + lungs * (0.10 * ribs + 0.10 * vessels) + 0.035 * ribs * (1 - lungs) * body
    density = density + 0.16 * clav + 0.12 * spine * body
    density = density + 0.025 * tex * body
    mask = np.zeros((n, size, size), dtype=bool)
    concepts = np.zeros((n, len(CXR_CONCEPTS)), F32)
    idx = np.flatnonzero(labels == 1)
    side_arr = np.full(n, "", dtype=object)
    loc_arr = np.full(n, "", dtype=object)
    out_labels = labels.copy()
    if idx.size:
        m = idx.size
        right = rng.random(m) < 0.55                     # image left = patient's right lung
        two = rng.random(m) < 0.55                       # RSNA: 55 % of positive films have two boxes
        strength = 0.55 * (1.0 - 0.55 * difficulty)
        # the two opacities' random parameters, drawn as always (interventions only change which
        # are rendered, and in which lung and zone)
        ops = []
        for k in range(2):                               # the first opacity, then the other lung's
            sel = np.arange(m) if k == 0 else np.flatnonzero(two)
            j = sel.size
            if j == 0:
                ops.append(None)
                continue
            lower = rng.random(j) < 0.65
            share = _draw_share(rng, j, "phantom-chest-xray", "pneumonia")
            # a tall ellipse (RSNA boxes: height/width 1.45) of the drawn share, before lung clipping
            sx = np.sqrt(share * 4.0 / (np.pi * 1.45)) * _FIT["pneumonia"] * _size_scale(difficulty)
            ly_lower, ly_upper = rng.uniform(0.0, 0.25, j), rng.uniform(-0.4, -0.15, j)
            jitter = rng.normal(0, 0.03, j)
            rot = rng.uniform(-0.3, 0.3, j)
            patchy = fractal_noise(rng, j, size, beta=2.0)
            ops.append(dict(lower=lower, sx=sx, sy=1.45 * sx, ly_lower=ly_lower, ly_upper=ly_upper, jitter=jitter,
                            rot=rot, patchy=patchy, wob=_wobbly_coeffs(rng, j, 0.3, 2, 5)))
        rows1 = np.cumsum(two) - 1                       # film -> its row among the second opacities
        plans = _chest_plans(m, right, two, rows1, ops, forced)
        cons_all = np.zeros((m, size, size), F32)       # patchy density inside the region
        env_all = np.zeros((m, size, size), F32)
        # one rendering pass per (opacity, use): a film can use its first opacity twice (a copy)
        passes = {}
        for i, plan in enumerate(plans):
            used = {}
            for k, row, on_right, lo in plan:
                use = used.get(k, 0)
                used[k] = use + 1
                passes.setdefault((k, use), []).append((i, row, on_right, lo))
        for (k, _), items in sorted(passes.items()):
            films, rows, on_right, lower = (np.array(v) for v in zip(*items))
            op = ops[k]
            ly = np.where(lower, op["ly_lower"][rows], op["ly_upper"][rows])
            lx = cx[idx[films], 0, 0] + np.where(on_right, -0.4, 0.42) + op["jitter"][rows]
            dl, tl = _polar(yy, xx, ly, lx, op["sy"][rows], op["sx"][rows], op["rot"][rows])
            patchy = op["patchy"][rows]
            wob = [(h, a[rows], phi[rows]) for h, a, phi in op["wob"]]
            blob = _soft_inside(dl + 0.125 * patchy, _wobbly_eval(tl, 1.0, wob), 0.15)
            own_lung = np.where(_col(on_right), lung_masks[0][idx[films]], lung_masks[1][idx[films]]) > 0.5
            region = blob * own_lung                     # the opacity's extent, as a reader would outline it
            env_all[films] = np.maximum(env_all[films], region)
            cons_all[films] = np.maximum(cons_all[films], region * _smoothstep(-0.4, 0.6, patchy + 0.3))
        bronch = (np.abs(fractal_noise(rng, m, size, beta=2.5)) < 0.08) * cons_all
        if forced.get("air bronchogram", 1.0) < 0.5:
            bronch = np.zeros_like(bronch)
        if forced.get("consolidation", 1.0) > 0.5:
            density[idx] = density[idx] + strength * cons_all - 0.12 * strength * bronch
            mask[idx] = env_all > 0.5
            right_any = np.array([any(r for _, _, r, _ in p) for p in plans])
            left_any = np.array([any(not r for _, _, r, _ in p) for p in plans])
            concepts[idx, 0] = 1
            concepts[idx, 1] = right_any
            concepts[idx, 2] = left_any
            concepts[idx, 3] = [any(lo for *_, lo in p) for p in plans]
            concepts[idx, 4] = bronch.reshape(m, -1).max(1) > 0
            side_arr[idx] = np.where(right_any & left_any, "both", np.where(right_any, "right", "left"))
            where = [[f"{'right' if r else 'left'} {'lower' if lo else 'upper'}" for *_, r, lo in p] for p in plans]
            loc_arr[idx] = [" and ".join(w[:1]) + " zone" if len(w) == 1 else f"{w[0]} and {w[1]} zones" for w in where]
        else:
            out_labels[idx] = 0

    img = _blur(density, 0.6 / size)
    # detector response: gamma, exposure variation, quantum noise
    expo = _col(rng.uniform(0.9, 1.1, n))
    img = np.clip(img * expo, 0, 1) ** 0.9
    img = img + rng.standard_normal(img.shape, dtype=F32) * 0.015 * np.sqrt(np.clip(img, 0.05, 1))

    art = _artefact_flags(rng, labels, shortcut, shortcut_class, forced)
    art_mask = np.zeros((n, size, size), dtype=bool)
    if art.any():
        h = max(0.14, 16.0 / size)   # strokes at least ~1.5 px wide at any size
        g = _glyph_mask(yy, xx, np.full(art.sum(), -0.92), np.full(art.sum(), 0.86 - 0.55 * h), h, "L")
        img[art] = np.where(g, 0.98, img[art])
        art_mask[art] = g

    captions, qa = [], []
    for i in range(n):
        if out_labels[i] == 1:
            captions.append(f"Frontal chest radiograph: patchy airspace consolidation in the {loc_arr[i]}, "
                            f"in keeping with pneumonia.")
            loc = loc_arr[i]
        else:
            captions.append("Frontal chest radiograph: clear lungs, no focal consolidation; normal heart size.")
            loc = "none"
        qa.append([
            ("What is the diagnosis?", CXR_CLASSES[out_labels[i]]),
            ("Is there consolidation?", "yes" if out_labels[i] == 1 else "no"),
            ("Where is the abnormality?", loc),
            ("Which lung is affected?", side_arr[i] or "neither"),
        ])
    rgb = np.repeat(_to_uint8(img)[..., None], 3, axis=-1)
    return rgb, mask, concepts, captions, qa, {"artefact": art, "artefact_mask": art_mask}, out_labels


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class PhantomSpec:
    name: str
    modality: str
    classes: tuple
    concept_names: tuple
    shortcut_artefact: str
    fn: Callable


PHANTOMS = {
    "phantom-brain-mri": PhantomSpec("phantom-brain-mri", "MRI", BRAIN_CLASSES, BRAIN_CONCEPTS,
                                     "burnt-in scanner annotation", _brain),
    "phantom-skin": PhantomSpec("phantom-skin", "dermoscopy", SKIN_CLASSES, SKIN_CONCEPTS, "ruler", _skin),
    "phantom-chest-xray": PhantomSpec("phantom-chest-xray", "X-ray", CXR_CLASSES, CXR_CONCEPTS,
                                      "laterality marker", _chest),
}

#: The class whose images carry the shortcut artefact (see module docstring).
SHORTCUT_CLASS = {"phantom-brain-mri": 0, "phantom-skin": 1, "phantom-chest-xray": 1}


_BINARY = (0.0, 1.0)

#: What ``generate(..., interventions=...)`` can force, per phantom: concept -> the values it
#: accepts (``None``: any value in [0, 1]). ``"artefact"`` is the shortcut artefact. Concepts of
#: ``PHANTOMS[name].concept_names`` missing here cannot be forced (see the module docstring).
INTERVENTIONS = {
    "phantom-brain-mri": {"mass present": (0.0,), "ring enhancement": _BINARY, "necrotic core": _BINARY,
                          "perilesional oedema": _BINARY, "artefact": _BINARY},
    "phantom-skin": {"asymmetry": None, "border irregularity": None, "colour variegation": None, "diameter": None,
                     "artefact": _BINARY},
    "phantom-chest-xray": {"consolidation": (0.0,), "right lung": _BINARY, "left lung": _BINARY,
                           "lower zone": _BINARY, "air bronchogram": _BINARY, "artefact": _BINARY},
}

#: The interventions that change the label, per phantom: concept -> what forcing it does. All
#: others leave every label as drawn.
CLASS_DEFINING = {
    "phantom-brain-mri": {"mass present": "0: every tumour becomes 'no tumour' (label 3)"},
    "phantom-skin": {},
    "phantom-chest-xray": {"consolidation": "0: every pneumonia film becomes 'normal' (label 0)"},
}

_REFUSED = {
    ("phantom-brain-mri", "extra-axial"): "it defines the tumour type (a meningioma grows on the dura, outside the "
                                          "brain) and the generator draws no other compartment for a mass",
    ("phantom-brain-mri", "sellar location"): "it defines the tumour type (a pituitary tumour grows in the sella) "
                                              "and the generator draws no other compartment for a mass",
    ("phantom-brain-mri", "mass present", 1.0): "the images without a tumour have no drawn mass to add",
    ("phantom-chest-xray", "consolidation", 1.0): "the normal films have no drawn opacity to add",
}


def check_interventions(name: str, interventions: Mapping[str, float] | None) -> dict:
    """Validate ``interventions`` for phantom ``name``; returns ``{concept: float}`` (``{}`` for None).

    Raises a ValueError naming ``interventions`` for an unknown or unforceable concept, a value
    outside [0, 1], a binary concept not 0 or 1, or a contradictory combination.
    """
    if interventions is None:
        return {}
    if not isinstance(interventions, Mapping):
        raise ValueError(f"interventions must be a mapping {{concept: value}} or None, got {interventions!r}")
    allowed = INTERVENTIONS[name]
    out = {}
    for key, value in interventions.items():
        if (name, key) in _REFUSED:
            raise ValueError(f"interventions: {key!r} cannot be forced in {name}: {_REFUSED[(name, key)]}; "
                             f"forceable: {', '.join(allowed)}")
        if key not in allowed:
            raise ValueError(f"interventions: unknown concept {key!r} for {name}; valid names: {', '.join(allowed)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"interventions[{key!r}] must be a number in [0, 1], got {value!r}") from None
        if not 0.0 <= v <= 1.0:                       # also rejects NaN
            raise ValueError(f"interventions[{key!r}] must lie in [0, 1], got {value!r}")
        if (name, key, v) in _REFUSED:
            raise ValueError(f"interventions[{key!r}] = {value!r} cannot be forced in {name}: "
                             f"{_REFUSED[(name, key, v)]}; it accepts 0 only")
        if allowed[key] is not None and v not in allowed[key]:
            raise ValueError(f"interventions[{key!r}] is binary: it must be 0 or 1, got {value!r}")
        out[key] = v
    on = {k for k, v in out.items() if v > 0.5}
    if out.get("mass present") == 0.0 and on & {"ring enhancement", "necrotic core", "perilesional oedema"}:
        raise ValueError(f"interventions: 'mass present' = 0 contradicts {', '.join(sorted(on - {'artefact'}))} = 1")
    if out.get("consolidation") == 0.0 and on - {"artefact"}:
        raise ValueError(f"interventions: 'consolidation' = 0 contradicts {', '.join(sorted(on - {'artefact'}))} = 1")
    if out.get("right lung") == 0.0 and out.get("left lung") == 0.0 and "consolidation" not in out:
        raise ValueError("interventions: 'right lung' = 0 and 'left lung' = 0 leave a pneumonia film no opacity; "
                         "add 'consolidation': 0 to remove the consolidation")
    return out


def generate(name: str, n: int, size: int = 128, seed: int = 0, difficulty: float = 0.3,
             class_balance: Sequence[float] | None = None, shortcut: float = 0.0,
             chunk: int = 256, shortcut_class: int | None = None,
             interventions: Mapping[str, float] | None = None) -> dict:
    """Generate ``n`` phantom images of ``name``.

    Returns a dict: ``images`` uint8 [n,S,S,3], ``labels`` int64 [n], ``masks`` bool [n,S,S],
    ``concepts`` float32 [n,K], ``captions`` list[str], ``qa`` list[list[(q, a)]], ``meta`` dict
    of per-image arrays: ``artefact`` bool [n] (the image carries the shortcut artefact),
    ``artefact_mask`` bool [n,S,S] (its pixels; all False on images without it) and
    generator-specific ones. ``shortcut_class`` (default ``SHORTCUT_CLASS[name]``) is the class
    whose images carry the artefact; changing it changes nothing else. Works in chunks of
    ``chunk`` images to bound memory; each chunk draws from its own stream, seeded by ``seed``
    and the chunk's start, so ``chunk`` is part of the seed: the default (256) is what
    :func:`medxai_lite.load_dataset` and the model cache use, and another value gives other
    images (the same labels).

    ``interventions`` (``{concept: value}``, see :data:`INTERVENTIONS`) re-renders the same images
    with those concepts forced for every image: all random draws stay as without it, so anatomy,
    noise, position and the other concepts are unchanged, while the pixels, mask, concept vector,
    report and answers follow the forced values (``"artefact"``: 0 or 1 forces the shortcut
    artefact off or on, whatever the class and ``shortcut``). Only the class-defining concepts of
    :data:`CLASS_DEFINING` change labels: brain ``"mass present"`` = 0 (-> "no tumour") and chest
    ``"consolidation"`` = 0 (-> "normal"); the dermoscopy label is the truth the ABCD concepts are
    drawn from and never follows them. The module docstring says how each intervention is
    rendered and which cannot be forced. ``{}`` and ``None`` give the same images.
    """
    if name not in PHANTOMS:
        raise ValueError(f"unknown phantom {name!r}; valid choices: {', '.join(PHANTOMS)}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= 1024:
        raise ValueError(f"image_size must be an integer between 32 and 1024 pixels, got {size!r}")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty!r}")
    if not 0.0 <= float(shortcut) <= 1.0:
        raise ValueError(f"shortcut must lie in [0, 1], got {shortcut!r}")
    spec = PHANTOMS[name]
    if shortcut_class is None:
        shortcut_class = SHORTCUT_CLASS[name]
    if (isinstance(shortcut_class, bool) or not isinstance(shortcut_class, (int, np.integer))
            or not 0 <= shortcut_class < len(spec.classes)):
        raise ValueError(f"shortcut_class must be a class index in 0..{len(spec.classes) - 1} of {name} "
                         f"({', '.join(spec.classes)}) or None, got {shortcut_class!r}")
    forced = check_interventions(name, interventions)
    rng = np.random.default_rng([int(seed), 7919])
    labels = _labels(rng, int(n), len(spec.classes), class_balance)
    parts = []
    for start in range(0, n, chunk):
        sub_rng = np.random.default_rng([int(seed), 104729, start])
        parts.append(spec.fn(sub_rng, len(labels[start:start + chunk]), int(size), float(difficulty),
                             labels[start:start + chunk], float(shortcut), int(shortcut_class), forced))
    images = np.concatenate([p[0] for p in parts])
    masks = np.concatenate([p[1] for p in parts])
    concepts = np.concatenate([p[2] for p in parts])
    captions = [c for p in parts for c in p[3]]
    qa = [q for p in parts for q in p[4]]
    meta = {k: np.concatenate([p[5][k] for p in parts]) for k in parts[0][5]}
    labels = np.concatenate([p[6] for p in parts])
    return {"images": images, "labels": labels.astype(np.int64), "masks": masks, "concepts": concepts,
            "captions": captions, "qa": qa, "meta": meta, "interventions": forced}

"""Modality-like corruptions of images, applied in intensity space: speckle, Rician noise, bias field.

Real scans differ from the training data in ways the phantoms' clean test sets do not show:
ultrasound is covered in multiplicative speckle, MRI magnitude images carry Rician noise, and an
MRI receive coil leaves a smooth multiplicative intensity inhomogeneity (the bias field). The
challenges chapter corrupts test images with each of them at growing strength and asks how much
the explanation of the same image changes.

Every function takes images in **intensity space**, float ``[N, C, H, W]`` in [0, 1] (a NumPy
array or a tensor), and returns float32 NumPy ``[N, C, H, W]`` in [0, 1]. The datasets hand out
ImageNet-normalised tensors: :func:`corrupt` undoes that normalisation
(:func:`~medxai_lite.data.denormalize`), corrupts, and normalises again. A grey image (three equal
channels, as the MRI and X-ray phantoms are) gets one noise field copied to its three channels,
so it stays grey; a colour image gets independent noise per channel. The bias field multiplies
all channels alike. Same ``seed``, same corruption.

- ``speckle``: :math:`y = x\\,(1 + n)`, :math:`n \\sim N(0, s^2)`; strength ``s``, the noise's std;
- ``rician``: :math:`y = |x + n_1 + i\\,n_2|`, :math:`n_k \\sim N(0, \\sigma^2)`; strength ``sigma``, in
  intensity units;
- ``bias_field``: :math:`y = x\\,e^{\\alpha g}`, ``g`` a smooth field with zero mean and unit std;
  strength ``alpha``, the std of the log gain.

Example
-------
>>> from medxai_lite.data.corruptions import corrupt
>>> noisy = corrupt(batch["image"], "rician", 0.05, seed=0)    # normalised in, normalised out
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CORRUPTIONS", "speckle", "rician", "bias_field", "corrupt"]


def _check(images, strength, name: str = "strength") -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape [N, C, H, W] in intensity space [0, 1]; got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floats in [0, 1] (intensity space); got dtype {x.dtype}")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("images must be finite and lie in [0, 1] (intensity space; use corrupt() for "
                         "normalised tensors)")
    if isinstance(strength, bool) or not np.isscalar(strength) or not np.isfinite(strength) or strength < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {strength!r}")
    return x.astype(np.float32, copy=False)


def _grey(x: np.ndarray) -> bool:
    # a tolerance, so that a grey image that went through normalize / denormalize still counts
    return x.shape[1] == 3 and bool(np.allclose(x[:, 0], x[:, 1], atol=1e-5) and np.allclose(x[:, 1], x[:, 2], atol=1e-5))


def _channelwise(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to the one channel of a grey image (and copy it) or to every channel."""
    if _grey(x):
        return np.repeat(fn(x[:, :1]), 3, axis=1)
    return fn(x)


def speckle(images, strength: float, *, seed: int = 0) -> np.ndarray:
    """Multiplicative (speckle-like) noise: :math:`y = x + x\\,n`, :math:`n \\sim N(0, s^2)`.

    Fully developed ultrasound speckle is multiplicative: its amplitude grows with the echo
    strength (Burckhardt 1978, "Speckle in ultrasound B-mode scans", IEEE Trans. Sonics Ultrason.
    25:1-6). scikit-image's ``random_noise(mode="speckle", var=s**2)`` draws exactly this, and
    clips to [0, 1]. ``strength`` ``s`` is the noise's standard deviation (0: the image itself).

    Parameters
    ----------
    images : float [N, C, H, W] in [0, 1]
    strength : float >= 0
    seed : int

    Returns
    -------
    np.ndarray float32 [N, C, H, W] in [0, 1].
    """
    from skimage.util import random_noise

    x = _check(images, strength)
    if strength == 0:
        return x.copy()
    rng = np.random.default_rng(seed)
    return _channelwise(x, lambda a: random_noise(a, mode="speckle", var=float(strength) ** 2, mean=0.0, rng=rng,
                                                  clip=True).astype(np.float32))


def rician(images, sigma: float, *, seed: int = 0, clip: bool = True) -> np.ndarray:
    """Rician noise of an MRI magnitude image: :math:`y = \\sqrt{(x + n_1)^2 + n_2^2}`, :math:`n_{1,2} \\sim N(0, \\sigma^2)`.

    An MRI scanner measures a complex signal with independent Gaussian noise on its real and
    imaginary parts; the magnitude image is the modulus, whose distribution is Rician
    (Gudbjartsson & Patz 1995, "The Rician distribution of noisy MRI data", Magn. Reson. Med.
    34:910-914). Where there is no signal (:math:`x = 0`) it is Rayleigh, with mean
    :math:`\\sigma\\sqrt{\\pi/2}`: the background of a noisy scan is never black. Where the signal
    is large it approaches a Gaussian around :math:`\\sqrt{x^2 + \\sigma^2}`. No maintained
    imaging library ships it for arrays like these, hence these two lines.

    Parameters
    ----------
    images : float [N, C, H, W] in [0, 1]
    sigma : float >= 0
        Standard deviation of each Gaussian component, in intensity units (0: the image itself).
    seed : int
    clip : bool
        Clip the result to [0, 1] (the modulus is never negative, but can exceed 1).

    Returns
    -------
    np.ndarray float32 [N, C, H, W].
    """
    x = _check(images, sigma, "sigma")
    if sigma == 0:
        return x.copy()
    rng = np.random.default_rng(seed)

    def noisy(a):
        n1 = rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma)
        n2 = rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma)
        y = np.sqrt((a + n1) ** 2 + n2 ** 2)
        return np.clip(y, 0.0, 1.0) if clip else y

    return _channelwise(x, noisy).astype(np.float32, copy=False)


def bias_field(images, strength: float, *, seed: int = 0, beta: float = 4.0) -> np.ndarray:
    """A smooth multiplicative intensity inhomogeneity: :math:`y = x\\,e^{\\alpha g}`.

    The MRI bias field is a slowly varying gain over the field of view; bias-correction methods
    model it as a smooth field that multiplies the image, i.e. adds to its logarithm (Sled,
    Zijdenbos & Evans 1998, "A nonparametric method for automatic correction of intensity
    nonuniformity in MRI data", IEEE Trans. Med. Imaging 17:87-97). Here ``g`` is a Gaussian
    random field with power spectrum :math:`1/f^{\\beta}` (``beta=4``: only the lowest spatial
    frequencies survive), zero mean and unit standard deviation per image
    (:func:`medxai_lite.data.phantoms.fractal_noise`, the field the MRI phantom itself carries),
    so ``strength`` :math:`\\alpha` is the standard deviation of the log gain: 0.1 is about
    +/- 10 % of brightness across the image. All channels share the field; the result is
    clipped to [0, 1].

    Parameters
    ----------
    images : float [N, C, H, W] in [0, 1]
    strength : float >= 0
    seed : int
    beta : float > 0
        Spectral exponent of the field (larger: smoother).

    Returns
    -------
    np.ndarray float32 [N, C, H, W] in [0, 1].
    """
    from .phantoms import fractal_noise

    x = _check(images, strength)
    if not np.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a positive number; got {beta!r}")
    if strength == 0:
        return x.copy()
    n, _, h, w = x.shape
    side = max(h, w)
    g = fractal_noise(np.random.default_rng(seed), n, side, beta=float(beta))[:, :h, :w]
    g = (g - g.mean(axis=(1, 2), keepdims=True)) / (g.std(axis=(1, 2), keepdims=True) + 1e-6)
    gain = np.exp(np.float32(strength) * g)[:, None].astype(np.float32)
    return np.clip(x * gain, 0.0, 1.0).astype(np.float32, copy=False)


#: The corruptions :func:`corrupt` knows, name -> function ``(images, strength, seed=) -> images``.
CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "speckle": speckle,
    "rician": lambda images, strength, seed=0: rician(images, strength, seed=seed),
    "bias_field": bias_field,
}


def corrupt(images, kind: str, strength: float, *, seed: int = 0):
    """Corrupt ImageNet-normalised images (as the datasets give them) in intensity space.

    ``images`` float tensor ``[N, 3, H, W]``, normalised; they are mapped back to [0, 1] by
    :func:`~medxai_lite.data.denormalize` (which clips to [0, 1]: the phantoms, and any image read
    from an 8-bit file, lie inside it), corrupted by ``CORRUPTIONS[kind]`` at ``strength``, and
    normalised again. Returns a float32 tensor on the images' device.

    Example
    -------
    >>> noisy = corrupt(images, "speckle", 0.2, seed=1)     # doctest: +SKIP
    """
    import torch

    from .base import denormalize, normalize

    from .._utils import check_choice

    check_choice("kind", kind, CORRUPTIONS)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError("images must be a normalised float tensor [N, 3, H, W] (as the datasets give them); got "
                         f"{type(images).__name__} of shape {list(getattr(images, 'shape', []))}")
    x01 = denormalize(images.detach().float().cpu()).numpy()
    out = CORRUPTIONS[kind](x01, strength, seed=seed)
    return normalize(torch.from_numpy(np.ascontiguousarray(out))).to(images.device)

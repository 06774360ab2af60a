"""Small shared helpers: seeding, device choice, the cache folder, atomic writes, argument checks."""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "set_seed",
    "device",
    "cache_dir",
    "atomic_path",
    "check_choice",
    "check_images",
    "check_eval_model",
    "CACHE_ENV",
]

#: Environment variable that moves the cache (trained weights, generated data sets).
CACHE_ENV = "MEDXAI_CACHE"


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) and ask PyTorch for deterministic kernels.

    Example
    -------
    >>> set_seed(0)
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.benchmark = False


def device():
    """The device to compute on: CUDA when present, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cache_dir(sub: str | None = None, create: bool = True) -> Path:
    """The cache folder (``$MEDXAI_CACHE``, else ``~/.cache/medxai_lite``), optionally a subfolder.

    Raises a ``PermissionError`` naming ``MEDXAI_CACHE`` when the folder cannot be written.
    """
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "medxai_lite")
    path = Path(root).expanduser()
    if sub:
        path = path / sub
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
            probe.close()
        except OSError as exc:
            raise PermissionError(
                f"cache folder {str(path)!r} is not writable ({exc.strerror or exc}); "
                f"set the environment variable {CACHE_ENV} to a writable folder"
            ) from exc
    return path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    Nothing is ever left half-written under the final name: on an error the temporary file is
    removed and the error propagates.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_choice(param: str, value, choices: Iterable) -> None:
    """Raise ``ValueError`` naming ``param`` and the valid choices when ``value`` is not one of them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"unknown {param} {value!r}; valid choices: {', '.join(map(str, choices))}"
        )


def check_images(images, n: int | None = None):
    """``images`` as a detached float tensor ``[N, C, H, W]`` (NumPy arrays are converted).

    Raises an error naming ``images`` for a wrong type, shape, dtype, an empty batch, NaN or
    infinite values, or (with ``n``) a batch size other than ``n``.
    """
    import torch

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape [N, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch dimension: images[None])" if images.ndim == 3 else ""
        raise ValueError(f"images must have shape [N, C, H, W]; got {list(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor (normalised float32); got dtype {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image; got N = 0")
    if n is not None and images.shape[0] != n:
        raise ValueError(f"images and maps must hold the same number of images; got {images.shape[0]} images "
                         f"and {n} maps")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite values")
    return images.detach()


def check_eval_model(model, used_by: str = "explanations"):
    """Refuse anything but an ``nn.Module`` in eval mode; never switch the mode for the caller."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    training = [name or "<model>" for name, m in model.named_modules() if m.training]
    if training:
        raise RuntimeError(
            f"model is in training mode ({', '.join(training[:3])}{' ...' if len(training) > 3 else ''}); "
            f"{used_by} need fixed BatchNorm statistics and no dropout. Call model.eval() first "
            "(the mode is never switched for you).")
    return model

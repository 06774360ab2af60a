"""Small shared helpers: seeding, device choice, the cache folder, atomic writes, argument checks."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "set_seed",
    "device",
    "model_device",
    "to_numpy",
    "cache_dir",
    "atomic_path",
    "atomic_dir",
    "check_choice",
    "check_positive_int",
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


def model_device(model):
    """The device of ``model``'s first parameter (else first buffer; a module with neither: CPU).

    Functions that take a model and images move the images there, so a CPU batch from a dataset
    works with a model on the GPU (``get_trained_model`` puts it on :func:`device`).
    """
    import torch

    for tensors in (model.parameters(), model.buffers()):
        first = next(tensors, None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def to_numpy(x) -> np.ndarray:
    """A tensor on any device (detached, copied to the host) or an array-like, as a NumPy array."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


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
def cache_lock(final: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``final`` (a cache entry) across processes while the block runs.

    Two notebooks, or two students sharing one ``$MEDXAI_CACHE``, that need the same model at the
    same time then train it once: the second waits, and finds the entry when it gets the lock.
    The lock is a ``fcntl.flock`` on an empty file ``<final>.lock``, which stays in the cache
    (deleting it while another process waits on it would let a third one in); where ``fcntl``
    does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = Path(str(final) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, *, suffix: str = ".part") -> Iterator[Path]:
    """Yield a new empty folder beside ``final``; put it at ``final`` only if the block succeeds.

    The folder is built under a hidden temporary name in the same parent folder
    (``.<name>.<random><suffix>``), so that nothing half-built ever sits under the final name.
    When the block succeeds the folder is renamed to ``final``; an existing ``final`` is first
    moved aside under a hidden name, and removed once the new folder is in place. When the
    block raises (``KeyboardInterrupt`` included), the temporary folder is removed, any
    previous ``final`` is left as it was, and the error propagates.

    Example
    -------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tables"
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "a.csv").write_text("x")
    >>> sorted(p.name for p in out.iterdir())
    ['a.csv']
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix))
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            if old.exists():  # left behind by an interrupted earlier run with the same process id
                shutil.rmtree(old)
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)  # put the previous folder back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_choice(param: str, value, choices: Iterable) -> None:
    """Raise ``ValueError`` naming ``param`` and the valid choices when ``value`` is not one of them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"unknown {param} {value!r}; valid choices: {', '.join(map(str, choices))}"
        )


def profile_settings(profiles: dict, profile: str, overrides: dict, what: str = "setting") -> dict:
    """A copy of ``profiles[profile]`` updated with ``overrides``; a ``ValueError`` for an unknown
    ``profile`` or for an override that is not one of the profile's keys (named ``what``)."""
    check_choice("profile", profile, profiles)
    settings = dict(profiles[profile])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown {what}(s) {sorted(unknown)}; valid: {sorted(settings)}")
    settings.update(overrides)
    return settings


def check_positive_int(param: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int``; a ``ValueError`` naming ``param`` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{param} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_fraction(param: str, value, closed: bool = False) -> float:
    """``value`` as a ``float``; a ``ValueError`` naming ``param`` unless it is a number in (0, 1)
    (``closed=True``: in (0, 1])."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (number and (0 < value <= 1 if closed else 0 < value < 1)):
        raise ValueError(f"{param} must be a number in (0, {'1]' if closed else '1)'}; got {value!r}")
    return float(value)


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


def minmax_scale(x, batch: bool = True):
    """Rescale to [0, 1] by ``(x - min) / (max - min)``; a constant input becomes all zeros.

    Works on NumPy arrays and torch tensors alike and returns the same kind. With ``batch``
    (default) the first axis indexes images and each is scaled on its own; otherwise the whole
    array is one map. The book's one min-max: CAM maps, ``sign=...`` scaling, similarity of
    maps in the sanity checks and the 8-bit conversion of public images all use it.
    """
    import torch

    if isinstance(x, torch.Tensor):
        flat = x.reshape(x.shape[0], -1) if batch else x.reshape(1, -1)
        lo = flat.amin(1, keepdim=True)
        span = flat.amax(1, keepdim=True) - lo
        out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.zeros_like(flat))
        return out.reshape(x.shape)
    x = np.asarray(x)
    flat = x.reshape(x.shape[0], -1) if batch else x.reshape(1, -1)
    lo = flat.min(1, keepdims=True)
    span = flat.max(1, keepdims=True) - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1), 0)
    return out.astype(np.result_type(x.dtype, np.float32), copy=False).reshape(x.shape)


def check_targets(targets, n: int, num_classes: int | None = None):
    """Class indices as an int64 CPU tensor [n]: one int is repeated for every image.

    Raises ``TypeError`` naming ``targets`` for non-integer values and ``ValueError`` for a
    wrong count, shape, or (with ``num_classes``) an index outside ``0 .. num_classes - 1``.
    ``None`` is the caller's business (usually: the predicted class).
    """
    import torch

    try:
        values = targets.detach().cpu() if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"targets must be an int or a sequence of N = {n} ints; got {targets!r}") from exc
    if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
        raise TypeError(f"targets must be integers (class indices); got dtype {values.dtype}")
    if values.ndim > 1:
        raise ValueError(f"targets must be an int or a sequence of N = {n} ints; got shape {list(values.shape)}")
    values = values.long().reshape(-1)
    if values.numel() == 1 and n > 1:
        values = values.expand(n).clone()
    if values.numel() != n:
        raise ValueError(f"targets must have one entry per image (N = {n}); got {values.numel()}")
    if num_classes is not None:
        bad = sorted({int(v) for v in values if not 0 <= int(v) < num_classes})
        if bad:
            raise ValueError(f"targets out of range: {bad}; valid class indices are 0 .. {num_classes - 1}")
    return values

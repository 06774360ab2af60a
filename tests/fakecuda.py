"""A pretend GPU for a machine without one: device mix-ups fail here as they would on CUDA.

The book runs on Colab GPUs, but the test suite and CI run on CPUs, where a tensor left on the
CPU beside a model on the GPU, or a ``.numpy()`` of a GPU tensor, cannot fail. :class:`FakeCuda`
makes it fail. It is a ``TorchFunctionMode`` that computes everything on the CPU but remembers,
per tensor, the device the code *thinks* it is on, and raises the errors CUDA raises:

- ``torch.cuda.is_available()`` says True, so ``medxai_lite._utils.device()`` picks "cuda";
- ``t.to("cuda")``, ``t.cuda()``, factories with ``device="cuda"``, ``module.to("cuda")`` mark
  the result as a GPU tensor (``t.device`` then reads ``cuda:0``); ``t.cpu()``, ``t.to("cpu")``,
  factories without a device, ``torch.from_numpy`` and new parameters mark a CPU tensor;
- an operation mixing a GPU tensor with a CPU tensor of one dimension or more raises
  ``RuntimeError: Expected all tensors to be on the same device`` (CUDA allows CPU scalars,
  indexing with CPU indices and ``copy_`` across devices, and so does this mode);
- ``.numpy()`` / ``np.asarray`` of a GPU tensor raises the ``TypeError`` CUDA raises.

Results of an operation take the device of their inputs. Tensors made where the mode cannot see
(gradients that autograd computes) carry no mark and mix with anything: the mode finds mix-ups,
it cannot prove their absence.

Use: ``with fake_cuda(): ...``, or ``MEDXAI_FAKE_CUDA=1 pytest ...`` (see ``conftest.py``).
"""
from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

CUDA, CPU = "cuda", "cpu"
_CUDA_DEVICE = torch.device("cuda", 0)

_FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn, torch.randint,
              torch.randperm, torch.arange, torch.linspace, torch.logspace, torch.eye, torch.tensor,
              torch.as_tensor, torch.from_numpy, torch.scalar_tensor, torch.empty_strided,
              torch.rand_like, torch.randn_like, torch.zeros_like, torch.ones_like, torch.empty_like,
              torch.full_like, torch.randint_like, torch.tril_indices, torch.triu_indices}
# operations that CUDA allows across devices
_CROSS_DEVICE_OK = {torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.copy_,
                    torch.Tensor.index_put_, torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda}
_PACKED_RNN = {"gru", "lstm", "rnn_tanh", "rnn_relu"}
_NUMPY = {torch.Tensor.numpy, torch.Tensor.__array__}


def _device_type(dev) -> str | None:
    if dev is None:
        return None
    if isinstance(dev, torch.Tensor):
        return None
    if isinstance(dev, int) and not isinstance(dev, bool):
        return CUDA
    return torch.device(dev).type if isinstance(dev, (str, torch.device)) else None


class FakeCuda(TorchFunctionMode):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.tags = WeakTensorKeyDictionary()

    # ------------------------------------------------------------------ bookkeeping
    def tag(self, t) -> str | None:
        return self.tags.get(t) if isinstance(t, torch.Tensor) else None

    def mark(self, out, where: str | None):
        if where is None:
            return out
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.tags[t] = where
        return out

    def host(self, t: torch.Tensor) -> torch.Tensor:
        """A copy of ``t`` known to be on the CPU (a tensor made before the mode started, e.g. by a
        fixture, carries no mark and would mix with anything)."""
        with torch._C.DisableTorchFunction():
            copy = t.detach().clone()
        self.tags[copy] = CPU
        return copy

    def _fresh(self, result, source, where):
        """``.to`` returns its input unchanged when nothing changes; a real device move does not."""
        if result is source and self.tag(source) != where:
            with torch._C.DisableTorchFunction():
                result = source.clone()
        return self.mark(result, where)

    # ------------------------------------------------------------------ the mode
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "__get__":
            owner = getattr(func, "__self__", None)
            prop = getattr(owner, "__name__", "")
            if prop == "device":
                return _CUDA_DEVICE if self.tag(args[0]) == CUDA else func(*args, **kwargs)
            if prop == "is_cuda":
                return self.tag(args[0]) == CUDA
            if prop in ("grad", "data"):
                return self.mark(func(*args, **kwargs), self.tag(args[0]))
            return func(*args, **kwargs)
        if name == "__set__":                                  # t.data = ..., t.grad = ...
            out = func(*args, **kwargs)
            if getattr(getattr(func, "__self__", None), "__name__", "") == "data" and self.tag(args[1]):
                self.tags[args[0]] = self.tag(args[1])
            return out
        if name.startswith("_") and not name.startswith("__"):   # torch internals
            return func(*args, **kwargs)
        if func in _NUMPY and self.tag(args[0]) == CUDA:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first. (fake CUDA)")
        if func is torch.Tensor.cuda:
            return self._fresh(args[0], args[0], CUDA)
        if func is torch.Tensor.cpu:
            return self._fresh(func(*args, **kwargs), args[0], CPU)
        if func is torch.Tensor.to:
            return self._to(func, args, kwargs)
        if func in _FACTORIES:
            return self._factory(func, args, kwargs)
        if func is torch.Tensor.__deepcopy__:                   # its memo holds other tensors
            return self.mark(func(*args, **kwargs), self.tag(args[0]))
        tags = {self.tag(t) for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor) and t.dim() > 0} - {None}
        # a packed sequence keeps its batch sizes on the CPU, on CUDA too
        if func not in _CROSS_DEVICE_OK and name not in _PACKED_RNN and len(tags) > 1:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! (fake CUDA, in {getattr(func, '__qualname__', func)})")
        if "device" in kwargs and _device_type(kwargs["device"]) == CUDA:
            kwargs["device"] = "cpu"
            return self.mark(func(*args, **kwargs), CUDA)
        out = func(*args, **kwargs)
        scalar_tags = {self.tag(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)} - {None}
        where = CUDA if CUDA in (tags or scalar_tags) else (CPU if (tags or scalar_tags) else None)
        if func in (torch.Tensor.__setitem__, torch.Tensor.copy_, torch.Tensor.index_put_):
            return out
        return self.mark(out, where)

    def _to(self, func, args, kwargs):
        source, rest = args[0], list(args[1:])
        target = kwargs.get("device")
        if target is not None:
            where = _device_type(target)
            kwargs["device"] = "cpu"
        else:
            where = None
            first = rest[0] if rest else None
            if isinstance(first, torch.Tensor):          # .to(other): other's device and dtype
                where = self.tag(first) or CPU
                rest[0] = first.dtype
            elif not isinstance(first, torch.dtype) and _device_type(first) is not None:
                where = _device_type(first)
                rest[0] = "cpu"
        result = func(source, *rest, **kwargs)
        if where is None:
            return self.mark(result, self.tag(source))
        return self._fresh(result, source, where)

    def _factory(self, func, args, kwargs):
        where = CPU
        if "device" in kwargs and kwargs["device"] is not None:
            where = _device_type(kwargs["device"]) or CPU
            kwargs["device"] = "cpu"
            out = func(*args, **kwargs)
            if args and out is args[0] and self.tag(out) != where:      # as_tensor(t, device=...) moves t
                with torch._C.DisableTorchFunction():
                    out = out.clone()
            return self.mark(out, where)
        if args and isinstance(args[0], torch.Tensor):    # zeros_like(t), as_tensor(t): t's device
            return self.mark(func(*args, **kwargs), self.tag(args[0]))
        return self.mark(func(*args, **kwargs), where)


_ACTIVE: list = []
# torch.from_numpy, torch.as_tensor and torch.tensor never reach a TorchFunctionMode
# (torch.overrides.get_ignored_functions()): fake_cuda() wraps them instead
_UNSEEN = ("from_numpy", "as_tensor", "tensor")


def _wrap_unseen(original):
    def wrapped(*args, **kwargs):
        mode = _ACTIVE[-1] if _ACTIVE else None
        source = args[0] if args else kwargs.get("data")
        where = mode.tag(source) if mode is not None else None
        if "device" in kwargs and kwargs["device"] is not None:
            where = _device_type(kwargs["device"])
            kwargs["device"] = "cpu"
        out = original(*args, **kwargs)
        if mode is not None:
            if out is source and where != mode.tag(source):     # as_tensor(t, device=...) moved it
                out = out.clone()
            mode.tags[out] = where or CPU
        return out
    return wrapped


class _Generator(torch.Generator):
    """``torch.Generator(device="cuda")`` without a CUDA runtime: a CPU generator."""

    def __new__(cls, device="cpu"):
        return super().__new__(cls, device="cpu")

    def __init__(self, device="cpu"):
        pass


def _patched_apply(original):
    def _apply(module, fn, *args, **kwargs):
        out = original(module, fn, *args, **kwargs)
        if _ACTIVE:
            mode = _ACTIVE[-1]
            probe = fn(torch.zeros(1))
            where = mode.tag(probe)
            if where is not None:
                for t in list(module.parameters()) + list(module.buffers()):
                    mode.tags[t] = where
        return out
    return _apply


def _patched_parameter_new(original):
    def __new__(cls, data=None, requires_grad=True):
        p = original(cls, data, requires_grad)
        if _ACTIVE and isinstance(data, torch.Tensor):
            _ACTIVE[-1].tags[p] = _ACTIVE[-1].tag(data) or CPU
        return p
    return __new__


@contextlib.contextmanager
def fake_cuda():
    """Pretend a CUDA GPU is present for the duration (see the module docstring)."""
    mode = FakeCuda()
    saved = (torch.cuda.is_available, torch.cuda.device_count, torch.cuda.synchronize,
             torch.nn.Module._apply, torch.nn.Parameter.__dict__["__new__"],
             torch.optim.Optimizer._accelerator_graph_capture_health_check, torch.cuda.is_current_stream_capturing,
             torch.cuda.get_rng_state, torch.cuda.set_rng_state, torch.Generator, torch.backends.cudnn.is_acceptable,
             *(getattr(torch, name) for name in _UNSEEN))
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: 1
    torch.cuda.synchronize = lambda *a, **k: None
    torch.nn.Module._apply = _patched_apply(saved[3])
    torch.nn.Parameter.__new__ = staticmethod(_patched_parameter_new(saved[4].__func__))
    # the optimisers ask the (absent) CUDA runtime about graph capture when parameters are on "cuda"
    torch.optim.Optimizer._accelerator_graph_capture_health_check = lambda self: None
    torch.cuda.is_current_stream_capturing = lambda: False
    # torch.random.fork_rng() saves and restores the GPU's generator when CUDA is present
    torch.cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    torch.cuda.set_rng_state = lambda state, device="cuda": None
    torch.Generator = _Generator
    torch.backends.cudnn.is_acceptable = lambda tensor: False     # recurrent layers: no cuDNN kernels here
    for name, original in zip(_UNSEEN, saved[11:]):
        setattr(torch, name, _wrap_unseen(original))
    _ACTIVE.append(mode)
    try:
        with mode:
            yield mode
    finally:
        _ACTIVE.pop()
        (torch.cuda.is_available, torch.cuda.device_count, torch.cuda.synchronize,
         torch.nn.Module._apply) = saved[:4]
        torch.nn.Parameter.__new__ = saved[4]
        torch.optim.Optimizer._accelerator_graph_capture_health_check = saved[5]
        torch.cuda.is_current_stream_capturing, torch.cuda.get_rng_state, torch.cuda.set_rng_state = saved[6:9]
        torch.Generator, torch.backends.cudnn.is_acceptable = saved[9:11]
        for name, original in zip(_UNSEEN, saved[11:]):
            setattr(torch, name, original)

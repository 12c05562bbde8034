"""A CUDA device made of CPU tensors: the GPU path checked on a machine without a GPU.

``FakeCuda`` is a dispatch mode under which ``.to("cuda")``, ``device="cuda"`` factories
and every op on such tensors run on the CPU, with real values, while the tensors say
``device == cuda:0``. It catches what the first GPU user would meet:

- *device mismatches*: an op that mixes a "cuda" tensor with a CPU tensor of more
  than one element raises, as CUDA does (0-dim CPU tensors pass, as on CUDA);
- *tensors made on the CPU* while the mode is on (factories without a device, results
  of CPU-only ops): recorded in ``made_on_cpu`` with the line of ``cpc`` that made them;
- *host syncs*: every op that makes the host wait for the device (``.item()``,
  ``bool()``/``float()``/``int()`` of a tensor, ``nonzero``, boolean-mask indexing,
  copies to the CPU, ...) is recorded in ``syncs``, with the line of ``cpc``;
- *host-to-device copies*: recorded in ``uploads`` with their ``non_blocking`` flag.

Why not ``torch._subclasses.fake_tensor.FakeTensorMode`` (values-free tracing): the
prediction core's data-dependent ops (``nonzero`` for the pool and the anchors, the
redraw loop's ``any()``) have no fake implementation without a shape environment, and
with one its Python-level checks on those sizes cannot be decided; and torch's
autograd engine needs a CUDA context for its stream bookkeeping
(``hasPrimaryContext``) whatever the tensor type. So values stay real, which also lets
every test compare the "cuda" result with the CPU result exactly, and
:func:`backward` walks the autograd graph in Python, calling every node's backward
itself, instead of the C++ engine. What is stubbed and cannot be checked here: CUDA
random generators (a CPU generator is used), cuDNN RNN kernels (``nn.GRU``/``nn.LSTM``
on the fake device run their equations in plain ops: :class:`_RecurrentStub`), streams,
pinned memory itself and real kernel timings. ``torch.stft`` (the log-mel and MFCC
front-ends) is not emulated: on CUDA it lays out cuFFT's result otherwise than on the CPU.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn.modules import rnn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")

#: Ops that make the host wait for a CUDA device when one of their inputs is on it.
SYNC_OPS = {
    "_local_scalar_dense",  # .item(), bool(t), float(t), int(t)
    "nonzero",
    "masked_select",
    "repeat_interleave",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "equal",
    "is_nonzero",
}


class OnCuda(Tensor):
    """A CPU tensor (``elem``) that reports ``device == cuda:0``."""

    elem: Tensor

    @staticmethod
    def __new__(cls, elem: Tensor) -> OnCuda:
        return Tensor._make_wrapper_subclass(  # type: ignore[attr-defined,no-any-return]
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=CUDA,
            requires_grad=elem.requires_grad,
        )

    def __init__(self, elem: Tensor) -> None:
        self.elem = elem

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        raise RuntimeError(f"{func} on a fake CUDA tensor outside FakeCuda")


@dataclass
class Event:
    """One recorded op: its name, where in ``cpc`` it was called, and a detail."""

    op: str
    where: str
    detail: str = ""


def _where() -> str:
    """The innermost line of the ``cpc`` package on the stack (else the innermost test line)."""
    frames = traceback.extract_stack()[:-3]
    for frame in reversed(frames):
        if "/cpc/" in frame.filename and "/tests/" not in frame.filename:
            path = frame.filename[frame.filename.rindex("/cpc/") + 1 :]
            return f"{path}:{frame.lineno} ({frame.name})"
    for frame in reversed(frames):
        if "/tests/" in frame.filename and "fake_cuda" not in frame.filename:
            return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


def _is_cuda(device: Any) -> bool:
    return device is not None and torch.device(device).type == "cuda"


def _recurrence(
    kind: str,
    x: Tensor,
    state: Any,
    weights: list[Tensor],
    bias: bool,
    layers: int,
    batch_first: bool,
) -> tuple[Tensor, ...]:
    """A unidirectional GRU/LSTM from its equations, in ops the fake device runs.

    Stands in for ``_VF.gru``/``_VF.lstm``, whose CUDA dispatch asks cuDNN and the
    driver before any op. Same gate order and formulas as ATen (PyTorch's ``nn.GRU``
    documentation), so the result matches the CPU kernels to rounding.
    """
    per = 4 if bias else 2
    h0, c0 = state if kind == "lstm" else (state, None)
    seq = x.transpose(0, 1) if batch_first else x  # (s, n, d)
    finals_h, finals_c = [], []
    for layer in range(layers):
        w_ih, w_hh, *b = weights[layer * per : (layer + 1) * per]
        b_ih, b_hh = b if b else (None, None)
        h, c = h0[layer], None if c0 is None else c0[layer]
        ins = torch.nn.functional.linear(seq, w_ih, b_ih)  # (s, n, gates)
        outs = []
        for t in range(seq.shape[0]):
            hh = torch.nn.functional.linear(h, w_hh, b_hh)
            if kind == "gru":
                ir, iz, in_ = ins[t].chunk(3, 1)
                hr, hz, hn = hh.chunk(3, 1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + r * hn)
                h = (1 - z) * n + z * h
            else:
                i, f, g, o = (ins[t] + hh).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        seq = torch.stack(outs)
        finals_h.append(h)
        finals_c.append(c)
    out = seq.transpose(0, 1) if batch_first else seq
    if kind == "gru":
        return out, torch.stack(finals_h)
    return out, torch.stack(finals_h), torch.stack(finals_c)  # type: ignore[arg-type]


class _RecurrentStub:
    """``torch.nn.modules.rnn._VF`` with GRU/LSTM on fake CUDA tensors from their formulas."""

    def __init__(self, real: Any, records: Records) -> None:
        self.real, self.records = real, records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def gru(
        self,
        x: Tensor,
        hx: Tensor,
        weights: list[Tensor],
        bias: bool,
        layers: int,
        dropout: float,
        train: bool,
        bidirectional: bool,
        batch_first: bool,
    ) -> Any:
        if not isinstance(x, OnCuda) or bidirectional:
            return self.real.gru(
                x, hx, weights, bias, layers, dropout, train, bidirectional, batch_first
            )
        self.records.stubbed.append(Event("gru", _where(), "cuDNN RNN: from its equations"))
        return _recurrence("gru", x, hx, weights, bias, layers, batch_first)

    def lstm(
        self,
        x: Tensor,
        hx: Any,
        weights: list[Tensor],
        bias: bool,
        layers: int,
        dropout: float,
        train: bool,
        bidirectional: bool,
        batch_first: bool,
    ) -> Any:
        if not isinstance(x, OnCuda) or bidirectional:
            return self.real.lstm(
                x, hx, weights, bias, layers, dropout, train, bidirectional, batch_first
            )
        self.records.stubbed.append(Event("lstm", _where(), "cuDNN RNN: from its equations"))
        return _recurrence("lstm", x, hx, weights, bias, layers, batch_first)


@dataclass
class Records:
    """What a :class:`FakeCuda` session saw."""

    syncs: list[Event] = field(default_factory=list)
    made_on_cpu: list[Event] = field(default_factory=list)
    uploads: list[Event] = field(default_factory=list)
    stubbed: list[Event] = field(default_factory=list)

    def clear(self) -> None:
        for events in (self.syncs, self.made_on_cpu, self.uploads, self.stubbed):
            events.clear()


class FakeCuda(TorchDispatchMode):
    """Run "CUDA" code on the CPU and record what a GPU would mind (module docstring).

    Modules move with ``module.to("cuda")`` inside the mode (parameters become
    :class:`OnCuda`); ``records`` holds syncs, CPU-made tensors and uploads;
    ``records.clear()`` before the part under test.
    """

    def __init__(self) -> None:
        super().__init__()
        # Registered as a fake mode, so torch skips CUDA's lazy initialisation.
        self._mode_key = torch._C._TorchDispatchModeKey.FAKE
        self.records = Records()
        self._overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        self._lift = False
        self._vf = rnn._VF

    def __enter__(self) -> FakeCuda:
        torch._C._ensureCUDADeviceGuardSet()  # a no-op device guard without a driver
        # module.to() must replace parameters (a wrapper cannot be set as .data)
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        # torch.tensor(data, device="cuda"): built on the CPU, then moved (through us)
        self._lift = torch._C._only_lift_cpu_tensors()
        torch._C._set_only_lift_cpu_tensors(True)
        rnn.__dict__["_VF"] = _RecurrentStub(self._vf, self.records)
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        torch.__future__.set_overwrite_module_params_on_conversion(self._overwrite)
        torch._C._set_only_lift_cpu_tensors(self._lift)
        rnn.__dict__["_VF"] = self._vf
        super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        flat, _ = tree_flatten((args, kwargs))
        on_cuda = [t for t in flat if isinstance(t, OnCuda)]
        name = func.overloadpacket.__name__
        device = kwargs.get("device")
        to_cuda = _is_cuda(device)
        if to_cuda:
            kwargs["device"] = CPU
        moving = name in ("_to_copy", "copy_")
        if on_cuda and not moving:
            self._check_devices(name, flat)
        if on_cuda:
            self._record_sync(name, args, device)
        if to_cuda and name == "_to_copy" and not isinstance(args[0], OnCuda):
            detail = f"non_blocking={bool(kwargs.get('non_blocking', False))}"
            self.records.uploads.append(Event(name, _where(), detail))
        plain_args, plain_kwargs = tree_map(
            lambda t: t.elem if isinstance(t, OnCuda) else t, (args, kwargs)
        )
        out = func(*plain_args, **plain_kwargs)
        stays = not (name == "_to_copy" and device is not None and not to_cuda)
        if (on_cuda and stays) or to_cuda:
            inputs = {id(t.elem): t for t in on_cuda}
            return tree_map(
                lambda t: inputs.get(id(t), OnCuda(t)) if isinstance(t, Tensor) else t, out
            )
        if not on_cuda and name not in ("detach", "alias", "lift_fresh"):
            for t in tree_flatten(out)[0]:
                if isinstance(t, Tensor) and t.numel() > 1:
                    self.records.made_on_cpu.append(Event(name, _where(), str(tuple(t.shape))))
        return out

    def _check_devices(self, name: str, flat: list[Any]) -> None:
        cpu = [t for t in flat if isinstance(t, Tensor) and not isinstance(t, OnCuda)]
        bad = [tuple(t.shape) for t in cpu if t.dim() > 0]
        if bad:
            raise RuntimeError(
                f"device mismatch: {name} mixes cuda tensors with CPU tensors of shapes "
                f"{bad} at {_where()}"
            )

    def _record_sync(self, name: str, args: Any, device: Any) -> None:
        if name in SYNC_OPS:
            self.records.syncs.append(Event(name, _where()))
        elif name == "index" and any(
            isinstance(i, Tensor) and i.dtype == torch.bool for i in (args[1] or [])
        ):
            self.records.syncs.append(Event("index with a boolean mask", _where()))
        elif name == "_to_copy" and device is not None and not _is_cuda(device):
            self.records.syncs.append(Event("copy to the CPU", _where()))


def _as_input(grad: Tensor, meta: Any) -> Tensor:
    """What the engine's ``validate_outputs`` does: sum broadcast dims, cast, check device."""
    shape = tuple(meta.shape)
    if tuple(grad.shape) != shape:
        grad = grad.sum_to_size(shape)
    if grad.dtype != meta.dtype:
        grad = grad.to(meta.dtype)
    if grad.device != meta.device:
        raise RuntimeError(f"gradient on {grad.device} for an input on {meta.device}")
    return grad


def backward(loss: Tensor) -> None:
    """``loss.backward()`` without torch's C++ engine: every node called from Python.

    The engine asks the CUDA driver for its streams before running any node; calling
    the nodes ourselves, in dependency order, runs every derivative formula (torch's
    and ``cpc``'s own autograd functions) on the fake device, so a backward that makes
    a CPU tensor or mixes devices fails here too. Gradients accumulate into ``.grad``.
    """
    root = loss.grad_fn
    assert root is not None, "loss does not require grad"
    pending: dict[Any, int] = {}
    stack, seen = [root], {root}
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            pending[child] = pending.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    grads: dict[Any, list[Tensor | None]] = {root: [torch.ones_like(loss)]}
    ready = [root]
    while ready:
        node = ready.pop()
        incoming = grads.pop(node)
        if type(node).__name__ == "AccumulateGrad":
            param, grad = node.variable, incoming[0]
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad
            continue
        with torch.no_grad():  # as the engine runs them (no double backward)
            call = node.apply if hasattr(node, "_forward_cls") else node
            outs = call(*incoming)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for (child, slot), grad in zip(node.next_functions, outs, strict=False):
            if child is None:
                continue
            held = grads.setdefault(child, [None] * len(child._input_metadata))
            if grad is not None:
                grad = _as_input(grad, child._input_metadata[slot])
                held[slot] = grad if held[slot] is None else held[slot] + grad
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)

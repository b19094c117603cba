"""Forward hooks that record what flows through named submodules, removed on exit.

Diagnostics need post-activation values. Hooking ``nn.Linear`` outputs and applying ReLU by
hand is wrong for blocks with LayerNorm or ELU, so :func:`capture_activations` hooks the
activation *modules* themselves (``block.act``) and records their outputs, and
:func:`capture_inputs` records what enters a module (the input of a ``head`` Linear is the
last hidden features). Activations applied functionally (``F.relu`` inside ``forward``) are
invisible to hooks: give such networks activation modules, or capture the input of the next
module instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["DEFAULT_ACTIVATION_TYPES", "capture_activations", "capture_inputs"]

DEFAULT_ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
)
"""Module classes :func:`capture_activations` hooks when given neither types nor names."""


def _named_targets(module: nn.Module, names: Iterable[str]) -> list[tuple[str, nn.Module]]:
    if isinstance(names, str):
        names = [names]
    available = dict(module.named_modules())
    targets = []
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, [n for n in available if n], n=5)
            hint = f" Close matches: {close}." if close else ""
            raise ValueError(
                f"{type(module).__name__} has no submodule named {name!r}.{hint} "
                "Names are relative to the module passed in, as in `module.named_modules()`."
            )
        targets.append((name, available[name]))
    if not targets:
        raise ValueError("names is empty: pass at least one submodule name.")
    return targets


def _typed_targets(
    module: nn.Module, module_types: type[nn.Module] | tuple[type[nn.Module], ...]
) -> list[tuple[str, nn.Module]]:
    types = module_types if isinstance(module_types, tuple) else (module_types,)
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise TypeError(f"module_types must be nn.Module subclasses, got {module_types!r}.")
    targets = [(n, m) for n, m in module.named_modules() if isinstance(m, types)]
    if not targets:
        raise ValueError(
            f"{type(module).__name__} has no submodule of type "
            f"{[t.__name__ for t in types]}. It may apply its activations functionally "
            "(F.relu), which hooks cannot see; pass `names=` or `module_types=` explicitly."
        )
    return targets


def _store(value: Any, name: str, detach: bool) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"submodule {name!r} produced a {type(value).__name__}, not a tensor; capture a "
            "submodule whose input/output is a single tensor."
        )
    # A copy: a later in-place op (ReLU(inplace=True) downstream) must not change the record.
    return value.detach().clone() if detach else value


@contextmanager
def _capture(
    targets: list[tuple[str, nn.Module]], register: Callable[..., RemovableHandle], detach: bool
) -> Iterator[dict[str, torch.Tensor]]:
    captured: dict[str, torch.Tensor] = {}
    handles: list[RemovableHandle] = []
    try:
        for name, sub in targets:
            handles.append(register(name, sub, captured, detach))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _register_output(
    name: str, sub: nn.Module, captured: dict[str, torch.Tensor], detach: bool
) -> RemovableHandle:
    def hook(_mod: nn.Module, _args: Any, output: Any) -> None:
        captured[name] = _store(output, name, detach)

    return sub.register_forward_hook(hook)


def _register_input(
    name: str, sub: nn.Module, captured: dict[str, torch.Tensor], detach: bool
) -> RemovableHandle:
    def hook(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not args:
            raise TypeError(
                f"submodule {name!r} was called without a positional input "
                f"(keyword arguments {sorted(kwargs)}); capture_inputs records the first "
                "positional argument."
            )
        captured[name] = _store(args[0], name, detach)

    return sub.register_forward_pre_hook(hook, with_kwargs=True)


@contextmanager
def capture_activations(
    module: nn.Module,
    *,
    module_types: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
    names: str | Iterable[str] | None = None,
    detach: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of a module's activation submodules during forward passes.

    Hooks every submodule of ``module`` that is an instance of ``module_types`` (default
    :data:`DEFAULT_ACTIVATION_TYPES`), or exactly the submodules listed in ``names``, and
    yields a dict ``name -> output`` filled by each forward pass run inside the ``with``
    block. Names are relative to ``module`` (``"blocks.0.act"``). A submodule called more
    than once keeps its last call. The hooks are removed when the block exits, also on an
    exception; the dict stays readable afterwards.

    Args:
        module: any :class:`torch.nn.Module`.

    Keyword Args:
        module_types: an activation class or tuple of classes to hook. Mutually exclusive with
            ``names``.
        names: submodule name(s) whose outputs to record, for activations of another class
            (or any module with a single-tensor output).
        detach: record a detached copy (default); ``False`` keeps the tensor with its graph.

    Yields:
        The dict ``name -> tensor`` (e.g. ``[B, F]`` for an MLP layer), empty until a forward
        pass runs.

    Raises:
        ValueError: if both ``module_types`` and ``names`` are given, a name does not exist
            (close matches are listed), or nothing matches.
        TypeError: if ``module_types`` holds non-module classes, or a hooked submodule outputs
            something other than a tensor (raised from the forward pass).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ELU())
        >>> with capture_activations(net) as acts:
        ...     _ = net(torch.randn(5, 3))
        >>> {name: tuple(a.shape) for name, a in acts.items()}
        {'1': (5, 4), '3': (5, 2)}
        >>> net[1]._forward_hooks  # removed on exit
        OrderedDict()
    """
    if names is not None and module_types is not None:
        raise ValueError("pass either module_types= or names=, not both.")
    if names is not None:
        targets = _named_targets(module, names)
    else:
        targets = _typed_targets(module, module_types or DEFAULT_ACTIVATION_TYPES)
    with _capture(targets, _register_output, detach) as captured:
        yield captured


@contextmanager
def capture_inputs(
    module: nn.Module, names: str | Iterable[str], *, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the first positional input of named submodules during forward passes.

    The input of an MLP's ``head`` Linear is its last hidden features, the matrix whose
    :func:`~torchrl_mst.diagnostics.stable_rank` the MST paper tracks for the critic and the
    actor. Same lifecycle as :func:`capture_activations`: hooks removed on exit, also on an
    exception; last call wins.

    Args:
        module: any :class:`torch.nn.Module`.
        names: name, or names, of submodules of ``module`` (``"head"``, ``"q1.head"``).

    Keyword Args:
        detach: record a detached copy (default); ``False`` keeps the tensor with its graph.

    Yields:
        The dict ``name -> input tensor``, empty until a forward pass runs.

    Raises:
        ValueError: if a name does not exist (close matches are listed) or ``names`` is empty.
        TypeError: if a hooked submodule is called without a positional tensor argument
            (raised from the forward pass).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
        >>> with capture_inputs(net, "2") as inputs:
        ...     _ = net(torch.randn(5, 3))
        >>> tuple(inputs["2"].shape), bool((inputs["2"] >= 0).all())
        ((5, 8), True)
    """
    with _capture(_named_targets(module, names), _register_input, detach) as captured:
        yield captured

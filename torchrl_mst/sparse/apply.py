"""``sparsify``: the one front door, for a loss module (MR.Q's or TorchRL's) or a plain module.

Where the masks live follows what is trained:

* **a loss** (``MRQLoss``, TorchRL's ``TD3Loss``/``SACLoss``/``ClipPPOLoss``, any
  ``LossModule`` built with ``convert_to_functional``): losses train their *own* parameter
  containers ``loss.<net>_params`` (for TD3/SAC critics, stacked ``[K, out, in]`` copies
  re-initialised per member). The masks go next to those, as buffers of the child module
  ``loss.sparse_masks`` (so ``loss.state_dict()``, ``deepcopy(loss)`` and ``loss.to()``
  carry them), and the target copies ``loss.target_<net>_params`` are tied to them from
  construction: they are zero at masked positions at once, and at every topology update;
* **a plain module** (no loss): a boolean buffer ``weight_mask`` next to each weight.

A module sparsified *before* a loss copies its parameters would train a dense copy while
its own masks change nothing; a forward pre-hook on each masked layer detects that the layer
runs with parameters and masks other than its own and raises, naming the fix (build the
loss from the dense module, then sparsify the loss).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ._tensors import _SparseTensor
from .controller import SparseController, StateMasking
from .masks import MASK_SUFFIX, sparsifiable_layers
from .regimes import Regime

__all__ = ["SparseMasks", "loss_network_names", "sparsify"]

_MASK_HOLDER = "sparse_masks"


class SparseMasks(nn.Module):
    """Holder of a loss's mask buffers (``loss.sparse_masks``), one per sparsified tensor.

    Buffer names are the tensor names with ``.`` replaced by ``__``. A loss that creates its
    holder in ``__init__`` (``MRQLoss`` does) can load a saved sparsified state dict *before*
    :func:`sparsify`: masks without a buffer yet are kept aside and adopted by
    :func:`sparsify` instead of fresh random ones, so the order of the two calls does not
    matter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[str, torch.Tensor] = {}

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            name = key[len(prefix) :]
            if "." not in name and name not in self._buffers:
                self.pending[name] = state_dict.pop(key).detach().clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class _MaskGuard:
    """Forward pre-hook of a layer sparsified as a module: it must run with its own mask.

    A loss that copies the module's parameters (TorchRL's ``SACLoss``/``TD3Loss`` stack
    critic copies, every loss clones targets) swaps its copies, masks included, into the
    layer for the forward pass; the copies are not what the module's controller masks.
    """

    def __init__(self, attr: str, mask: torch.Tensor, layer_name: str) -> None:
        self.attr = attr
        self.mask = mask
        self.layer_name = layer_name

    def __call__(self, layer: nn.Module, args: Any) -> None:
        current = layer._buffers.get(self.attr)
        if current is self.mask:
            return
        if (
            isinstance(current, torch.Tensor)
            and type(current) is torch.Tensor
            and current.device != self.mask.device
        ):
            self.mask = current  # the module moved to another device
            return
        raise RuntimeError(
            f"Layer {self.layer_name!r} was sparsified with sparsify(module) and then copied: "
            "a loss built from the sparsified module (TorchRL's SACLoss/TD3Loss, MRQLoss, ...) "
            "trains its own copies of the parameters, which the module's masks do not reach, "
            "so it would train a dense network. Build the loss from the dense module, then "
            "sparsify the loss: sparsify(loss, {'qvalue_network': RigL(...)}, optimizer) "
            "(network names: torchrl_mst.sparse.loss_network_names(loss))."
        )


def loss_network_names(loss: nn.Module) -> list[str]:
    """Networks of a loss module that have functional parameters (``<name>_params``).

    Args:
        loss: a ``torchrl.objectives.LossModule`` (e.g. ``MRQLoss``, ``TD3Loss``).

    Returns:
        E.g. ``["actor_network", "qvalue_network"]`` for ``TD3Loss``,
        ``["encoder", "critic", "actor"]`` for ``MRQLoss``; ``[]`` for a plain module.
    """
    return [
        name[: -len("_params")]
        for name in loss._modules
        if name.endswith("_params")
        and not name.startswith("target_")
        and isinstance(loss.__dict__.get(name[: -len("_params")]), nn.Module)
    ]


def _weight(layer: nn.Module) -> torch.Tensor:
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _target_getter(container: Any, key: tuple[str, ...]) -> Callable[[], torch.Tensor]:
    def get() -> torch.Tensor:
        return container.get(key)

    return get


def _loss_tensors(
    loss: nn.Module, name: str, regime: Regime, holder: SparseMasks
) -> list[_SparseTensor]:
    known = loss_network_names(loss)
    if name not in known:
        raise ValueError(
            f"{type(loss).__name__} has no network {name!r} with functional parameters; "
            f"known networks: {known}."
        )
    if regime.is_dense:
        return []
    module: nn.Module = getattr(loss, name)
    params: Any = getattr(loss, f"{name}_params")  # a TensorDictParams
    target: Any = loss._modules.get(f"target_{name}_params")
    specs = []
    for lname, layer in sparsifiable_layers(module):
        if "weight" + MASK_SUFFIX in layer._buffers:
            raise ValueError(
                f"Layer {name}.{lname} already carries a weight mask: the module was passed to "
                "sparsify() before the loss was built, and the loss trains copies of it. Build "
                "the loss from the dense module and sparsify only the loss."
            )
        key = (*lname.split("."), "weight") if lname else ("weight",)
        param = params.get(key, None)
        if param is None:
            raise ValueError(
                f"{name}_params has no entry {key} for layer {lname!r}: the loss's "
                "parameter container does not mirror the module structure."
            )
        shape = _weight(layer).shape
        ensemble_dims = param.dim() - len(shape)
        if ensemble_dims < 0 or tuple(param.shape[ensemble_dims:]) != tuple(shape):
            raise ValueError(
                f"{name}_params{list(key)} has shape {tuple(param.shape)}, which does not "
                f"end with the layer's weight shape {tuple(shape)}."
            )
        public = _join(name, lname, "weight")
        attr = public.replace(".", "__")
        specs.append(
            _SparseTensor(
                name=public,
                param=param,
                mask_owner=holder,
                mask_attr=attr,
                ensemble_dims=ensemble_dims,
                targets=[_target_getter(target, key)] if target is not None else [],
                initial_mask=holder.pending.get(attr),
            )
        )
    return specs


def _module_tensors(module: nn.Module, key: str, regime: Regime) -> list[_SparseTensor]:
    try:
        sub = module.get_submodule(key) if key else module
    except AttributeError as err:
        children = [n for n, _ in module.named_children()]
        raise ValueError(
            f"{type(module).__name__} has no submodule {key!r} (children: {children})."
        ) from err
    if regime.is_dense:
        return []
    return [
        _SparseTensor(
            name=_join(key, lname, "weight"),
            param=_weight(layer),
            mask_owner=layer,
            mask_attr="weight" + MASK_SUFFIX,
        )
        for lname, layer in sparsifiable_layers(sub)
    ]


def sparsify(
    target: nn.Module,
    regime: Regime | Mapping[str, Regime],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    seed: int | None = None,
    state_masking: StateMasking = "auto",
) -> SparseController:
    """Apply training regimes in place and return the controller that steps them.

    ``target`` is either a **loss module** (``MRQLoss``, TorchRL's ``TD3Loss``,
    ``SACLoss``, ``ClipPPOLoss``, ...), and ``regime`` maps its network names
    (:func:`loss_network_names`) to regimes, or a **plain module**, and ``regime`` is one
    regime or maps submodule names to regimes. Every ``weight`` of an ``nn.Linear`` or
    ``nn.Conv*`` layer (subclasses included) gets a boolean mask with exact per-layer kept
    counts (Erdős–Rényi allocation, uniformly random positions); masked weights, their
    optimizer state and (for a loss) the target copies are zeroed now. Biases and norms stay
    dense. See the module docstring for where masks live.

    Order with checkpoints: build the loss, :func:`sparsify` it, then ``load_state_dict``.
    ``MRQLoss`` also accepts the reverse order (load, then sparsify: the loaded masks are
    adopted); a TorchRL loss loaded before :func:`sparsify` raises torch's
    ``Unexpected key(s) ... "sparse_masks..."``: sparsify first.

    Args:
        target: the loss or module to sparsify.
        regime: for a loss, a mapping network name -> regime (networks left out stay dense);
            for a module, one regime for the whole module, or a mapping submodule name ->
            regime (keys accepted by ``module.get_submodule``; ``""`` = the module itself).
        optimizer: the optimizer that trains these weights (for a loss: the one built from
            ``loss.<net>_params``), or ``None``. Networks trained by different optimizers
            need separate calls (one controller per optimizer).
        seed: seed of the controller's generators (see :class:`SparseController`).
        state_masking: ``"auto"`` or ``"always"`` (see :class:`SparseController`).

    Returns:
        The :class:`SparseController`. Tensor names in ``controller.masks`` are
        ``"<net>.<layer path>.weight"`` for a loss and parameter names relative to the module
        otherwise (e.g. ``"critic.q1.blocks.0.linear.weight"``).

    Raises:
        ValueError: no Linear/Conv weight under a non-dense regime, a tensor sparsified twice,
            an unknown network or submodule, a module sparsified before a loss copied it, an
            optimizer not owning the parameters, or a schedule left unset (``stop_step``).
        TypeError: a regime that is not a :class:`Regime`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchrl_mst.sparse import StaticSparse, sparsify
        >>> net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
        ...                     nn.Linear(64, 1))
        >>> opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        >>> ctl = sparsify(net, StaticSparse(sparsity=0.6), opt, seed=0)
        >>> round(ctl.sparsity(), 4), sorted(ctl.masks)
        (0.6, ['0.weight', '2.weight', '4.weight'])
    """
    if not isinstance(target, nn.Module):
        raise TypeError(f"target must be a loss or an nn.Module, got {type(target).__name__}.")
    is_loss = bool(loss_network_names(target))
    if isinstance(regime, Regime):
        if is_loss:
            raise TypeError(
                f"{type(target).__name__} is a loss: pass a mapping network name -> regime, e.g. "
                f"{{{loss_network_names(target)[0]!r}: {regime!r}}}."
            )
        regimes: dict[str, Regime] = {"": regime}
    elif isinstance(regime, Mapping):
        regimes = dict(regime)
        for key in regimes:
            if not isinstance(key, str):
                raise TypeError(f"Regime mapping keys must be names, got {key!r}.")
    else:
        raise TypeError(
            "regime must be a Regime (Dense(), StaticSparse(), RigL(), SET(), GradualPruning(), "
            f"GradualGrowth()) or a mapping name -> Regime, got {type(regime).__name__}."
        )
    for key, reg in regimes.items():
        if not isinstance(reg, Regime):
            raise TypeError(
                f"Regime for {key or 'the module'!r} must be a Regime (Dense(), "
                f"StaticSparse(), RigL(), ...), got {type(reg).__name__}."
            )
    holder = SparseMasks()
    if is_loss:
        existing = target._modules.get(_MASK_HOLDER)
        if existing is not None:
            if not isinstance(existing, SparseMasks):
                raise TypeError(f"loss.{_MASK_HOLDER} must be a SparseMasks module.")
            holder = existing
        groups = [(k, r, _loss_tensors(target, k, r, holder)) for k, r in regimes.items()]
        if _MASK_HOLDER not in target._modules:
            setattr(target, _MASK_HOLDER, holder)
    else:
        groups = [(k, r, _module_tensors(target, k, r)) for k, r in regimes.items()]
    controller = SparseController(groups, optimizer, seed=seed, state_masking=state_masking)
    for _, _, specs in groups:
        for spec in specs:
            if is_loss:
                holder.pending.pop(spec.mask_attr, None)
            else:
                layer_name = spec.name.rpartition(".")[0]
                guard = _MaskGuard(
                    spec.mask_attr, getattr(spec.mask_owner, spec.mask_attr), layer_name
                )
                spec.mask_owner.register_forward_pre_hook(guard)
    return controller

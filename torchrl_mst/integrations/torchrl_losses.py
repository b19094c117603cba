"""MST regimes on TorchRL loss modules (``TD3Loss``, ``SACLoss``, ``ClipPPOLoss``, ...).

TorchRL losses train their *own* parameter containers, not the modules you pass in:
``convert_to_functional`` stores ``loss.<net>_params`` (a ``TensorDictParams``) and, for
networks with target copies, ``loss.target_<net>_params``. For ``TD3Loss``/``SACLoss`` the
critic is expanded to ``num_qvalue_nets`` members: each Linear weight becomes one stacked
``[K, out, in]`` parameter, re-initialised per member, and masks attached to the user's
critic module would never reach what is trained. :func:`sparsify_loss` therefore acts on
the loss's containers:

* it finds the Linear/Conv layers of ``loss.<net>`` (the module structure) and the matching
  ``weight`` entries of ``loss.<net>_params``; leading extra dims are ensemble dims, and each
  member gets its own ER count (computed from the last dims) and its own drop/grow;
* the boolean masks are buffers of a child module ``loss.sparse_masks`` (so
  ``loss.state_dict()``, ``deepcopy(loss)`` and ``loss.to(device)`` carry them), named
  ``<net>__<layer path>__weight``;
* ``loss.target_<net>_params`` (when it is a real target copy) is tied to the masks: it is
  masked now and at every topology update; in between, the live weights are exactly 0 at
  masked positions, so ``SoftUpdate``'s ``lerp`` and ``HardUpdate``'s copy keep the
  targets' pruned entries exactly 0 (whether the updater runs before or after
  ``controller.step()``).

Shared parameters (an actor that is the same object in the module and the loss, as in
``TD3Loss``) are handled the same way: the mask is applied to the shared tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from torchrl_mst.sparse.controller import SparseController, SparseParam
from torchrl_mst.sparse.masks import MASK_SUFFIX, sparsifiable_layers
from torchrl_mst.sparse.regimes import Regime

__all__ = ["MASK_HOLDER", "loss_network_names", "sparsify_loss"]

MASK_HOLDER = "sparse_masks"
"""Name of the child module of the loss that holds the mask buffers."""


def loss_network_names(loss: nn.Module) -> list[str]:
    """Networks of a TorchRL loss that have functional parameters (``<name>_params``).

    Args:
        loss: a ``torchrl.objectives.LossModule``.

    Returns:
        E.g. ``["actor_network", "qvalue_network"]`` for ``TD3Loss``.
    """
    return [
        name[: -len("_params")]
        for name in loss._modules
        if name.endswith("_params") and not name.startswith("target_")
    ]


def _target_getter(container, key: tuple[str, ...]) -> Callable[[], torch.Tensor]:
    def get() -> torch.Tensor:
        return container.get(key)

    return get


def sparsify_loss(
    loss: nn.Module,
    regimes: Mapping[str, Regime],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    seed: int | None = None,
    state_masking: str = "auto",
) -> SparseController:
    """Apply regimes to the networks of a TorchRL loss module (masks on the loss's params).

    Args:
        loss: a ``torchrl.objectives.LossModule`` built with ``convert_to_functional``
            (``TD3Loss``, ``SACLoss``, ``DDPGLoss``, ``ClipPPOLoss``, ...).
        regimes: network name -> regime, names as in :func:`loss_network_names`, e.g.
            ``{"qvalue_network": RigL(stop_step=...)}``. Networks left out are untouched.
        optimizer: the optimizer that trains these networks' parameters (built from
            ``loss.<net>_params``), or ``None``. Networks trained by different optimizers
            need separate calls (one controller per optimizer).
        seed: seed of the controller's generators.
        state_masking: ``"auto"`` or ``"always"``, see
            :class:`~torchrl_mst.sparse.SparseController`.

    Returns:
        A :class:`~torchrl_mst.sparse.SparseController` whose tensor names are
        ``"<net>.<layer path>.weight"`` and whose regime keys are the network names.

    Raises:
        ValueError: unknown network name, a network already sparsified (through
            :func:`~torchrl_mst.sparse.sparsify` on its module or an earlier call), or any
            error of :func:`~torchrl_mst.sparse.sparsify`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchrl.data import Bounded
        >>> from torchrl.modules import Actor, ValueOperator
        >>> from torchrl.objectives import TD3Loss
        >>> from torchrl_mst.integrations import sparsify_loss
        >>> from torchrl_mst.sparse import RigL
        >>> spec = Bounded(-1, 1, shape=(2,))
        >>> actor = Actor(nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 2)),
        ...               in_keys=["observation"], spec=spec)
        >>> class Q(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
        ...     def forward(self, obs, act):
        ...         return self.net(torch.cat([obs, act], -1))
        >>> loss = TD3Loss(actor, ValueOperator(Q(), in_keys=["observation", "action"]),
        ...                action_spec=spec)
        >>> critic_opt = torch.optim.Adam(loss.qvalue_network_params.values(True, True))
        >>> ctl = sparsify_loss(loss, {"qvalue_network": RigL(stop_step=1000)}, critic_opt,
        ...                     seed=0)
        >>> for name, mask in ctl.masks.items():
        ...     print(name, tuple(mask.shape))
        qvalue_network.module.net.0.weight (2, 32, 5)
        qvalue_network.module.net.2.weight (2, 1, 32)
    """
    if not isinstance(regimes, Mapping):
        raise TypeError(
            "regimes must be a mapping network name -> Regime, e.g. "
            f"{{'qvalue_network': RigL(...)}}; got {type(regimes).__name__}."
        )
    known = loss_network_names(loss)
    holder = loss._modules.get(MASK_HOLDER)
    if holder is None:
        holder = nn.Module()
        setattr(loss, MASK_HOLDER, holder)

    groups = []
    for name, regime in regimes.items():
        if name not in known:
            raise ValueError(
                f"{type(loss).__name__} has no network {name!r} with functional parameters; "
                f"known networks: {known}."
            )
        module = getattr(loss, name)
        params = getattr(loss, f"{name}_params")
        target = loss._modules.get(f"target_{name}_params")
        specs = []
        if isinstance(regime, Regime) and not regime.is_dense:
            for lname, layer in sparsifiable_layers(module):
                if hasattr(layer, "weight" + MASK_SUFFIX):
                    raise ValueError(
                        f"Layer {name}.{lname} already carries a weight mask (was the module "
                        "passed to sparsify() before building the loss?). Sparsify either the "
                        "loss (recommended: TD3/SAC critics are copied into the loss) or the "
                        "module, not both."
                    )
                key = (*lname.split("."), "weight") if lname else ("weight",)
                param = params.get(key, None)
                if param is None:
                    raise ValueError(
                        f"{name}_params has no entry {key} for layer {lname!r}: the loss's "
                        "parameter container does not mirror the module structure."
                    )
                ensemble_dims = param.dim() - layer.weight.dim()
                if ensemble_dims < 0 or tuple(param.shape[ensemble_dims:]) != tuple(
                    layer.weight.shape
                ):
                    raise ValueError(
                        f"{name}_params{list(key)} has shape {tuple(param.shape)}, which does not "
                        f"end with the layer's weight shape {tuple(layer.weight.shape)}."
                    )
                public = ".".join([name, lname, "weight"] if lname else [name, "weight"])
                specs.append(
                    SparseParam(
                        name=public,
                        param=param,
                        mask_owner=holder,
                        mask_attr=public.replace(".", "__"),
                        ensemble_dims=ensemble_dims,
                        targets=[_target_getter(target, key)] if target is not None else [],
                    )
                )
        groups.append((name, regime, specs))
    return SparseController(groups, optimizer, seed=seed, state_masking=state_masking)

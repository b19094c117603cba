"""``sparsify`` and ``SparseController``: masks, schedules and optimizer-state bookkeeping.

Usage in a training step (the order matters)::

    ctl = sparsify(critic, RigL(stop_step=800_000), critic_optim, seed=0)
    ...
    loss.backward()
    ctl.mask_gradients()          # before any clipping; keeps the dense grad on update steps
    clip_grad_norm_(critic.parameters(), 20.0)
    critic_optim.step()
    ctl.step()                    # topology updates if due; re-mask weights (and state)
    target_updater.step()         # tied targets keep exact zeros (see tie_targets)

Design (see ``docs/concepts/sparsity.md``):

* masked-dense weights: the weight tensor holds exact zeros; no parametrization, no forward
  hook, so the forward pass costs what the dense one costs and compiles unchanged;
* masks are ``torch.bool`` buffers mutated in place (same tensor objects for the whole run,
  so compiled graphs and state dicts see them);
* ``mask_gradients`` multiplies the gradients by the masks (one pass); on steps where
  a topology update will follow, it first keeps a copy of the dense gradients for growth;
* ``step`` first drops and grows on update steps, then multiplies the weights by the masks
  (every step) and every parameter-shaped optimizer state tensor and the tied targets (on
  update steps, on steps without ``mask_gradients``, or always with
  ``state_masking="always"``): with masked gradients, torch optimizers keep the zeros of
  masked positions by themselves;
* both methods run eagerly even when called inside a ``torch.compile``-d function
  (``torch.compiler.disable``), so the Python step counter never becomes a guard.

The optimizer step on a topology-update iteration is *not* skipped (unlike RigL's reference
code): the controller runs after ``optimizer.step()`` and then updates the mask, as RigL-RL's
tf-agents path and TF SET do.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .distributions import allocate_kept_counts
from .dynamic import drop_indices, grow_indices
from .masks import MASK_SUFFIX, random_mask, sparsifiable_layers
from .optim_state import check_optimizer_owns, param_group_of, param_shaped_state, reset_state_at
from .regimes import (
    SET,
    GradualGrowth,
    GradualPruning,
    Regime,
    RigL,
    _DynamicSparse,
    regime_from_dict,
)
from .schedules import (
    cosine_drop_fraction,
    cubic_progress,
    is_dynamic_update_step,
    is_gradual_update_step,
)

__all__ = ["LayerUpdate", "SparseController", "SparseParam", "UpdateStats", "sparsify"]

_STATE_VERSION = 1
TargetLike = torch.Tensor | Callable[[], torch.Tensor]


@dataclass
class SparseParam:
    """One tensor to sparsify, as handed to :class:`SparseController` (advanced use).

    :func:`sparsify` builds these from ``nn.Linear``/``nn.Conv`` layers; the TorchRL
    integration builds them from a loss module's parameter TensorDicts.

    Attributes:
        name: public name (key of ``controller.masks``).
        param: the tensor the optimizer trains.
        mask_owner: module on which the mask is registered as a buffer.
        mask_attr: buffer name of the mask on ``mask_owner``.
        ensemble_dims: number of leading dims indexing independent networks (1 for TorchRL's
            stacked ``[K, out, in]`` critic parameters): each member gets its own ER count and
            its own drop/grow.
        targets: tensors (or zero-argument callables returning them) that must share the mask,
            e.g. target-network copies; they are masked when tied and at every topology update
            (every step with ``state_masking="always"``).
    """

    name: str
    param: torch.Tensor
    mask_owner: nn.Module
    mask_attr: str
    ensemble_dims: int = 0
    targets: list[TargetLike] = field(default_factory=list)

    @property
    def layer_shape(self) -> tuple[int, ...]:
        """Shape of one member (the weight shape of one network)."""
        return tuple(self.param.shape[self.ensemble_dims :])

    @property
    def members(self) -> int:
        """Number of ensemble members (1 without ensemble dims)."""
        return math.prod(self.param.shape[: self.ensemble_dims])


@dataclass(frozen=True)
class LayerUpdate:
    """What one topology update did to one sparsified tensor (summed over ensemble members).

    Attributes:
        dropped: weights switched off.
        grown: weights switched on.
        active: active weights after the update.
        numel: size of the tensor.
    """

    dropped: int
    grown: int
    active: int
    numel: int


@dataclass(frozen=True)
class UpdateStats:
    """Statistics of the topology updates made at one optimizer step (for logging).

    Attributes:
        step: optimizer step of the update.
        layers: tensor name -> :class:`LayerUpdate`, for every tensor of the updated regimes.
        drop_fractions: regime key -> scheduled drop fraction :math:`f(t)` (RigL/SET only).
    """

    step: int
    layers: dict[str, LayerUpdate]
    drop_fractions: dict[str, float]

    @property
    def dropped(self) -> int:
        """Weights switched off, over all updated tensors."""
        return sum(u.dropped for u in self.layers.values())

    @property
    def grown(self) -> int:
        """Weights switched on, over all updated tensors."""
        return sum(u.grown for u in self.layers.values())

    @property
    def mask_change_fraction(self) -> float:
        r"""Fraction of mask entries that flipped: :math:`|M_{old} \oplus M_{new}| / N`.

        Dropped and grown sets are disjoint, so this is (dropped + grown) / numel over the
        updated tensors. For RigL at density :math:`d` and drop fraction :math:`f` it is
        about :math:`2fd`; ``grown / active`` is the fraction of connections replaced.
        """
        numel = sum(u.numel for u in self.layers.values())
        return (self.dropped + self.grown) / numel if numel else 0.0

    def as_dict(self, prefix: str = "sparse/") -> dict[str, float]:
        """Flat scalars for a logger: dropped, grown, mask_change_fraction, drop_fraction/<key>."""
        out = {
            f"{prefix}dropped": float(self.dropped),
            f"{prefix}grown": float(self.grown),
            f"{prefix}mask_change_fraction": self.mask_change_fraction,
        }
        for key, value in self.drop_fractions.items():
            out[f"{prefix}drop_fraction/{key or 'all'}"] = value
        return out


class _Entry:
    """A SparseParam plus its controller-side state (kept counts per member)."""

    def __init__(self, spec: SparseParam, counts: list[int], schedule_base: list[int]):
        self.spec = spec
        self.name = spec.name
        self.param = spec.param
        self.members = spec.members
        self.member_numel = math.prod(spec.layer_shape)
        self.counts = counts
        # GradualPruning: zeros at the end; GradualGrowth: zeros at the start; else unused.
        self.schedule_base = schedule_base

    @property
    def mask(self) -> torch.Tensor:
        return getattr(self.spec.mask_owner, self.spec.mask_attr)

    @property
    def is_full(self) -> bool:
        return all(c == self.member_numel for c in self.counts)

    def targets(self) -> list[torch.Tensor]:
        return [t() if callable(t) else t for t in self.spec.targets]

    @property
    def numel(self) -> int:
        return self.members * self.member_numel


@dataclass
class _Group:
    key: str
    regime: Regime
    entries: list[_Entry]

    def is_update_step(self, t: int) -> bool:
        r = self.regime
        if isinstance(r, _DynamicSparse):
            return is_dynamic_update_step(
                t, update_interval=r.update_interval, stop_step=r.stop_step
            )
        if isinstance(r, (GradualPruning, GradualGrowth)):
            return is_gradual_update_step(
                t, start_step=r.start_step, stop_step=r.stop_step, interval=r.interval
            )
        return False

    def needs_dense_grad(self, t: int) -> bool:
        r = self.regime
        grows_by_grad = isinstance(r, (RigL, GradualGrowth))
        seeds_moments = isinstance(r, (SET, RigL, GradualGrowth)) and r.grown_moments == "gradient"
        return (grows_by_grad or seeds_moments) and self.is_update_step(t)


def _mul_masks_(tensors: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """``t *= mask`` for each pair; bool masks are read as uint8 (5x faster than bool on CPU)."""
    if not tensors:
        return
    views = [m.view(torch.uint8) for m in masks]
    if tensors[0].device.type == "cpu":
        for t, m in zip(tensors, views):
            t.mul_(m)
    else:
        torch._foreach_mul_(tensors, views)


class SparseController:
    r"""State and per-step logic of one or more sparse regimes sharing one optimizer.

    Built by :func:`sparsify` (or :func:`torchrl_mst.integrations.sparsify_loss`); see the
    module docstring for the call order. One controller = one step counter: give modules
    trained by different optimizers (stepped at different rates) their own controllers.

    Args:
        groups: ``(key, regime, tensors)`` triples; ``key`` names the regime in statistics.
        optimizer: optimizer training every tensor, or ``None`` (then no optimizer state is
            masked or reset; fine for plain SGD without momentum).
        seed: seed of the controller's own generators (masks, tie-breaking, SET growth).
            ``None`` draws one from the global torch RNG (so ``torch.manual_seed`` fixes it).
        state_masking: when :meth:`step` multiplies the optimizer state and the tied targets
            by the masks. ``"auto"`` (default): on topology-update steps, and on every step
            whose gradients were not masked by :meth:`mask_gradients`; the weights are
            re-masked on every step regardless. With masked gradients, every
            ``torch.optim`` optimizer keeps exact zeros at masked positions by itself
            (Adam/AdamW: :math:`m = \beta_1 0 + (1-\beta_1) 0`, decoupled decay of 0 is 0), so
            the skipped passes are no-ops; skipping them halves the controller's cost.
            ``"always"``: every step (insurance for custom optimizers whose state can leave
            0 on a zero gradient, e.g. Adamax's ``exp_inf`` becomes ``eps``).
    """

    def __init__(
        self,
        groups: Sequence[tuple[str, Regime, Sequence[SparseParam]]],
        optimizer: torch.optim.Optimizer | None = None,
        *,
        seed: int | None = None,
        state_masking: str = "auto",
    ) -> None:
        if state_masking not in ("auto", "always"):
            raise ValueError(
                f"Unknown state_masking={state_masking!r}; valid values are ['auto', 'always']."
            )
        self.state_masking = state_masking
        self._grads_masked_for = -1
        self.optimizer = optimizer
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._step = 0
        self._num_updates = 0
        self._stash: dict[str, torch.Tensor] = {}
        self._last_update: UpdateStats | None = None
        self._groups: list[_Group] = []

        specs_by_group = self._validate(groups, optimizer)
        with torch.no_grad():
            for (key, regime), specs in specs_by_group:
                self._groups.append(self._init_group(key, regime, specs))
            self._apply_masks()

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _validate(groups, optimizer):
        seen: dict[int, str] = {}
        keys: set[str] = set()
        out = []
        for item in groups:
            key, regime, specs = item
            if not isinstance(regime, Regime):
                raise TypeError(
                    f"Regime for {key or 'the module'!r} must be a Regime (Dense(), "
                    f"StaticSparse(), RigL(), ...), got {type(regime).__name__}."
                )
            if key in keys:
                raise ValueError(f"Regime key {key!r} appears twice.")
            keys.add(key)
            specs = list(specs)
            if regime.is_dense:
                out.append(((key, regime), []))
                continue
            regime.check_ready()
            if not specs:
                raise ValueError(
                    f"{type(regime).__name__} was applied to {key or 'the module'!r}, which has no "
                    "nn.Linear or nn.Conv weight to sparsify. Use Dense() for it, or apply the "
                    "regime to a module that contains Linear/Conv layers."
                )
            for spec in specs:
                if id(spec.param) in seen:
                    raise ValueError(
                        f"Tensor {spec.name!r} is assigned twice (regimes {seen[id(spec.param)]!r} "
                        f"and {key!r}); a tensor can follow only one regime."
                    )
                seen[id(spec.param)] = key
                if hasattr(spec.mask_owner, spec.mask_attr):
                    raise ValueError(
                        f"Tensor {spec.name!r} is already sparsified: its owner already has a "
                        f"{spec.mask_attr!r} attribute. A regime cannot be applied twice to the "
                        "same tensor; reuse the first controller (or build a fresh module)."
                    )
                if spec.param.dim() - spec.ensemble_dims < 2:
                    raise ValueError(
                        f"Tensor {spec.name!r} of shape {tuple(spec.param.shape)} with "
                        f"ensemble_dims={spec.ensemble_dims} is not a weight matrix or kernel."
                    )
                if not spec.param.is_contiguous():
                    raise ValueError(f"Tensor {spec.name!r} must be contiguous.")
            out.append(((key, regime), specs))
        if optimizer is not None:
            check_optimizer_owns(optimizer, {s.name: s.param for _, specs in out for s in specs})
        return out

    def _generator(self, device: torch.device) -> torch.Generator:
        name = str(device) if device.type != "cuda" else f"cuda:{device.index or 0}"
        gen = self._generators.get(name)
        if gen is None:
            gen = torch.Generator(device=name)
            gen.manual_seed((self.seed + zlib.crc32(name.encode())) % 2**63)
            self._generators[name] = gen
        return gen

    def _init_group(self, key: str, regime: Regime, specs: list[SparseParam]) -> _Group:
        if regime.is_dense:
            return _Group(key, regime, [])
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in specs:
            for b in range(spec.members):
                shapes[_member_name(spec, b)] = spec.layer_shape
        if isinstance(regime, GradualGrowth):
            sparsity = regime.initial_sparsity
        else:
            sparsity = regime.sparsity  # type: ignore[attr-defined]
        kept = allocate_kept_counts(shapes, sparsity, regime.distribution)  # type: ignore[attr-defined]

        entries = []
        for spec in specs:
            n = math.prod(spec.layer_shape)
            target = [kept[_member_name(spec, b)] for b in range(spec.members)]
            if isinstance(regime, GradualPruning):
                counts, base = [n] * spec.members, [n - c for c in target]
            elif isinstance(regime, GradualGrowth):
                counts, base = list(target), [n - c for c in target]
            else:
                counts, base = list(target), []
            gen = self._generator(spec.param.device)
            members = [
                random_mask(spec.layer_shape, c, generator=gen, device=spec.param.device)
                for c in counts
            ]
            mask = torch.stack(members).view(spec.param.shape)
            spec.mask_owner.register_buffer(spec.mask_attr, mask, persistent=True)
            entries.append(_Entry(spec, counts, base))
        return _Group(key, regime, entries)

    # ------------------------------------------------------------------ public API
    @property
    def step_count(self) -> int:
        """Optimizer steps seen so far (calls of :meth:`step`)."""
        return self._step

    @property
    def num_updates(self) -> int:
        """Topology updates performed so far (steps on which any regime changed its masks)."""
        return self._num_updates

    @property
    def regimes(self) -> dict[str, Regime]:
        """Regime key -> regime."""
        return {g.key: g.regime for g in self._groups}

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Tensor name -> live boolean mask buffer (``True`` = trainable weight)."""
        return {e.name: e.mask for g in self._groups for e in g.entries}

    @property
    def last_update(self) -> UpdateStats | None:
        """Statistics of the most recent topology update, or ``None`` before the first."""
        return self._last_update

    def _entries(self) -> list[_Entry]:
        return [e for g in self._groups for e in g.entries]

    def sparsity(self) -> float:
        """Global fraction of zeros over all sparsified tensors (0.0 if there are none)."""
        entries = self._entries()
        total = sum(e.numel for e in entries)
        return 1.0 - sum(sum(e.counts) for e in entries) / total if total else 0.0

    def densities(self) -> dict[str, float]:
        """Tensor name -> fraction of active weights (ensemble members pooled)."""
        return {e.name: sum(e.counts) / e.numel for e in self._entries()}

    def kept_counts(self) -> dict[str, list[int]]:
        """Tensor name -> active weights per ensemble member (one entry without ensembles)."""
        return {e.name: list(e.counts) for e in self._entries()}

    def tie_targets(self, targets: nn.Module | Mapping[str, TargetLike]) -> None:
        r"""Make target-network tensors share the masks.

        A hard copy of a masked network copies its zeros, and a soft (Polyak) update
        :math:`\theta' \leftarrow \tau\theta + (1-\tau)\theta'` keeps masked entries exactly 0
        as long as the target is already 0 there; a topology update (or a target that was
        copied before sparsifying) breaks that. Tied targets are masked now and at every
        topology update (every step with ``state_masking="always"`` or when gradients were not
        masked), so their masked entries stay exactly 0 through any number of updates.

        Args:
            targets: a module with the same parameter names as the sparsified one (e.g. its
                ``deepcopy``), or a mapping tensor name -> tensor (or zero-argument callable
                returning the tensor, for containers that replace tensors on ``.to()``).
        """
        entries = {e.name: e for e in self._entries()}
        if isinstance(targets, nn.Module):
            module = targets
            names = dict(module.named_parameters())
            mapping: dict[str, TargetLike] = {}
            for name in entries:
                if name not in names:
                    raise KeyError(
                        f"Target module has no parameter {name!r}; expected the same structure "
                        "as the sparsified module (e.g. a deepcopy of it)."
                    )
                mapping[name] = _param_getter(module, name)
        else:
            mapping = dict(targets)
        with torch.no_grad():
            for name, target in mapping.items():
                if name not in entries:
                    raise KeyError(f"Unknown sparsified tensor {name!r}; known: {sorted(entries)}.")
                entry = entries[name]
                tensor = target() if callable(target) else target
                if tensor.shape != entry.param.shape:
                    raise ValueError(
                        f"Target for {name!r} has shape {tuple(tensor.shape)}, expected "
                        f"{tuple(entry.param.shape)}."
                    )
                entry.spec.targets.append(target)
                _mul_masks_([tensor], [entry.mask])

    @torch.compiler.disable
    def mask_gradients(self) -> None:
        """Zero the gradients of masked positions (call after backward, before clipping).

        On a step where a topology update will follow (the next :meth:`step` call), the dense
        gradients of the regimes that grow by gradient (RigL, GradualGrowth) or seed grown
        moments from it are copied first, so growth uses the dense gradient of this batch.
        Tensors without ``.grad`` are skipped. Calling it is optional for correctness of the
        weights (``step`` re-masks them) but required for correct gradient-norm clipping.
        With gradient accumulation, call it once, after the last backward.
        """
        t_next = self._step + 1
        self._grads_masked_for = t_next
        self._stash = {}
        grads: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for group in self._groups:
            keep_dense = group.needs_dense_grad(t_next)
            for e in group.entries:
                grad = e.param.grad
                if grad is None:
                    continue
                if keep_dense:
                    self._stash[e.name] = grad.detach().clone()
                if not e.is_full:
                    grads.append(grad)
                    masks.append(e.mask)
        with torch.no_grad():
            _mul_masks_(grads, masks)

    @torch.compiler.disable
    def step(self) -> UpdateStats | None:
        """Advance one optimizer step: topology updates due now, then re-masking.

        Call right after ``optimizer.step()``. Re-masks the weights, and (see
        ``state_masking``) all parameter-shaped optimizer state and the tied targets. On update
        steps, drops and grows per the regimes and returns the :class:`UpdateStats` (also kept
        in :attr:`last_update`).

        Returns:
            The update statistics on steps with a topology update, else ``None``.
        """
        self._step += 1
        t = self._step
        layers: dict[str, LayerUpdate] = {}
        drop_fractions: dict[str, float] = {}
        with torch.no_grad():
            for group in self._groups:
                if group.is_update_step(t):
                    self._update_group(group, t, layers, drop_fractions)
            full = self.state_masking == "always" or bool(layers) or self._grads_masked_for != t
            self._apply_masks(everything=full)
        self._stash = {}
        if not layers:
            return None
        self._num_updates += 1
        self._last_update = UpdateStats(step=t, layers=layers, drop_fractions=drop_fractions)
        return self._last_update

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Multiply weights, parameter-shaped optimizer state and tied targets by the masks.

        :meth:`step` does this; call it after loading weights from elsewhere.
        """
        self._apply_masks()

    # ------------------------------------------------------------------ internals
    def _apply_masks(self, everything: bool = True) -> None:
        tensors: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for e in self._entries():
            if e.is_full:
                continue
            mask = e.mask
            tensors.append(e.param.detach())
            masks.append(mask)
            if not everything:
                continue
            if self.optimizer is not None:
                for s in param_shaped_state(self.optimizer, e.param):
                    tensors.append(s)
                    masks.append(mask)
            for target in e.targets():
                tensors.append(target.detach())
                masks.append(mask)
        _mul_masks_(tensors, masks)

    def _dense_grad(self, e: _Entry, required: bool) -> torch.Tensor | None:
        grad = self._stash.get(e.name)
        if grad is None:
            grad = e.param.grad
        if grad is None and required:
            raise RuntimeError(
                f"Topology update at step {self._step} needs the dense gradient of {e.name!r}, "
                "but .grad is None. Call controller.step() right after optimizer.step(), with "
                "no optimizer.zero_grad() in between (and mask_gradients() after backward)."
            )
        return grad

    def _update_group(self, group: _Group, t: int, layers: dict, drop_fractions: dict) -> None:
        regime = group.regime
        if isinstance(regime, _DynamicSparse):
            frac = cosine_drop_fraction(
                t, drop_fraction=regime.drop_fraction, stop_step=regime.stop_step
            )
            drop_fractions[group.key] = frac
        for e in group.entries:
            dropped = grown = 0
            n = e.member_numel
            if isinstance(regime, _DynamicSparse):
                ks = [min(math.floor(frac * c), n - c) for c in e.counts]
                if any(ks):
                    by_grad = isinstance(regime, RigL)
                    grad = self._dense_grad(e, required=by_grad)
                    dropped, grown = self._drop_and_grow(
                        e, ks, ks, grad, by_grad, regime.grown_moments
                    )
            elif isinstance(regime, GradualPruning):
                c = cubic_progress(t, start_step=regime.start_step, stop_step=regime.stop_step)
                new = [n - round(z * c) for z in e.schedule_base]
                ks = [max(0, old - want) for old, want in zip(e.counts, new)]
                if any(ks):
                    dropped, grown = self._drop_and_grow(e, ks, [0] * len(ks), None, False, "zero")
            elif isinstance(regime, GradualGrowth):
                c = cubic_progress(t, start_step=regime.start_step, stop_step=regime.stop_step)
                new = [n - round(z * (1.0 - c)) for z in e.schedule_base]
                ks = [max(0, want - old) for old, want in zip(e.counts, new)]
                if any(ks):
                    grad = self._dense_grad(e, required=True)
                    dropped, grown = self._drop_and_grow(
                        e, [0] * len(ks), ks, grad, True, regime.grown_moments
                    )
            layers[e.name] = LayerUpdate(dropped, grown, sum(e.counts), e.numel)

    def _drop_and_grow(
        self,
        e: _Entry,
        n_drop: list[int],
        n_grow: list[int],
        grad: torch.Tensor | None,
        grow_by_grad: bool,
        grown_moments: str,
    ) -> tuple[int, int]:
        """Per member: drop ``n_drop[b]`` smallest active, grow ``n_grow[b]`` among inactive.

        Returns ``(dropped, grown)`` summed over members.
        """
        weight = e.param.detach().view(e.members, -1)
        mask = e.mask.view(e.members, -1)
        flat_grad = grad.detach().reshape(e.members, -1) if grad is not None else None
        gen = self._generator(weight.device)
        drops, grows = [], []
        for b in range(e.members):
            candidates = ~mask[b]  # inactive BEFORE this update: just-dropped are excluded
            if n_drop[b]:
                idx = drop_indices(weight[b], mask[b], n_drop[b], generator=gen)
                mask[b, idx] = False
                weight[b, idx] = 0
                drops.append(idx + b * e.member_numel)
            if n_grow[b]:
                scores = flat_grad[b] if (grow_by_grad and flat_grad is not None) else None
                idx = grow_indices(candidates, n_grow[b], generator=gen, scores=scores)
                mask[b, idx] = True
                weight[b, idx] = 0
                grows.append(idx + b * e.member_numel)
            e.counts[b] += n_grow[b] - n_drop[b]
        if self.optimizer is not None:
            group = param_group_of(self.optimizer, e.param)
            if drops:
                reset_state_at(self.optimizer, e.param, torch.cat(drops), mode="zero", group=group)
            if grows:
                reset_state_at(
                    self.optimizer,
                    e.param,
                    torch.cat(grows),
                    grad=grad,
                    mode=grown_moments,
                    group=group,
                )
        return sum(n_drop), sum(n_grow)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (take it between iterations).

        Returns:
            ``{"version", "step", "num_updates", "seed", "regimes", "tensors", "masks",
            "generators"}``; masks are copies (the module's ``state_dict`` also holds them).
        """
        return {
            "version": _STATE_VERSION,
            "step": self._step,
            "num_updates": self._num_updates,
            "seed": self.seed,
            "regimes": {g.key: g.regime.to_dict() for g in self._groups},
            "tensors": {
                e.name: {
                    "shape": list(e.param.shape),
                    "ensemble_dims": e.spec.ensemble_dims,
                    "counts": list(e.counts),
                    "schedule_base": list(e.schedule_base),
                }
                for e in self._entries()
            },
            "masks": {e.name: e.mask.detach().clone() for e in self._entries()},
            "generators": {name: g.get_state() for name, g in self._generators.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`, after checking it matches this controller.

        Masks are copied in place into the existing buffers, then weights, optimizer state
        and targets are re-masked (a no-op if they were saved from the same run).

        Args:
            state_dict: output of :meth:`state_dict`.

        Raises:
            ValueError: on a different version, regime configuration, tensor set, shape,
                or on masks inconsistent with their recorded counts.
        """
        version = state_dict.get("version")
        if version != _STATE_VERSION:
            raise ValueError(
                f"Unsupported SparseController state version {version!r} (expected "
                f"{_STATE_VERSION})."
            )
        saved_regimes = {k: regime_from_dict(v) for k, v in state_dict["regimes"].items()}
        if saved_regimes != self.regimes:
            raise ValueError(
                "Regime configuration differs from the checkpoint: saved "
                f"{saved_regimes}, current {self.regimes}. Build the controller with the same "
                "regimes (same stop_step etc.) before loading."
            )
        entries = {e.name: e for e in self._entries()}
        tensors = state_dict["tensors"]
        missing = sorted(set(entries) - set(tensors))
        unexpected = sorted(set(tensors) - set(entries))
        if missing or unexpected:
            raise ValueError(
                f"Sparsified tensors differ from the checkpoint: missing {missing}, "
                f"unexpected {unexpected}."
            )
        for name, info in tensors.items():
            e = entries[name]
            if list(info["shape"]) != list(e.param.shape):
                raise ValueError(
                    f"Shape mismatch for {name!r}: checkpoint {tuple(info['shape'])}, "
                    f"model {tuple(e.param.shape)}."
                )
            mask = state_dict["masks"][name]
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(e.param.shape):
                raise ValueError(
                    f"Saved mask of {name!r} is not a bool tensor of the weight's shape."
                )
            per_member = mask.reshape(e.members, -1).sum(dim=1).tolist()
            if per_member != list(info["counts"]):
                raise ValueError(
                    f"Saved mask of {name!r} has {per_member} active weights per member, but the "
                    f"checkpoint records {list(info['counts'])}: the checkpoint is corrupted."
                )
        with torch.no_grad():
            for name, info in tensors.items():
                e = entries[name]
                e.mask.copy_(state_dict["masks"][name])
                e.counts = list(info["counts"])
                e.schedule_base = list(info["schedule_base"])
            self._step = int(state_dict["step"])
            self.seed = int(state_dict["seed"])  # generators of devices not used yet derive from it
            self._num_updates = int(state_dict["num_updates"])
            self._generators = {}
            for name, gen_state in state_dict["generators"].items():
                if name.startswith("cuda") and not torch.cuda.is_available():
                    continue  # run moved off the GPU: generators re-derive from the seed
                gen = torch.Generator(device=name)
                gen.set_state(gen_state)
                self._generators[name] = gen
            self._stash = {}
            self._grads_masked_for = -1
            self._apply_masks()

    def __repr__(self) -> str:
        parts = ", ".join(f"{k or 'module'}: {r!r}" for k, r in self.regimes.items())
        return (
            f"{type(self).__name__}(step={self._step}, tensors={len(self._entries())}, "
            f"sparsity={self.sparsity():.4f}, regimes={{{parts}}})"
        )


def _member_name(spec: SparseParam, b: int) -> str:
    return spec.name if spec.ensemble_dims == 0 else f"{spec.name}[{b}]"


def _param_getter(module: nn.Module, name: str) -> Callable[[], torch.Tensor]:
    owner_name, _, attr = name.rpartition(".")

    def get() -> torch.Tensor:
        owner = module.get_submodule(owner_name) if owner_name else module
        return getattr(owner, attr)

    return get


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def sparsify(
    module: nn.Module,
    regime: Regime | Mapping[str, Regime],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    seed: int | None = None,
    state_masking: str = "auto",
) -> SparseController:
    """Apply a training regime to a module in place and return its controller.

    Every ``weight`` of an ``nn.Linear`` or ``nn.Conv*`` layer (subclasses included) under
    the module gets a boolean buffer ``weight_mask`` next to it, with exact per-layer kept
    counts from :func:`~torchrl_mst.sparse.allocate_kept_counts`, drawn uniformly at random;
    masked weights (and their optimizer state) are zeroed now. Biases and norms stay dense.

    Args:
        module: the module to sparsify.
        regime: one regime for the whole module, or a mapping submodule name -> regime to
            combine regimes (e.g. ``{"critic": RigL(...), "actor": StaticSparse()}``); keys are
            names accepted by ``module.get_submodule`` (``""`` = the module itself).
        optimizer: the optimizer that trains the module (its state is masked and reset), or
            ``None``.
        seed: seed of the controller's generators (see :class:`SparseController`).
        state_masking: ``"auto"`` or ``"always"`` (see :class:`SparseController`).

    Returns:
        The :class:`SparseController`. Names in ``controller.masks`` are parameter names
        relative to ``module`` (e.g. ``"critic.q1.blocks.0.linear.weight"``).

    Raises:
        ValueError: no Linear/Conv weight under a non-dense regime, a tensor sparsified twice,
            an optimizer not owning the parameters, or a schedule left unset (``stop_step``).
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
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}.")
    if isinstance(regime, Regime):
        spec: dict[str, Regime] = {"": regime}
    elif isinstance(regime, Mapping):
        spec = dict(regime)
        for key in spec:
            if not isinstance(key, str):
                raise TypeError(f"Regime mapping keys must be submodule names, got {key!r}.")
    else:
        raise TypeError(
            "regime must be a Regime (Dense(), StaticSparse(), RigL(), SET(), GradualPruning(), "
            f"GradualGrowth()) or a mapping submodule name -> Regime, got {type(regime).__name__}."
        )
    groups = []
    for key, reg in spec.items():
        try:
            sub = module.get_submodule(key) if key else module
        except AttributeError as err:
            children = [n for n, _ in module.named_children()]
            raise ValueError(
                f"{type(module).__name__} has no submodule {key!r} (children: {children})."
            ) from err
        params = []
        if isinstance(reg, Regime) and not reg.is_dense:
            for lname, layer in sparsifiable_layers(sub):
                params.append(
                    SparseParam(
                        name=_join(key, lname, "weight"),
                        param=layer.weight,
                        mask_owner=layer,
                        mask_attr="weight" + MASK_SUFFIX,
                    )
                )
        groups.append((key, reg, params))
    return SparseController(groups, optimizer, seed=seed, state_masking=state_masking)

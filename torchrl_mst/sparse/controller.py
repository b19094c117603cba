"""``SparseController``: the engine that applies any regime (masks, updates, optimizer state).

Usage in a training step (the order matters)::

    ctl = sparsify(loss, {"critic": RigL(stop_step=800_000)}, critic_optim, seed=0)
    ...
    loss_value.backward()
    ctl.mask_gradients()          # before any clipping; keeps the dense grad on update steps
    clip_grad_norm_(critic_params, 20.0)
    critic_optim.step()
    ctl.step()                    # topology updates if due; re-mask weights (and state)

The controller checks no regime type: each :class:`~torchrl_mst.sparse.Regime` states when
its masks change, how many weights each update drops and grows, and by which scores
(``regimes.py``); the controller draws the initial masks, asks the regime at every step, and
keeps the invariants:

* masked-dense weights: the weight tensor holds exact zeros; no parametrization, no forward
  hook on the loss path, so the forward pass costs what the dense one costs;
* masks are ``torch.bool`` buffers mutated in place (same tensor objects for the whole run);
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

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ._tensors import _MASK_OF, TargetLike, _Entry, _mul_masks_, _param_getter, _SparseTensor
from .distributions import allocate_kept_counts
from .dynamic import drop_indices, grow_indices
from .masks import random_mask
from .optim_state import check_optimizer_owns, param_group_of, param_shaped_state, reset_state_at
from .regimes import Regime, regime_from_dict
from .stats import LayerUpdate, UpdateStats

__all__ = ["SparseController", "StateMasking"]

StateMasking = Literal["auto", "always"]
"""When optimizer state and tied targets are re-masked (see :class:`SparseController`)."""

_STATE_VERSION = 2


class _Group:
    def __init__(self, key: str, regime: Regime, entries: list[_Entry]) -> None:
        self.key = key
        self.regime = regime
        self.entries = entries


class SparseController:
    r"""State and per-step logic of one or more sparse regimes sharing one optimizer.

    Built by :func:`~torchrl_mst.sparse.sparsify`; see the module docstring for the call
    order. One controller = one step counter: give modules trained by different optimizers
    (stepped at different rates) their own controllers.

    Args:
        groups: ``(key, regime, tensors)`` triples; ``key`` names the regime in statistics
            (internal: :func:`~torchrl_mst.sparse.sparsify` builds them).
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
        groups: Sequence[tuple[str, Regime, Sequence[_SparseTensor]]],
        optimizer: torch.optim.Optimizer | None = None,
        *,
        seed: int | None = None,
        state_masking: StateMasking = "auto",
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
            for key, regime, specs in specs_by_group:
                self._groups.append(self._init_group(key, regime, specs))
            self._apply_masks()

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _validate(
        groups: Sequence[tuple[str, Regime, Sequence[_SparseTensor]]],
        optimizer: torch.optim.Optimizer | None,
    ) -> list[tuple[str, Regime, list[_SparseTensor]]]:
        seen: dict[int, str] = {}
        keys: set[str] = set()
        out: list[tuple[str, Regime, list[_SparseTensor]]] = []
        for key, regime, given in groups:
            if not isinstance(regime, Regime):
                raise TypeError(
                    f"Regime for {key or 'the module'!r} must be a Regime (Dense(), "
                    f"StaticSparse(), RigL(), ...), got {type(regime).__name__}."
                )
            if key in keys:
                raise ValueError(f"Regime key {key!r} appears twice.")
            keys.add(key)
            specs = list(given)
            if regime.is_dense:
                out.append((key, regime, []))
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
                if spec.mask_attr in spec.mask_owner._buffers:
                    raise ValueError(
                        f"Tensor {spec.name!r} is already sparsified: its owner already has a "
                        f"{spec.mask_attr!r} buffer. A regime cannot be applied twice to the "
                        "same tensor; reuse the first controller (or build a fresh module)."
                    )
                if spec.param.dim() - spec.ensemble_dims < 2:
                    raise ValueError(
                        f"Tensor {spec.name!r} of shape {tuple(spec.param.shape)} with "
                        f"ensemble_dims={spec.ensemble_dims} is not a weight matrix or kernel."
                    )
                if not spec.param.is_contiguous():
                    raise ValueError(f"Tensor {spec.name!r} must be contiguous.")
                if spec.initial_mask is not None and (
                    spec.initial_mask.dtype != torch.bool
                    or tuple(spec.initial_mask.shape) != tuple(spec.param.shape)
                ):
                    raise ValueError(
                        f"The loaded mask of {spec.name!r} is not a bool tensor of shape "
                        f"{tuple(spec.param.shape)}: the state dict comes from another model."
                    )
            out.append((key, regime, specs))
        if optimizer is not None:
            check_optimizer_owns(optimizer, {s.name: s.param for _, _, ss in out for s in ss})
        return out

    def _generator(self, device: torch.device) -> torch.Generator:
        name = str(device) if device.type != "cuda" else f"cuda:{device.index or 0}"
        gen = self._generators.get(name)
        if gen is None:
            gen = torch.Generator(device=name)
            gen.manual_seed((self.seed + zlib.crc32(name.encode())) % 2**63)
            self._generators[name] = gen
        return gen

    def _init_group(self, key: str, regime: Regime, specs: list[_SparseTensor]) -> _Group:
        if regime.is_dense:
            return _Group(key, regime, [])
        shapes = {
            spec.member_name(b): spec.layer_shape for spec in specs for b in range(spec.members)
        }
        kept = allocate_kept_counts(shapes, regime.mask_sparsity, regime.mask_distribution)
        empty = [name for name, count in kept.items() if count == 0]
        if empty:
            total = sum(_numel(shape) for shape in shapes.values())
            raise ValueError(
                f"{key}: sparsity {regime.mask_sparsity:g} keeps "
                f"{sum(kept.values())} of {total} weights, fewer than its {len(shapes)} layers, "
                f"so {len(empty)} layer(s) would be all zeros ({', '.join(empty[:3])}). Lower the "
                "sparsity (e.g. static:0.9) or widen the network (a larger --scale)."
            )
        entries = []
        for spec in specs:
            n = _numel(spec.layer_shape)
            allocated = [kept[spec.member_name(b)] for b in range(spec.members)]
            device = spec.param.device
            if spec.initial_mask is not None:
                mask = spec.initial_mask.detach().to(device=device).clone()
                counts = mask.reshape(spec.members, -1).sum(dim=1).tolist()
            else:
                counts = [regime.initial_active(c, n) for c in allocated]
                gen = self._generator(device)
                members = [
                    random_mask(spec.layer_shape, c, generator=gen, device=device) for c in counts
                ]
                mask = torch.stack(members).view(spec.param.shape)
            spec.mask_owner.register_buffer(spec.mask_attr, mask, persistent=True)
            entry = _Entry(spec, counts, allocated)
            _MASK_OF[spec.param] = entry
            entries.append(entry)
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

        :func:`~torchrl_mst.sparse.sparsify` ties a loss's target parameters by itself; use
        this for a target *module* you keep yourself. A hard copy of a masked network copies
        its zeros, and a soft (Polyak) update keeps masked entries exactly 0 as long as the
        target is already 0 there; a topology update (or a target that was copied before
        sparsifying) breaks that. Tied targets are masked now and at every topology update
        (every step with ``state_masking="always"`` or when gradients were not masked).

        Args:
            targets: a module with the same parameter names as the sparsified one (e.g. its
                ``deepcopy``), or a mapping tensor name -> tensor (or zero-argument callable
                returning the tensor, for containers that replace tensors on ``.to()``).
        """
        entries = {e.name: e for e in self._entries()}
        mapping: dict[str, TargetLike] = {}
        if isinstance(targets, nn.Module):
            names = dict(targets.named_parameters())
            for name in entries:
                if name not in names:
                    raise KeyError(
                        f"Target module has no parameter {name!r}; expected the same structure "
                        "as the sparsified module (e.g. a deepcopy of it)."
                    )
                mapping[name] = _param_getter(targets, name)
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
        gradients of the regimes that read them (gradient growth, gradient-seeded moments)
        are copied first, so growth uses the dense gradient of this batch. Tensors without
        ``.grad`` are skipped. Calling it is optional for correctness of the weights
        (``step`` re-masks them) but required for correct gradient-norm clipping. With
        gradient accumulation, call it once, after the last backward.
        """
        t_next = self._step + 1
        self._grads_masked_for = t_next
        self._stash = {}
        grads: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for group in self._groups:
            keep_dense = group.regime.needs_dense_grad(t_next)
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
                if group.regime.is_dense or not group.regime.is_update_step(t):
                    continue
                fraction = group.regime.scheduled_drop_fraction(t)
                if fraction is not None:
                    drop_fractions[group.key] = fraction
                for e in group.entries:
                    layers[e.name] = self._update_entry(group.regime, e, t)
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

    # ------------------------------------------------------------------ the engine
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

    def _update_entry(self, regime: Regime, e: _Entry, t: int) -> LayerUpdate:
        """Apply one update of ``regime`` to one tensor; per member: drop, then grow."""
        n = e.member_numel
        sizes = [regime.update_sizes(t, c, a, n) for c, a in zip(e.counts, e.allocated)]
        if not any(d or g for d, g in sizes):
            return LayerUpdate(0, 0, sum(e.counts), e.numel)
        reads_grad = regime.grows_by_gradient or regime.grown_init == "gradient"
        grows = any(g for _, g in sizes)
        grad = (
            self._dense_grad(e, required=regime.grows_by_gradient and grows) if reads_grad else None
        )
        weight = e.param.detach().view(e.members, -1)
        mask = e.mask.view(e.members, -1)
        flat_grad = grad.detach().reshape(e.members, -1) if grad is not None else None
        gen = self._generator(weight.device)
        drops, grown = [], []
        for b, (n_drop, n_grow) in enumerate(sizes):
            g_b = flat_grad[b] if flat_grad is not None else None
            drop_idx = weight.new_empty(0, dtype=torch.long)
            grow_idx = weight.new_empty(0, dtype=torch.long)
            if n_drop:
                drop_idx = drop_indices(
                    regime.drop_score(weight[b], g_b), mask[b], n_drop, generator=gen
                )
            if n_grow:
                candidates = ~mask[b]  # inactive BEFORE this update
                if regime.regrows_dropped:
                    candidates[drop_idx] = True  # RigL's paper: just-dropped may come back
                grow_idx = grow_indices(
                    candidates, n_grow, generator=gen, scores=regime.grow_score(weight[b], g_b)
                )
            if regime.regrows_dropped and n_drop and n_grow:
                # Dropped and regrown by the same update: the weight keeps its value and
                # optimizer state; neither a drop nor a growth happened there.
                kept = torch.isin(drop_idx, grow_idx)
                grow_idx = grow_idx[~torch.isin(grow_idx, drop_idx)]
                drop_idx = drop_idx[~kept]
            mask[b, drop_idx] = False
            weight[b, drop_idx] = 0
            mask[b, grow_idx] = True
            weight[b, grow_idx] = 0
            drops.append(drop_idx + b * n)
            grown.append(grow_idx + b * n)
            e.counts[b] += n_grow - n_drop
        drop_all, grow_all = torch.cat(drops), torch.cat(grown)
        if self.optimizer is not None:
            group = param_group_of(self.optimizer, e.param)
            if drop_all.numel():
                reset_state_at(self.optimizer, e.param, drop_all, mode="zero", group=group)
            if grow_all.numel():
                reset_state_at(
                    self.optimizer,
                    e.param,
                    grow_all,
                    grad=grad,
                    mode=regime.grown_init,
                    group=group,
                )
        return LayerUpdate(int(drop_all.numel()), int(grow_all.numel()), sum(e.counts), e.numel)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (take it between iterations).

        Returns:
            ``{"version", "step", "num_updates", "seed", "regimes", "tensors", "masks",
            "generators"}``; masks are copies (the loss's or module's ``state_dict`` also holds
            them).
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
                    "allocated": list(e.allocated),
                }
                for e in self._entries()
            },
            "masks": {e.name: e.mask.detach().clone() for e in self._entries()},
            "generators": {name: g.get_state() for name, g in self._generators.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`, after checking it matches this controller.

        Masks are copied in place into the existing buffers, then weights, optimizer state
        and targets are re-masked (a no-op if they were saved from the same run). Version-1
        state dicts (before regimes owned their rule) load too.

        Args:
            state_dict: output of :meth:`state_dict`.

        Raises:
            ValueError: on an unknown version, a different regime configuration, tensor set,
                shape, or on masks inconsistent with their recorded counts.
        """
        version = state_dict.get("version")
        if version not in (1, _STATE_VERSION):
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
                if "allocated" in info:
                    e.allocated = list(info["allocated"])
                elif info.get("schedule_base"):  # version 1 stored zeros at the schedule's end
                    e.allocated = [e.member_numel - z for z in info["schedule_base"]]
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


def _numel(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out

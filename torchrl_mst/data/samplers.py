"""Prioritized sub-trajectory sampling (MR.Q's LAP replay) behind TorchRL's ``Sampler``.

MR.Q samples windows of ``H`` consecutive transitions whose START index is drawn with
probability proportional to its LAP priority, among the starts whose window is valid
(see ``PrioritizedSubTrajectorySampler`` for the exact rule). TorchRL's
``PrioritizedSliceSampler`` would fit, but it needs TorchRL's C++ extension (unavailable
with the CPU wheel of torch 2.13) and rescans every trajectory on each call; this sampler
keeps a ``SumTree`` and per-index episode flags up to date
incrementally instead, so a draw costs ``O(B log N)`` and a write ``O(H)`` per new
transition.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from tensordict import NestedKey, TensorDictBase
from torchrl.data.replay_buffers.samplers import PrioritizedSampler
from torchrl.data.replay_buffers.storages import Storage

from torchrl_mst.data.sum_tree import SumTree

__all__ = ["PrioritizedSubTrajectorySampler"]

_STATE_VERSION = 1
_STATE_FILE = "sub_trajectory_sampler.pt"
_COMPACT_EVERY = 256


def _flat_index(index: Any, *, what: str) -> torch.Tensor:
    if isinstance(index, tuple):
        raise ValueError(
            f"{what}: got a tuple index, i.e. a storage with ndim > 1; "
            "PrioritizedSubTrajectorySampler needs a flat storage (ndim=1) of transitions."
        )
    index = torch.as_tensor(index)
    if index.is_floating_point() or index.dtype == torch.bool:
        raise TypeError(f"{what}: indices must be integers, got dtype {index.dtype}.")
    return index.detach().reshape(-1).to("cpu", torch.long)


def _flag(rows: TensorDictBase, key: NestedKey) -> torch.Tensor | None:
    value = rows.get(key, None)
    if value is None:
        return None
    return value.reshape(value.shape[0], -1).bool().any(-1).cpu()


# PrioritizedSampler is subclassed only for isinstance checks inside TorchRL (e.g.
# TensorDictReplayBuffer.update_tensordict_priority is a silent no-op otherwise). Its
# constructor builds the C++ segment trees, so it is not called; every method TorchRL
# uses is overridden here.
class PrioritizedSubTrajectorySampler(PrioritizedSampler):
    r"""LAP-prioritized sampler of fixed-length sub-trajectories for MR.Q.

    Draws ``B`` windows of ``H = horizon`` consecutive transitions from a flat ring
    buffer (a TorchRL storage with ``ndim=1`` written round-robin). The start index
    ``s`` of each window is drawn with probability

    $$
    P(s) = \frac{p_s \, e_s}{\sum_j p_j \, e_j},
    $$

    where $p_s$ is the stored priority of ``s`` and $e_s \in \{0, 1\}$ its
    eligibility. Priorities and eligibility are kept apart, so a start that becomes
    eligible again (its episode continued) recovers its priority.

    **Priority convention.** Priorities are stored exactly as given to
    ``update_priority`` (``alpha = 1``, no epsilon, no importance weights): the loss
    writes them already LAP-transformed, ``td_error = max(|delta|, 1) ** 0.4``. A newly
    written transition gets the running maximum of all priorities ever written
    (``initial_priority`` before the first update). When one call holds the same index
    several times, the maximum of its priorities is kept.

    **Eligibility.** Let the window of ``s`` be ``s, s+1, ..., s+H-1`` (indices modulo the
    capacity, in write order). ``s`` is eligible when, walking the window from ``s``:

    * a *terminated* transition at offset ``k`` ends the walk: the window is valid
      (offsets ``k+1..H-1`` become padding) as long as offsets ``0..k`` are written;
    * a *truncated* end at offset ``k < H-1`` (``truncated``, or ``done`` without
      ``terminated``, or a change of trajectory id to the next transition) makes it
      ineligible: the window would read another episode. A truncation at offset
      ``H-1`` is fine: the window ends exactly at the cut;
    * otherwise all ``H`` offsets must be written and in time order: a window never
      reaches past the newest transition (the write cursor, i.e. unwritten slots or the
      oldest data about to be overwritten).

    So in an episode of length ``L`` cut by truncation, starts ``0..L-H`` are eligible
    and the last ``H-1`` starts are not (a start is eligible when ``H`` transitions of
    its own episode follow it, itself included; each transition carries its own next
    observation, so a window ending on the truncated step reads nothing past the cut).
    After a termination every start stays eligible.

    **Output of** ``sample``: ``index`` of shape ``[B, H]`` (``index[:, 0]`` are the
    drawn starts) in which offsets past a termination repeat the terminal transition's
    index, and ``info = {"validity_mask": mask}`` with ``mask`` ``[B, H]``, ``False`` on
    those padding steps. A ``TensorDictReplayBuffer`` turns them into a ``[B, H]``
    TensorDict; ``MRQReplayBuffer`` also zeroes the padded rewards.

    **Bookkeeping.** ``extend``/``add`` only queue the written indices; the next
    ``sample`` reads the episode flags of those rows (and their neighbours) from the
    storage and refreshes the eligibility of the ``O(H)`` starts whose windows touch
    them. Nothing scans the whole buffer after a write or per draw. In-place edits of
    stored rows (``rb[idx] = ...``) bypass the sampler: call ``rb.mark_update(idx)``. The
    sampler's tensors live on the CPU (about 19 bytes per slot, tree included); indices go
    to the storage's device when the buffer reads it.

    Args:
        capacity: number of slots; must equal the storage's ``max_size``.

    Keyword Args:
        horizon: window length ``H`` (MR.Q: 5, the max of the encoder and value horizons).
        initial_priority: running maximum before any priority update (LAP priorities are
            ``>= 1``, so ``1.0``).
        terminated_key: per-transition termination flag. Defaults to
            ``("next", "terminated")``.
        truncated_key: per-transition truncation flag, ``None`` to ignore. Defaults to
            ``("next", "truncated")``.
        done_key: per-transition done flag; ``done and not terminated`` counts as a
            truncation. ``None`` to ignore. Defaults to ``("next", "done")``.
        traj_key: trajectory ids; consecutive slots with different ids are treated as
            cut (this keeps windows inside one environment when a batched collector's
            ``[n_envs, T]`` output is flattened). Ignored when the data lacks it; ``None``
            disables it. Defaults to ``("collector", "traj_ids")``.

    Examples:
        >>> from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> sampler = PrioritizedSubTrajectorySampler(1000, horizon=5)
        >>> rb = TensorDictReplayBuffer(
        ...     storage=LazyTensorStorage(1000), sampler=sampler, batch_size=4,
        ...     generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        capacity: int,
        *,
        horizon: int = 5,
        initial_priority: float = 1.0,
        terminated_key: NestedKey = ("next", "terminated"),
        truncated_key: NestedKey | None = ("next", "truncated"),
        done_key: NestedKey | None = ("next", "done"),
        traj_key: NestedKey | None = ("collector", "traj_ids"),
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(
                f"capacity must be a positive int, got {capacity!r}; pass the storage's max_size."
            )
        if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon:
            raise ValueError(f"horizon must be an int >= 1, got {horizon!r} (MR.Q uses 5).")
        if horizon > capacity:
            raise ValueError(
                f"horizon ({horizon}) cannot exceed capacity ({capacity}); raise capacity."
            )
        if not (math.isfinite(initial_priority) and initial_priority > 0):
            raise ValueError(
                f"initial_priority must be finite and > 0, got {initial_priority!r} "
                "(LAP priorities are >= 1, so 1.0)."
            )
        self._capacity = capacity
        self._horizon = horizon
        self._initial_priority = float(initial_priority)
        self.terminated_key = terminated_key
        self.truncated_key = truncated_key
        self.done_key = done_key
        self.traj_key = traj_key
        # Read by TensorDictReplayBuffer to reduce a [B, ...] td_error to one value per row.
        self.reduction = "max"
        self._offsets = torch.arange(horizon)
        self._init()

    # --------------------------------------------------------------- state
    def _init(self) -> None:
        n = self._capacity
        self._tree = SumTree(n)
        self._priority = torch.zeros(n, dtype=torch.float64)
        self._eligible = torch.zeros(n, dtype=torch.bool)
        self._terminated = torch.zeros(n, dtype=torch.bool)
        self._cut = torch.zeros(n, dtype=torch.bool)
        self._running_max = self._initial_priority
        self._cursor = 0
        self._len = 0
        self._num_eligible = 0
        self._pending_writes: list[torch.Tensor] = []
        self._pending_updates: list[torch.Tensor] = []

    def _empty(self) -> None:
        self._init()

    @property
    def capacity(self) -> int:
        """Number of slots ``N``."""
        return self._capacity

    @property
    def max_size(self) -> int:
        """Alias of ``capacity`` (TorchRL's name)."""
        return self._capacity

    @property
    def horizon(self) -> int:
        """Window length ``H``."""
        return self._horizon

    @property
    def device(self) -> torch.device:
        """Device of the sampler's bookkeeping (always the CPU)."""
        return torch.device("cpu")

    @property
    def alpha(self) -> float:
        """Priority exponent applied by the sampler: always 1 (priorities come transformed)."""
        return 1.0

    @alpha.setter
    def alpha(self, value: float) -> None:
        raise AttributeError(
            "PrioritizedSubTrajectorySampler stores priorities as given (alpha is fixed to 1): "
            "apply the exponent in the loss, e.g. td_error = max(|delta|, 1) ** 0.4."
        )

    @property
    def beta(self) -> float:
        """Importance-sampling exponent: always 0 (LAP uses no importance weights)."""
        return 0.0

    @beta.setter
    def beta(self, value: float) -> None:
        raise AttributeError(
            "PrioritizedSubTrajectorySampler produces no importance weights (beta is fixed "
            "to 0), as LAP prescribes."
        )

    @property
    def default_priority(self) -> float:
        """Priority given to newly written transitions: the running maximum."""
        return self._running_max

    @property
    def num_eligible(self) -> int:
        """Number of eligible start indices (as of the last ``sample``)."""
        return self._num_eligible

    def priority(self, index: torch.Tensor | int | list[int]) -> torch.Tensor:
        """Stored priorities at ``index`` (eligible or not), float64."""
        idx = _flat_index(index, what="priority")
        return self._priority[idx].reshape(torch.as_tensor(index).shape)

    def sampling_mass(self, storage: Storage | None = None) -> torch.Tensor:
        """Unnormalised sampling mass ``p_s * e_s`` of every slot, shape ``[N]`` (copy).

        Args:
            storage: when given, pending writes are processed first.
        """
        if storage is not None:
            self._flush(storage)
        return self._tree.leaves.clone()

    def eligible(self, storage: Storage | None = None) -> torch.Tensor:
        """Eligibility mask of every slot, shape ``[N]`` (copy).

        Args:
            storage: when given, pending writes are processed first.
        """
        if storage is not None:
            self._flush(storage)
        return self._eligible.clone()

    # -------------------------------------------------------------- writes
    def add(self, index: int | torch.Tensor) -> None:
        """Register one written slot (see ``extend``)."""
        self.extend(torch.as_tensor(index).reshape(1))

    def extend(self, index: torch.Tensor) -> None:
        """Register slots just written by a round-robin writer, in write order.

        New transitions get the running maximum priority now; their episode flags and
        the eligibility of the starts around them are refreshed at the next
        ``sample``.
        """
        idx = _flat_index(index, what="extend")
        if idx.numel() == 0:
            return
        self._check_range(idx, "extend")
        self._priority[idx] = self._running_max
        self._pending_writes.append(idx)
        if len(self._pending_writes) >= _COMPACT_EVERY:
            # Writes without samples in between (e.g. random-action warm-up): keep one
            # tensor, and only the last `capacity` writes, which are all that matter.
            self._pending_writes = [torch.cat(self._pending_writes)[-self._capacity :]]

    def mark_update(self, index: int | torch.Tensor, *, storage: Storage | None = None) -> None:
        """Register slots modified in place (no cursor move); re-read at the next sample."""
        idx = _flat_index(index, what="mark_update")
        self._check_range(idx, "mark_update")
        self._pending_updates.append(idx)
        if len(self._pending_updates) >= _COMPACT_EVERY:
            self._pending_updates = [torch.unique(torch.cat(self._pending_updates))]

    def update_priority(
        self,
        index: int | torch.Tensor,
        priority: float | torch.Tensor,
        *,
        storage: Storage | None = None,
    ) -> None:
        """Store priorities for start indices (as given, no transform).

        Args:
            index: start indices, any shape with ``K`` elements.
            priority: ``K`` values (or one, broadcast), finite and ``>= 0``. For MR.Q,
                ``max(|delta|, 1) ** 0.4``.
            storage: unused (TorchRL signature).
        """
        idx = _flat_index(index, what="update_priority")
        prio = torch.as_tensor(priority).detach().to("cpu", torch.float64).reshape(-1)
        if prio.numel() == 1 and idx.numel() != 1:
            prio = prio.expand(idx.numel())
        if prio.numel() != idx.numel():
            raise ValueError(
                f"update_priority got {idx.numel()} indices but {prio.numel()} priorities; "
                "pass one priority per start index (td_error of shape [B] or [B, 1])."
            )
        if idx.numel() == 0:
            return
        self._check_range(idx, "update_priority")
        if not bool(torch.isfinite(prio).all()) or bool((prio < 0).any()):
            raise ValueError(
                "priorities must be finite and >= 0, got min "
                f"{float(prio.min())} and max {float(prio.max())}."
            )
        unique, inverse = torch.unique(idx, return_inverse=True)
        if unique.numel() != idx.numel():
            prio = torch.zeros(unique.numel(), dtype=torch.float64).scatter_reduce(
                0, inverse, prio, reduce="amax", include_self=False
            )
            idx = unique
        self._priority[idx] = prio
        self._running_max = max(self._running_max, float(prio.max()))
        self._tree._assign(idx, torch.where(self._eligible[idx], prio, 0.0))

    def _check_range(self, idx: torch.Tensor, what: str) -> None:
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self._capacity):
            raise IndexError(
                f"{what}: index out of range [{int(idx.min())}, {int(idx.max())}] for a "
                f"sampler of capacity {self._capacity}."
            )

    # ------------------------------------------------------- bookkeeping
    # Bookkeeping works in "rank" space: rank r = age in write order, 0 = oldest stored
    # slot, len-1 = newest; slot = (r + offset) % N with offset = cursor once full.
    def _offset(self) -> int:
        return self._cursor if self._len == self._capacity else 0

    def _rank(self, slot: torch.Tensor) -> torch.Tensor:
        return (slot - self._offset()) % self._capacity

    def _slot(self, rank: torch.Tensor) -> torch.Tensor:
        return (rank + self._offset()) % self._capacity

    def _flush(self, storage: Storage) -> None:
        """Read the flags of pending slots from ``storage`` and refresh eligibility."""
        n, h = self._capacity, self._horizon
        if getattr(storage, "ndim", 1) != 1:
            raise ValueError(
                f"PrioritizedSubTrajectorySampler needs a flat storage (ndim=1), got "
                f"ndim={storage.ndim}."
            )
        if storage.max_size != n:
            raise ValueError(
                f"storage max_size ({storage.max_size}) differs from the sampler capacity "
                f"({n}); build both with the same capacity."
            )
        stored = len(storage)
        if not self._pending_writes and not self._pending_updates:
            if stored != self._len:
                raise RuntimeError(
                    f"the storage holds {stored} transitions but the sampler was told about "
                    f"{self._len}: write through the replay buffer (rb.extend / rb.add) so "
                    "that the sampler sees every write."
                )
            return
        new = 0
        if self._pending_writes:
            writes = torch.cat(self._pending_writes)
            new = min(writes.numel(), n)
            self._cursor = int(writes[-1] + 1) % n
            self._len = stored
        updates = torch.cat(self._pending_updates) if self._pending_updates else None
        self._pending_writes, self._pending_updates = [], []

        if updates is None:
            # Only appends (the usual case): the new slots are the newest `new` ranks; the
            # slot before them gets a successor (its trajectory-id cut may change).
            first = max(self._len - new - 1, 0)
            flag_ranks = torch.arange(first, self._len)
            start_ranks = torch.arange(max(first - h + 1, 0), self._len)
        else:
            changed = self._rank(torch.unique(updates))
            changed = changed[changed < self._len]
            if new:
                changed = torch.cat([changed, torch.arange(self._len - new, self._len)])
            flag_ranks = torch.unique(torch.cat([changed, changed - 1]))
            flag_ranks = flag_ranks[flag_ranks >= 0]
            back = (flag_ranks[:, None] - self._offsets).reshape(-1)
            start_ranks = torch.unique(back[back >= 0])
        if flag_ranks.numel():
            self._reflag(storage, flag_ranks)
            self._refresh_eligibility(start_ranks)

    def _reflag(self, storage: Storage, ranks: torch.Tensor) -> None:
        """Recompute ``terminated`` and ``cut`` at ``ranks`` (sorted, unique) from storage."""
        succ = ranks + 1
        succ = succ[succ < self._len]
        read = torch.unique(torch.cat([ranks, succ]))
        slots = self._slot(read)
        storage_device = getattr(storage, "device", None)
        if storage_device not in (None, "auto"):
            slots = slots.to(storage_device)
        rows = storage[slots]
        terminated = _flag(rows, self.terminated_key)
        if terminated is None:
            raise KeyError(
                f"stored transitions have no {self.terminated_key!r} entry; write "
                "collector-style data or pass terminated_key= to the sampler."
            )
        truncated = _flag(rows, self.truncated_key) if self.truncated_key is not None else None
        done = _flag(rows, self.done_key) if self.done_key is not None else None
        if truncated is None and done is None:
            raise KeyError(
                f"stored transitions have neither {self.truncated_key!r} nor "
                f"{self.done_key!r}: episode cuts cannot be found; pass truncated_key= or "
                "done_key=."
            )
        cut = truncated if truncated is not None else torch.zeros_like(terminated)
        if done is not None:
            cut = cut | done
        at = torch.searchsorted(read, ranks)
        term, cut = terminated[at], cut[at]
        traj = rows.get(self.traj_key, None) if self.traj_key is not None else None
        if traj is not None:
            # A change of trajectory id to the next stored transition is a cut too.
            traj = traj.reshape(traj.shape[0], -1)[:, 0].cpu()
            has_succ = ranks + 1 < self._len
            succ_at = torch.searchsorted(read, ranks[has_succ] + 1)
            cut[has_succ] |= traj[at[has_succ]] != traj[succ_at]
        slots = self._slot(ranks)
        self._terminated[slots] = term
        self._cut[slots] = cut & ~term

    def _window_valid(self, start_ranks: torch.Tensor) -> torch.Tensor:
        """Eligibility of the starts at ``start_ranks`` from the flags, cursor and length."""
        h = self._horizon
        ranks = start_ranks[:, None] + self._offsets
        pos = self._slot(ranks)
        term = self._terminated[pos]
        end = term | self._cut[pos]
        has_end = end.any(1)
        first = torch.where(has_end, end.long().argmax(1), h)
        early = first < h - 1
        early_term = early & term.gather(1, first.clamp(max=h - 1)[:, None]).squeeze(1)
        # Offsets that must be written: up to the early termination, else the whole window.
        last = torch.where(early_term, first, h - 1)
        written = start_ranks + last < self._len
        return written & ~(early & ~early_term)

    def _refresh_eligibility(self, start_ranks: torch.Tensor) -> None:
        if start_ranks.numel() == 0:
            return
        starts = self._slot(start_ranks)
        new = self._window_valid(start_ranks)
        self._num_eligible += int((new.long() - self._eligible[starts].long()).sum())
        self._eligible[starts] = new
        self._tree._assign(starts, torch.where(new, self._priority[starts], 0.0))

    # ------------------------------------------------------------ sampling
    def _sampleable_count(self, storage: Storage, batch_size: int) -> int:
        self._flush(storage)
        return self._num_eligible

    def _draw_starts(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` i.i.d. start indices with P(s) proportional to ``p_s * e_s``."""
        u = torch.rand(batch_size, dtype=torch.float64, generator=self._rng)
        return self._tree.find_prefix_sum(u * self._tree.total)

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        """Draw ``batch_size`` windows.

        Returns:
            ``(index, info)``: ``index`` LongTensor ``[B, H]`` of storage slots in time
            order (padding repeats the terminal slot), ``info["validity_mask"]`` bool
            ``[B, H]``, ``False`` on padding steps.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        self._flush(storage)
        if self._num_eligible == 0:
            raise RuntimeError(
                f"no eligible start index among {self._len} stored transitions: a window "
                f"needs {self._horizon} consecutive transitions of one episode (or a "
                "termination). Write more data before sampling."
            )
        starts = self._draw_starts(batch_size)
        pos = (starts[:, None] + self._offsets) % self._capacity
        term = self._terminated[pos]
        pad = torch.zeros_like(term)
        pad[:, 1:] = term.cumsum(1)[:, :-1] > 0
        terminal = pos.gather(1, term.long().argmax(1, keepdim=True))
        index = torch.where(pad, terminal, pos)
        return index, {"validity_mask": ~pad}

    # ------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume sampling identically, RNG state included."""
        return {
            "version": _STATE_VERSION,
            "capacity": self._capacity,
            "horizon": self._horizon,
            # Per-slot arrays up to the filled length only; the tree is rebuilt on load
            # (its leaves are `priority` where eligible, else 0; parents are exact sums).
            "priority": self._priority[: self._len].clone(),
            "eligible": self._eligible[: self._len].clone(),
            "terminated": self._terminated[: self._len].clone(),
            "cut": self._cut[: self._len].clone(),
            "running_max": self._running_max,
            "cursor": self._cursor,
            "len": self._len,
            "num_eligible": self._num_eligible,
            "pending_writes": torch.cat(self._pending_writes)
            if self._pending_writes
            else torch.zeros(0, dtype=torch.long),
            "pending_updates": torch.cat(self._pending_updates)
            if self._pending_updates
            else torch.zeros(0, dtype=torch.long),
            "rng_state": None if self._rng is None else self._rng.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict`` (same capacity and horizon required)."""
        if state_dict.get("version") != _STATE_VERSION:
            raise ValueError(
                f"unknown sampler state version {state_dict.get('version')!r}, expected "
                f"{_STATE_VERSION}."
            )
        for name, mine in (("capacity", self._capacity), ("horizon", self._horizon)):
            if state_dict[name] != mine:
                raise ValueError(
                    f"sampler state has {name}={state_dict[name]}, this sampler has "
                    f"{name}={mine}; build the sampler with the saved {name}."
                )
        for name in ("priority", "eligible", "terminated", "cut"):
            mine, saved = getattr(self, f"_{name}"), state_dict[name]
            mine.zero_()
            mine[: saved.shape[0]] = saved
        if "tree" in state_dict:  # version-1 states saved the whole tree
            self._tree.load_state_dict(state_dict["tree"])
        else:
            self._tree.build(torch.where(self._eligible, self._priority, 0.0))
        self._running_max = float(state_dict["running_max"])
        self._cursor = int(state_dict["cursor"])
        self._len = int(state_dict["len"])
        self._num_eligible = int(state_dict["num_eligible"])
        writes, updates = state_dict["pending_writes"], state_dict["pending_updates"]
        self._pending_writes = [writes.clone()] if writes.numel() else []
        self._pending_updates = [updates.clone()] if updates.numel() else []
        if state_dict["rng_state"] is not None:
            if self._rng is None:
                self._rng = torch.Generator()
            self._rng.set_state(state_dict["rng_state"])

    def dumps(self, path: str | Path) -> None:
        """Save ``state_dict`` under the directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / _STATE_FILE)

    def loads(self, path: str | Path) -> None:
        """Load what ``dumps`` saved under ``path``."""
        self.load_state_dict(torch.load(Path(path) / _STATE_FILE, weights_only=True))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(capacity={self._capacity}, horizon={self._horizon}, "
            f"stored={self._len}, eligible={self._num_eligible}, "
            f"max_priority={self._running_max:.4g})"
        )

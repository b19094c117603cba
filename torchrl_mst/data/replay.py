"""MR.Q's replay buffer: a ``TensorDictReplayBuffer`` of ``[B, H]`` LAP-prioritized windows."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import NestedKey, TensorDictBase
from tensordict.utils import expand_as_right
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.storages import Storage

from torchrl_mst.data.samplers import PrioritizedSubTrajectorySampler

__all__ = ["MRQReplayBuffer", "make_mrq_replay_buffer"]


class MRQReplayBuffer(TensorDictReplayBuffer):
    r"""Replay buffer of MR.Q (arXiv 2501.16142): LAP-prioritized sub-trajectories.

    A ``TensorDictReplayBuffer`` over a ``LazyTensorStorage`` with a
    ``PrioritizedSubTrajectorySampler``. One buffer serves both of MR.Q's horizons: it
    returns windows of ``H = horizon`` (5) steps; the value update uses their first 3.

    **Writing.** ``extend`` takes a flat ``[N]`` TensorDict of transitions as a TorchRL
    collector yields them (``observation``, ``action``, ``("next", "observation")``,
    ``("next", "reward")`` ``[N, 1]``, ``("next", "terminated")``,
    ``("next", "truncated")``, ``("next", "done")`` ``[N, 1]`` bool, and whatever else
    comes: everything is stored). A batched collector's ``[n_envs, T]`` output must be
    flattened first (``td.reshape(-1)``); its ``("collector", "traj_ids")`` keep windows
    inside one environment.

    **Sampling.** ``sample`` returns a TensorDict of batch size ``[B, H]``, rows in
    time order, with every stored entry plus

    * ``"index"`` ``[B, H]`` int64: storage slots; ``index[:, 0]`` is the window's start,
      the index that carries its priority;
    * ``"validity_mask"`` ``[B, H]`` bool: ``False`` on padding steps.

    Steps after a termination inside a window are padding: the terminal transition
    repeated (so ``("next", "terminated")`` and ``("next", "done")`` are ``True``) with
    ``("next", "reward")`` set to 0. Start ``s`` is drawn with probability
    ``p_s / sum_j p_j`` over eligible starts (windows never cross a truncation or the
    write cursor; see ``PrioritizedSubTrajectorySampler``).

    **Priorities.** One priority per window, already LAP-transformed
    (``max(|delta|, 1) ** 0.4``), stored as given at the window's START index; new
    transitions get the running maximum priority. Three equivalent ways to write them:

    * ``update_tensordict_priority`` on the sampled ``[B, H]`` batch carrying
      ``td_error`` of shape ``[B, H]`` (the window's value repeated over ``H``, as
      ``MRQLoss`` writes it; TorchRL reduces it with a max over ``H`` and takes
      ``index[:, 0]``);
    * ``update_tensordict_priority`` on ``batch[:, 0]`` carrying ``td_error`` ``[B]``
      or ``[B, 1]``;
    * ``update_priority`` ``(batch["index"][:, 0], priority)`` with ``priority`` ``[B]``.

    A ``[B, H]`` TensorDict cannot hold a ``[B]`` entry, hence the repetition.

    Args:
        capacity: number of transitions kept (ring buffer). MR.Q: ``1_000_000``.

    Keyword Args:
        horizon: window length ``H``. MR.Q: 5.
        batch_size: windows per ``sample`` (``B``). MR.Q: 256.
        device: device of the storage (the sampler's bookkeeping stays on the CPU).
        seed: seed of the buffer's ``torch.Generator``. ``None`` draws one from torch's
            global RNG, so ``torch.manual_seed`` still makes runs reproducible. The
            generator state is part of ``state_dict``.
        storage: a TorchRL storage with ``ndim=1`` and ``max_size == capacity`` to use
            instead of ``LazyTensorStorage(capacity, device=device)`` (e.g. a
            ``LazyMemmapStorage``).
        initial_priority: running maximum priority before any update.
        reward_key: reward entry (zeroed on padding, averaged by ``reward_abs_mean``).
        terminated_key: termination flag (windows may run past it, padded).
        truncated_key: truncation flag (windows never cross it); ``None`` to ignore.
        done_key: done flag (``done`` without ``terminated`` is a truncation); ``None`` to
            ignore.
        traj_key: trajectory ids (a change of id is a truncation); ``None`` to ignore.
        priority_key: entry read by ``update_tensordict_priority``.
        **kwargs: forwarded to ``TensorDictReplayBuffer``
            (``transform``, ``pin_memory``, ...; not ``sampler`` or ``generator``).

    Examples:
        >>> from tensordict import TensorDict
        >>> rb = MRQReplayBuffer(100, horizon=5, batch_size=4, seed=0)
        >>> n = 20
        >>> _ = rb.extend(TensorDict({
        ...     "observation": torch.randn(n, 3), "action": torch.rand(n, 1),
        ...     ("next", "observation"): torch.randn(n, 3),
        ...     ("next", "reward"): torch.randn(n, 1),
        ...     ("next", "terminated"): torch.zeros(n, 1, dtype=torch.bool),
        ...     ("next", "truncated"): torch.zeros(n, 1, dtype=torch.bool),
        ...     ("next", "done"): torch.zeros(n, 1, dtype=torch.bool)}, [n]))
        >>> batch = rb.sample()
        >>> batch.batch_size
        torch.Size([4, 5])
        >>> batch["td_error"] = torch.full((4, 5), 2.0)  # one value per window, over H
        >>> rb.update_tensordict_priority(batch)
        >>> rb.sampler.priority(batch["index"][:, 0]).tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(
        self,
        capacity: int = 1_000_000,
        *,
        horizon: int = 5,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        storage: Storage | None = None,
        initial_priority: float = 1.0,
        reward_key: NestedKey = ("next", "reward"),
        terminated_key: NestedKey = ("next", "terminated"),
        truncated_key: NestedKey | None = ("next", "truncated"),
        done_key: NestedKey | None = ("next", "done"),
        traj_key: NestedKey | None = ("collector", "traj_ids"),
        priority_key: str = "td_error",
        **kwargs: Any,
    ) -> None:
        for name in ("sampler", "generator"):
            if name in kwargs:
                raise TypeError(
                    f"MRQReplayBuffer builds its own {name}; pass seed= (and the sampler "
                    "options) instead, or use TensorDictReplayBuffer directly."
                )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if storage is None:
            storage = LazyTensorStorage(capacity, device=device)
        elif storage.max_size != capacity:
            raise ValueError(
                f"storage.max_size ({storage.max_size}) differs from capacity ({capacity}); "
                "pass capacity=storage.max_size."
            )
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        sampler = PrioritizedSubTrajectorySampler(
            capacity,
            horizon=horizon,
            initial_priority=initial_priority,
            terminated_key=terminated_key,
            truncated_key=truncated_key,
            done_key=done_key,
            traj_key=traj_key,
        )
        super().__init__(
            storage=storage,
            sampler=sampler,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(seed),
            priority_key=priority_key,
            **kwargs,
        )
        self.reward_key = reward_key
        self.terminated_key = terminated_key
        self._terminal_seen = False

    @property
    def horizon(self) -> int:
        """Window length ``H``."""
        return self._sampler.horizon

    def _check_transitions(self, data: TensorDictBase, *, single: bool) -> None:
        if not isinstance(data, TensorDictBase):
            raise TypeError(
                f"MRQReplayBuffer stores TensorDicts of transitions, got {type(data).__name__}."
            )
        expected = 0 if single else 1
        if data.batch_dims != expected:
            fix = "use extend() for a batch" if single else "flatten it with td.reshape(-1)"
            raise ValueError(
                f"expected a TensorDict with {expected} batch dim(s) (transitions), got "
                f"batch_size {tuple(data.batch_size)}; {fix}."
            )
        terminated = data.get(self.terminated_key, None)
        if terminated is None:
            raise KeyError(
                f"transitions lack {self.terminated_key!r}; MR.Q needs termination flags "
                "(write collector output, or pass terminated_key=)."
            )
        self._terminal_seen = self._terminal_seen or bool(terminated.any())

    def extend(
        self, tensordicts: TensorDictBase, *, update_priority: bool | None = None
    ) -> torch.Tensor:
        """Write a flat ``[N]`` batch of transitions; returns their storage indices."""
        self._check_transitions(tensordicts, single=False)
        return super().extend(tensordicts, update_priority=update_priority)

    def add(self, data: TensorDictBase) -> int:
        """Write one transition (batch size ``[]``); returns its storage index."""
        self._check_transitions(data, single=True)
        return super().add(data)

    def sample(
        self,
        batch_size: int | None = None,
        return_info: bool = False,
        include_info: bool | None = None,
    ) -> TensorDictBase | tuple[TensorDictBase, dict]:
        """Draw ``batch_size`` (default: the buffer's) windows as a ``[B, H]`` TensorDict.

        Padding steps (after a termination) repeat the terminal transition with reward 0;
        ``"validity_mask"`` marks them ``False``.
        """
        out = super().sample(batch_size, return_info=return_info, include_info=include_info)
        data = out[0] if return_info else out
        mask = data.get("validity_mask")
        reward = data.get(self.reward_key, None)
        if reward is not None and not bool(mask.all()):
            keep = expand_as_right(mask.to(reward.device), reward)
            data.set(self.reward_key, torch.where(keep, reward, torch.zeros_like(reward)))
        return out

    def reward_abs_mean(self) -> float:
        r"""Mean absolute reward over every stored transition: $\frac1N\sum_i |r_i|$.

        MR.Q sets ``reward_scale`` to this (floored at 1e-8 by the caller) every 250
        training steps. Reads only the reward column: ``O(N)``, about a millisecond at
        ``N = 10^6`` on a CPU.

        Raises:
            RuntimeError: if the buffer is empty.
        """
        n = len(self._storage)
        if n == 0:
            raise RuntimeError("reward_abs_mean() on an empty replay buffer; write data first.")
        reward = self._storage[:].get(self.reward_key)
        return float(reward.abs().sum(dtype=torch.float64) / reward.numel())

    def any_terminal(self) -> bool:
        """Whether a terminated transition has ever been written (even if since overwritten).

        MR.Q adds the done term to the encoder loss only once this is true.
        """
        return self._terminal_seen

    def state_dict(self) -> dict[str, Any]:
        """TorchRL's buffer state (storage, sampler, writer, RNG) plus MR.Q's flag.

        Only the filled rows of the storage (and of the sampler's per-slot arrays) are
        kept: a buffer holding ``n`` of ``capacity`` transitions saves ``n`` rows, i.e. the
        bytes of one stored transition (every entry, ``"next"`` included) times ``n`` plus
        about 11 bytes per row for the sampler. ``load_state_dict`` pads them back.
        """
        state = super().state_dict()
        storage = state["_storage"]
        rows = getattr(self._storage, "_storage", None)
        if isinstance(rows, TensorDictBase):
            # A TensorDict of the filled rows (it keeps its batch size and nesting when the
            # checkpoint is encoded; TorchRL's flat state dict keeps them in an attribute).
            n = int(storage.get("_len", 0))
            storage["_storage"] = rows[:n].clone()
            storage["_capacity"] = rows.shape[0]
        state["_mrq"] = {"terminal_seen": self._terminal_seen}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the next ``sample`` continues identically."""
        state_dict = dict(state_dict)
        storage = dict(state_dict["_storage"])
        capacity = storage.pop("_capacity", None)
        rows = storage["_storage"]
        if capacity is not None and isinstance(rows, TensorDictBase):
            full = rows.apply(
                lambda v: v.new_zeros((capacity, *v.shape[1:])), batch_size=[capacity]
            )
            full[: rows.shape[0]] = rows
            storage["_storage"] = full.state_dict()
        state_dict["_storage"] = storage
        super().load_state_dict(state_dict)
        if not storage.get("initialized", True):
            # saved before the first write: stay lazy, the first extend allocates
            self._storage._storage = None
        self._terminal_seen = bool(state_dict["_mrq"]["terminal_seen"])


def make_mrq_replay_buffer(
    capacity: int = 1_000_000,
    *,
    horizon: int = 5,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    **kwargs: Any,
) -> MRQReplayBuffer:
    """Build MR.Q's replay buffer with its defaults; see ``MRQReplayBuffer``.

    Args:
        capacity: number of transitions kept (MR.Q: 1e6).

    Keyword Args:
        horizon: window length (MR.Q: 5).
        batch_size: windows per sample (MR.Q: 256).
        device: storage device.
        seed: generator seed (``None``: drawn from torch's global RNG).
        **kwargs: other ``MRQReplayBuffer`` options.

    Returns:
        An empty ``MRQReplayBuffer``.
    """
    return MRQReplayBuffer(
        capacity, horizon=horizon, batch_size=batch_size, device=device, seed=seed, **kwargs
    )

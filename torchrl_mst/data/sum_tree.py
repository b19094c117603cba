"""A vectorised sum tree in plain torch.

TorchRL's segment trees live in its C++ extension, which does not load with the CPU
wheel of torch 2.13 (see ``shared/notes/torchrl-0.14.md``). ``SumTree`` is the
replacement used by ``PrioritizedSubTrajectorySampler``: every
operation works on a whole batch of indices or masses at once, with a handful of tensor
operations per tree level, so ``B`` queries over ``N`` leaves cost ``O(B k log_k N)``
element work in ``O(log_k N)`` tensor calls, independent of the priorities' values.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SumTree"]


class SumTree:
    r"""``k``-ary sum tree over ``capacity`` non-negative float64 leaves.

    Layout: ``D = max(1, ceil(log_k N))`` levels below the root. Level 0 holds the
    ``k^D >= N`` leaves (the ones past ``N`` stay 0); each node of level ``d + 1`` holds
    the sum of its ``k`` children, ``level[d+1][i] = sum_j level[d][k*i + j]``. Every sum
    is recomputed from the children (never incremented by a delta), so rounding errors
    do not accumulate over updates.

    A wide node (``k = 32`` by default) keeps the number of levels, hence of sequential
    tensor calls, at 4 for a million leaves; eager torch on a CPU is dominated by the
    per-call overhead, not by the ``k`` values read per level.

    Sampling: ``find_prefix_sum`` maps a mass $m \in [0, \text{total})$ to the
    leaf $i$ with $c_{i-1} \le m < c_i$, where $c_i = \sum_{j \le i} v_j$.
    With $m = u \cdot \text{total}$, $u \sim U[0, 1)$, leaf $i$ is drawn
    with probability $v_i / \sum_j v_j$; a leaf with value ``0`` is never returned.

    Args:
        capacity: number of leaves ``N`` (``>= 1``).

    Keyword Args:
        branching: children per node ``k``, a power of two ``>= 2``. Defaults to 32.
        device: device of the node tensors. Defaults to the CPU.

    Examples:
        >>> tree = SumTree(5)
        >>> tree.update(torch.tensor([0, 3]), torch.tensor([1.0, 3.0]))
        >>> tree.total
        4.0
        >>> tree.find_prefix_sum(torch.tensor([0.5, 1.0, 3.9]))
        tensor([0, 3, 3])
    """

    def __init__(
        self,
        capacity: int,
        *,
        branching: int = 32,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(
                f"SumTree capacity must be a positive int, got {capacity!r}; "
                "pass the number of leaves (the replay buffer's capacity)."
            )
        if (
            isinstance(branching, bool)
            or not isinstance(branching, int)
            or branching < 2
            or branching & (branching - 1)
        ):
            raise ValueError(
                f"SumTree branching must be a power of two >= 2, got {branching!r} (e.g. 32)."
            )
        self._capacity = capacity
        self._k = branching
        depth = 1
        while branching**depth < capacity:
            depth += 1
        self._depth = depth
        # levels[0] = leaves (k^D), ..., levels[D] = root (1).
        self._levels = [
            torch.zeros(branching ** (depth - d), dtype=torch.float64, device=device)
            for d in range(depth + 1)
        ]

    @property
    def capacity(self) -> int:
        """Number of leaves ``N``."""
        return self._capacity

    @property
    def branching(self) -> int:
        """Children per node ``k``."""
        return self._k

    @property
    def depth(self) -> int:
        """Number of levels below the root, ``max(1, ceil(log_k N))``."""
        return self._depth

    @property
    def device(self) -> torch.device:
        """Device holding the nodes."""
        return self._levels[0].device

    @property
    def total(self) -> float:
        """Sum of all leaves (the root), as a Python float."""
        return float(self._levels[-1][0])

    @property
    def leaves(self) -> torch.Tensor:
        """A view of the ``N`` leaf values, shape ``[N]`` (do not write to it)."""
        return self._levels[0][: self._capacity]

    def _as_index(self, indices: torch.Tensor | int | list[int]) -> torch.Tensor:
        index = torch.as_tensor(indices, device=self.device)
        if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
            raise TypeError(
                f"SumTree indices must be integers, got dtype {index.dtype}; "
                "pass a LongTensor of leaf positions."
            )
        index = index.reshape(-1).long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self._capacity):
            raise IndexError(
                f"SumTree index out of range: got values in [{int(index.min())}, "
                f"{int(index.max())}], valid leaves are [0, {self._capacity - 1}]."
            )
        return index

    @staticmethod
    def _check_values(value: torch.Tensor) -> None:
        if value.numel() and (not bool(torch.isfinite(value).all()) or bool((value < 0).any())):
            raise ValueError(
                "SumTree values must be finite and >= 0, got min "
                f"{float(value.min())} and max {float(value.max())}."
            )

    def __getitem__(self, indices: torch.Tensor | int | list[int]) -> torch.Tensor:
        """Leaf values at ``indices`` (any shape), float64, same shape as ``indices``."""
        shape = torch.as_tensor(indices).shape
        return self._levels[0][self._as_index(indices)].reshape(shape)

    def update(self, indices: torch.Tensor | int | list[int], values: torch.Tensor | float) -> None:
        """Set leaves ``indices`` to ``values`` and refresh their ancestors.

        Cost: ``O(K k log_k N)`` element work for ``K`` indices, ``O(log k log_k N)``
        tensor calls.

        Args:
            indices: leaf positions, any shape, ``K`` elements in total.
            values: non-negative finite values, broadcastable to ``indices``.
                When an index appears several times, the LAST occurrence wins, as in
                sequential assignment.
        """
        index = self._as_index(indices)
        value = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        value = value.expand(torch.as_tensor(indices).shape).reshape(-1)
        if index.numel() == 0:
            return
        self._check_values(value)
        unique, inverse = torch.unique(index, return_inverse=True)
        if unique.numel() != index.numel():
            position = torch.arange(index.numel(), device=self.device)
            last = torch.full_like(unique, -1).scatter_reduce(
                0, inverse, position, reduce="amax", include_self=True
            )
            index, value = unique, value[last]
        self._assign(index, value)

    def _assign(self, index: torch.Tensor, value: torch.Tensor) -> None:
        """``update`` without checks: ``index`` unique int64 leaves, ``value`` float64."""
        self._levels[0][index] = value
        node = index
        for d in range(self._depth):
            # Duplicated parents all write the same freshly summed value: no unique needed.
            node = node // self._k
            self._levels[d + 1][node] = self._levels[d].view(-1, self._k)[node].sum(1)

    def build(self, values: torch.Tensor) -> None:
        """Replace all ``N`` leaves at once and rebuild every level: ``O(N)``.

        Args:
            values: shape ``[N]``, finite and ``>= 0``.
        """
        value = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        if value.shape != (self._capacity,):
            raise ValueError(
                f"SumTree.build expects one value per leaf, shape [{self._capacity}], "
                f"got {tuple(value.shape)}."
            )
        self._check_values(value)
        self._levels[0].zero_()
        self._levels[0][: self._capacity] = value
        for d in range(self._depth):
            self._levels[d + 1].copy_(self._levels[d].view(-1, self._k).sum(1))

    def find_prefix_sum(self, masses: torch.Tensor) -> torch.Tensor:
        r"""Leaf index ``i`` with ``c_{i-1} <= m < c_i`` for each mass ``m``.

        One descent per mass, all masses at once: at each node, pick the first child
        whose running sum of children exceeds ``m`` and subtract the sum of the children
        before it. At every level ``m`` is clamped strictly below the node's running
        total, so float64 rounding can never land on a zero leaf.

        Args:
            masses: any shape, values in ``[0, total)``.

        Returns:
            LongTensor of leaf indices with the shape of ``masses``.

        Raises:
            RuntimeError: if the tree holds no mass (``total == 0``).
        """
        mass = torch.as_tensor(masses, dtype=torch.float64, device=self.device)
        shape = mass.shape
        if not bool(self._levels[-1][0] > 0):
            raise RuntimeError(
                "SumTree.find_prefix_sum: the tree holds no mass (all leaves are 0), "
                "nothing can be sampled."
            )
        mass = mass.reshape(-1, 1).clamp_min(0.0)
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        pad = torch.zeros_like(mass)
        node = torch.zeros(mass.shape[0], dtype=torch.long, device=self.device)
        for d in range(self._depth - 1, -1, -1):
            children = self._levels[d].view(-1, self._k)[node]  # [B, k]
            csum = children.cumsum(1)
            # Keep m < the children's running total: the first child whose running sum
            # exceeds m then has a positive value, whatever rounding did above.
            mass = torch.minimum(mass, torch.nextafter(csum[:, -1:], zero))
            child = torch.searchsorted(csum, mass, right=True)
            mass = mass - torch.cat([pad, csum], 1).gather(1, child)
            node = node * self._k + child.squeeze(1)
        return node.reshape(shape)

    def clear(self) -> None:
        """Set every leaf (and so every node) to zero."""
        for level in self._levels:
            level.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Capacity, branching and copies of every level (so a reload is bit-exact)."""
        return {
            "capacity": self._capacity,
            "branching": self._k,
            "levels": [level.clone() for level in self._levels],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (same capacity and branching)."""
        for name, mine in (("capacity", self._capacity), ("branching", self._k)):
            if state_dict[name] != mine:
                raise ValueError(
                    f"SumTree state has {name}={state_dict[name]}, this tree has "
                    f"{name}={mine}; build the tree with the saved {name}."
                )
        for level, saved in zip(self._levels, state_dict["levels"]):
            level.copy_(saved)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(capacity={self._capacity}, branching={self._k}, "
            f"depth={self._depth}, total={self.total:.6g})"
        )

"""A vectorised sum tree in plain torch.

TorchRL's segment trees live in its C++ extension, which does not load with the CPU
wheel of torch 2.13 (see ``shared/notes/torchrl-0.14.md``). :class:`SumTree` is the
replacement used by :class:`~torchrl_mst.data.PrioritizedSubTrajectorySampler`: every
operation works on a whole batch of indices or masses at once, with one small tensor
operation per tree level, so its cost is ``O(B log N)`` for ``B`` queries over ``N``
leaves, independent of how much priority mass the leaves hold.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SumTree"]


class SumTree:
    r"""Binary sum tree over ``capacity`` non-negative float64 leaves.

    Layout: an implicit complete binary tree in one flat tensor ``nodes`` of length
    ``2 * P``, where ``P`` is the smallest power of two ``>= capacity``. Node ``1`` is
    the root, node ``k`` has children ``2k`` and ``2k + 1``, and leaf ``i`` is node
    ``P + i``. Every internal node holds the sum of its two children,
    ``nodes[k] = nodes[2k] + nodes[2k + 1]``, and is always recomputed from its children
    (never incremented by a delta), so rounding errors do not accumulate over updates:
    the tree after any sequence of updates is bit-identical to a tree built from scratch
    on the same leaves.

    Sampling: :meth:`find_prefix_sum` maps a mass :math:`m \in [0, \text{total})` to
    the leaf :math:`i` with :math:`c_{i-1} \le m < c_i`, where
    :math:`c_i = \sum_{j \le i} v_j`. With :math:`m = u \cdot \text{total}` and
    :math:`u \sim U[0, 1)`, leaf :math:`i` is drawn with probability
    :math:`v_i / \sum_j v_j`; leaves with value ``0`` are never returned.

    Args:
        capacity: number of leaves ``N`` (``>= 1``).

    Keyword Args:
        device: device of the node tensor. Defaults to the CPU.

    Examples:
        >>> tree = SumTree(5)
        >>> tree.update(torch.tensor([0, 3]), torch.tensor([1.0, 3.0]))
        >>> tree.total
        4.0
        >>> tree.find_prefix_sum(torch.tensor([0.5, 1.0, 3.9]))
        tensor([0, 3, 3])
    """

    def __init__(self, capacity: int, *, device: torch.device | str | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(
                f"SumTree capacity must be a positive int, got {capacity!r}; "
                "pass the number of leaves (the replay buffer's capacity)."
            )
        self._capacity = capacity
        self._num_leaf_slots = 1 << max(capacity - 1, 0).bit_length()
        self._depth = self._num_leaf_slots.bit_length() - 1
        self._nodes = torch.zeros(2 * self._num_leaf_slots, dtype=torch.float64, device=device)

    @property
    def capacity(self) -> int:
        """Number of leaves ``N``."""
        return self._capacity

    @property
    def depth(self) -> int:
        """Number of levels between the root and the leaves (``ceil(log2 N)``)."""
        return self._depth

    @property
    def device(self) -> torch.device:
        """Device holding the nodes."""
        return self._nodes.device

    @property
    def total(self) -> float:
        """Sum of all leaves (the root node), as a Python float."""
        return float(self._nodes[1])

    @property
    def leaves(self) -> torch.Tensor:
        """A read-only view of the ``N`` leaf values, shape ``[N]``."""
        p = self._num_leaf_slots
        return self._nodes[p : p + self._capacity]

    def _as_index(self, indices: torch.Tensor | int | list[int]) -> torch.Tensor:
        index = torch.as_tensor(indices, device=self.device)
        if index.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
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

    def __getitem__(self, indices: torch.Tensor | int | list[int]) -> torch.Tensor:
        """Leaf values at ``indices`` (any shape), float64, same shape as ``indices``."""
        shape = torch.as_tensor(indices).shape
        index = self._as_index(indices)
        return self._nodes[index + self._num_leaf_slots].reshape(shape)

    def update(self, indices: torch.Tensor | int | list[int], values: torch.Tensor | float) -> None:
        """Set leaves ``indices`` to ``values`` and refresh their ancestors.

        Cost: ``O(K log N)`` for ``K`` indices (one gather/scatter per level).

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
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError(
                "SumTree values must be finite and >= 0, got min "
                f"{float(value.min())} and max {float(value.max())}."
            )
        # Last occurrence wins: keep, for each distinct index, the largest position.
        unique, inverse = torch.unique(index, return_inverse=True)
        if unique.numel() != index.numel():
            position = torch.arange(index.numel(), device=self.device)
            last = torch.full_like(unique, -1).scatter_reduce(
                0, inverse, position, reduce="amax", include_self=True
            )
            index, value = unique, value[last]
        node = index + self._num_leaf_slots
        self._nodes[node] = value
        for _ in range(self._depth):
            # Duplicated parents all write the same freshly summed value: no unique needed.
            node = node >> 1
            self._nodes[node] = self._nodes[2 * node] + self._nodes[2 * node + 1]

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
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError("SumTree values must be finite and >= 0.")
        p = self._num_leaf_slots
        self._nodes.zero_()
        self._nodes[p : p + self._capacity] = value
        width = p
        while width > 1:
            children = self._nodes[width : 2 * width].view(-1, 2)
            self._nodes[width // 2 : width] = children[:, 0] + children[:, 1]
            width //= 2

    def find_prefix_sum(self, masses: torch.Tensor) -> torch.Tensor:
        r"""Leaf index ``i`` with ``c_{i-1} <= m < c_i`` for each mass ``m``.

        One descent per mass, all masses at once: at a node with left-child sum
        ``L``, go right (and subtract ``L``) when ``m >= L``. Masses are clamped into
        ``[0, total)`` and the descent keeps ``m`` strictly below the chosen child's sum,
        so float64 rounding can never land on a zero-valued leaf.

        Args:
            masses: any shape, values in ``[0, total)``.

        Returns:
            LongTensor of leaf indices with the shape of ``masses``.

        Raises:
            RuntimeError: if the tree holds no mass (``total == 0``).
        """
        mass = torch.as_tensor(masses, dtype=torch.float64, device=self.device)
        shape = mass.shape
        mass = mass.reshape(-1)
        total = self._nodes[1]
        if not bool(total > 0):
            raise RuntimeError(
                "SumTree.find_prefix_sum: the tree holds no mass (all leaves are 0), "
                "nothing can be sampled."
            )
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        mass = torch.minimum(mass.clamp_min(0.0), torch.nextafter(total, zero))
        node = torch.ones_like(mass, dtype=torch.long)
        for _ in range(self._depth):
            left_node = 2 * node
            left = self._nodes[left_node]
            right = self._nodes[left_node + 1]
            go_right = (mass >= left) & (right > 0)
            mass = torch.where(go_right, mass - left, mass)
            child_sum = torch.where(go_right, right, left)
            mass = torch.minimum(mass.clamp_min(0.0), torch.nextafter(child_sum, zero))
            node = left_node + go_right.long()
        return (node - self._num_leaf_slots).reshape(shape)

    def clear(self) -> None:
        """Set every leaf (and so every node) to zero."""
        self._nodes.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Capacity and a copy of the node tensor."""
        return {"capacity": self._capacity, "nodes": self._nodes.clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore nodes saved by :meth:`state_dict` (same capacity required)."""
        if state_dict["capacity"] != self._capacity:
            raise ValueError(
                f"SumTree state has capacity {state_dict['capacity']}, this tree has "
                f"{self._capacity}; build the tree with the saved capacity."
            )
        self._nodes.copy_(state_dict["nodes"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self._capacity}, total={self.total:.6g})"

"""What a topology update did, for logging: :class:`UpdateStats` and :class:`LayerUpdate`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LayerUpdate", "UpdateStats"]


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

        Dropped and grown sets are disjoint (a position dropped and regrown by the same
        update counts in neither), so this is (dropped + grown) / numel over the updated
        tensors. For RigL at density :math:`d` and drop fraction :math:`f` it is at most
        :math:`2fd`; ``grown / active`` is the fraction of connections replaced.
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

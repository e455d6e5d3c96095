"""Per-regime specialist models, swappable while events flow.

A :class:`RegimeRegistry` maps regime names (see :mod:`adapters.regimes`) to
:class:`~adapters.inference.model.EdgeModel` instances, falling back to a
default model for regimes without a specialist.  :meth:`RegimeRegistry.swap`
replaces one entry with a single dict assignment: the caller (the edge
reasoner) looks models up once per micro-batch on the event loop, so a swap
lands between two batches - no event is dropped, none is reordered, every event
is answered by exactly one model, and the old model is handed back for the
caller to close once nothing uses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.inference.model import EdgeModel

__all__ = ["RegimeRegistry"]


class RegimeRegistry:
    """See the module docstring."""

    def __init__(self, default: EdgeModel, specialists: Mapping[str, EdgeModel] | None = None) -> None:
        self._default = default
        self._models: dict[str, EdgeModel] = dict(specialists or {})
        self.generation = 0
        """Incremented by every swap, so callers can tell which set of models answered."""

    def get(self, regime: str) -> EdgeModel:
        return self._models.get(regime, self._default)

    @property
    def default(self) -> EdgeModel:
        return self._default

    def swap(self, regime: str | None, model: EdgeModel) -> EdgeModel | None:
        """Serve ``regime`` (None: the default) with ``model`` from the next batch on.

        Returns the model it replaced (None if the regime had no specialist).
        """
        self.generation += 1
        if regime is None:
            old: EdgeModel | None = self._default
            self._default = model
            return old
        old = self._models.get(regime)
        self._models[regime] = model
        return old

    def replace_all(
        self, default: EdgeModel, specialists: Mapping[str, EdgeModel] | None = None
    ) -> tuple[EdgeModel, dict[str, EdgeModel]]:
        """Serve every regime with a new set of models from the next batch on (blue-green: a
        promoted version replaces the student *and* the specialists in one step, so no batch
        mixes versions).  Returns the models replaced, for a rollback or to close."""
        self.generation += 1
        old = (self._default, self._models)
        self._default = default
        self._models = dict(specialists or {})
        return old

    def remove(self, regime: str) -> EdgeModel | None:
        """Send ``regime`` back to the default model; returns the specialist removed."""
        self.generation += 1
        return self._models.pop(regime, None)

    def models(self) -> dict[str, EdgeModel]:
        return {"default": self._default, **self._models}

    def close(self) -> None:
        seen: set[int] = set()
        for m in self.models().values():
            if id(m) not in seen:
                seen.add(id(m))
                m.close()

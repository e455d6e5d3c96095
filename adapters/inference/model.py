"""An edge model ready to serve: a verified :class:`ModelSpec` on an opened backend.

:meth:`EdgeModel.predict` splits the raw output into quantiles, volatility and
probability up; :meth:`EdgeModel.attribute` explains one row by occlusion: each
feature in turn is set to its training mean (the neutral value the network was
centred on) and the change in the probability of an up move is that
feature's contribution.  Occlusion needs only forward passes, so it works on
every backend; all ``n_features`` occluded rows go through the backend as one
batch.
"""

from __future__ import annotations

import numpy as np

from adapters.features import FEATURE_NAMES
from adapters.inference.backends import Backend, open_backend
from adapters.inference.errors import ModelMismatch
from adapters.inference.manifest import Manifest, ModelFiles, ModelSpec

__all__ = ["EdgeModel", "Predictions", "load_edge_model"]


_PROB_EPS = 1e-6


class Predictions:
    """Arrays for a batch: ``quantiles`` (n, k), ``volatility`` (n,), ``prob_up`` (n,) in
    [1e-6, 1 - 1e-6]; float64."""

    __slots__ = ("prob_up", "quantiles", "volatility")

    def __init__(self, raw: np.ndarray, k: int) -> None:
        out = raw.astype(np.float64)
        self.quantiles = out[:, :k]
        self.volatility = out[:, k]
        # A float32 sigmoid saturates to exactly 0 or 1 on extreme inputs (a property test found
        # 0.0): no forecast is that certain, and log-loss and odds downstream need the open interval.
        self.prob_up = np.clip(out[:, k + 1], _PROB_EPS, 1.0 - _PROB_EPS)

    def __len__(self) -> int:
        return len(self.volatility)


class EdgeModel:
    """One network (student, teacher or a specialist) of one model id, on one backend."""

    def __init__(self, spec: ModelSpec, backend: Backend, *, role: str, neutral: np.ndarray) -> None:
        self.spec = spec
        self.backend = backend
        self.role = role
        self.k = len(spec.quantile_levels)
        self.model_id = spec.model_id if role == "student" else f"{spec.model_id}.{role}"
        if len(neutral) != len(FEATURE_NAMES):
            raise ModelMismatch(
                f"{self.model_id}: {len(neutral)} feature means, expected {len(FEATURE_NAMES)}"
            )
        self.version = spec.version
        self._neutral = neutral.astype(np.float32)
        probe = backend.predict(np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32))
        if probe.shape != (2, self.k + 2):
            raise ModelMismatch(
                f"{self.model_id}: backend {backend.name} returned shape {probe.shape}, "
                f"expected (2, {self.k + 2})"
            )

    def predict(self, x: np.ndarray) -> Predictions:
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return Predictions(self.backend.predict(x), self.k)

    def predict_raw(self, x: np.ndarray, pad_multiple: int = 1) -> np.ndarray:
        """Raw ``(n, k + 2)`` outputs; the batch is padded to a multiple of ``pad_multiple`` rows
        (copies of the last row, discarded) so each row's result is independent of its batch."""
        n = len(x)
        if pad_multiple > 1 and n % pad_multiple:
            pad = pad_multiple - n % pad_multiple
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return self.backend.predict(x)[:n]

    def attribute(self, row: np.ndarray, top: int = 5) -> list[tuple[str, float, float]]:
        """(name, value, contribution to prob_up) of the ``top`` features that moved ``row`` most."""
        return self.attribute_many(row[None, :], top)[0]

    def attribute_many(self, rows: np.ndarray, top: int = 5) -> list[list[tuple[str, float, float]]]:
        """:meth:`attribute` for several rows in one backend call of ``len(rows) * (f + 1)`` rows."""
        m, f = rows.shape
        batch = np.repeat(rows.astype(np.float32), f + 1, axis=0).reshape(m, f + 1, f)
        idx = np.arange(f)
        batch[:, idx + 1, idx] = self._neutral
        p = self.predict_raw(batch.reshape(m * (f + 1), f), 8)[:, self.k + 1].astype(np.float64)
        p = p.reshape(m, f + 1)
        contrib = p[:, :1] - p[:, 1:]
        out = []
        for r in range(m):
            order = np.argsort(-np.abs(contrib[r]), kind="stable")[:top]
            out.append([(FEATURE_NAMES[i], float(rows[r, i]), float(contrib[r, i])) for i in order])
        return out

    def close(self) -> None:
        self.backend.close()


def load_edge_model(
    manifest: Manifest,
    model_id: str,
    *,
    backend: str = "onnxruntime",
    role: str = "student",
    device: str = "cpu",
    threads: int = 1,
    max_batch: int = 64,
    cache_dir: str | None = None,
) -> EdgeModel:
    """Open ``role`` (``student``, ``teacher`` or a regime name) of ``model_id`` on ``backend``."""
    spec = manifest.model(model_id)
    files: ModelFiles
    if role == "student":
        files = spec.student
    elif role == "teacher":
        files = spec.teacher
    elif role in spec.specialists:
        files = spec.specialists[role]
    else:
        raise ModelMismatch(
            f"{model_id}: no network for role {role!r}; specialists: {sorted(spec.specialists)}"
        )
    be = open_backend(
        backend,
        files,
        n_features=len(FEATURE_NAMES),
        n_quantiles=len(spec.quantile_levels),
        device=device,
        threads=threads,
        max_batch=max_batch,
        cache_dir=cache_dir,
    )
    neutral = np.asarray(spec.feature_mean, dtype=np.float32)
    return EdgeModel(spec, be, role=role, neutral=neutral)

"""A keyed fingerprint in a network's weights, so a copied model can be recognised without its files.

Scheme (quantisation index modulation): a secret key picks, per 2-D weight matrix, a keyed
pseudo-random set of ``marks`` positions and one bit per position (HMAC-SHA256 of the key and the
tensor's name and shape seeds the choice).  Embedding moves each chosen weight to the nearest
point of the lattice ``step * (n + bit / 2)``: at most ``step / 2`` away, by default
``2**-12 / 2 ~ 1.2e-4`` in absolute value, where the shipped weights are of order 0.1.
Detection reads the weights (from a torch ``state_dict`` or straight from the ONNX initializers:
the exporter keeps the parameter names) and counts the positions whose nearest half-step lattice
point has the keyed parity.  An unkeyed model matches each position with probability about 1/2
(binomial); the keyed one matches at every marked position as long as nothing moved a weight by
``step / 4`` or more (the two bits' lattices are half a step apart).  The verdict is a one-sided
binomial p-value.  Weights within two steps of 0 (among them the news inputs the shipped models
pin at exactly zero) are never moved and not counted (a rare weight 1.5 to 2 steps from 0 is
counted unmarked, a coin flip).

Units: ``step`` is in weight units (the raw float32 values).  This is a fingerprint, not
protection: anyone who knows the scheme and retrains or adds noise of ``step / 4`` erases it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

__all__ = [
    "DEFAULT_STEP",
    "FingerprintReport",
    "detect",
    "embed",
    "fingerprint_secret",
    "onnx_weights",
]

DEFAULT_STEP: Final = 2.0**-12
_DEFAULT_MARKS: Final = 256


class FingerprintReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`detect`: ``matched`` of ``checked`` positions carried the key's bit."""

    checked: int
    matched: int
    pvalue: float
    """P(at least ``matched`` matches | unkeyed weights), one-sided binomial with p = 1/2."""
    detected: bool

    @property
    def match_rate(self) -> float:
        return self.matched / self.checked if self.checked else 0.0


def _positions(key: bytes, name: str, weights: np.ndarray, marks: int) -> tuple[np.ndarray, np.ndarray]:
    """The keyed positions (flat indices) and bits of one tensor: a function of the key, the
    tensor's name and shape only, so noise or fine-tuning cannot move them."""
    seed = hmac.new(key, f"{name}|{weights.shape}".encode(), hashlib.sha256).digest()
    rng = np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))
    n = min(marks, weights.size)
    pos = np.sort(rng.choice(weights.size, size=n, replace=False))
    bits = rng.integers(0, 2, size=n)
    return pos, bits


def _marked(state: Mapping[str, np.ndarray]) -> list[str]:
    return sorted(k for k, v in state.items() if k.endswith("weight") and np.ndim(v) == 2)


def embed(
    state: Mapping[str, np.ndarray], key: bytes, *, marks: int = _DEFAULT_MARKS, step: float = DEFAULT_STEP
) -> dict[str, np.ndarray]:
    """Return a copy of ``state`` (name -> float array) with the fingerprint of ``key`` embedded.

    ``marks`` positions per 2-D weight matrix (fewer if it has fewer nonzero weights).
    """
    out = {k: np.array(v, copy=True) for k, v in state.items()}
    for name in _marked(out):
        w = out[name]
        pos, bits = _positions(key, name, w, marks)
        flat = w.reshape(-1)
        # Weights near 0 are left alone (the pinned news inputs stay exactly 0); the detector
        # skips them the same way, since a marked weight stays at least 1.5 steps from 0.
        pos, bits = pos[np.abs(flat[pos]) >= 2.0 * step], bits[np.abs(flat[pos]) >= 2.0 * step]
        offset = bits * (step / 2.0)
        flat[pos] = (np.round((flat[pos] - offset) / step) * step + offset).astype(w.dtype)
        out[name] = flat.reshape(w.shape)
    return out


def detect(
    state: Mapping[str, np.ndarray],
    key: bytes,
    *,
    marks: int = _DEFAULT_MARKS,
    step: float = DEFAULT_STEP,
    alpha: float = 1e-6,
) -> FingerprintReport:
    """Test ``state`` for the fingerprint of ``key``; ``detected`` when the p-value is below ``alpha``.

    The positions come from the key, the names and shapes alone; weights within 1.5 steps of 0
    are not counted (embedding never marks them).
    """
    checked = matched = 0
    for name in _marked(state):
        w = np.asarray(state[name], dtype=np.float64)
        pos, bits = _positions(key, name, w, marks)
        v = w.reshape(-1)[pos]
        keep = np.abs(v) >= 1.5 * step
        v, bits = v[keep], bits[keep]
        # The nearest half-step lattice point: even -> bit 0, odd -> bit 1 (unkeyed: 1/2 each).
        got = np.mod(np.round(v / (step / 2.0)), 2).astype(np.int64)
        matched += int(np.sum(got == bits))
        checked += len(v)
    pvalue = _binomial_tail(checked, matched)
    return FingerprintReport(checked=checked, matched=matched, pvalue=pvalue, detected=pvalue < alpha)


def _binomial_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), computed in log space (exact for the n used here)."""
    if n == 0 or k <= 0:
        return 1.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0)
        for i in range(k, n + 1)
    ]
    m = max(logs)
    return min(1.0, math.exp(m) * sum(math.exp(x - m) for x in logs))


def fingerprint_secret(pem: str | Path) -> bytes:
    """The fingerprint's HMAC key, derived from an Ed25519 private key (PEM): one secret to keep."""
    from cryptography.hazmat.primitives import serialization

    from adapters.trust.signing import load_private_key

    raw = load_private_key(pem).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hashlib.sha256(b"finllm-fingerprint-v1\n" + raw).digest()


def onnx_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The float initializers of an ONNX file, by name (the torch exporter keeps parameter names)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT
    }

"""Errors of the inference package.  Every one derives from :class:`InferenceError`."""

from __future__ import annotations

__all__ = ["BackendUnavailable", "InferenceError", "ManifestError", "ModelMismatch"]


class InferenceError(Exception):
    """Base of every inference error; catch it to handle any of them."""


class ManifestError(InferenceError):
    """Raised by :func:`adapters.inference.manifest.load_manifest` when the manifest is missing or
    malformed, a file it lists is missing, or a file's sha256 differs from the manifest (tampered
    or corrupted weights).

    The caller must not load the weights: reinstall the model directory or retrain with
    ``python -m tools.train_edge`` (which rewrites the manifest).
    """


class ModelMismatch(InferenceError):
    """Raised when verified weights do not fit this code: another feature schema or feature order,
    other quantile levels, an unknown model id, or an output shape the code does not expect.

    The caller should retrain (``python -m tools.train_edge``) or pick the model built for this
    code version; loading anyway would produce silently wrong forecasts.
    """


class BackendUnavailable(InferenceError):
    """Raised by :func:`adapters.inference.backends.open_backend` when the requested backend cannot
    run here (package not installed, no CUDA device, unknown name); the message says why.

    The caller should choose another backend in config (``onnxruntime`` always works on CPU).
    """

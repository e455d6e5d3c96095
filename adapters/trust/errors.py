"""Errors of the trust package.  Every one derives from :class:`TrustError`."""

from __future__ import annotations

from adapters.inference.errors import ManifestError

__all__ = ["KeyFileError", "SignatureError", "TrustError"]


class TrustError(Exception):
    """Base of every trust error; catch it to handle any of them."""


class SignatureError(TrustError, ManifestError):
    """Raised by :func:`adapters.trust.signing.verify_manifest` (and so by
    :func:`adapters.inference.manifest.load_manifest`) when a model manifest is unsigned, its
    signature file is malformed, it is signed by a key that is not trusted, or the signature does
    not match the manifest (the manifest was edited after signing).

    ``reason`` is a stable word for metrics (``unsigned``, ``malformed``, ``unknown_key``,
    ``bad_signature``).  The caller must not load the weights: reinstall the model directory,
    re-sign it with ``finllm models sign`` and the release key, or add the signer's public key to
    the trusted keys if it is really trusted.  It is a :class:`ManifestError`, so callers that
    refuse a tampered manifest refuse an unsigned one the same way.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class KeyFileError(TrustError):
    """Raised by the key helpers of :mod:`adapters.trust.signing` when a key file or the trusted
    keys file is missing, unreadable, malformed, or its key id does not match its key.

    The caller should fix the file named in the message (or pass another one); nothing is signed
    or trusted from a file that failed to load.
    """

"""Trust in shipped artefacts: signed model manifests and keyed weight fingerprints.

* :mod:`~adapters.trust.signing` - Ed25519 signatures over a canonical encoding of a model
  manifest, the trusted public keys (``config/data/trusted_keys.toml``) and key files;
* :mod:`~adapters.trust.fingerprint` - a keyed pattern embedded in exported weights, so a copied
  model can be recognised;
* :mod:`~adapters.trust.errors` - the error hierarchy.
"""

from adapters.trust.errors import KeyFileError, SignatureError, TrustError
from adapters.trust.signing import (
    SIGNATURE_NAME,
    SignatureInfo,
    TrustedKey,
    TrustStore,
    load_trust_store,
    sign_manifest,
    verify_manifest,
)

__all__ = [
    "SIGNATURE_NAME",
    "KeyFileError",
    "SignatureError",
    "SignatureInfo",
    "TrustError",
    "TrustStore",
    "TrustedKey",
    "load_trust_store",
    "sign_manifest",
    "verify_manifest",
]

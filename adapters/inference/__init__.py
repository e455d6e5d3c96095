"""Edge-model inference: verified weights, backends, micro-batching, regime registry.

Submodules (import what you use; torch and TensorRT are only imported by their backends):

* :mod:`~adapters.inference.manifest` - ``models/edge/manifest.json`` verification;
* :mod:`~adapters.inference.backends` - onnxruntime / torch backends and :func:`open_backend`;
* :mod:`~adapters.inference.tensorrt_backend` - the TensorRT FP16 backend;
* :mod:`~adapters.inference.model` - :class:`EdgeModel` (predict, occlusion attribution);
* :mod:`~adapters.inference.batcher` - :class:`MicroBatcher`;
* :mod:`~adapters.inference.registry` - :class:`RegimeRegistry`;
* :mod:`~adapters.inference.net` - the torch network (training and the torch backend);
* :mod:`~adapters.inference.errors` - the error hierarchy.
"""

from adapters.inference.backends import BACKENDS, Backend, open_backend
from adapters.inference.batcher import MicroBatcher
from adapters.inference.errors import BackendUnavailable, InferenceError, ManifestError, ModelMismatch
from adapters.inference.manifest import Manifest, ModelSpec, load_manifest
from adapters.inference.model import EdgeModel, Predictions, load_edge_model
from adapters.inference.registry import RegimeRegistry

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "EdgeModel",
    "InferenceError",
    "Manifest",
    "ManifestError",
    "MicroBatcher",
    "ModelMismatch",
    "ModelSpec",
    "Predictions",
    "RegimeRegistry",
    "load_edge_model",
    "load_manifest",
    "open_backend",
]

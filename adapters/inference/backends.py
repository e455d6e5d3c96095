"""Inference backends behind one interface: onnxruntime (CPU default), torch (CPU/CUDA), TensorRT.

Every backend maps a float32 array of feature rows ``(batch, n_features)`` to a
float32 array ``(batch, k + 2)`` (quantiles, volatility, probability up; see
:mod:`adapters.inference.net`).  :func:`open_backend` picks one by name:

``onnxruntime``  the exported ONNX graph on the CPU execution provider (default).
``torch``        the state_dict in :class:`~adapters.inference.net.EdgeNet`, on
                 ``device`` ``cpu`` or ``cuda``.
``tensorrt``     an engine built from the same ONNX file with FP16 enabled; see
                 :mod:`adapters.inference.tensorrt_backend`.

Backends are not thread-safe: one per actor.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from adapters.inference.errors import BackendUnavailable
from adapters.inference.manifest import ModelFiles

__all__ = ["BACKENDS", "Backend", "OnnxRuntimeBackend", "TorchBackend", "open_backend"]

BACKENDS = ("onnxruntime", "torch", "tensorrt")
_TORCH_ROWS = 64  # the torch CPU backend pads batches to a multiple of this many rows (predict)


@runtime_checkable
class Backend(Protocol):
    """What the edge reasoner needs of an inference engine."""

    name: str
    device: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(batch, n_features)`` float32 rows in, ``(batch, k + 2)`` float32 out."""
        ...

    def close(self) -> None: ...


class OnnxRuntimeBackend:
    """onnxruntime on the CPU; ``threads`` intra-op threads (1 keeps latency flat on a busy box)."""

    def __init__(self, files: ModelFiles, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._sess = ort.InferenceSession(
            str(files.onnx), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._in = self._sess.get_inputs()[0].name
        self._out = [self._sess.get_outputs()[0].name]
        self.name = "onnxruntime"
        self.device = "cpu"

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._sess.run(self._out, {self._in: x})[0]
        return out

    def close(self) -> None:
        del self._sess  # release the session's memory now


class TorchBackend:
    """The torch module on ``cpu`` or ``cuda`` (fails with BackendUnavailable without a GPU)."""

    def __init__(
        self, files: ModelFiles, n_features: int, n_quantiles: int, *, device: str = "cpu", threads: int = 1
    ) -> None:
        import torch

        from adapters.inference.net import EdgeEnsemble, EdgeNet

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch backend: device {device!r} requested but CUDA is not available")
        if device == "cpu":
            torch.set_num_threads(threads)
        state = torch.load(files.state_dict, map_location="cpu", weights_only=True)
        net: EdgeNet | EdgeEnsemble
        if files.members > 1:
            net = EdgeEnsemble(n_features, files.hidden, n_quantiles, files.members)
        else:
            net = EdgeNet(n_features, files.hidden, n_quantiles)
        net.load_state_dict(state)
        self._net = net.to(device).eval()
        self._torch = torch
        self._dev = torch.device(device)
        self.name = "torch"
        self.device = device

    def predict(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        n = len(x)
        if self._dev.type == "cpu" and n % _TORCH_ROWS:
            # torch's CPU elementwise kernels (the sigmoid) take a scalar path for the rows after
            # the last full vector block, which can differ from the vector path by an ulp; padding
            # to a multiple of the block (copies of the last row, discarded) keeps a row's output
            # independent of its batch.
            x = np.concatenate([x, np.repeat(x[-1:], _TORCH_ROWS - n % _TORCH_ROWS, axis=0)])
        with torch.inference_mode():
            t = torch.from_numpy(x)
            if self._dev.type != "cpu":
                t = t.to(self._dev, non_blocking=True)
            out: np.ndarray = self._net(t).cpu().numpy()
        return out[:n]

    def close(self) -> None:
        del self._net


def open_backend(
    name: str,
    files: ModelFiles,
    *,
    n_features: int,
    n_quantiles: int,
    device: str = "cpu",
    threads: int = 1,
    max_batch: int = 64,
    cache_dir: str | None = None,
) -> Backend:
    """Open backend ``name`` on verified ``files``; raises BackendUnavailable with the reason."""
    if name == "onnxruntime":
        if device != "cpu":
            raise BackendUnavailable("onnxruntime backend: only the CPU execution provider is configured")
        return OnnxRuntimeBackend(files, threads=threads)
    if name == "torch":
        try:
            return TorchBackend(files, n_features, n_quantiles, device=device, threads=threads)
        except ImportError as exc:
            raise BackendUnavailable(f"torch backend: torch is not importable: {exc}") from exc
    if name == "tensorrt":
        from adapters.inference.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(files, n_features=n_features, max_batch=max_batch, cache_dir=cache_dir)
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {BACKENDS}")

"""TensorRT backend: an FP16 engine built from the exported ONNX graph (TensorRT >= 10 + pycuda).

The engine has one optimisation profile with a dynamic batch from 1 to
``max_batch`` (optimum at ``max_batch``).  Built engines are cached in
``cache_dir`` under a name that includes the ONNX sha256, the TensorRT version
and the GPU name, because a plan file is only valid for the exact build and
device it was made on.  Host buffers are page-locked and device buffers are
allocated once at ``max_batch``; each call copies in, runs ``execute_async_v3``
and copies out on one CUDA stream.

TensorRT cannot be installed on the CPU-only development machines; importing
this module works anywhere, and constructing the backend raises
:class:`~adapters.inference.errors.BackendUnavailable` with the reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from adapters.inference.errors import BackendUnavailable, ModelMismatch
from adapters.inference.manifest import ModelFiles

__all__ = ["TensorRTBackend", "tensorrt_status"]


def tensorrt_status() -> str | None:
    """None when TensorRT and a CUDA device are usable here, else the reason they are not."""
    try:
        import tensorrt  # noqa: F401 - probing availability only
    except ImportError as exc:
        return f"tensorrt is not installed ({exc}); install the 'gpu' extra on a CUDA machine"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return "no CUDA device visible to pycuda"
    except Exception as exc:  # pycuda raises its own hierarchy, and ImportError when absent
        return f"pycuda is not usable: {exc!r}"
    return None


class TensorRTBackend:
    """See the module docstring."""

    def __init__(
        self,
        files: ModelFiles,
        *,
        n_features: int,
        max_batch: int = 64,
        fp16: bool = True,
        cache_dir: str | None = None,
        device_index: int = 0,
    ) -> None:
        reason = tensorrt_status()
        if reason is not None:
            raise BackendUnavailable(f"tensorrt backend: {reason}")
        import pycuda.driver as cuda
        import tensorrt as trt

        self._cuda = cuda
        self._trt = trt
        self.name = "tensorrt"
        self.device = f"cuda:{device_index}"
        self._n_features = n_features
        self._max_batch = max_batch
        self._ctx = cuda.Device(device_index).retain_primary_context()
        self._ctx.push()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            plan = self._load_or_build(files, logger, fp16, cache_dir, cuda.Device(device_index).name())
            self._runtime = trt.Runtime(logger)
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise BackendUnavailable("tensorrt backend: the engine plan could not be deserialized")
            self._context = self._engine.create_execution_context()
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            ins = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if len(ins) != 1 or len(outs) != 1:
                raise ModelMismatch(f"tensorrt backend: expected 1 input and 1 output, got {ins} / {outs}")
            self._in, self._out = ins[0], outs[0]
            n_out = int(self._engine.get_tensor_shape(self._out)[1])
            self._n_out = n_out
            self._h_in = cuda.pagelocked_empty((max_batch, n_features), dtype=np.float32)
            self._h_out = cuda.pagelocked_empty((max_batch, n_out), dtype=np.float32)
            self._d_in = cuda.mem_alloc(self._h_in.nbytes)
            self._d_out = cuda.mem_alloc(self._h_out.nbytes)
            self._stream = cuda.Stream()
            self._context.set_tensor_address(self._in, int(self._d_in))
            self._context.set_tensor_address(self._out, int(self._d_out))
        finally:
            self._ctx.pop()

    def _load_or_build(
        self, files: ModelFiles, logger: Any, fp16: bool, cache_dir: str | None, gpu: str
    ) -> bytes:
        trt = self._trt
        key = hashlib.sha256(
            f"{files.sha256_onnx}|{trt.__version__}|{gpu}|{fp16}|{self._max_batch}".encode()
        ).hexdigest()[:16]
        cache = Path(cache_dir) / f"{files.onnx.stem}.{key}.plan" if cache_dir else None
        if cache is not None and cache.is_file():
            return cache.read_bytes()
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(files.onnx.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelMismatch(f"tensorrt backend: ONNX parse failed for {files.onnx}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 256 << 20)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        f = self._n_features
        profile.set_shape(name, (1, f), (self._max_batch, f), (self._max_batch, f))
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendUnavailable(f"tensorrt backend: engine build failed for {files.onnx}")
        data = bytes(plan)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(data)
        return data

    def predict(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n > self._max_batch:
            return np.concatenate(
                [self.predict(x[i : i + self._max_batch]) for i in range(0, n, self._max_batch)]
            )
        cuda = self._cuda
        self._ctx.push()
        try:
            self._h_in[:n] = x
            self._context.set_input_shape(self._in, (n, self._n_features))
            cuda.memcpy_htod_async(self._d_in, self._h_in[:n], self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                raise RuntimeError("tensorrt execute_async_v3 failed")
            cuda.memcpy_dtoh_async(self._h_out[:n], self._d_out, self._stream)
            self._stream.synchronize()
            return np.array(self._h_out[:n], copy=True)
        finally:
            self._ctx.pop()

    def close(self) -> None:
        self._ctx.push()
        try:
            self._d_in.free()
            self._d_out.free()
            del self._context, self._engine
        finally:
            self._ctx.pop()
            self._ctx.detach()

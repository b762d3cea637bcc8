"""A TFLite model loaded from verified bytes, with quantization handled generically.

`ai-edge-litert` is the runtime (the successor of tflite-runtime; its XNNPACK int8 path was ~10x faster
here); `tflite_runtime` is the fallback where only that wheel installs (cp38 on JetPack 5). Both share the
Interpreter API. Models are always loaded with `model_content=` from bytes the manifest verified, never
from a path that could be swapped after the check.

Callers work in float: `run()` quantizes float inputs for int8/uint8 tensors with the tensor's own scale
and zero point, and dequantizes outputs, so a float model and its full-int8 conversion are interchangeable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


class ModelError(Exception):
    """A model cannot be used (no runtime, not a TFLite model, tensors of an unexpected shape)."""


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise ModelError("no TFLite runtime installed (ai-edge-litert or tflite-runtime)") from None


@dataclass(frozen=True, slots=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype.kind in "iu" and self.scale > 0


def _info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        index=int(detail["index"]),
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


class TfliteModel:
    """One interpreter. Not thread-safe by nature, so `run()` holds a lock."""

    def __init__(self, content: bytes, *, threads: int = 1, name: str = "model") -> None:
        interpreter_class, self.runtime = _interpreter_class()
        self.name = name
        self._content = content  # the interpreter reads from this buffer: keep it alive
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            # The runtime's message may be long; the type and first line are enough to say what failed.
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ModelError(
                f"{name}: not a loadable TFLite model ({type(error).__name__}: {first})"
            ) from None
        self.inputs = [_info(d) for d in self._interpreter.get_input_details()]
        self.outputs = [_info(d) for d in self._interpreter.get_output_details()]
        self._lock = threading.Lock()

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Float inputs in (quantized as each input tensor needs), float32 outputs out."""
        if len(inputs) != len(self.inputs):
            raise ModelError(f"{self.name}: expected {len(self.inputs)} inputs, got {len(inputs)}")
        with self._lock:
            for info, value in zip(self.inputs, inputs, strict=True):
                self._interpreter.set_tensor(info.index, quantize(value, info))
            self._interpreter.invoke()
            return [dequantize(self._interpreter.get_tensor(info.index), info) for info in self.outputs]


def quantize(value: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.quantized:
        limits = np.iinfo(info.dtype)
        q = np.rint(value / info.scale + info.zero_point)
        return np.clip(q, limits.min, limits.max).astype(info.dtype)
    return np.ascontiguousarray(value, dtype=info.dtype)


def dequantize(value: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.quantized:
        return (value.astype(np.float32) - info.zero_point) * np.float32(info.scale)
    return value.astype(np.float32, copy=False)

"""The TFLite wrapper: quantization both ways, and models that are not models."""

from __future__ import annotations

import numpy as np
import pytest

from agent.anonymizer.runtime import ModelError, TensorInfo, TfliteModel, dequantize, quantize

from .kit import detector_files

INT8 = TensorInfo(0, "x", (1, 3), np.dtype(np.int8), 1 / 127.5, -1)


def test_int8_input_quantization_is_pixel_minus_128() -> None:
    # The OIDv4 int8 model: scale 1/127.5, zero point -1, i.e. int8 ~ uint8 pixel - 128 (models.md §4);
    # exactly p - 128.5, so each value may round either way: within one step.
    pixels = np.arange(256, dtype=np.float32)
    q = quantize(pixels / np.float32(127.5) - np.float32(1.0), INT8)
    assert q.dtype == np.int8
    assert np.all(np.abs(q.astype(int) - (np.arange(256) - 128)) <= 1)
    assert q[0] == -128 and q[-1] >= 126


def test_quantization_saturates_instead_of_wrapping() -> None:
    assert quantize(np.array([-50.0, 50.0], np.float32), INT8).tolist() == [-128, 127]


def test_dequantize_inverts_quantize_within_one_step() -> None:
    info = TensorInfo(0, "y", (4,), np.dtype(np.uint8), 0.344, 106)
    values = np.array([-30.0, 0.0, 12.3, 50.0], np.float32)
    back = dequantize(quantize(values, info), info)
    assert back.dtype == np.float32
    assert np.all(np.abs(back - values) <= info.scale / 2 + 1e-6)


def test_float_tensors_pass_through() -> None:
    info = TensorInfo(0, "f", (2,), np.dtype(np.float32), 0.0, 0)
    assert dequantize(quantize(np.array([0.25, -3.5]), info), info).tolist() == [0.25, -3.5]


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x00" * 4096])
def test_bytes_that_are_no_model_are_refused_clearly(content: bytes) -> None:
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        TfliteModel(content, name="bad.tflite")


def test_a_truncated_model_is_refused() -> None:
    data = detector_files()[0].read_bytes()
    with pytest.raises(ModelError):
        TfliteModel(data[: len(data) // 3], name="truncated.tflite")


def test_the_detector_loads_from_bytes_with_its_tensor_details() -> None:
    model = TfliteModel(detector_files()[0].read_bytes(), threads=1, name="ssd")
    assert model.runtime in ("ai-edge-litert", "tflite-runtime")
    assert [i.shape for i in model.inputs] == [(1, 300, 300, 3)]
    assert sorted(o.shape for o in model.outputs) == [(1, 1917, 4), (1, 1917, 24)]
    with pytest.raises(ModelError, match="expected 1 inputs"):
        model.run()

"""Export the trained TinyGLCIC generator to fixed-shape TFLite files.

Route: re-implement the generator in Keras (NHWC), copy the PyTorch weights in, check the two agree, then
``TFLiteConverter.from_keras_model``. Variants written per size S (``--sizes``):

- ``fp32``: plain float;
- ``fp16``: float16 weights, float compute (the shipped ``glcic_S.tflite`` unless a quantized one is as good);
- ``dynamic``: int8 weights, dynamic-range activations;
- ``int8``: full integer (float I/O), calibrated on crops of TRAINING frames/photos only;
- ``int8_float_ends``: ``int8`` with the first and last convolutions kept in float (selective quantization).

(int16-activation/int8-weight quantization was tried too: TFLite 2.21 refuses it, "Quantization to 16x8-bit
not yet supported for op: 'ELU'".)

Runtime contract: input 0 float32 [1, S, S, 4] (RGB in [-1, 1], hole zeroed, channel 3 = mask), output 0
float32 [1, S, S, 3] tanh RGB prediction in [-1, 1], not composited.

    python models/inpaint/export.py --weights models/inpaint/glcic.pt --out models/inpaint/.work/tflite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from evaluate import hole_mask, make_cases, network_input  # noqa: E402
from model import DILATIONS, load_generator  # noqa: E402

VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8_float_ends")
CALIBRATION_SEED = 99


def conv(x, filters: int, kernel: int, name: str, stride: int = 1, dilation: int = 1, activation="elu"):
    if stride == 2:
        # PyTorch pads 1 px on every side; Keras 'same' with stride 2 pads bottom/right only and would
        # shift every feature by half a pixel.
        x = tf.keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        return tf.keras.layers.Conv2D(filters, kernel, 2, "valid", activation=activation, name=name)(x)
    return tf.keras.layers.Conv2D(
        filters, kernel, 1, "same", dilation_rate=dilation, activation=activation, name=name
    )(x)


def keras_generator(size: int, widths: tuple[int, int, int]) -> tf.keras.Model:
    c1, c2, c3 = widths
    source = tf.keras.Input((size, size, 4), batch_size=1, name="masked_rgb_and_mask")
    x = conv(source, c1, 5, "enc0")
    x = conv(x, c2, 3, "enc1", stride=2)
    x = conv(x, c2, 3, "enc2")
    x = conv(x, c3, 3, "enc3", stride=2)
    x = conv(x, c3, 3, "enc4")
    for i, dilation in enumerate(DILATIONS):
        x = conv(x, c3, 3, f"mid{i}", dilation=dilation)
    x = conv(x, c3, 3, "mid4")
    x = tf.keras.layers.UpSampling2D(2, interpolation="nearest", name="up0")(x)
    x = conv(x, c2, 3, "dec0")
    x = conv(x, c2, 3, "dec1")
    x = tf.keras.layers.UpSampling2D(2, interpolation="nearest", name="up1")(x)
    x = conv(x, c1, 3, "dec2")
    x = conv(x, 3, 3, "dec3", activation="tanh")
    return tf.keras.Model(source, x, name=f"glcic_{size}")


def copy_weights(generator: torch.nn.Module, model: tf.keras.Model) -> None:
    torch_convs = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    keras_convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    if len(torch_convs) != len(keras_convs):
        raise ValueError(f"layer count mismatch: {len(torch_convs)} torch vs {len(keras_convs)} keras convs")
    for source, target in zip(torch_convs, keras_convs, strict=True):
        kernel = source.weight.detach().numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
        target.set_weights([kernel, source.bias.detach().numpy()])


def calibration_inputs(size: int, count: int):
    """Representative inputs from the TRAINING pack only (vtest frames and photos, half each)."""
    pack = HERE / ".work" / "train"
    cases = make_cases(pack / "vtest", count // 2, size, CALIBRATION_SEED)
    cases += make_cases(pack / "photo", count - count // 2, size, CALIBRATION_SEED + 1)
    for case in cases:
        mask = hole_mask(size, case["hole"])
        yield network_input(case["image"] * (1 - mask[..., None]), mask)


def converter_for(
    model: tf.keras.Model, variant: str, size: int, calibration: int
) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "fp32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant != "dynamic":
        converter.representative_dataset = lambda: ([x] for x in calibration_inputs(size, calibration))
    return converter


def float_ends_model(converter: tf.lite.TFLiteConverter, size: int) -> bytes:
    """Full int8 except the first and the last convolution, via the quantization debugger's deny list."""

    def dataset():
        return ([x] for x in calibration_inputs(size, 8))

    # The converted node names are only known after a first quantized pass.
    probe = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    names = [
        detail["name"]
        for detail in probe._quant_interpreter.get_tensor_details()
        if "enc0" in detail["name"] or "dec3" in detail["name"]
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names),
    )
    return debugger.get_nondebug_quantized_model()


def write_quantization_report(model: tf.keras.Model, size: int, calibration: int, path: Path) -> None:
    """Per-layer int8 error (TFLite quantization debugger) as CSV: where full-integer quantization breaks."""
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter_for(model, "int8", size, calibration),
        debug_dataset=lambda: ([x] for x in calibration_inputs(size, 8)),
    )
    debugger.run()
    with path.open("w") as report:
        debugger.layer_statistics_dump(report)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=HERE / "glcic.pt")
    parser.add_argument("--out", type=Path, default=HERE / ".work" / "tflite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--calibration", type=int, default=200, help="representative inputs for int8")
    parser.add_argument("--quant-report", type=Path, help="also write the int8 per-layer error CSV here")
    args = parser.parse_args()

    generator = load_generator(str(args.weights))
    widths = tuple(generator.encoder[i][0].out_channels for i in (0, 1, 3))
    args.out.mkdir(parents=True, exist_ok=True)
    probe = (
        np.random.default_rng(0).uniform(-1, 1, (1, max(args.sizes), max(args.sizes), 4)).astype(np.float32)
    )
    for size in args.sizes:
        model = keras_generator(size, widths)
        copy_weights(generator, model)
        x = probe[:, :size, :size]
        with torch.no_grad():
            expected = generator(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        diff = float(np.abs(model(x).numpy() - expected).max())
        print(f"size {size}: keras vs torch max abs diff {diff:.2e}")
        if diff > 1e-4:
            raise RuntimeError(f"Keras re-implementation disagrees with PyTorch (max abs diff {diff})")
        for variant in args.variants:
            if variant == "int8_float_ends":
                blob = float_ends_model(converter_for(model, "int8", size, args.calibration), size)
            else:
                blob = converter_for(model, variant, size, args.calibration).convert()
            path = args.out / f"glcic_{size}_{variant}.tflite"
            path.write_bytes(blob)
            print(f"wrote {path} ({len(blob) / 1e6:.2f} MB)")
        if args.quant_report:
            write_quantization_report(
                model, size, args.calibration, args.quant_report.with_suffix(f".{size}.csv")
            )


if __name__ == "__main__":
    main()

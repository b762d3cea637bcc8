"""Makes `tiny_inpaint_32.tflite`: a real TFLite model with the learned-inpainting contract, for tests.

Input float32 [1,32,32,4] (RGB in [-1,1] with the hole zeroed, channel 3 the mask), output float32
[1,32,32,3]: a 1x1 convolution whose weights ignore the image and whose bias is a fixed colour, so a
test can tell exactly which pixels the "network" filled. Run with TensorFlow (not an agent dependency):
    /work/venvs/tf/bin/python tests/anonymizer/data/make_tiny_inpaint.py
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

FILL_RGB = (-0.6, 0.8, -0.2)  # in [-1,1]: RGB (51, 229, 102), a green no test photo has in a hole

inputs = tf.keras.Input((32, 32, 4), batch_size=1, dtype=tf.float32)
conv = tf.keras.layers.Conv2D(3, 1, kernel_initializer="zeros", bias_initializer="zeros")
outputs = conv(inputs)
model = tf.keras.Model(inputs, outputs)
conv.set_weights([np.zeros((1, 1, 4, 3), np.float32), np.array(FILL_RGB, np.float32)])
tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
Path(__file__).with_name("tiny_inpaint_32.tflite").write_bytes(tflite)

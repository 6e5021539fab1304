r"""Forward + backward time of one convolution on the small maps that 8x8
patches produce: TF's Conv2D against SmallMapConv2D's matrix product.

  python bench/small_map_conv.py --out=bench/small_map_conv.json

Batch: 1,568 maps (32 images x 49 patches), float32, graph mode, no XLA.
FLOPs are the useful ones (taps over real pixels), the same for both.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from cpc_tf.models import small_conv

flags.DEFINE_integer("maps", 1568, "Feature maps in the batch.")
flags.DEFINE_list("sizes", ["1", "2", "4", "8"], "Map sides.")
flags.DEFINE_list("kernels", ["1", "3"], "Kernel sides.")
flags.DEFINE_list("channels", ["128", "512"], "Input = output channels.")
flags.DEFINE_integer("repeats", 5, "Timed repeats (after one untimed).")
flags.DEFINE_string("out", "bench/small_map_conv.json", "JSON results file.")
FLAGS = flags.FLAGS


def seconds_per_step(layer, inputs):
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x)
      loss = tf.reduce_sum(y * y)
    return tape.gradient(loss, [x, layer.kernel])
  step(inputs)
  start = time.perf_counter()
  for _ in range(FLAGS.repeats):
    grads = step(inputs)
  _ = [g.numpy() for g in grads]
  return (time.perf_counter() - start) / FLAGS.repeats


def useful_flops(size, kernel, channels):
  """(output, real input pixel) pairs x 2 x C_in x C_out, for the forward,
  input gradient and kernel gradient: taps over padding do not count."""
  pairs = np.sum(small_conv.tap_of_input(size, kernel, 1) >= 0) ** 2
  return 3 * 2 * FLAGS.maps * pairs * channels * channels


def main(argv):
  del argv
  results = []
  rng = np.random.default_rng(0)
  for channels in map(int, FLAGS.channels):
    for kernel in map(int, FLAGS.kernels):
      for size in map(int, FLAGS.sizes):
        inputs = tf.constant(rng.standard_normal(
            (FLAGS.maps, size, size, channels), np.float32))
        conv = keras.layers.Conv2D(channels, kernel, padding="same",
                                   use_bias=False)
        matmul = small_conv.SmallMapConv2D(channels, kernel, padding="same",
                                           use_bias=False, max_pixels=64)
        conv.build(inputs.shape)
        matmul.build(inputs.shape)
        matmul.kernel.assign(conv.kernel)
        np.testing.assert_allclose(conv(inputs), matmul(inputs), rtol=1e-4,
                                   atol=1e-3)
        flops = useful_flops(size, kernel, channels)
        row = {"channels": channels, "kernel": kernel, "map": size,
               "useful_gflop": flops / 1e9}
        for name, layer in (("conv2d", conv), ("matmul", matmul)):
          seconds = seconds_per_step(layer, inputs)
          row[f"{name}_seconds"] = seconds
          row[f"{name}_gflops"] = flops / seconds / 1e9
        print(json.dumps(row), flush=True)
        results.append(row)
  with open(FLAGS.out, "w") as f:
    json.dump({"maps": FLAGS.maps, "results": results}, f, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

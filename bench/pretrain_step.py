r"""Speed, FLOP/s and peak memory of one CPC training step: float32 and mixed
bfloat16, with and without XLA, with --recompute, and with TF's Conv2D in
place of the small-map matrix products (cpc_tf/models/small_conv.py); and the
largest batch whose step fits in a memory budget.

  python bench/pretrain_step.py --out=bench/pretrain_step.json
  python bench/pretrain_step.py --max_batch --cases=cifar10_cpu \
      --variants=float32,float32_recompute --out=bench/max_batch.json

Each (configuration, variant) pair runs in its own process so that its peak
resident memory (ru_maxrss) is its own. Synthetic patches are fed from memory:
this measures the model's step, not the input pipeline
(bench/input_pipeline.py does that).
"""

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from bench.machine import cpu_info
from cpc_tf.train import trainer
from cpc_tf.configs import command_line
from cpc_tf.models import small_conv
from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-direct-tensorflow-import

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TFDS_DIR = os.environ.get("TFDS_DATA_DIR",
                          os.path.join(os.path.dirname(REPO), "shared", "tfds"))
CASES = {
    "smoke": ["--flagfile=flags/smoke.cfg"],
    "cifar10_cpu": ["--flagfile=flags/cifar10_cpu.cfg"],
    "cifar10_session": ["--flagfile=flags/cifar10_cpu_session.cfg"],
    # Two levers of the session recipe (docs/RESULTS.md): a twice as wide
    # encoder (1,024-d latents), and cifar10_cpu.cfg's 7x7 grid at stride 4.
    "cifar10_session_width64": ["--flagfile=flags/cifar10_cpu_session.cfg",
                                "--encoder_width=64"],
    "cifar10_session_grid7": ["--flagfile=flags/cifar10_cpu_session.cfg",
                              "--patch_stride=4", "--steps_to_ignore=2",
                              "--steps_to_predict=5"],
    # The best CPU recipe so far: the session recipe on a non-overlapping
    # 4x4 grid.
    "cifar10_grid4": ["--flagfile=flags/cifar10_cpu_grid4.cfg"],
    "resnet50_64px_batch4": [
        "--flagfile=flags/resnet50_imagenet.cfg", "--image_size=256",
        "--patch_size=64", "--patch_stride=32", "--batch_size=4",
        "--strategy=default",
        # Synthetic patches are timed; the dataset only sizes the schedule.
        "--dataset=cifar10", "--split=train", f"--data_dir={TFDS_DIR}"],
    # Reference configurations: batch 32 of 32x32 images, a 7x7 grid of 8x8
    # patches. A ResNet-18-sized encoder (basic blocks, 3x3 stem: maps of
    # 8x8, 4x4, 2x2, 1x1), and the LayerNorm ResNet-101 with [3, 4, 46, 3]
    # blocks and a 4096-wide third stage (7x7/2 stem: 2x2 then 1x1 maps).
    "resnet18_batch32": [
        "--flagfile=flags/cifar10_cpu.cfg", "--encoder=resnet18",
        "--encoder_width=64", "--encoder_blocks=2,2,2,2", "--stem=small",
        "--batch_size=32"],
    "resnet101_wide_batch32": [
        "--flagfile=flags/cifar10_cpu.cfg", "--encoder=resnet101_wide",
        "--encoder_width=64", "--encoder_blocks=3,4,46,3", "--stem=imagenet",
        "--batch_size=32"],
}

# Settings measured for every case: float32 with and without XLA, mixed
# bfloat16 with and without XLA, and float32 with --recompute.
VARIANTS = {
    "float32": ["--precision=float32", "--jit_compile=false"],
    "float32_xla": ["--precision=float32", "--jit_compile=true"],
    "bfloat16": ["--precision=bfloat16", "--jit_compile=false"],
    "bfloat16_xla": ["--precision=bfloat16", "--jit_compile=true"],
    "float32_recompute": ["--precision=float32", "--jit_compile=false",
                          "--recompute"],
    "float32_conv2d": ["--precision=float32", "--jit_compile=false",
                       "--nosmall_map_matmul"],
}
MEMORY_BUDGET_MB = 8192

# The pretraining flags, which the cases set.
command_line.define_pretrain_flags()
flags.DEFINE_list("cases", list(CASES), f"Configurations, from {list(CASES)}.")
flags.DEFINE_list("variants", list(VARIANTS),
                  f"Settings, from {list(VARIANTS)}.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, compiling); "
                     "at least 1. The median timed step is reported.")
flags.DEFINE_string("out", "bench/pretrain_step.json", "JSON results file.")
flags.register_validator("warmup", lambda value: value >= 1,
                         message="--warmup must be at least 1")
flags.DEFINE_string("one", None, "Internal: measure the configuration given "
                    "by the other flags in this process, under this name.")
flags.DEFINE_bool("max_batch", False, "Instead of timing, find the largest "
                  f"batch whose training step peaks under {MEMORY_BUDGET_MB} "
                  "MB resident, for each case and variant.")
flags.DEFINE_bool("profile", False, "Also trace one step with the TF "
                  "profiler and report the self-time by op type.")
flags.DEFINE_enum("onednn", "on", ["on", "off", "default"],
                  "TF's oneDNN CPU kernels in the measured processes "
                  "(TF_ENABLE_ONEDNN_OPTS): on, as the scripts run (cpc_tf "
                  "turns them on); off; default, TF's own choice for this "
                  "CPU (off on AVX2-only CPUs).")
flags.DEFINE_integer("max_batch_probe", 16, "--max_batch: the first two "
                     "batches measured are this and twice this.")


def flop_per_cycle(info: dict) -> int:
  """fp32 FLOP per cycle and core: two FMA pipes x lanes x 2 FLOP per FMA.
  16 lanes where AVX-512 runs at full width (AMD Zen 5, family 26; Intel
  server cores), 8 for AVX2 and for Zen 4's double-pumped AVX-512."""
  avx512 = "avx512f" in info.get("flags", "").split()
  zen4_or_older = (info.get("vendor_id") == "AuthenticAMD"
                   and int(info.get("cpu family", 0)) < 26)
  return 64 if avx512 and not zen4_or_older else 32


def cpu_peak_gflops() -> float:
  """fp32 peak of this CPU: cores x clock x FLOP per cycle."""
  info = cpu_info()
  return os.cpu_count() * float(info["cpu MHz"]) / 1e3 * flop_per_cycle(info)


def step_flops(model, batch) -> float:
  """FLOPs of one forward and backward pass, counted by TF's profiler from the
  graph's registered op statistics (convolutions with SAME padding count
  their zero taps)."""
  from tensorflow.python.profiler import model_analyzer, option_builder  # pylint: disable=g-import-not-at-top

  @tf.function
  def gradients(patches):
    with tf.GradientTape() as tape:
      loss, _, _ = model.compute_cpc_loss(patches, training=True)
    return tape.gradient(loss, model.trainable_variables)

  options = option_builder.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  graph = gradients.get_concrete_function(batch).graph
  return float(model_analyzer.profile(graph, options=options).total_float_ops)


@contextlib.contextmanager
def conv2d_everywhere(model):
  """Every SmallMapConv2D of model runs as TF's Conv2D inside the block
  (a layer's max_pixels is read when a function is traced)."""
  layers = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
            if isinstance(layer, small_conv.SmallMapConv2D)]
  saved = [layer.max_pixels for layer in layers]
  for layer in layers:
    layer.max_pixels = 0
  try:
    yield
  finally:
    for layer, max_pixels in zip(layers, saved):
      layer.max_pixels = max_pixels


def conv2d_step_flops(model, batch) -> float:
  """step_flops with every convolution as TF's Conv2D: the model's nominal
  count, zero taps included (the small-map matrix products skip them)."""
  with conv2d_everywhere(model):
    return step_flops(model, batch)


def padding_flops_per_patch(model, patch_size: int) -> float:
  """Forward and backward FLOPs per patch that the nominal count gives to
  kernel taps over SAME padding (zeros): 2 x C_in x C_out per (output,
  padded input) pair, three times (forward, input and kernel gradients;
  twice for the stem, whose input gradient is never computed)."""
  with conv2d_everywhere(model):
    graph = tf.function(model.encoder).get_concrete_function(
        tf.TensorSpec([1, patch_size, patch_size, 3])).graph
  total = 0.0
  for op in graph.get_operations():
    if op.type != "Conv2D":
      continue
    _, height, width, channels = op.inputs[0].shape
    kernel_h, kernel_w, _, filters = op.inputs[1].shape
    _, stride_h, stride_w, _ = op.get_attr("strides")
    rows = small_conv.tap_of_input(height, kernel_h, stride_h)
    cols = small_conv.tap_of_input(width, kernel_w, stride_w)
    real = np.sum(rows >= 0) * np.sum(cols >= 0)
    padded = rows.shape[1] * cols.shape[1] * kernel_h * kernel_w - real
    passes = 2 if "stem" in op.name else 3
    total += passes * 2 * channels * filters * padded
  return total


def time_by_op_type(model, dataset, top: int = 12) -> dict:
  """Seconds of self-time per TF op type over one traced training step."""
  import tempfile  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # pylint: disable=g-import-not-at-top
  logdir = tempfile.mkdtemp()
  tf.profiler.experimental.start(logdir)
  model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
  tf.profiler.experimental.stop()
  path = next(os.path.join(root, name) for root, _, names in os.walk(logdir)
              for name in names if name.endswith(".xplane.pb"))
  raw, _ = _pywrap_profiler_plugin.xspace_to_tools_data(
      [path], "framework_op_stats", {})
  table = json.loads(raw)[0]
  columns = [c["id"] for c in table["cols"]]
  totals = {}
  for row in table["rows"]:
    values = dict(zip(columns, (cell.get("v") for cell in row["c"])))
    totals[values["type"]] = (totals.get(values["type"], 0.0)
                              + values["total_self_time"] / 1e6)
  return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])


class StepEnds(keras.callbacks.Callback):
  """When each training step ended. Timing whole fit() calls is not enough
  here: some took a round 10.23 s (or 5.12 s) for 5 or 10 steps whose
  per-step times added up to half of that."""

  def __init__(self):
    super().__init__()
    self.times = []

  def on_train_batch_end(self, batch, logs=None):
    float(logs["loss"])      # waits for the step to finish
    self.times.append(time.perf_counter())


def measure(case: str, steps: int, warmup: int) -> dict:
  """Images/s, patches/s and peak RSS of `steps` training steps."""
  config = command_line.pretrain_config_from_flags()
  config.validate()
  grid = config.grid
  model = trainer.build_model(config)
  shape = [config.batch_size, grid.grid_size, grid.grid_size,
           grid.patch_size, grid.patch_size, 3]
  batch = tf.constant(np.random.default_rng(0).random(shape, np.float32))
  dataset = tf.data.Dataset.from_tensors(batch).repeat()
  step_ends = StepEnds()
  model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0,
            callbacks=[step_ends])
  seconds = float(np.median(np.diff(step_ends.times[warmup - 1:])))
  patches = config.batch_size * grid.grid_size ** 2
  flops = step_flops(model, batch)
  nominal = conv2d_step_flops(model, batch)
  useful = nominal - patches * padding_flops_per_patch(model, grid.patch_size)
  profile = ({"seconds_by_op_type": time_by_op_type(model, dataset)}
             if flags.FLAGS.profile else {})
  return {
      **profile,
      "case": case, "jit_compile": config.jit_compile,
      "precision": config.precision, "recompute": config.recompute,
      "batch_size": config.batch_size,
      "grid": grid.grid_size, "patch_size": grid.patch_size,
      "encoder_params": model.encoder.count_params(),
      "seconds_per_step": seconds,
      "images_per_second": config.batch_size / seconds,
      "patches_per_second": patches / seconds,
      # Model FLOPs: the Conv2D count without taps over padding (zeros).
      "gflop_per_image": useful / config.batch_size / 1e9,
      "achieved_gflops": useful / seconds / 1e9,
      "fraction_of_cpu_peak": useful / seconds / 1e9 / cpu_peak_gflops(),
      # The Conv2D count with padding taps, and what this graph executes.
      "nominal_gflop_per_image": nominal / config.batch_size / 1e9,
      "executed_gflop_per_image": flops / config.batch_size / 1e9,
      "onednn": _pywrap_util_port.IsMklEnabled(),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def run_one(case: str, variant: str, *extra: str) -> dict:
  """measure() in a fresh process, so that peak memory is this run's."""
  env = dict(os.environ)
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)
  if flags.FLAGS.onednn != "default":
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if flags.FLAGS.onednn == "on" else "0"
  proc = subprocess.run(
      [sys.executable, __file__, f"--one={case}", *CASES[case],
       *VARIANTS[variant], f"--steps={flags.FLAGS.steps}",
       f"--warmup={flags.FLAGS.warmup}",
       f"--{'' if flags.FLAGS.profile else 'no'}profile", *extra],
      cwd=REPO, env=env, capture_output=True, text=True, check=False)
  if proc.returncode:
    return {"case": case, "variant": variant,
            "error": proc.stderr.strip().splitlines()[-1:]}
  last_line = proc.stdout.strip().splitlines()[-1]
  return {"variant": variant, **json.loads(last_line)}


def largest_batch(case: str, variant: str) -> dict:
  """Peak RSS is close to linear in the batch: measure two batches, predict
  the largest under the budget from the line through them, then step down
  until a measured run fits."""
  def peak(batch):
    result = run_one(case, variant, f"--batch_size={batch}")
    return result.get("peak_rss_mb", float("inf"))

  small = flags.FLAGS.max_batch_probe
  probes = {small: peak(small), 2 * small: peak(2 * small)}
  per_image = (probes[2 * small] - probes[small]) / small
  batch = int(small + (MEMORY_BUDGET_MB - probes[small]) / max(per_image, 1e-3))
  while batch > 1:
    probes[batch] = peak(batch)
    if probes[batch] <= MEMORY_BUDGET_MB:
      break
    batch = int(batch * 0.9)
  return {"case": case, "variant": variant, "budget_mb": MEMORY_BUDGET_MB,
          "largest_batch": batch, "mb_per_image": per_image,
          "peak_rss_mb_by_batch": {str(b): p
                                   for b, p in sorted(probes.items())}}


def main(argv):
  del argv
  if flags.FLAGS.one:
    print(json.dumps(measure(flags.FLAGS.one, flags.FLAGS.steps,
                             flags.FLAGS.warmup)))
    return
  results = []
  for case in flags.FLAGS.cases:
    for variant in flags.FLAGS.variants:
      if flags.FLAGS.max_batch:
        result = largest_batch(case, variant)
      else:
        result = run_one(case, variant)
      print(json.dumps(result), flush=True)
      results.append(result)
  report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "peak_gflops": cpu_peak_gflops(),
                        "cpu": {k: cpu_info().get(k) for k in (
                            "model name", "cpu family", "model", "cpu MHz")}},
            "results": results}
  with open(os.path.join(REPO, flags.FLAGS.out), "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {flags.FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

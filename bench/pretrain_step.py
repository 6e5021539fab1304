r"""Speed, FLOP/s and peak memory of one CPC training step: float32 and mixed
bfloat16, with and without XLA, and with --recompute.

  python bench/pretrain_step.py --out=bench/pretrain_step.json

Each (configuration, variant) pair runs in its own process so that its peak
resident memory (ru_maxrss) is its own. Synthetic patches are fed from memory:
this measures the model's step, not the input pipeline
(bench/input_pipeline.py does that).
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf
from absl import app
from absl import flags

import run_pretrain  # defines the pretraining flags the cases set
from cpc_tf import pretrain

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TFDS_DIR = os.environ.get("TFDS_DATA_DIR",
                          os.path.join(os.path.dirname(REPO), "shared", "tfds"))
CASES = {
    "smoke": ["--flagfile=flags/smoke.cfg"],
    "cifar10_cpu": ["--flagfile=flags/cifar10_cpu.cfg"],
    "resnet50_64px_batch4": [
        "--flagfile=flags/resnet50_imagenet.cfg", "--image_size=256",
        "--patch_size=64", "--patch_stride=32", "--batch_size=4",
        "--strategy=default",
        # Synthetic patches are timed; the dataset only sizes the schedule.
        "--dataset=cifar10", "--split=train", f"--data_dir={TFDS_DIR}"],
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
}

flags.DEFINE_list("cases", list(CASES), f"Configurations, from {list(CASES)}.")
flags.DEFINE_list("variants", list(VARIANTS), f"Settings, from {list(VARIANTS)}.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, compiling).")
flags.DEFINE_string("out", "bench/pretrain_step.json", "JSON results file.")
flags.DEFINE_string("one", None, "Internal: measure the configuration given "
                    "by the other flags in this process, under this name.")


def cpu_peak_gflops() -> float:
  """fp32 peak of this CPU: cores x clock x 32 FLOP/cycle (two 256-bit FMA
  units, 8 lanes, 2 FLOP per FMA: AVX2+FMA, and Zen 4's double-pumped AVX-512)."""
  with open("/proc/cpuinfo") as f:
    mhz = float(next(line for line in f if line.startswith("cpu MHz")).split(":")[1])
  return os.cpu_count() * mhz / 1e3 * 32


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


def measure(case: str, steps: int, warmup: int) -> dict:
  """Images/s, patches/s and peak RSS of `steps` training steps."""
  config = run_pretrain.config_from_flags()
  config.validate()
  grid = config.grid
  model = pretrain.build_model(config)
  shape = [config.batch_size, grid.grid_size, grid.grid_size,
           grid.patch_size, grid.patch_size, 3]
  batch = tf.constant(np.random.default_rng(0).random(shape, np.float32))
  dataset = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
  start = time.perf_counter()
  model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
  seconds = (time.perf_counter() - start) / steps
  patches = config.batch_size * grid.grid_size ** 2
  flops = step_flops(model, batch)
  return {
      "case": case, "jit_compile": config.jit_compile,
      "precision": config.precision, "recompute": config.recompute,
      "batch_size": config.batch_size,
      "grid": grid.grid_size, "patch_size": grid.patch_size,
      "encoder_params": model.encoder.count_params(),
      "seconds_per_step": seconds,
      "images_per_second": config.batch_size / seconds,
      "patches_per_second": patches / seconds,
      "gflop_per_image": flops / config.batch_size / 1e9,
      "achieved_gflops": flops / seconds / 1e9,
      "fraction_of_cpu_peak": flops / seconds / 1e9 / cpu_peak_gflops(),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def main(argv):
  del argv
  if flags.FLAGS.one:
    print(json.dumps(measure(flags.FLAGS.one, flags.FLAGS.steps,
                             flags.FLAGS.warmup)))
    return
  results = []
  for case in flags.FLAGS.cases:
    for variant in flags.FLAGS.variants:
      proc = subprocess.run(
          [sys.executable, __file__, f"--one={case}", *CASES[case],
           *VARIANTS[variant], f"--steps={flags.FLAGS.steps}",
           f"--warmup={flags.FLAGS.warmup}"],
          cwd=REPO, capture_output=True, text=True, check=False)
      if proc.returncode:
        result = {"case": case, "variant": variant,
                  "error": proc.stderr.strip().splitlines()[-1:]}
      else:
        result = {"variant": variant,
                  **json.loads(proc.stdout.strip().splitlines()[-1])}
      print(json.dumps(result), flush=True)
      results.append(result)
  report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "peak_gflops": cpu_peak_gflops()},
            "results": results}
  with open(os.path.join(REPO, flags.FLAGS.out), "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {flags.FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

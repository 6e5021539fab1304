r"""Throughput of the pretraining input pipeline (images/s, patches/s).

  TFDS_DATA_DIR=../shared/tfds python bench/input_pipeline.py

For the CIFAR-10 path (32x32, 7x7 grid of 8x8 patches, ../shared/tfds) and
the ImageNet-style path (240x240, 6x6 grid of 80x80 patches, the
../shared/data/imagenette_mini folder), with every augmentation on and with
each family switched off in turn. Writes JSON.
"""

import dataclasses
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from bench.machine import cpu_info
from cpc_tf.data import augment
from cpc_tf.data import pipelines
from cpc_tf.data.patches import PatchGrid

SHARED = os.path.join(os.path.dirname(REPO), "shared")
PATHS = {
    "cifar10": dict(name="cifar10", split="train", grid=PatchGrid(32, 8, 4),
                    jitter=1),
    "imagenet_style": dict(
        name="folder:" + os.path.join(SHARED, "data", "imagenette_mini"),
        split="train", grid=PatchGrid(240, 80, 32), jitter=8),
}
FULL = dict(flip=True, color_drop=1.0, geometric=True, elastic=True, color=True)
OFF = {"jitter": dict(jitter=0), "flip": dict(flip=False),
       "color_drop": dict(color_drop=0.0), "geometric": dict(geometric=False),
       "elastic": dict(elastic=False), "color": dict(color=False)}

flags.DEFINE_list("paths", list(PATHS), f"Which of {list(PATHS)}.")
flags.DEFINE_integer("batch_size", 64, "Images per batch.")
flags.DEFINE_integer("batches", 20, "Timed batches per repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per variant; the median "
                     "is reported (single timings on this 2-core machine "
                     "vary by tens of percent).")
flags.DEFINE_string("out", "bench/input_pipeline.json", "JSON results file.")


def throughput(path: dict, augment_config: augment.PatchAugment,
               batch_size: int, batches: int, repeats: int) -> dict:
  dataset = pipelines.pretrain_dataset(path["name"], path["split"],
                                  os.environ.get("TFDS_DATA_DIR"), path["grid"],
                                  batch_size, augment=augment_config)
  iterator = iter(dataset)
  for _ in range(3):      # warm-up: tracing, shuffle buffer, autotuning
    next(iterator)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    rates.append(batch_size * batches / (time.perf_counter() - start))
  images = statistics.median(rates)
  return {"images_per_second": images,
          "patches_per_second": images * path["grid"].grid_size ** 2,
          "images_per_second_each_repeat": rates}


def main(argv):
  del argv
  results = []
  for key in flags.FLAGS.paths:
    path = PATHS[key]
    full = augment.PatchAugment(jitter=path["jitter"], **FULL)
    variants = {"full": full, "none": augment.PatchAugment()}
    variants.update({f"without_{family}": dataclasses.replace(full, **change)
                     for family, change in OFF.items()})
    for variant, config in variants.items():
      result = {"path": key, "variant": variant,
                **throughput(path, config, flags.FLAGS.batch_size,
                             flags.FLAGS.batches, flags.FLAGS.repeats)}
      print(json.dumps(result), flush=True)
      results.append(result)
  report = {"machine": {"cpus": os.cpu_count(),
                        "processor": cpu_info()["model name"],
                        "platform": platform.platform()},
            "batch_size": flags.FLAGS.batch_size, "results": results}
  with open(os.path.join(REPO, flags.FLAGS.out), "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {flags.FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

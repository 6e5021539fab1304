"""Result records: one JSON object per evaluation run (its mode and
method, every setting, the encoder's pretraining config, the metrics), one
line each in a results.jsonl file (any tf.io.gfile path); a run's identity
is its resolved settings."""

import dataclasses
import json
import os
from typing import List, Optional

import tensorflow as tf

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir

RESULTS_FILE = "results.jsonl"
# All a randomly initialised encoder's probe takes from a pretraining config
# (beside the data): the encoder and its patch grid. Its weights come from
# the probe's own seed.
RANDOM_ENCODER_FIELDS = ("encoder", "encoder_width", "encoder_blocks", "norm",
                         "stem", "small_map_matmul", "image_size",
                         "patch_size", "patch_stride")


def append(model_dir: str, record: dict, path: Optional[str] = None) -> str:
  """Appends record to `path` (default: model_dir/results.jsonl); returns
  the path."""
  path = path or os.path.join(model_dir, RESULTS_FILE)
  lines = ""
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      lines = f.read()
  # gfile has no append on every filesystem: write the whole file anew,
  # then rename it over the old one, so that a kill mid-write loses nothing.
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(lines + json.dumps(record, sort_keys=True) + "\n")
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  return path


def read(path: str) -> List[dict]:
  """The records in path, oldest first ([] if there is no such file)."""
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def settings(config) -> dict:
  """An evaluation's mode and settings, as records and trained_by.json hold
  them."""
  return {"mode": config.MODE, **dataclasses.asdict(config)}


def record(config, pretrained: config_lib.PretrainConfig,
           method: Optional[str] = None, **metrics) -> dict:
  """A result record: the mode, the curve method it measures (if any), its
  settings, the encoder's pretraining config, what trained_by.json says of
  a saved encoder and the metrics."""
  trained_by = config.model_dir and encoder_dir.trained_by(config.model_dir)
  return {**settings(config), "method": method, **metrics,
          "pretrain_config": dataclasses.asdict(pretrained),
          **({"encoder_trained_by": trained_by} if trained_by else {})}



def identity(record: dict) -> str:
  """A run's resolved settings as text: equal texts, the same run. Its
  encoder's pretraining config (where it was written aside) and every
  setting of its mode, a setting a record predates at its default, the
  dataset and data directory as the run resolved them. A record of
  run_ladder.py's pretraining (kind "ladder_pretrain") is its config; a
  probe of a random encoder keeps only RANDOM_ENCODER_FIELDS of it."""
  pretrain = {k: v for k, v in record["pretrain_config"].items()
              if k != "model_dir"}
  if "mode" not in record:
    return json.dumps({"kind": record["kind"], "pretrain": pretrain},
                      sort_keys=True)
  settings = {field.name: record.get(field.name, field.default)
              for field in dataclasses.fields(modes.CONFIGS[record["mode"]])
              if field.name not in ("model_dir", "results_file")}
  for name in ("dataset", "data_dir"):
    if name in settings:
      settings[name] = settings[name] or pretrain[name]
  if not settings.get("fine_tune", True):
    # Without fine-tuning its budget changes nothing (and records written
    # before 2026-12-06 held the steps taken, 0, under this name).
    del settings["fine_tune_steps"]
  if record["mode"] == "probe" and settings["random_init"]:
    pretrain = {k: pretrain.get(k) for k in RANDOM_ENCODER_FIELDS}
  return json.dumps({"mode": record["mode"], "pretrain": pretrain,
                     "settings": settings}, sort_keys=True)

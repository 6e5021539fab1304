"""Result records: one JSON object per evaluation run, one line each, in a
results.jsonl file (any tf.io.gfile path)."""

import json
import os
from typing import List, Optional

import tensorflow as tf

RESULTS_FILE = "results.jsonl"


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

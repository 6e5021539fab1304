"""Classification on CPC latents: patches -> frozen encoder -> latents -> head."""

import json
import os
import time

import keras
import tensorflow as tf

from cpc_tf import config as config_lib
from cpc_tf.encoder import build_encoder
from cpc_tf.model import encode_patches

RESULTS_FILE = "results.jsonl"


class PatchClassifier(keras.Model):
  """Logits of a head on the encoder's latent grid; the encoder is frozen
  unless fine_tune (then it runs in training mode too)."""

  def __init__(self, encoder: keras.Model, head: keras.Model,
               fine_tune: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.head = head
    self.fine_tune = fine_tune
    self.encoder.trainable = fine_tune

  def call(self, patches, training=False):
    latents = encode_patches(self.encoder, patches,           # [B, G, G, D]
                             training=training and self.fine_tune)
    return self.head(latents, training=training)


def restore_encoder(config: config_lib.PretrainConfig,
                    random_init: bool = False) -> keras.Model:
  """The pretrained encoder of config.model_dir's newest checkpoint (or a
  randomly initialised one of the same architecture)."""
  encoder = build_encoder(config.encoder_config)
  if random_init:
    return encoder
  directory = os.path.join(config.model_dir, "checkpoints")
  path = tf.train.latest_checkpoint(directory)
  if path is None:
    raise config_lib.ConfigError(f"no checkpoint in {directory}")
  # Same object path as CPCModel's checkpoint: model/encoder/...
  checkpoint = tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=encoder))
  try:
    checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
    reason = str(e).strip().splitlines()[0][:300]
    raise config_lib.ConfigError(
        f"checkpoint {path} does not fit the encoder of "
        f"{config_lib.CONFIG_FILE} (encoder={config.encoder}, "
        f"encoder_width={config.encoder_width}, encoder_blocks="
        f"{list(config.encoder_blocks)}, norm={config.norm}, stem="
        f"{config.stem}): {reason}") from e
  print(f"Restored the encoder from {path}", flush=True)
  return encoder


def accuracy_metrics():
  return [keras.metrics.SparseCategoricalAccuracy(name="top1"),
          keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")]


def compile_classifier(model: PatchClassifier, learning_rate: float):
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=accuracy_metrics())


def append_result(model_dir: str, record: dict):
  """One JSON line per evaluation run in model_dir/results.jsonl."""
  path = os.path.join(model_dir, RESULTS_FILE)
  lines = ""
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      lines = f.read()
  # gfile has no append on every filesystem: rewrite the whole file.
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(lines + json.dumps(record, sort_keys=True) + "\n")
  return path


class WallClock:
  """Seconds since creation."""

  def __init__(self):
    self.start = time.time()

  def seconds(self) -> float:
    return time.time() - self.start

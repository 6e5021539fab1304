"""An encoder model_dir: what pretraining hands to evaluation.

config.json (a PretrainConfig: data, patch grid, augmentation and encoder
architecture) beside checkpoints/, whose newest checkpoint holds the encoder
at the object path model/encoder/. run_pretrain.py writes one (with the rest
of the model and the optimizer), save() writes one with the encoder alone (a
released encoder, a supervised backbone) and, in trained_by.json, what
trained it: a supervised backbone's config.json keeps the CPC settings of
the encoder it replaced, which describe nothing that happened to it. An
encoder that uses no trained weights (a random one, the pixel baselines)
needs only the config, which from_flagfile reads from a pretraining
flagfile.
"""

import dataclasses
import json
import os
from typing import Optional

from absl import flags
import keras
import tensorflow as tf

from cpc_tf.train import checkpoints
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.configs import command_line
from cpc_tf.models.encoder import build_encoder
from cpc_tf.train import saved_config


def load_config(model_dir: str) -> config_lib.PretrainConfig:
  """model_dir's config.json, its model_dir field set to where it is now
  (so a moved or released folder finds its checkpoint)."""
  config = config_lib.load_config(model_dir)
  if config is None:
    raise config_lib.ConfigError(
        f"no {config_lib.CONFIG_FILE} in --model_dir={model_dir}: is it a "
        "run_pretrain.py model_dir?")
  return dataclasses.replace(config, model_dir=model_dir)


def from_flagfile(path: str) -> config_lib.PretrainConfig:
  """The config a run_pretrain.py flagfile defines (model_dir None: no run
  is behind it)."""
  if not tf.io.gfile.exists(path):
    raise config_lib.ConfigError(f"pretraining flagfile {path} does not exist")
  flag_values = flags.FlagValues()
  command_line.define_pretrain_flags(flag_values)
  try:
    flag_values(["run_pretrain.py", f"--flagfile={path}"])
  except flags.Error as e:
    raise config_lib.ConfigError(f"pretraining flagfile {path}: {e}") from None
  config = dataclasses.replace(
      command_line.pretrain_config_from_flags(flag_values), model_dir=None)
  config.validate()
  return config


def checkpoint(encoder: keras.Model) -> tf.train.Checkpoint:
  """The encoder at the object path of CPCModel's checkpoint: model/encoder/."""
  return tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=encoder))


def restore(config: config_lib.PretrainConfig,
            random_init: bool = False) -> keras.Model:
  """The encoder of config.model_dir's newest checkpoint (or a randomly
  initialised one of config's architecture)."""
  encoder = build_encoder(config.encoder_config)
  if random_init:
    return encoder
  path = checkpoints.latest(config.model_dir)
  if path is None:
    raise config_lib.ConfigError(
        f"no checkpoint in {checkpoints.checkpoint_dir(config.model_dir)}")
  try:
    checkpoint(encoder).restore(
        path).expect_partial().assert_existing_objects_matched()
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


TRAINED_BY_FILE = "trained_by.json"


def save(encoder: keras.Model, config: config_lib.PretrainConfig, step: int,
         trained_by: dict) -> str:
  """Writes encoder as the encoder model_dir config.model_dir (config.json,
  trained_by as trained_by.json and a checkpoint at restore's object path);
  returns the checkpoint."""
  saved_config.save_config(config)
  with tf.io.gfile.GFile(os.path.join(config.model_dir, TRAINED_BY_FILE),
                         "w") as f:
    f.write(json.dumps(trained_by, indent=2, sort_keys=True))
  manager = tf.train.CheckpointManager(
      checkpoint(encoder), checkpoints.checkpoint_dir(config.model_dir),
      max_to_keep=1)
  return manager.save(checkpoint_number=step)


def trained_by(model_dir: str) -> Optional[dict]:
  """What trained the encoder save() wrote in model_dir (None for a
  run_pretrain.py model_dir, whose config.json says it)."""
  path = os.path.join(model_dir, TRAINED_BY_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)

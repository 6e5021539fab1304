"""A pretraining model_dir's config.json: written at the start of a run,
refused when it contradicts the saved one (another model, or once training
has started another learning-rate schedule)."""

import os
from typing import Tuple

import tensorflow as tf

from cpc_tf.configs.pretrain import CONFIG_FILE
from cpc_tf.configs.pretrain import ConfigError
from cpc_tf.configs.pretrain import PretrainConfig
from cpc_tf.configs.pretrain import load_config
from cpc_tf.train import checkpoints


def save_config(config: PretrainConfig, write: bool = True):
  """Writes model_dir/config.json (if `write`), refusing one that contradicts
  the saved one: another model, or, once training has started, another
  learning-rate schedule without restart_schedule."""
  saved = load_config(config.model_dir)
  if saved is not None:
    check_compatible(saved, config)
    if (checkpoints.latest(config.model_dir) is not None
        and not config.restart_schedule):
      check_schedule(saved, config)
  if not write:
    return
  tf.io.gfile.makedirs(config.model_dir)
  with tf.io.gfile.GFile(os.path.join(config.model_dir, CONFIG_FILE), "w") as f:
    f.write(config.to_json())


def _refuse_differences(saved: PretrainConfig, config: PretrainConfig,
                       fields: Tuple[str, ...], saved_as: str, problem: str,
                       remedy: str):
  """ConfigError "model_dir M <problem>; name: <saved_as> X, flags say Y;
  ... <remedy>" if `config` differs from `saved` in any of `fields`."""
  changed = [f"{name}: {saved_as} {getattr(saved, name)!r}, flags say "
             f"{getattr(config, name)!r}"
             for name in fields
             if getattr(saved, name) != getattr(config, name)]
  if changed:
    raise ConfigError(f"model_dir {config.model_dir} {problem}; "
                      + "; ".join(changed) + f". {remedy}")


def check_schedule(saved: PretrainConfig, config: PretrainConfig):
  """ConfigError naming each schedule setting where a resumed run differs."""
  _refuse_differences(
      saved, config, PretrainConfig.SCHEDULE_FIELDS, "the run has",
      "is training on another learning-rate schedule",
      "Resume with the run's settings, or pass --restart_schedule to "
      "continue from the step reached on the schedule of the new settings "
      "(warm-up and cosine recomputed for them: the rate jumps to their "
      "value at that step).")


def check_compatible(saved: PretrainConfig, config: PretrainConfig):
  """ConfigError naming each model setting where `config` differs from
  `saved`."""
  _refuse_differences(saved, config, PretrainConfig.MODEL_FIELDS,
                     "checkpoint has", "holds a different model",
                     "Use another --model_dir or the saved settings.")

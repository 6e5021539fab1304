"""run_pretrain.py's flags: one per PretrainConfig field (config_flags) and
--train_epochs; also read from a pretraining flagfile alone, which defines
an encoder without a run (encoder_dir.from_flagfile)."""

import math

from absl import flags

from cpc_tf import config as config_lib
from cpc_tf import config_flags
from cpc_tf import sources


def define_flags(flag_values=flags.FLAGS):
  config_flags.define_flags(config_lib.PretrainConfig, flag_values=flag_values)
  flags.DEFINE_float("train_epochs", None, "If set, overrides train_steps: "
                     "epochs over the split at batch_size.",
                     flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> config_lib.PretrainConfig:
  if flag_values.train_epochs is None:
    return config_flags.config_from_flags(config_lib.PretrainConfig,
                                          flag_values)
  examples = sources.get_source(flag_values.dataset, flag_values.split,
                                flag_values.data_dir).num_examples
  return config_flags.config_from_flags(
      config_lib.PretrainConfig, flag_values, train_steps=math.ceil(
          flag_values.train_epochs * examples / flag_values.batch_size))

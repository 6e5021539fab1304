r"""CPC v2 pretraining (Hénaff et al., Section 2.1 and Appendix A.2).

  python run_pretrain.py --flagfile=flags/smoke.cfg --model_dir=/tmp/cpc_smoke

Running the same command again resumes from the newest checkpoint in
--model_dir. TensorBoard: tensorboard --logdir=<model_dir>.
"""

import sys

import cpc_tf  # pylint: disable=unused-import  # TF's environment, first

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cpc_tf.configs import command_line
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import sources
from cpc_tf.train import checkpoints
from cpc_tf.train import trainer

# One flag per PretrainConfig field, with the field's help text.
command_line.define_pretrain_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.show_warnings_only()
  try:
    config = command_line.pretrain_config_from_flags()
    config.validate()
    trainer.pretrain(config)
  except (config_lib.ConfigError, sources.DataError,
          checkpoints.NonFiniteLossError) as e:
    sys.exit(f"run_pretrain.py: error: {e}")


if __name__ == "__main__":
  app.run(main)

r"""CPC v2 pretraining (Hénaff et al., Section 2.1 and Appendix A.2).

  python run_pretrain.py --flagfile=flags/smoke.cfg --model_dir=/tmp/cpc_smoke

Running the same command again resumes from the newest checkpoint in
--model_dir. TensorBoard: tensorboard --logdir=<model_dir>.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TF enables its oneDNN CPU kernels by default only where AVX-512 VNNI/BF16
# or AMX exist; on an AVX2 Zen 3 they made the CIFAR-10 CPU step 1.44x faster
# (bench/pretrain_step.py --onednn). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from cpc_tf import checkpoints
from cpc_tf import config as config_lib
from cpc_tf import pretrain
from cpc_tf import pretrain_flags
from cpc_tf import sources

# One flag per PretrainConfig field, with the field's help text.
pretrain_flags.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    config = pretrain_flags.config_from_flags()
    config.validate()
    pretrain.pretrain(config)
  except (config_lib.ConfigError, sources.DataError,
          checkpoints.NonFiniteLossError) as e:
    sys.exit(f"run_pretrain.py: error: {e}")


if __name__ == "__main__":
  app.run(main)

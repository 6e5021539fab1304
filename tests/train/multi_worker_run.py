"""One process of tests/train/test_multi_worker.py: a worker of a two-worker
run on 127.0.0.1, or the one-process reference on the same global batches.

  python tests/train/multi_worker_run.py worker INDEX PORT0,PORT1 MODEL_DIR \
      OUT.npz
  python tests/train/multi_worker_run.py reference - - MODEL_DIR OUT.npz

Writes the trained model's weights to OUT.npz.
"""

import json
import os
import sys

ROLE, INDEX, PORTS, MODEL_DIR, OUT = sys.argv[1:]
if ROLE == "worker":
  # Set before TensorFlow starts: the strategy reads it at start-up.
  os.environ["TF_CONFIG"] = json.dumps({
      "cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS.split(",")]},
      "task": {"type": "worker", "index": int(INDEX)}})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.train import trainer

WORKERS = 2
CONFIG = config_lib.PretrainConfig(
    dataset="cifar10", split="train[:256]", image_size=32, patch_size=8,
    patch_stride=8, encoder_width=8, encoder_blocks=(1, 1), context_dim=16,
    context_blocks=1, target_dim=16, directions=2, steps_to_ignore=0,
    steps_to_predict=2, batch_size=8, learning_rate=1e-3, train_steps=4,
    checkpoint_every=2, log_every=2, deterministic=True, model_dir=MODEL_DIR,
    strategy="multi_worker" if ROLE == "worker" else "default")


def reference_batches(config, strategy, start_step=0):
  """The global batches of the two-worker run: worker 0's half of each, then
  worker 1's (replica order), from the same per-worker pipelines."""
  del strategy, start_step
  halves = [pipelines.pretrain_dataset(
      config.dataset, config.split, config.data_dir, config.grid,
      config.batch_size, config.min_crop_area, config.augment,
      seed=config.seed,
      input_context=tf.distribute.InputContext(WORKERS, worker, WORKERS))
            for worker in range(WORKERS)]
  return tf.data.Dataset.zip(tuple(halves)).map(
      lambda *parts: tf.concat(parts, axis=0))


def recording(build_model):
  """build_model that also saves the initial weights, next to OUT."""
  def build_and_record(config):
    model = build_model(config)
    np.savez(OUT.replace(".npz", "_initial.npz"), *model.get_weights())
    return model
  return build_and_record


if ROLE == "reference":
  trainer.distributed_dataset = reference_batches
  trainer.build_model = recording(trainer.build_model)
model = trainer.pretrain(CONFIG)
np.savez(OUT, *model.get_weights())

"""model_dirs written by earlier code still load: a tiny one made on
2026-12-02 (tests/fixtures/README.md) is restored for evaluation and resumed."""

import dataclasses
import os
import shutil

import numpy as np
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.train import trainer
from cpc_tf.models.encoder import encode_patches
from helpers import REPO, TFDS_DIR

MODEL_DIR = os.path.join(REPO, "tests", "fixtures", "model_dir_2026-12-02")


def saved_config(model_dir=MODEL_DIR):
  return dataclasses.replace(config_lib.load_config(model_dir),
                             model_dir=model_dir)


def test_encoder_restores_with_the_saved_weights():
  config = saved_config()
  encoder = encoder_dir.restore(config)
  saved = tf.train.load_checkpoint(os.path.join(MODEL_DIR, "checkpoints"))
  saved_values = [saved.get_tensor(name) for name in
                  saved.get_variable_to_shape_map()
                  if name.startswith("optimizer/_trainable_variables/")]
  for weight in encoder.trainable_weights:
    assert any(value.shape == weight.shape
               and np.array_equal(value, weight.numpy())
               for value in saved_values), weight.path
  grid = config.grid
  patches = tf.zeros([2, grid.grid_size, grid.grid_size, grid.patch_size,
                      grid.patch_size, 3])
  latents = encode_patches(encoder, patches)               # [2, G, G, D]
  assert latents.shape[:3] == (2, grid.grid_size, grid.grid_size)
  assert np.isfinite(latents.numpy()).all()


def test_pretraining_resumes_from_it(tmp_path, capsys):
  model_dir = str(tmp_path / "copy")
  shutil.copytree(MODEL_DIR, model_dir)
  # Two more steps than it was made with: its schedule must restart.
  config = dataclasses.replace(saved_config(model_dir), train_steps=4,
                               restart_schedule=True, data_dir=TFDS_DIR)
  model = trainer.pretrain(config)
  assert "Resumed from step 2" in capsys.readouterr().out
  assert int(model.optimizer.iterations.numpy()) == 4

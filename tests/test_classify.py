"""The linear probe (A.3): frozen encoder restored from pretraining."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from cpc_tf import classify
from cpc_tf import config as config_lib
from cpc_tf import data
from cpc_tf import encoder as encoder_lib
from cpc_tf import heads
from cpc_tf import results as results_lib
from helpers import REPO, TINY

def test_restore_encoder_loads_the_pretrained_weights(pretrained):
  config, weights = pretrained
  restored = classify.restore_encoder(config).get_weights()
  assert len(restored) == len(weights)
  for a, b in zip(restored, weights):
    np.testing.assert_array_equal(a, b)
  random = classify.restore_encoder(config, random_init=True).get_weights()
  assert any(not np.array_equal(a, b) for a, b in zip(random, weights)
             if a.size > 1)


def test_saved_encoder_is_restored_as_a_model_dir(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path / "saved"),
                               norm="batch")
  trained = encoder_lib.build_encoder(config.encoder_config, name="pixel_resnet")
  trained.set_weights([np.random.default_rng(0).normal(size=w.shape)
                       for w in trained.get_weights()])
  classify.save_encoder(trained, config, step=7)
  loaded = config_lib.load_config(config.model_dir)
  assert loaded == config
  for a, b in zip(classify.restore_encoder(loaded).get_weights(),
                  trained.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_restore_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="no checkpoint in"):
    classify.restore_encoder(dataclasses.replace(TINY, model_dir=str(tmp_path)))


def test_linear_probe_freezes_encoder_and_has_no_norm_scale(pretrained, tfds_dir):
  config, weights = pretrained
  model = classify.PatchClassifier(classify.restore_encoder(config),
                                   heads.linear_head(10))
  classify.compile_classifier(model, 5e-4)
  train = data.classification_dataset("cifar10", "train[:64]", tfds_dir,
                                      config.grid, 8, train=True)
  model.fit(train, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
  for a, b in zip(model.encoder.get_weights(), weights):
    np.testing.assert_array_equal(a, b)
  norm = model.head.get_layer("norm")
  assert norm.gamma is None and norm.beta is not None
  assert {v.path for v in model.trainable_variables} == {
      v.path for v in model.head.trainable_variables}


def test_top1_top5_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 10)).astype(np.float32)
  labels = rng.integers(0, 10, size=50)
  ranks = (logits > logits[np.arange(50), labels][:, None]).sum(axis=1)
  top1, top5 = classify.accuracy_metrics()
  top1.update_state(labels, logits)
  top5.update_state(labels, logits)
  assert float(top1.result()) == pytest.approx(np.mean(ranks == 0))
  assert float(top5.result()) == pytest.approx(np.mean(ranks < 5))


def test_run_eval_linear_and_cached_probes_append_results(pretrained, tfds_dir):
  config, _ = pretrained
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  for extra in (["--mode=linear", "--validation_fraction=0.25",
                 "--eval_every=1", "--patience=1"],
                ["--mode=probe", "--validation_fraction=0.25", "--random_init",
                 "--probe_steps=20"]):
    result = subprocess.run(
        [sys.executable, "run_eval.py", f"--model_dir={config.model_dir}",
         "--train_split=train[:64]", "--test_split=test[:32]",
         "--batch_size=8", "--train_steps=3", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-1" in result.stdout
  with open(os.path.join(config.model_dir, results_lib.RESULTS_FILE)) as f:
    linear, cached = [json.loads(line) for line in f]
  assert (linear["probe"], linear["random_init"]) == ("a3_linear", False)
  assert 1 <= linear["steps"] <= 3 and "validation_top1" in linear
  assert (cached["probe"], cached["random_init"]) == ("cached_linear", True)
  assert cached["train_examples"] + cached["validation_examples"] == 64
  for record in (linear, cached):
    assert 0.0 <= record["test_top1"] <= record["test_top5"] <= 1.0


def test_fine_tuning_moves_the_encoder_at_its_own_learning_rate(pretrained, tfds_dir):
  """Adam's first step moves every weight with a gradient by about its
  learning rate: the encoder's by encoder_learning_rate, the head's by the
  head's."""
  config, weights = pretrained
  head = heads.resnet_head(10, 64, blocks=1, bottleneck=8, width=16)
  model = classify.PatchClassifier(classify.restore_encoder(config), head,
                                   fine_tune=True, encoder_learning_rate=1e-5)
  classify.compile_classifier(model, 1e-3)
  trained = lambda layer: [v.numpy() for v in layer.trainable_variables]
  head_before = trained(head)
  train = data.classification_dataset("cifar10", "train[:64]", tfds_dir,
                                      config.grid, 8, train=True)
  model.fit(train, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
  assert int(model.encoder_optimizer.iterations.numpy()) == 1
  encoder_steps = np.concatenate([np.abs(a - b).ravel() for a, b in zip(
      model.encoder.get_weights(), weights)])
  head_steps = np.concatenate([np.abs(a - b).ravel() for a, b in zip(
      trained(head), head_before)])
  assert encoder_steps.max() == pytest.approx(1e-5, rel=0.05)
  assert head_steps.max() == pytest.approx(1e-3, rel=0.05)


def linear_classifier_and_data(config, tfds_dir, learning_rate, held_out):
  """A compiled linear probe on config's encoder, training batches of
  train[:64] and evaluation batches of the `held_out` split."""
  model = classify.PatchClassifier(classify.restore_encoder(config),
                                   heads.linear_head(10))
  classify.compile_classifier(model, learning_rate)
  train = data.classification_dataset("cifar10", "train[:64]", tfds_dir,
                                      config.grid, 8, train=True)
  return model, train, data.classification_dataset(
      "cifar10", held_out, tfds_dir, config.grid, 8, train=False)


def test_early_stopping_keeps_the_best_validation_weights(pretrained, tfds_dir):
  config, _ = pretrained
  model, train, held_out = linear_classifier_and_data(
      config, tfds_dir, 1e-2, "train[64:128]")
  snapshots = []
  record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
      snapshots.append((logs["val_top1"], model.encoder.get_weights()))))
  tuned, steps = classify.fine_tune(
      model, train, held_out, learning_rate=1e-2, encoder_learning_rate=1e-2,
      max_steps=12, eval_every=2, patience=2, callbacks=[record])
  assert steps == 2 * len(snapshots) and len(snapshots) >= 3
  scores = [score for score, _ in snapshots]
  best = int(np.argmax(scores))                     # the first of the best
  for kept, expected in zip(tuned.encoder.get_weights(), snapshots[best][1]):
    np.testing.assert_array_equal(kept, expected)


def test_early_stopping_never_runs_past_max_steps(pretrained, tfds_dir):
  config, _ = pretrained
  model, train, held_out = linear_classifier_and_data(
      config, tfds_dir, 1e-3, "train[64:80]")
  steps = classify.train_with_early_stopping(model, train, held_out,
                                             max_steps=5, eval_every=2,
                                             patience=10)
  assert steps == 4 and int(model.optimizer.iterations.numpy()) == 4


@pytest.mark.parametrize("mode_flags", [
    ["--mode=efficient", "--head_blocks=1", "--head_width=16",
     "--head_bottleneck=8", "--fine_tune", "--fine_tune_steps=4",
     "--eval_every=2", "--validation_fraction=0.2"],
    ["--mode=supervised", "--pixel_blocks=1", "--pixel_width=8",
     "--dropout=0.5", "--nopatch_augment"],
])
def test_run_eval_modes_end_to_end(pretrained, tfds_dir, tmp_path, mode_flags):
  config, _ = pretrained
  results = tmp_path / "results.jsonl"
  supervised = "--mode=supervised" in mode_flags
  saved_dir = str(tmp_path / "supervised_encoder")
  result = subprocess.run(
      [sys.executable, "run_eval.py", f"--model_dir={config.model_dir}",
       "--train_split=train[:80]", "--test_split=test[:32]", "--batch_size=8",
       "--train_steps=2", "--label_fraction=0.5", f"--results_file={results}",
       *mode_flags, *([f"--save_encoder={saved_dir}"] if supervised else [])],
      cwd=REPO, env=dict(os.environ, TFDS_DATA_DIR=tfds_dir),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(results.read_text())
  assert record["mode"] == mode_flags[0].split("=")[1]
  assert record["train_examples"] < 80 and record["label_fraction"] == 0.5
  assert 0.0 <= record["test_top1"] <= record["test_top5"] <= 1.0
  assert record["patch_augment"] == ("--nopatch_augment" not in mode_flags)
  if "--fine_tune" in mode_flags:
    assert record["fine_tune"] and record["fine_tune_steps"] in (2, 4)
    assert "validation_top1" in record
  if supervised:
    # The trained pixel ResNet, as a model_dir the other modes can read.
    assert record["saved_encoder"].startswith(saved_dir)
    saved = config_lib.load_config(saved_dir)
    assert (saved.encoder_width, saved.encoder_blocks, saved.norm) == (
        8, (1,), "batch")
    encoder = classify.restore_encoder(saved)
    moving_means = [w for w in encoder.weights if "moving_mean" in w.path]
    assert moving_means and any(np.any(w.numpy() != 0) for w in moving_means)


def test_run_eval_save_encoder_never_overwrites(pretrained, tfds_dir):
  config, _ = pretrained
  result = subprocess.run(
      [sys.executable, "run_eval.py", f"--model_dir={config.model_dir}",
       "--mode=supervised", f"--save_encoder={config.model_dir}"], cwd=REPO,
      env=dict(os.environ, TFDS_DATA_DIR=tfds_dir), capture_output=True,
      text=True, timeout=300)
  assert result.returncode != 0
  assert "already holds an encoder" in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode_flags,message", [
    (["--mode=efficient", "--fine_tune"], "set --validation_fraction"),
    (["--mode=probe"], "set --validation_fraction"),
    (["--mode=supervised", "--random_init"], "--random_init is for the modes"),
])
def test_run_eval_rejects_flags_that_cannot_apply(pretrained, tfds_dir,
                                                  mode_flags, message):
  config, _ = pretrained
  result = subprocess.run(
      [sys.executable, "run_eval.py", f"--model_dir={config.model_dir}",
       *mode_flags], cwd=REPO,
      env=dict(os.environ, TFDS_DATA_DIR=tfds_dir), capture_output=True,
      text=True, timeout=300)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr

"""The linear probe (A.3): frozen encoder restored from pretraining."""

import dataclasses

import keras
import numpy as np
import pytest

from cpc_tf.evaluation import classification
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.models import encoder as encoder_lib
from cpc_tf.serving import encoder_dir
from cpc_tf.models import heads
from helpers import TINY

def test_restore_encoder_loads_the_pretrained_weights(pretrained):
  config, weights = pretrained
  restored = encoder_dir.restore(config).get_weights()
  assert len(restored) == len(weights)
  for a, b in zip(restored, weights):
    np.testing.assert_array_equal(a, b)
  random = encoder_dir.restore(config, random_init=True).get_weights()
  assert any(not np.array_equal(a, b) for a, b in zip(random, weights)
             if a.size > 1)


def test_saved_encoder_is_restored_as_a_model_dir(tmp_path):
  config = dataclasses.replace(TINY, model_dir=str(tmp_path / "saved"),
                               norm="batch")
  trained = encoder_lib.build_encoder(config.encoder_config,
                                      name="pixel_resnet")
  trained.set_weights([np.random.default_rng(0).normal(size=w.shape)
                       for w in trained.get_weights()])
  encoder_dir.save(trained, config, step=7, trained_by={"mode": "supervised"})
  loaded = config_lib.load_config(config.model_dir)
  assert loaded == config
  assert encoder_dir.trained_by(config.model_dir) == {"mode": "supervised"}
  for a, b in zip(encoder_dir.restore(loaded).get_weights(),
                  trained.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_restore_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="no checkpoint in"):
    encoder_dir.restore(dataclasses.replace(TINY, model_dir=str(tmp_path)))


def test_linear_probe_freezes_encoder_and_has_no_norm_scale(pretrained,
                                                            tfds_dir):
  config, weights = pretrained
  model = classification.PatchClassifier(encoder_dir.restore(config),
                                   heads.linear_head(10))
  classification.compile_classifier(model, 5e-4)
  train = pipelines.classification_dataset("cifar10", "train[:64]", tfds_dir,
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
  top1, top5 = classification.accuracy_metrics()
  top1.update_state(labels, logits)
  top5.update_state(labels, logits)
  assert float(top1.result()) == pytest.approx(np.mean(ranks == 0))
  assert float(top5.result()) == pytest.approx(np.mean(ranks < 5))


def test_fine_tuning_moves_the_encoder_at_its_own_learning_rate(pretrained,
                                                                tfds_dir):
  """Adam's first step moves every weight with a gradient by about its
  learning rate: the encoder's by encoder_learning_rate, the head's by the
  head's."""
  config, weights = pretrained
  head = heads.resnet_head(10, 64, blocks=1, bottleneck=8, width=16)
  model = classification.PatchClassifier(encoder_dir.restore(config), head,
                                   fine_tune=True, encoder_learning_rate=1e-5)
  classification.compile_classifier(model, 1e-3)
  trained = lambda layer: [v.numpy() for v in layer.trainable_variables]
  head_before = trained(head)
  train = pipelines.classification_dataset("cifar10", "train[:64]", tfds_dir,
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
  model = classification.PatchClassifier(encoder_dir.restore(config),
                                   heads.linear_head(10))
  classification.compile_classifier(model, learning_rate)
  train = pipelines.classification_dataset("cifar10", "train[:64]", tfds_dir,
                                      config.grid, 8, train=True)
  return model, train, pipelines.classification_dataset(
      "cifar10", held_out, tfds_dir, config.grid, 8, train=False)


def test_early_stopping_keeps_the_best_validation_weights(pretrained, tfds_dir):
  config, _ = pretrained
  model, train, held_out = linear_classifier_and_data(
      config, tfds_dir, 1e-2, "train[64:128]")
  snapshots = []
  record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
      snapshots.append((logs["val_top1"], model.encoder.get_weights()))))
  tuned, steps = classification.fine_tune(
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
  steps = classification.train_with_early_stopping(model, train, held_out,
                                             max_steps=5, eval_every=2,
                                             patience=10)
  assert steps == 4 and int(model.optimizer.iterations.numpy()) == 4

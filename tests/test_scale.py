"""Scale-out and speed options: precision, recompute, XLA, TPU flags, negatives."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import config as config_lib
from cpc_tf import distribute
from cpc_tf import infonce
from cpc_tf import pretrain

TINY = config_lib.PretrainConfig(
    image_size=16, patch_size=8, patch_stride=4, encoder_width=8,
    encoder_blocks=(1, 1), context_dim=8, target_dim=8, steps_to_ignore=0,
    steps_to_predict=1, batch_size=4, train_steps=100, learning_rate=3e-3)


def fixed_batch():
  return tf.constant(np.random.default_rng(0).random([4, 3, 3, 8, 8, 3], np.float32))


@pytest.mark.parametrize("precision,compute", [("bfloat16", "bfloat16"),
                                               ("mixed_float16", "float16")])
def test_low_precision_trains_with_finite_decreasing_loss(precision, compute):
  model = pretrain.build_model(dataclasses.replace(TINY, precision=precision))
  assert model.encoder.get_layer("stem_conv").compute_dtype == compute
  assert all(v.dtype == "float32" for v in model.trainable_variables)
  if precision == "mixed_float16":
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
  history = model.fit(tf.data.Dataset.from_tensors(fixed_batch()).repeat(),
                      epochs=4, steps_per_epoch=5, verbose=0).history["loss"]
  assert np.all(np.isfinite(history))
  assert history[-1] < history[0] - 0.05
  # Layers built later in the process are float32 again.
  assert keras.layers.Dense(1).compute_dtype == "float32"


def gradients(model, patches):
  with tf.GradientTape() as tape:
    loss, _, _ = model.compute_cpc_loss(patches, training=True)
  return loss, tape.gradient(loss, model.trainable_variables)


def test_recompute_gives_the_same_gradients():
  plain = pretrain.build_model(TINY)
  recomputed = pretrain.build_model(
      dataclasses.replace(TINY, recompute=True, recompute_chunks=5))
  recomputed.set_weights(plain.get_weights())
  assert recomputed.recompute_chunks == 5           # 36 patches: 8,7,7,7,7
  loss, expected = gradients(plain, fixed_batch())
  recomputed_loss, actual = gradients(recomputed, fixed_batch())
  np.testing.assert_allclose(recomputed_loss, loss, rtol=1e-6)
  for a, b in zip(actual, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_recompute_refuses_batch_norm():
  with pytest.raises(config_lib.ConfigError, match="per-chunk statistics"):
    dataclasses.replace(TINY, recompute=True, norm="batch").validate()


def test_train_step_compiles_with_xla():
  model = pretrain.build_model(dataclasses.replace(TINY, jit_compile=True))
  history = model.fit(tf.data.Dataset.from_tensors(fixed_batch()).repeat(),
                      epochs=1, steps_per_epoch=2, verbose=0).history
  assert np.isfinite(history["loss"][-1])


def test_tpu_flags_build_the_resolver_without_a_tpu():
  resolver = distribute.tpu_resolver("grpc://10.1.2.3:8470")
  assert resolver.master() == "grpc://10.1.2.3:8470"


def test_global_and_local_negatives_on_a_hand_built_case():
  """Two replicas, one image each, a 2x1 grid of 2-d targets; the prediction
  from row 0 aims at row 1. Local negatives: the replica's own two targets;
  global: all four, labels offset by replica."""
  targets = np.array([[[1.0, 0.0]], [[0.0, 2.0]],          # replica 0: rows 0, 1
                      [[3.0, 1.0]], [[-1.0, 1.0]]], np.float32)  # replica 1
  preds = np.array([[0.5, 1.0], [1.0, -0.5]], np.float32)  # one per replica
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

  def losses(negatives):
    def per_replica(context):
      r = context.replica_id_in_sync_group
      own_targets = tf.reshape(tf.gather(targets, [2 * r, 2 * r + 1]), [1, 2, 1, 2])
      own_preds = tf.reshape(tf.gather(preds, [r]), [1, 1, 1, 2])
      return infonce.contrastive_loss(own_preds, own_targets, 1, negatives)[0]
    result = strategy.run(
        lambda: per_replica(tf.distribute.get_replica_context()))
    return np.concatenate([v.numpy() for v in strategy.experimental_local_results(result)])

  def cross_entropy(logits, label):
    return np.log(np.exp(logits).sum()) - logits[label]

  flat = targets.reshape(4, 2)
  expected_local = [cross_entropy(flat[0:2] @ preds[0], 1),
                    cross_entropy(flat[2:4] @ preds[1], 1)]
  expected_global = [cross_entropy(flat @ preds[0], 1),
                     cross_entropy(flat @ preds[1], 3)]
  np.testing.assert_allclose(losses("local"), expected_local, rtol=1e-5)
  np.testing.assert_allclose(losses("global"), expected_global, rtol=1e-5)

  # On one replica they coincide.
  one = [tf.constant(preds[:1].reshape(1, 1, 1, 2)),
         tf.constant(targets[:2].reshape(1, 2, 1, 2)), 1]
  np.testing.assert_array_equal(infonce.contrastive_loss(*one, "local")[0],
                                infonce.contrastive_loss(*one, "global")[0])

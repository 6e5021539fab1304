"""Scale-out and speed options: precision, recompute, XLA, TPU flags,
negatives."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.train import distribute
from cpc_tf.models import infonce
from cpc_tf.train import trainer
from helpers import REPO, tiny_config

TINY = tiny_config(batch_size=4, train_steps=100, learning_rate=3e-3)


def fixed_batch():
  return tf.constant(
      np.random.default_rng(0).random([4, 3, 3, 8, 8, 3], np.float32))


@pytest.mark.parametrize("precision,compute", [("bfloat16", "bfloat16"),
                                               ("mixed_float16", "float16")])
def test_low_precision_trains_with_finite_decreasing_loss(precision, compute):
  model = trainer.build_model(dataclasses.replace(TINY, precision=precision))
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
  plain = trainer.build_model(TINY)
  recomputed = trainer.build_model(
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


XLA_DUMP = f"""
import dataclasses, os, sys, numpy as np, tensorflow as tf
sys.path[:0] = [{REPO!r}, {os.path.join(REPO, "tests")!r}]
from cpc_tf.train import trainer
from helpers import TINY
batch = tf.constant(np.random.default_rng(0).random([4, 3, 3, 8, 8, 3],
                                                    np.float32))
for jit in (False, True):
  model = trainer.build_model(dataclasses.replace(TINY, jit_compile=jit))
  loss = model.fit(tf.data.Dataset.from_tensors(batch).repeat(), epochs=1,
                   steps_per_epoch=2, verbose=0).history["loss"][-1]
  assert np.isfinite(loss)
  print(jit, len(os.listdir(os.environ["DUMP"])), flush=True)
"""


@pytest.mark.slow
def test_train_step_compiles_with_xla(tmp_path):
  """--jit_compile makes XLA compile the training step: XLA writes the HLO
  of what it compiled (--xla_dump_to), nothing without the flag."""
  dump = tmp_path / "xla"
  dump.mkdir()
  env = dict(os.environ, DUMP=str(dump), XLA_FLAGS=f"--xla_dump_to={dump}")
  done = subprocess.run([sys.executable, "-c", XLA_DUMP], env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.split()[:2] == ["False", "0"]
  with_xla = int(done.stdout.split()[3])
  assert done.stdout.split()[2] == "True" and with_xla > 0
  assert any("one_step_on_data" in name for name in os.listdir(dump))


def test_tpu_flags_reach_the_resolver_without_a_tpu(monkeypatch):
  """--strategy=tpu --tpu=ADDRESS connects to that address: make_strategy
  hands --tpu to the resolver it connects with (stopped before any TPU is
  needed)."""
  connected = []

  def connect(resolver):
    connected.append(resolver.master())
    raise RuntimeError("no TPU here")

  monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", connect)
  with pytest.raises(RuntimeError, match="no TPU here"):
    distribute.make_strategy("tpu", "grpc://10.1.2.3:8470")
  assert connected == ["grpc://10.1.2.3:8470"]


TARGETS = [[[1.0, 0.0]], [[0.0, 2.0]],            # replica 0: rows 0 and 1
           [[3.0, 1.0]], [[-1.0, 1.0]]]            # replica 1
PREDS = [[0.5, 1.0], [1.0, -0.5]]                  # one per replica, from row 0

# Runs in a fresh process: MirroredStrategy collectives of earlier tests in
# this process would collide with these on their instance keys.
TWO_REPLICAS = f"""
import json, sys, numpy as np, tensorflow as tf
sys.path.insert(0, {REPO!r})
from cpc_tf.models import infonce
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
targets, preds = np.array({TARGETS}, np.float32), np.array({PREDS}, np.float32)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def per_replica(negatives):
  r = tf.distribute.get_replica_context().replica_id_in_sync_group
  own_targets = tf.reshape(tf.gather(targets, [2 * r, 2 * r + 1]), [1, 2, 1, 2])
  own_preds = tf.reshape(tf.gather(preds, [r]), [1, 1, 1, 2])
  return infonce.contrastive_loss(own_preds, own_targets, 1, negatives)[0]

losses = {{}}
for negatives in ("local", "global"):
  result = tf.function(lambda: strategy.run(per_replica, args=(negatives,)))()
  losses[negatives] = [float(v.numpy()[0])
                       for v in strategy.experimental_local_results(result)]
print(json.dumps(losses))
"""


def test_global_and_local_negatives_on_a_hand_built_case():
  """Two replicas, one image each, a 2x1 grid of 2-d targets; the prediction
  from row 0 aims at row 1. Local negatives: the replica's own two targets;
  global: all four, the label offset by the replica's position."""
  flat, preds = np.array(TARGETS).reshape(4, 2), np.array(PREDS)

  def cross_entropy(logits, label):
    return np.log(np.exp(logits).sum()) - logits[label]

  run = subprocess.run([sys.executable, "-c", TWO_REPLICAS],
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  losses = json.loads(run.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(losses["local"], [
      cross_entropy(flat[0:2] @ preds[0], 1),
      cross_entropy(flat[2:4] @ preds[1], 1)], rtol=1e-5)
  np.testing.assert_allclose(losses["global"], [
      cross_entropy(flat @ preds[0], 1),
      cross_entropy(flat @ preds[1], 3)], rtol=1e-5)

  # On one replica they coincide.
  one = [tf.constant(np.array(PREDS[:1], np.float32).reshape(1, 1, 1, 2)),
         tf.constant(np.array(TARGETS[:2], np.float32).reshape(1, 2, 1, 2)), 1]
  np.testing.assert_array_equal(infonce.contrastive_loss(*one, "local")[0],
                                infonce.contrastive_loss(*one, "global")[0])

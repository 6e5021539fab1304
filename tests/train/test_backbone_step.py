"""The two-rate fine-tuning step: each optimizer updates only its variables."""

import keras
import numpy as np

from cpc_tf.train import backbone_step


class TwoRates(keras.Model):

  def __init__(self, backbone, backbone_optimizer, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self.head = keras.layers.Dense(3)
    self.backbone_optimizer = backbone_optimizer

  def call(self, inputs, training=False):
    return self.head(self.backbone(inputs, training=training))

  def train_step(self, data):
    return backbone_step.train_step(self, data, self.backbone,
                                    self.backbone_optimizer)


def test_each_part_moves_at_its_own_rate():
  keras.utils.set_random_seed(0)
  backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
  model = TwoRates(backbone, backbone_step.build_optimizer(backbone, 1e-4))
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")])
  inputs = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
  labels = np.arange(8) % 3
  model(inputs)
  before = [v.numpy() for v in model.trainable_variables]
  logs = model.train_on_batch(inputs, labels, return_dict=True)
  backbone_ids = {id(v) for v in backbone.trainable_variables}
  for variable, old in zip(model.trainable_variables, before):
    step = np.abs(variable.numpy() - old)
    # Adam's first step moves every weight with a non-zero gradient by
    # about its learning rate.
    rate = 1e-4 if id(variable) in backbone_ids else 1e-2
    np.testing.assert_allclose(step[step > 0], rate, rtol=0.05)
    assert (step > 0).mean() > 0.5
  assert int(model.backbone_optimizer.iterations.numpy()) == 1
  assert int(model.optimizer.iterations.numpy()) == 1
  assert set(logs) == {"loss", "top1"}
  assert np.isfinite(logs["loss"]) and 0 <= logs["top1"] <= 1

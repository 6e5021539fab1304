"""Section 2.2's fine-tuning step, shared by classification and detection:
the backbone (the CPC encoder) trains with an Adam of its own at a smaller
learning rate while the model's compiled optimizer trains everything else."""

import keras
import tensorflow as tf


def train_step(model: keras.Model, data, backbone: keras.Model,
               backbone_optimizer: keras.optimizers.Optimizer) -> dict:
  """One step of Keras' train_step with the gradients split in two:
  backbone_optimizer updates backbone's trainable variables, model.optimizer
  the rest of model's. Returns the logs, as Keras' train_step does."""
  inputs, targets, weights = keras.utils.unpack_x_y_sample_weight(data)
  with tf.GradientTape() as tape:
    predictions = model(inputs, training=True)
    loss = model.compute_loss(x=inputs, y=targets, y_pred=predictions,
                              sample_weight=weights)
  backbone_variables = backbone.trainable_variables
  backbone_ids = {id(v) for v in backbone_variables}
  rest = [v for v in model.trainable_variables if id(v) not in backbone_ids]
  gradients = tape.gradient(loss, backbone_variables + rest)
  split = len(backbone_variables)
  backbone_optimizer.apply_gradients(zip(gradients[:split], backbone_variables))
  model.optimizer.apply_gradients(zip(gradients[split:], rest))
  for metric in model.metrics:        # Keras' running mean of the loss
    if metric.name == "loss":
      metric.update_state(loss)
  return model.compute_metrics(inputs, targets, predictions, weights)


def build_optimizer(backbone: keras.Model,
                    learning_rate: float) -> keras.optimizers.Optimizer:
  """The backbone's own Adam, built on its variables (so that a checkpoint
  or a distributed step finds its slots)."""
  optimizer = keras.optimizers.Adam(learning_rate)
  optimizer.build(backbone.trainable_variables)
  return optimizer

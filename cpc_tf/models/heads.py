"""Classifier heads h on the latent grid (Section 2.2)."""

import keras
from keras import layers

from cpc_tf.models import encoder


def linear_head(num_classes: int,
                name: str = "linear_head") -> keras.Sequential:
  """A.3: [B, G, G, D] -> batch norm without scale -> 1x1 conv to one logit
  per class at every cell -> spatial mean -> [B, num_classes]."""
  return keras.Sequential([
      layers.BatchNormalization(scale=False, name="norm"),
      layers.Conv2D(num_classes, 1, name="logits"),
      layers.GlobalAveragePooling2D(name="spatial_mean"),
  ], name=name)


def fix_norm_statistics(head: keras.Model, mean, variance):
  """Sets linear_head's test-time normalisation to these statistics (e.g.
  those of clean latents) and keeps them there: with momentum 1 training's
  batch statistics no longer move them. Call before training is traced."""
  if not head.built:
    head.build((None, None, None, len(mean)))
  norm = head.get_layer("norm")
  norm.momentum = 1.0
  norm.moving_mean.assign(mean)
  norm.moving_variance.assign(variance)


def resnet_head(num_classes: int, latent_dim: int, blocks: int,
                bottleneck: int, width: int, norm: str = "batch",
                dropout: float = 0.0, small_map_matmul: bool = True,
                name: str = "resnet_head") -> keras.Model:
  """Section 2.2's efficient classifier: pre-activation bottleneck blocks at
  stride 1 on the latent grid (the paper: 11 blocks, 4096-d maps, 1024-d
  bottlenecks), then norm, ReLU, mean pooling, dropout and a linear layer;
  convolutions computed as the encoder's (small_map_matmul).
  [B, G, G, D] -> [B, num_classes]."""
  latents = keras.Input(shape=(None, None, latent_dim), name="latents")
  x = latents
  for b in range(blocks):
    x = encoder.bottleneck_block(
        x, bottleneck, width, 1, norm, f"head_block{b + 1}",
        encoder.SMALL_MAP_PIXELS if small_map_matmul else 0)
  x = layers.ReLU(name="head_relu")(encoder.norm_layer(norm, "head_norm")(x))
  return keras.Model(latents, _pool_and_classify(x, num_classes, dropout),
                     name=name)


def pooled_head(num_classes: int, latent_dim: int, dropout: float = 0.0,
                name: str = "pooled_head") -> keras.Model:
  """Mean pooling, dropout and a linear layer: the last layers of the
  supervised baseline (A.4), whose encoder sees the whole image as one patch."""
  latents = keras.Input(shape=(None, None, latent_dim), name="latents")
  return keras.Model(latents, _pool_and_classify(latents, num_classes, dropout),
                     name=name)


def _pool_and_classify(x, num_classes, dropout):
  x = layers.GlobalAveragePooling2D(name="mean_pool")(x)
  x = layers.Dropout(dropout, name="dropout")(x)
  return layers.Dense(num_classes, name="logits")(x)

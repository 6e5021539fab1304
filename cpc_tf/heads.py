"""Classifier heads h on the latent grid (Section 2.2)."""

import keras
from keras import layers


def linear_head(num_classes: int, name: str = "linear_head") -> keras.Sequential:
  """A.3: [B, G, G, D] -> batch norm without scale -> 1x1 conv to one logit
  per class at every cell -> spatial mean -> [B, num_classes]."""
  return keras.Sequential([
      layers.BatchNormalization(scale=False, name="norm"),
      layers.Conv2D(num_classes, 1, name="logits"),
      layers.GlobalAveragePooling2D(name="spatial_mean"),
  ], name=name)

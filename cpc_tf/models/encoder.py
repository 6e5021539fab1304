"""Encoder f: a pre-activation (v2) ResNet ending in mean pooling.

Section 4.1: LayerNorm replaces BatchNorm ("LN"); ResNet-161 keeps the first
three stacks of ResNet-101 with the third converted to 46 blocks of 4096-d
outputs and 512-d bottlenecks. The same code, with fewer blocks and a smaller
width, gives the CPU-sized encoders. Convolutions are SmallMapConv2D: Conv2D
computed as a matrix product on the tiny maps of small patches.
"""

import dataclasses
from typing import Sequence, Tuple

import keras
from keras import layers
import tensorflow as tf

from cpc_tf.models.small_conv import SmallMapConv2D

# Per stage: (blocks, bottleneck width, output width) for a base width of 64;
# basic-block presets (two 3x3 convolutions a block) have no bottleneck and
# list their width twice.
PRESETS = {
    "resnet18": ((2, 64, 64), (2, 128, 128), (2, 256, 256), (2, 512, 512)),
    "resnet34": ((3, 64, 64), (4, 128, 128), (6, 256, 256), (3, 512, 512)),
    "resnet50": ((3, 64, 256), (4, 128, 512), (6, 256, 1024), (3, 512, 2048)),
    "resnet101": ((3, 64, 256), (4, 128, 512), (23, 256, 1024), (3, 512, 2048)),
    "resnet152": ((3, 64, 256), (8, 128, 512), (36, 256, 1024), (3, 512, 2048)),
    "resnet200": ((3, 64, 256), (24, 128, 512), (36, 256, 1024),
                  (3, 512, 2048)),
    "resnet161": ((3, 64, 256), (4, 128, 512), (46, 512, 4096)),
    # ResNet-101 with ResNet-161's third stage, all four stages kept.
    "resnet101_wide": ((3, 64, 256), (4, 128, 512), (46, 512, 4096),
                       (3, 512, 2048)),
}
BASIC_BLOCK_PRESETS = ("resnet18", "resnet34")
NORMS = ("layer", "batch", "none")
# Largest map (in pixels) a SmallMapConv2D computes as a matrix product:
# what 8x8 patches give after the stem.
SMALL_MAP_PIXELS = 16
STEMS = ("imagenet", "small")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """What defines an encoder; `stages` holds (blocks, bottleneck, output)."""
  stages: Tuple[Tuple[int, int, int], ...]
  norm: str = "layer"
  stem: str = "imagenet"
  block: str = "bottleneck"   # or "basic"
  # How the convolutions compute (not what): on maps of at most 16 pixels
  # as one matrix product (SmallMapConv2D), or always TF's Conv2D.
  small_map_matmul: bool = True

  @property
  def max_pixels(self) -> int:
    """SmallMapConv2D's max_pixels: 0 is always TF's Conv2D."""
    return SMALL_MAP_PIXELS if self.small_map_matmul else 0

  @property
  def output_dim(self) -> int:
    return self.stages[-1][2]


def encoder_config(name: str, width: int = 64, blocks: Sequence[int] = (),
                   norm: str = "layer", stem: str = "imagenet",
                   small_map_matmul: bool = True) -> EncoderConfig:
  """A preset scaled to `width` (the first bottleneck; 64 in the paper).

  `blocks`, if given, replaces the blocks per stage; fewer entries than the
  preset has stages keeps only the first stages.
  """
  if name not in PRESETS:
    raise ValueError(f"unknown encoder {name!r}; choose from {sorted(PRESETS)}")
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; choose from {NORMS}")
  if stem not in STEMS:
    raise ValueError(f"unknown stem {stem!r}; choose from {STEMS}")
  preset = PRESETS[name]
  blocks = tuple(blocks) or tuple(b for b, _, _ in preset)
  if len(blocks) > len(preset) or min(blocks) < 1:
    raise ValueError(f"encoder blocks {list(blocks)} do not fit {name}: "
                     f"give 1 to {len(preset)} stages of at least one block")
  stages = tuple((n, bottleneck * width // 64, out * width // 64)
                 for n, (_, bottleneck, out) in zip(blocks, preset))
  block = "basic" if name in BASIC_BLOCK_PRESETS else "bottleneck"
  return EncoderConfig(stages=stages, norm=norm, stem=stem, block=block,
                       small_map_matmul=small_map_matmul)


def norm_layer(kind: str, name: str) -> layers.Layer:
  if kind == "layer":
    # LayerNorm over (H, W, C) of each patch with a per-channel scale and
    # offset: the encoder stays independent of the other patches and images,
    # and of the input size.
    return layers.GroupNormalization(groups=1, epsilon=1e-5, name=name)
  if kind == "batch":
    return layers.BatchNormalization(epsilon=1e-5, name=name)
  return layers.Identity(name=name)


def _conv(filters, kernel, strides, max_pixels, name):
  return SmallMapConv2D(filters, kernel, strides=strides, padding="same",
                        use_bias=False, max_pixels=max_pixels, name=name)


def _preactivation(x, norm, name):
  return layers.ReLU(name=f"{name}_preact_relu")(
      norm_layer(norm, f"{name}_preact_norm")(x))


def _shortcut(x, preact, output, strides, max_pixels, name):
  if strides != 1 or x.shape[-1] != output:
    return _conv(output, 1, strides, max_pixels, f"{name}_shortcut")(preact)
  return x


def bottleneck_block(x, bottleneck, output, strides, norm, name,
                     max_pixels=SMALL_MAP_PIXELS):
  """Pre-activation bottleneck block (He et al. 2016, "v2")."""
  preact = _preactivation(x, norm, name)
  shortcut = _shortcut(x, preact, output, strides, max_pixels, name)
  y = _conv(bottleneck, 1, 1, max_pixels, f"{name}_conv1")(preact)
  y = layers.ReLU(name=f"{name}_relu1")(norm_layer(norm, f"{name}_norm1")(y))
  y = _conv(bottleneck, 3, strides, max_pixels, f"{name}_conv2")(y)
  y = layers.ReLU(name=f"{name}_relu2")(norm_layer(norm, f"{name}_norm2")(y))
  y = _conv(output, 1, 1, max_pixels, f"{name}_conv3")(y)
  return layers.Add(name=f"{name}_add")([shortcut, y])


def basic_block(x, width, strides, norm, name, max_pixels=SMALL_MAP_PIXELS):
  """Pre-activation basic block: two 3x3 convolutions (ResNet-18/34, v2)."""
  preact = _preactivation(x, norm, name)
  shortcut = _shortcut(x, preact, width, strides, max_pixels, name)
  y = _conv(width, 3, strides, max_pixels, f"{name}_conv1")(preact)
  y = layers.ReLU(name=f"{name}_relu1")(norm_layer(norm, f"{name}_norm1")(y))
  y = _conv(width, 3, 1, max_pixels, f"{name}_conv2")(y)
  return layers.Add(name=f"{name}_add")([shortcut, y])


def feature_maps(config: EncoderConfig, name: str = "encoder") -> keras.Model:
  """Fully convolutional trunk: [N, h, w, 3] in [0, 1] -> one map per stage.

  Used on patches for CPC and on whole images for detection.
  """
  images = keras.Input(shape=(None, None, 3), name="images")
  x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
  if config.stem == "imagenet":
    x = _conv(config.stages[0][1], 7, 2, config.max_pixels, "stem_conv")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
  else:
    x = _conv(config.stages[0][1], 3, 1, config.max_pixels, "stem_conv")(x)
  maps = []
  for s, (blocks, bottleneck, output) in enumerate(config.stages):
    for b in range(blocks):
      strides = 2 if (s > 0 and b == 0) else 1
      block_name = f"stage{s + 1}_block{b + 1}"
      if config.block == "basic":
        x = basic_block(x, output, strides, config.norm, block_name,
                        config.max_pixels)
      else:
        x = bottleneck_block(x, bottleneck, output, strides, config.norm,
                             block_name, config.max_pixels)
    maps.append(x)
  # The last stage ends with the final pre-activation norm and ReLU.
  maps[-1] = layers.ReLU(name="final_relu")(
      norm_layer(config.norm, "final_norm")(x))
  return keras.Model(images, maps, name=name)


def stage_maps(encoder: keras.Model, config: EncoderConfig) -> keras.Model:
  """build_encoder's model cut before the pooling: images -> one map per
  stage, sharing the encoder's layers and weights (for detection)."""
  names = [f"stage{s + 1}_block{blocks}_add"
           for s, (blocks, _, _) in enumerate(config.stages[:-1])]
  outputs = [encoder.get_layer(n).output for n in names + ["final_relu"]]
  return keras.Model(encoder.inputs, outputs, name=f"{encoder.name}_maps")


def build_encoder(config: EncoderConfig, name: str = "encoder") -> keras.Model:
  """f: [N, p, p, 3] in [0, 1] -> [N, D], mean-pooled over the last map."""
  trunk = feature_maps(config, name=f"{name}_trunk")
  latents = layers.GlobalAveragePooling2D(name="mean_pool")(trunk.outputs[-1])
  return keras.Model(trunk.inputs, latents, name=name)


def encode_patches(encoder: keras.Model, patches: tf.Tensor,
                   training: bool = False, recompute_chunks: int = 0
                   ) -> tf.Tensor:
  """[B, H, W, p, p, C] patches -> [B, H, W, D] latents, each patch on its own.

  recompute_chunks > 0 encodes the patches in that many chunks under
  tf.recompute_grad: the backward pass recomputes each chunk's activations
  instead of keeping them all.
  """
  _, rows, cols, size, _, channels = patches.shape
  flat = tf.reshape(patches, [-1, size, size, channels])      # [B*H*W, p, p, C]
  count = flat.shape[0]
  if recompute_chunks and count:
    encode = tf.recompute_grad(lambda chunk: encoder(chunk, training=training))
    sizes = [count // recompute_chunks + (i < count % recompute_chunks)
             for i in range(recompute_chunks)]
    latents = tf.concat([encode(chunk) for chunk in tf.split(flat, sizes)
                         if chunk.shape[0]], axis=0)          # [B*H*W, D]
  else:
    latents = encoder(flat, training=training)                # [B*H*W, D]
  return tf.reshape(latents, [-1, rows, cols, latents.shape[-1]])

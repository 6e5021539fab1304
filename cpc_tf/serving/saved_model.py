"""SavedModel export of the encoder: images -> patch grid -> latents, features.

Signatures (described again in the export's assets/cpc_config.json):
  serving_default(images: uint8 [N, H, W, 3]) and
  serving_encoded(encoded: string [N], JPEG/PNG/GIF/BMP bytes)
both return {"features": float32 [N, D], "latents": float32 [N, G, G, D]}.
"""

import json
import os
import tempfile

import keras
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.models.encoder import encode_patches

ASSET_FILE = "cpc_config.json"


def describe(config: config_lib.PretrainConfig, output_dim: int) -> dict:
  """What the export expects and returns, as data for its asset file."""
  grid = config.grid
  return {
      "preprocessing": (
          f"RGB images (uint8, or encoded bytes decoded to 3 channels) are "
          f"resized so that the short side is {grid.image_size}/0.875 pixels "
          f"(or {grid.image_size} if smaller), centre-cropped to "
          f"{grid.image_size}x{grid.image_size}, scaled to [0, 1] and cut into "
          f"a {grid.grid_size}x{grid.grid_size} grid of {grid.patch_size}x"
          f"{grid.patch_size} patches at stride {grid.stride}; each patch is "
          f"encoded on its own."),
      "signatures": {
          "serving_default": "images: uint8 [N, H, W, 3], any H and W",
          "serving_encoded": "encoded: string [N], JPEG/PNG/GIF/BMP bytes",
      },
      "outputs": {
          "features": (f"float32 [N, {output_dim}]: latents averaged over "
                       "the grid"),
          "latents": (f"float32 [N, {grid.grid_size}, {grid.grid_size}, "
                      f"{output_dim}]: one vector per patch"),
      },
      "pretrain_config": json.loads(config.to_json()),
  }


class EncoderExport(tf.Module):
  """The encoder with the evaluation preprocessing, as serving functions."""

  def __init__(self, encoder: keras.Model, config: config_lib.PretrainConfig,
               asset_path: str):
    super().__init__(name="cpc_encoder")
    self.encoder = encoder
    self.grid = config.grid
    self.config_asset = tf.saved_model.Asset(asset_path)
    grid = self.grid
    self._patch_spec = tf.TensorSpec(
        [grid.grid_size, grid.grid_size, grid.patch_size, grid.patch_size, 3],
        tf.float32)

  def _encode(self, patches):
    latents = encode_patches(self.encoder, patches)           # [N, G, G, D]
    return {"features": tf.reduce_mean(latents, axis=[1, 2]),  # [N, D]
            "latents": latents}

  def _patches(self, image):
    """uint8 [h, w, 3] -> float32 [G, G, p, p, 3], the evaluation view."""
    return pipelines.image_to_patches(image, self.grid, train=False,
                                      min_crop_area=1.0)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
  def serve_images(self, images):
    return self._encode(tf.map_fn(self._patches, images,
                                  fn_output_signature=self._patch_spec))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="encoded")])
  def serve_encoded(self, encoded):
    def decode(image_bytes):
      return self._patches(tf.io.decode_image(image_bytes, channels=3,
                                              expand_animations=False))
    return self._encode(tf.map_fn(decode, encoded,
                                  fn_output_signature=self._patch_spec))


def export_encoder(encoder: keras.Model, config: config_lib.PretrainConfig,
                   export_dir: str) -> str:
  """Writes the SavedModel to export_dir (any tf.io.gfile path)."""
  with tempfile.TemporaryDirectory() as local:
    # The asset is copied into export_dir/assets by tf.saved_model.save.
    asset_path = os.path.join(local, ASSET_FILE)
    with open(asset_path, "w") as f:
      json.dump(describe(config, encoder.output_shape[-1]), f, indent=2)
    module = EncoderExport(encoder, config, asset_path)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve_images,
        "serving_encoded": module.serve_encoded})
  return export_dir

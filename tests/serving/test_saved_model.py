"""SavedModel export: fresh-process round trip, signatures, Keras layer,
errors."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.configs import pretrain as config_lib
from cpc_tf.data import pipelines
from cpc_tf.serving import encoder_dir
from cpc_tf.serving import saved_model
from cpc_tf.train import trainer
from cpc_tf.models.encoder import encode_patches
from cpc_tf.configs import modes
from cpc_tf.evaluation import registry
from helpers import tiny_config

TINY = tiny_config(encoder_blocks=(1,), batch_size=4)

# Read by a fresh interpreter that never imports cpc_tf.
LOADER = """
import sys, numpy as np, tensorflow as tf
export_dir, inputs, outputs, *png_files = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
images = np.load(inputs)
encoded = [open(path, "rb").read() for path in png_files]
by_images = loaded.signatures["serving_default"](images=tf.constant(images))
by_bytes = loaded.signatures["serving_encoded"](encoded=tf.constant(encoded))
assert not any(m.startswith("cpc_tf") for m in sys.modules)
np.savez(outputs, **{f"images_{k}": v.numpy() for k, v in by_images.items()},
         **{f"encoded_{k}": v.numpy() for k, v in by_bytes.items()})
"""


def export_with(**settings):
  return registry.run(modes.ExportConfig(**settings))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """A pretrained tiny model_dir and its export (run_eval.py --mode=export:
  a SavedModel in model_dir/export, the released form in model_dir/release)."""
  model_dir = str(tmp_path_factory.mktemp("export") / "run")
  trainer.pretrain(dataclasses.replace(TINY, model_dir=model_dir))
  export_dir = os.path.join(model_dir, "export")
  record = export_with(model_dir=model_dir, export_dir=export_dir,
                       save_encoder=os.path.join(model_dir, "release"))
  assert record["exported"][0] == export_dir
  return model_dir, export_dir


def images_and_bytes():
  images = np.random.default_rng(0).integers(0, 256, [3, 20, 27, 3], np.uint8)
  return images, [tf.io.encode_png(image).numpy() for image in images]


def reference_outputs(model_dir, images):
  """The in-process encoder on the evaluation view of each image."""
  config = dataclasses.replace(config_lib.load_config(model_dir),
                               model_dir=model_dir)
  encoder = encoder_dir.restore(config)
  patches = tf.stack([pipelines.image_to_patches(image, config.grid, False, 1.0)
                      for image in images])
  latents = encode_patches(encoder, patches).numpy()
  return latents.mean(axis=(1, 2)), latents


@pytest.mark.slow
def test_fresh_process_round_trip_matches_in_process_encoder(exported,
                                                             tmp_path):
  model_dir, export_dir = exported
  images, encoded = images_and_bytes()
  np.save(tmp_path / "images.npy", images)
  png_files = [str(tmp_path / f"{i}.png") for i in range(len(encoded))]
  for path, image_bytes in zip(png_files, encoded):
    with open(path, "wb") as f:
      f.write(image_bytes)
  result = subprocess.run(
      [sys.executable, "-c", LOADER, export_dir, str(tmp_path / "images.npy"),
       str(tmp_path / "out.npz"), *png_files],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = np.load(tmp_path / "out.npz")
  features, latents = reference_outputs(model_dir, images)
  assert out["images_latents"].shape == (3, 3, 3, 32)
  assert out["images_features"].shape == (3, 32)
  for source in ("images", "encoded"):   # PNG is lossless: same pixels
    np.testing.assert_allclose(out[f"{source}_features"], features, atol=1e-5)
    np.testing.assert_allclose(out[f"{source}_latents"], latents, atol=1e-5)


def signature(shown: str, name: str) -> str:
  """One signature's part of `saved_model_cli show --all`."""
  return shown.split(f"signature_def['{name}']")[1].split("signature_def[")[0]


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(exported):
  _, export_dir = exported
  shown = subprocess.run(
      [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
       "--all", "--dir", export_dir],
      capture_output=True, text=True, timeout=300)
  assert shown.returncode == 0, shown.stderr[-2000:]
  text = shown.stdout
  default = signature(text, "serving_default")
  assert "inputs['images']" in default and "DT_UINT8" in default
  assert "shape: (-1, -1, -1, 3)" in default
  assert "outputs['features']" in default and "shape: (-1, 32)" in default
  assert "outputs['latents']" in default and "shape: (-1, 3, 3, 32)" in default
  encoded = signature(text, "serving_encoded")
  assert "inputs['encoded']" in encoded and "DT_STRING" in encoded


def test_export_records_preprocessing_and_config(exported):
  _, export_dir = exported
  with open(os.path.join(export_dir, "assets", saved_model.ASSET_FILE)) as f:
    described = json.load(f)
  assert described["pretrain_config"]["encoder_width"] == 8
  assert "centre-cropped to 16x16" in described["preprocessing"]
  assert set(described["signatures"]) == {"serving_default", "serving_encoded"}


def test_loads_as_keras_layer_in_a_downstream_model(exported):
  _, export_dir = exported
  images = keras.Input([20, 27, 3], dtype="uint8")
  features = keras.layers.TFSMLayer(
      export_dir, call_endpoint="serving_default")(images)["features"]
  model = keras.Model(images, keras.layers.Dense(10)(features))
  logits = model.predict(images_and_bytes()[0], verbose=0)
  assert logits.shape == (3, 10) and np.isfinite(logits).all()


def test_wrong_dtype_or_shape_is_a_clear_error(exported):
  _, export_dir = exported
  serve = tf.saved_model.load(export_dir).signatures["serving_default"]
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match="uint8|float32"):
    serve(images=tf.zeros([1, 16, 16, 3], tf.float32))
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match="shape|rank|dimension"):
    serve(images=tf.zeros([16, 16, 3], tf.uint8))


def test_export_to_ram_filesystem(exported):
  model_dir, _ = exported
  config = dataclasses.replace(config_lib.load_config(model_dir),
                               model_dir=model_dir)
  saved_model.export_encoder(encoder_dir.restore(config), config,
                        "ram://cpc_tf_export/encoder")
  serve = tf.saved_model.load("ram://cpc_tf_export/encoder").signatures[
      "serving_default"]
  images = images_and_bytes()[0]
  np.testing.assert_allclose(serve(images=tf.constant(images))["features"],
                             reference_outputs(model_dir, images)[0], atol=1e-5)


def test_refuses_existing_export_and_mismatched_checkpoint(exported, tmp_path):
  model_dir, export_dir = exported
  with pytest.raises(config_lib.ConfigError,
                     match="already holds a SavedModel"):
    export_with(model_dir=model_dir, export_dir=export_dir)
  # The same checkpoints under a config.json that describes another encoder.
  shutil.copytree(model_dir, tmp_path / "other")
  other = dataclasses.replace(config_lib.load_config(model_dir),
                              encoder_width=16,
                              model_dir=str(tmp_path / "other"))
  with open(tmp_path / "other" / config_lib.CONFIG_FILE, "w") as f:
    f.write(other.to_json())
  with pytest.raises(config_lib.ConfigError,
                     match="does not fit the encoder.*encoder_width=16"):
    export_with(model_dir=str(tmp_path / "other"),
                export_dir=str(tmp_path / "other_export"))


def test_released_encoder_holds_only_the_encoder_and_loads_anywhere(
    exported, tmp_path):
  model_dir, _ = exported
  moved = tmp_path / "cloned_elsewhere"
  shutil.copytree(os.path.join(model_dir, "release"), moved)
  names = set(tf.train.load_checkpoint(
      str(moved / "checkpoints")).get_variable_to_shape_map())
  names -= {"_CHECKPOINTABLE_OBJECT_GRAPH",
            "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
  config = dataclasses.replace(config_lib.load_config(model_dir),
                               model_dir=model_dir)
  assert len(names) == len(encoder_dir.restore(config).variables)
  assert not any("optimizer" in name for name in names), sorted(names)
  # It says which pretraining run and step it comes from.
  assert encoder_dir.trained_by(str(moved)) == {
      "mode": "pretrain", "model_dir": model_dir, "step": 2}
  images = images_and_bytes()[0]
  for released, original in zip(reference_outputs(str(moved), images),
                                reference_outputs(model_dir, images)):
    np.testing.assert_array_equal(released, original)


def test_export_needs_a_destination(exported):
  with pytest.raises(config_lib.ConfigError,
                     match="needs --export_dir .* or --save_encoder"):
    export_with(model_dir=exported[0])

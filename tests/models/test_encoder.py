import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.models import encoder
from cpc_tf.models import small_conv


@pytest.mark.parametrize("name,millions", [
    # Table 1: ResNet-50 "24M"; ResNet-161 "305M" (first three stacks of
    # ResNet-101, the third as 46 blocks of 4096-d outputs, 512-d bottlenecks).
    ("resnet50", 23.5), ("resnet101", 42.5),
    pytest.param("resnet161", 303.6, marks=pytest.mark.slow)])
def test_parameter_counts(name, millions):
  model = encoder.build_encoder(encoder.encoder_config(name))
  assert model.count_params() / 1e6 == pytest.approx(millions, abs=0.1)


def test_resnet161_latents_are_4096d():
  config = encoder.encoder_config("resnet161")
  assert config.output_dim == 4096
  assert config.stages[-1] == (46, 512, 4096)


def test_small_encoder_from_the_same_code():
  config = encoder.encoder_config("resnet50", width=16, blocks=(1, 2),
                                  stem="small")
  assert config.stages == ((1, 16, 64), (2, 32, 128))
  model = encoder.build_encoder(config)
  latents = model(tf.random.uniform([5, 8, 8, 3]))
  assert latents.shape == (5, 128)
  names = [layer.name for layer in model.layers]
  assert "stage2_block2_add" in names and "stage3_block1_add" not in names


@pytest.mark.parametrize("norm,layer_type", [
    ("layer", "GroupNormalization"), ("batch", "BatchNormalization"),
    ("none", "Identity")])
def test_norm_choice(norm, layer_type):
  model = encoder.build_encoder(encoder.encoder_config(
      "resnet50", width=8, blocks=(1,), norm=norm, stem="small"))
  types = {type(layer).__name__ for layer in model.layers}
  assert layer_type in types
  others = {"GroupNormalization", "BatchNormalization"} - {layer_type}
  assert not others & types


def test_layer_norm_keeps_patches_independent():
  """With LayerNorm each patch's latent depends on that patch alone."""
  model = encoder.build_encoder(encoder.encoder_config(
      "resnet50", width=8, blocks=(1, 1), stem="small"))
  patches = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
  changed = patches.copy()
  changed[1:] = 1.0 - changed[1:]
  np.testing.assert_allclose(model(patches)[0], model(changed)[0], atol=1e-6)


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match="unknown encoder"):
    encoder.encoder_config("resnet18x")
  with pytest.raises(ValueError, match="do not fit resnet161"):
    encoder.encoder_config("resnet161", blocks=(1, 1, 1, 1))
  with pytest.raises(ValueError, match="unknown norm"):
    encoder.encoder_config("resnet50", norm="group")


def test_basic_block_presets():
  config = encoder.encoder_config("resnet18", stem="small")
  assert config.block == "basic" and config.output_dim == 512
  model = encoder.build_encoder(config)
  # ResNet-18 has 11.2M parameters with its 1000-way classifier (0.5M) and
  # 7x7 stem; here a 3x3 stem, no classifier, pre-activation norms.
  assert model.count_params() / 1e6 == pytest.approx(11.2, abs=0.1)
  names = [layer.name for layer in model.layers]
  assert "stage4_block2_conv2" in names and "stage4_block2_conv3" not in names
  assert model(tf.zeros([3, 8, 8, 3])).shape == (3, 512)


def test_resnet101_wide_has_four_stages():
  config = encoder.encoder_config("resnet101_wide")
  assert [b for b, _, _ in config.stages] == [3, 4, 46, 3]
  assert config.stages[2] == (46, 512, 4096) and config.output_dim == 2048


def test_the_convolutions_compute_as_the_config_says():
  """small_map_matmul reaches every convolution where the encoder is built
  (no switch shared by all layers): 16-pixel maps as matrix products, or
  TF's Conv2D everywhere."""
  for matmul, pixels in ((True, 16), (False, 0)):
    model = encoder.build_encoder(encoder.encoder_config(
        "resnet50", 8, (1, 1), small_map_matmul=matmul))
    convs = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
             if isinstance(layer, small_conv.SmallMapConv2D)]
    assert convs and {layer.max_pixels for layer in convs} == {pixels}

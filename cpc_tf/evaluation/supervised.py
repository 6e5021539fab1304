"""--mode=supervised, the A.4 baseline: a ResNet v2 on pixels trained from
scratch on the same label subsets and augmentation (the whole image as one
patch), dropout before the last layer; --save_encoder keeps it as an
encoder model_dir (a supervised backbone for detection)."""

import dataclasses

from cpc_tf.configs import modes
from cpc_tf.data.patches import PatchGrid
from cpc_tf.evaluation import classification
from cpc_tf.evaluation import records
from cpc_tf.evaluation import task
from cpc_tf.models import encoder as encoder_lib
from cpc_tf.models import heads
from cpc_tf.serving import encoder_dir


def pixel_config(config: modes.SupervisedConfig, pretrained, dataset,
                 data_dir):
  """The pretraining config with the supervised pixel ResNet (pixel_*) as
  its encoder, trained on dataset's train_split, kept in save_encoder."""
  return dataclasses.replace(
      pretrained, model_dir=config.save_encoder, dataset=dataset,
      data_dir=data_dir, split=config.train_split,
      train_steps=config.train_steps, encoder=config.pixel_encoder,
      encoder_width=config.pixel_width, encoder_blocks=config.pixel_blocks,
      norm=config.pixel_norm, stem=config.pixel_stem or pretrained.stem)


@task.register
class SupervisedTask(classification.ClassificationTask):
  CONFIG = modes.SupervisedConfig
  NAME = "supervised pixel baseline"
  METHODS = {"supervised": task.CurveMethod(
      (), "Supervised ResNet on pixels", ("tab:green", "-", "o"))}

  def method(self, config):
    return "supervised"

  def grid(self, config, pretrained):
    """The whole image as a single patch."""
    size = pretrained.image_size
    return PatchGrid(image_size=size, patch_size=size, stride=size)

  def build(self, config, pretrained, dataset, data_dir, classes):
    pixels = pixel_config(config, pretrained, dataset, data_dir)
    encoder = encoder_lib.build_encoder(pixels.encoder_config,
                                        name="pixel_resnet")
    head = heads.pooled_head(classes, encoder.output_shape[-1],
                             config.dropout)
    model = classification.PatchClassifier(encoder, head, fine_tune=True)
    classification.compile_classifier(model, config.learning_rate)
    return model, pixels

  def after_training(self, model, config, encoder_config, steps):
    if not config.save_encoder:
      return {}
    saved = encoder_dir.save(model.encoder, encoder_config, steps,
                             trained_by=records.settings(config))
    print(f"Saved the supervised encoder to {config.save_encoder}",
          flush=True)
    return {"saved_encoder": saved}

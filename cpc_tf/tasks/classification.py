"""Classification evaluations (Section 2.2, A.3, A.4): the A.3 linear probe
(linear), a ResNet head on the latents with the encoder fixed or fine-tuned
(efficient), and the supervised ResNet on pixels (supervised)."""

import dataclasses

import keras

from cpc_tf import classify
from cpc_tf import data
from cpc_tf import encoder as encoder_lib
from cpc_tf import encoder_dir
from cpc_tf import heads
from cpc_tf import subsets
from cpc_tf.augment import PatchAugment
from cpc_tf.tasks import common
from cpc_tf.tasks import configs

# A.3 probe: clean training images whose latents give the test-time
# normalisation statistics.
NORM_STATISTICS_IMAGES = 10000


def pixel_config(config: configs.SupervisedConfig, pretrained, dataset,
                 data_dir):
  """The pretraining config with the supervised pixel ResNet (pixel_*) as
  its encoder, trained on dataset's train_split, kept in save_encoder."""
  return dataclasses.replace(
      pretrained, model_dir=config.save_encoder, dataset=dataset,
      data_dir=data_dir, split=config.train_split,
      train_steps=config.train_steps, encoder=config.pixel_encoder,
      encoder_width=config.pixel_width, encoder_blocks=config.pixel_blocks,
      norm=config.pixel_norm, stem=config.pixel_stem or pretrained.stem)


def build_classifier(config, model_config, classes: int
                     ) -> classify.PatchClassifier:
  """The mode's network (for supervised, model_config is pixel_config's)."""
  if config.MODE == "supervised":
    encoder = encoder_lib.build_encoder(model_config.encoder_config,
                                        name="pixel_resnet")
    head = heads.pooled_head(classes, encoder.output_shape[-1], config.dropout)
    return classify.PatchClassifier(encoder, head, fine_tune=True)
  encoder = encoder_dir.restore(model_config, config.random_init)
  if config.MODE == "linear":
    head = heads.linear_head(classes)
  else:
    head = heads.resnet_head(classes, encoder.output_shape[-1],
                             config.head_blocks, config.head_bottleneck,
                             config.head_width, config.head_norm,
                             config.dropout)
  return classify.PatchClassifier(encoder, head)


def grid_for(config, pretrained) -> data.PatchGrid:
  """The pixel baseline sees the whole image as a single patch."""
  if config.MODE == "supervised":
    size = pretrained.image_size
    return data.PatchGrid(image_size=size, patch_size=size, stride=size)
  return pretrained.grid


def run(config) -> dict:
  """Trains the classifier of config's mode (LinearConfig, EfficientConfig
  or SupervisedConfig) and returns the test metrics record."""
  clock = classify.WallClock()
  config.validate()
  pretrained = common.pretrained(config)
  dataset, data_dir, train_source = common.labelled_data(config, pretrained)
  train_indices, validation_indices = None, []
  if config.label_fraction < 1 or config.validation_fraction > 0:
    train_indices, validation_indices = subsets.label_subset(
        train_source.labels(), config.label_fraction,
        config.validation_fraction, config.seed)
  keras.utils.set_random_seed(config.seed)
  grid = grid_for(config, pretrained)

  def labelled(split, train, indices=None):
    return data.classification_dataset(
        dataset, split, data_dir, grid, config.batch_size, train=train,
        min_crop_area=pretrained.min_crop_area,
        augment=pretrained.augment if config.patch_augment else PatchAugment(),
        indices=indices, seed=config.seed)

  train = labelled(config.train_split, True, train_indices)
  held_out = (labelled(config.train_split, False, validation_indices)
              if len(validation_indices) else None)
  supervised = config.MODE == "supervised"
  model_config = (pixel_config(config, pretrained, dataset, data_dir)
                  if supervised else pretrained)
  model = build_classifier(config, model_config, train_source.num_classes)
  classify.compile_classifier(model, config.learning_rate)
  steps = config.train_steps
  if config.MODE == "linear":
    # Training normalises with each batch's statistics (A.3), testing with
    # those of clean (unaugmented) training latents: collected on augmented,
    # partly colour-dropped latents they would not describe the test inputs.
    classify.use_clean_statistics(
        model, labelled(config.train_split, False, train_indices).take(
            -(-NORM_STATISTICS_IMAGES // config.batch_size)))
  if held_out is not None:
    steps = classify.train_with_early_stopping(
        model, train, held_out, config.train_steps, config.eval_every,
        config.patience)
  else:
    model.fit(train, epochs=1, steps_per_epoch=config.train_steps,
              shuffle=False, verbose=2)
  saved = {}
  if supervised and config.save_encoder:
    saved = {"saved_encoder": encoder_dir.save(
        model.encoder, model_config, steps,
        trained_by=common.settings(config))}
    print(f"Saved the supervised encoder to {config.save_encoder}", flush=True)
  fine_tune_steps = 0
  if isinstance(config, configs.FineTuning) and config.fine_tune:
    model, fine_tune_steps = classify.fine_tune(
        model, train, held_out, config.learning_rate,
        config.encoder_learning_rate, config.fine_tune_steps,
        config.eval_every, config.patience)

  metrics = model.evaluate(labelled(config.test_split, False),
                           return_dict=True, verbose=0)
  validation = {}
  if held_out is not None:
    scores = model.evaluate(held_out, return_dict=True, verbose=0)
    validation = {"validation_top1": scores["top1"],
                  "validation_top5": scores["top5"]}
  return common.record(
      config, pretrained,
      **({"probe": "a3_linear"} if config.MODE == "linear" else {}),
      dataset=dataset, data_dir=data_dir, steps=steps,
      fine_tune_steps=fine_tune_steps,
      train_examples=(train_source.num_examples if train_indices is None
                      else len(train_indices)), **validation,
      classifier_params=model.count_params(),
      wall_seconds=round(clock.seconds(), 1), **saved,
      test_top1=metrics["top1"], test_top5=metrics["top5"],
      test_loss=metrics["loss"])

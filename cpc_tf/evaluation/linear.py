"""--mode=linear, A.3's linear probe: the encoder fixed; batch norm without
scale, a 1x1 convolution to one logit per class at every cell, the
spatial mean of the logits; Adam at 5e-4 on the pretraining augmentation."""

from cpc_tf.configs import modes
from cpc_tf.evaluation import classification
from cpc_tf.evaluation import task
from cpc_tf.models import heads
from cpc_tf.serving import encoder_dir

# Clean training images whose latents give the test-time normalisation
# statistics.
NORM_STATISTICS_IMAGES = 10000


@task.register
class LinearTask(classification.ClassificationTask):
  CONFIG = modes.LinearConfig
  NAME = "A.3 linear probe"

  def build(self, config, pretrained, dataset, data_dir, classes):
    model = classification.PatchClassifier(
        encoder_dir.restore(pretrained, config.random_init),
        heads.linear_head(classes))
    classification.compile_classifier(model, config.learning_rate)
    return model, pretrained

  def before_training(self, model, config, clean_train):
    # Training normalises with each batch's statistics (A.3), testing with
    # those of clean (unaugmented) training latents: collected on augmented,
    # partly colour-dropped latents they would not describe the test inputs.
    classification.use_clean_statistics(model, clean_train.take(
        -(-NORM_STATISTICS_IMAGES // config.batch_size)))

  def record_fields(self):
    return {"probe": "a3_linear"}

  def kind(self, record):
    return self.NAME + (" (random encoder)" if record.get("random_init")
                        else "")

"""--mode=efficient, Section 2.2's efficient classifier: a ResNet head on
the latent grid trained on a label subset with the encoder fixed, then,
with --fine_tune, encoder and head together (the encoder at its own
smaller rate), both stopping early on the held-out part."""

from cpc_tf.configs import modes
from cpc_tf.evaluation import classification
from cpc_tf.evaluation import task
from cpc_tf.models import heads
from cpc_tf.serving import encoder_dir


@task.register
class EfficientTask(classification.ClassificationTask):
  CONFIG = modes.EfficientConfig
  NAME = "efficient classifier"
  METHODS = {
      "cpc_fixed": task.CurveMethod(
          (), "ResNet on CPC features (fixed)", ("tab:blue", "-", "o")),
      "cpc_fine_tuned": task.CurveMethod(
          ("--fine_tune",), "ResNet on CPC features (fine-tuned)",
          ("tab:purple", "-", "o")),
      "random_fixed": task.CurveMethod(
          ("--random_init",), "ResNet on a random encoder (fixed)",
          ("tab:orange", "-", "o")),
  }

  def method(self, config):
    if config.random_init:
      return "random_fixed"
    return "cpc_fine_tuned" if config.fine_tune else "cpc_fixed"

  def build(self, config, pretrained, dataset, data_dir, classes):
    encoder = encoder_dir.restore(pretrained, config.random_init)
    head = heads.resnet_head(
        classes, encoder.output_shape[-1], config.head_blocks,
        config.head_bottleneck, config.head_width, config.head_norm,
        config.dropout, pretrained.small_map_matmul)
    model = classification.PatchClassifier(encoder, head)
    classification.compile_classifier(model, config.learning_rate)
    return model, pretrained

  def fine_tuned(self, model, config, train, held_out):
    if not config.fine_tune:
      return model, 0
    return classification.fine_tune(
        model, train, held_out, config.learning_rate,
        config.encoder_learning_rate, config.fine_tune_steps,
        config.eval_every, config.patience)

"""--mode=export: a SavedModel of the encoder with the evaluation
preprocessing (export_dir) and/or the encoder model_dir, config and
weights, in which encoders are released (save_encoder)."""

import dataclasses

from cpc_tf.configs import modes
from cpc_tf.evaluation import task
from cpc_tf.serving import encoder_dir
from cpc_tf.serving import saved_model
from cpc_tf.train import checkpoints


@task.register
class ExportTask(task.Task):
  CONFIG = modes.ExportConfig
  NAME = "export"

  def run(self, config: modes.ExportConfig, cache=None) -> dict:
    """Writes what config asks for; returns {"exported": [paths written]}."""
    config.validate()
    pretrained = encoder_dir.load_config(config.model_dir)
    encoder = encoder_dir.restore(pretrained)
    written = []
    if config.export_dir:
      written.append(saved_model.export_encoder(encoder, pretrained,
                                                config.export_dir))
    if config.save_encoder:
      step = int(checkpoints.latest(pretrained.model_dir).rsplit("-", 1)[1])
      written.append(encoder_dir.save(
          encoder, dataclasses.replace(pretrained,
                                       model_dir=config.save_encoder), step,
          trained_by=encoder_dir.trained_by(pretrained.model_dir) or {
              "mode": "pretrain", "model_dir": pretrained.model_dir,
              "step": step}))
    return {"mode": config.MODE, "exported": written}

  def describe(self, record):
    return f"Exported the encoder to {' and '.join(record['exported'])}"

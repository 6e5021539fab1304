"""What the tests share besides fixtures: paths, the one tiny CPC
configuration, a script runner and VOC annotation text. Imported by test
modules (conftest.py holds only fixtures and the test set-up)."""

import dataclasses
import os
import subprocess
import sys

from cpc_tf.configs import pretrain as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
FRUIT = os.path.join(SHARED, "data", "fruit_detection")
TFDS_DIR = os.environ.get("TFDS_DATA_DIR", os.path.join(SHARED, "tfds"))

# A CPC model small enough to pretrain in seconds: 16x16 crops of the first
# 64 CIFAR-10 training images, a 3x3 grid of 8x8 patches, an 8-wide encoder,
# one-block context networks (tracing five blocks per direction took most of
# the time of building and compiling the model).
TINY = config_lib.PretrainConfig(
    split="train[:64]", data_dir=TFDS_DIR, image_size=16, patch_size=8,
    patch_stride=4, encoder_width=8, encoder_blocks=(1, 1), context_dim=8,
    context_blocks=1, target_dim=8, steps_to_ignore=0, steps_to_predict=1,
    batch_size=8, train_steps=2, checkpoint_every=2, log_every=2,
    jit_compile=False)


def tiny_config(**changes) -> config_lib.PretrainConfig:
  """TINY with `changes` (any PretrainConfig fields)."""
  return dataclasses.replace(TINY, **changes)


def script_command(script: str, *args):
  """The command running one of the repository's scripts in a fresh
  interpreter."""
  return [sys.executable, os.path.join(REPO, script), *args]


def start_script(script: str, *args, env=None) -> subprocess.Popen:
  """Starts a script from the repository root, text output captured (finish
  it with communicate())."""
  return subprocess.Popen(script_command(script, *args), cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def run_script(script: str, *args, env=None, timeout=600):
  """Runs a script from the repository root; returns the CompletedProcess
  (text output captured)."""
  return subprocess.run(script_command(script, *args), cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def voc_xml(filename, size, objects):
  boxes = "".join(
      f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0"
      f"</truncated><difficult>{int(hard)}</difficult><bndbox>"
      f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
      "</bndbox></object>" for name, hard, x0, y0, x1, y1 in objects)
  return (f"<annotation><filename>{filename}</filename><size><width>{size[1]}"
          f"</width><height>{size[0]}</height><depth>3</depth></size>{boxes}"
          "</annotation>")

"""cpc_tf: CPC v2 (Hénaff et al.) in TensorFlow 2 / Keras 3.

Folders by layer, each importing only those before it: data (images ->
patch grids), models (encoder, context network, the A.2 objective, heads),
configs (settings as data, validated; the command line), train (the
pretraining run), serving (the encoder's folder, SavedModel export),
evaluation (one task per protocol, records, reports).

Importing the package sets TensorFlow's environment defaults, so it must
come before TensorFlow is imported to take effect; variables already set
are kept.
"""

import os

# INFO lines off (warnings and errors stay).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TF enables its oneDNN CPU kernels by default only where AVX-512 VNNI/BF16
# or AMX exist; on an AVX2 Zen 3 they made the CIFAR-10 CPU step 1.44x
# faster (bench/pretrain_step.py --onednn). TF_ENABLE_ONEDNN_OPTS=0 turns
# them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _initialise_devices_without_the_cuda_false_alarm():
  """On a machine without an NVIDIA driver TensorFlow's CUDA probe logs
  "failed call to cuInit" as an error although nothing is wrong
  (tensorflow/tensorflow#105022). The probe runs when TF first lists its
  devices: list them here with stderr set aside, and pass on every line
  but that one."""
  import tempfile  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryFile() as captured:
    stderr = os.dup(2)
    os.dup2(captured.fileno(), 2)
    try:
      tf.config.list_physical_devices()
    finally:
      os.dup2(stderr, 2)
      os.close(stderr)
    captured.seek(0)
    lines = captured.read().decode(errors="replace").splitlines(True)
  os.write(2, "".join(line for line in lines
                      if "failed call to cuInit" not in line).encode())


if not os.path.exists("/proc/driver/nvidia/version"):
  _initialise_devices_without_the_cuda_false_alarm()

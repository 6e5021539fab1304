"""tf.distribute strategy chosen by name."""

from typing import Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "tpu", "multi_worker")


def tpu_resolver(tpu: Optional[str]):
  """The TPU's cluster resolver: a Cloud TPU name (looked up when the
  strategy connects), a grpc:// address, or '' for a TPU VM's local TPU."""
  return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")


def make_strategy(name: str, tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """default: one device; mirrored: every local GPU (or CPU); tpu: the TPU
  named by `tpu` (name or grpc:// address, '' for the local one);
  multi_worker: MultiWorkerMirroredStrategy with the cluster from TF_CONFIG."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "tpu":
    resolver = tpu_resolver(tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")

"""tf.distribute strategy chosen by name, and which process writes model_dir."""

import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "tpu", "multi_worker")


def tpu_resolver(tpu: Optional[str]):
  """The TPU's cluster resolver: a Cloud TPU name (looked up when the
  strategy connects), a grpc:// address, or '' for a TPU VM's local TPU."""
  return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")


def make_strategy(name: str,
                  tpu: Optional[str] = None) -> tf.distribute.Strategy:
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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes model_dir: every process but the non-chief
  workers of a multi-worker run (the chief is task "chief", or worker 0 in a
  cluster without one)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  resolver = strategy.cluster_resolver
  if resolver.task_type in (None, "chief"):
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and not has_chief)


def scratch_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where a non-chief worker writes its (discarded) copies of checkpoints:
  every worker must take part in a save, but only the chief's is kept."""
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir,
                      f"scratch_{resolver.task_type}_{resolver.task_id}")

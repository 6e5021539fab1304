"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy from
TF_CONFIG) against one process training on the same global batches."""

import pytest
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from helpers import REPO

RUN = os.path.join(REPO, "tests", "train", "multi_worker_run.py")


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def launch(tmp_path, tfds_dir, role, index, ports, model_dir):
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  env.pop("TF_CONFIG", None)
  log = open(tmp_path / f"{role}{index}.log", "w")
  process = subprocess.Popen(
      [sys.executable, RUN, role, str(index), ports, model_dir,
       str(tmp_path / f"{role}{index}.npz")],
      cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
  return process, tmp_path / f"{role}{index}.log"


def finish(process, log, timeout=400):
  try:
    code = process.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    process.kill()
    raise AssertionError(f"{log} timed out:\n{log.read_text()[-3000:]}")
  assert code == 0, log.read_text()[-3000:]


def weights(path):
  with np.load(path) as arrays:
    return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


@pytest.mark.slow
def test_two_workers_match_one_process_on_the_same_global_batch(
    tmp_path, tfds_dir):
  ports = ",".join(map(str, free_ports(2)))
  model_dir = str(tmp_path / "multi")
  # The reference runs beside the workers: the three processes spend most
  # of their time starting up, one core each is enough.
  processes = [launch(tmp_path, tfds_dir, "worker", i, ports, model_dir)
               for i in range(2)]
  processes.append(launch(tmp_path, tfds_dir, "reference", 0, "-",
                          str(tmp_path / "single")))
  for process, log in processes:
    finish(process, log)

  chief, other = (weights(tmp_path / f"worker{i}.npz") for i in range(2))
  single = weights(tmp_path / "reference0.npz")
  initial = weights(tmp_path / "reference0_initial.npz")
  for a, b in zip(chief, other):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(chief, single):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  moved = sum(not np.allclose(a, b) for a, b in zip(initial, single))
  assert moved > len(initial) // 2

  # Only the chief writes model_dir: its checkpoints, events and config;
  # the other worker's scratch copies are gone.
  assert sorted(os.listdir(model_dir)) == ["checkpoints", "config.json",
                                         "train"]
  assert tf.train.latest_checkpoint(
      os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")

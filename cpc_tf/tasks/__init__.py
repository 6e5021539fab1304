"""Evaluation tasks: for each run_eval.py mode a frozen config (configs.py)
and a run(config) -> record."""

from cpc_tf.tasks import cached_probe
from cpc_tf.tasks import classification
from cpc_tf.tasks import configs
from cpc_tf.tasks import detection
from cpc_tf.tasks import export

RUNS = {"linear": classification.run, "efficient": classification.run,
        "supervised": classification.run, "probe": cached_probe.run,
        "detection": detection.run, "export": export.run}
assert set(RUNS) == set(configs.CONFIGS)

"""Result records: appended one JSON line each, read back in order; a
run's identity is its resolved settings."""

import dataclasses
import json
import os

from cpc_tf.configs import modes
from cpc_tf.configs import pretrain as config_lib
from cpc_tf.evaluation import records
from helpers import REPO


def test_append_then_read_on_any_filesystem(tmp_path):
  for directory in (str(tmp_path), "ram://cpc_tf_results"):
    path = f"{directory}/{records.RESULTS_FILE}"
    assert records.read(path) == []
    assert records.append(directory, {"b": 1, "a": [0.5]}) == path
    records.append(directory, {"c": "two"})
    assert records.read(path) == [{"a": [0.5], "b": 1}, {"c": "two"}]


def test_explicit_path_overrides_the_model_dir(tmp_path):
  other = str(tmp_path / "elsewhere.jsonl")
  assert records.append(str(tmp_path / "unused"), {"x": 1}, other) == other
  assert records.read(other) == [{"x": 1}]


def old_probe_record():
  """A record written in 2026-12-02 (docs/records), before records named
  their method, readout or data directory resolution."""
  with open(os.path.join(REPO, "docs", "records",
                         "probe_session_3600_10pct.jsonl")) as f:
    return json.loads(f.readline())


def test_an_old_record_is_the_same_run_as_its_settings_today():
  old = old_probe_record()
  assert "probe_pool" not in old and "method" not in old
  pretrained = config_lib.PretrainConfig.from_json(
      json.dumps(old["pretrain_config"]))
  config = modes.ProbeConfig(**{
      f.name: old[f.name] if not isinstance(old[f.name], list)
      else tuple(old[f.name])
      for f in dataclasses.fields(modes.ProbeConfig) if f.name in old})
  assert records.identity(records.record(config, pretrained)) == (
      records.identity(old))
  for changed in (dict(probe_pool="grid"), dict(seed=old["seed"] + 1),
                  dict(data_dir="/elsewhere")):
    assert records.identity(records.record(
        dataclasses.replace(config, **changed), pretrained)) != (
            records.identity(old)), changed


def test_identity_resolves_the_data_and_ignores_where_it_was_written():
  pretrained = config_lib.PretrainConfig(model_dir="/runs/a", data_dir="/d")
  config = modes.ProbeConfig(model_dir="/runs/a", validation_fraction=0.1)
  record = records.record(config, pretrained, top1=0.5)
  moved = records.record(
      dataclasses.replace(config, model_dir="/released/a", data_dir="/d",
                          results_file="/tmp/r.jsonl"),
      dataclasses.replace(pretrained, model_dir="/released/a"))
  assert records.identity(record) == records.identity(moved)
  nested = dataclasses.replace(pretrained, patch_jitter=2)
  assert records.identity(records.record(config, nested)) != (
      records.identity(record))


def test_a_random_encoders_probe_is_the_same_run_from_any_rung_or_seed():
  """A random encoder's probe depends on the encoder, its grid and the
  probe's seed, not on how the config it was read from pretrains (so a
  ladder run of some rungs does not probe the random encoders again)."""
  pretrained = config_lib.PretrainConfig(model_dir="/runs/mc_seed0")
  config = modes.ProbeConfig(model_dir="/runs/mc_seed0", random_init=True)
  record = records.record(config, pretrained)
  other_rung = dataclasses.replace(pretrained, model_dir="/runs/bu_seed2",
                                   seed=2, directions=2, color_drop=0.5)
  assert records.identity(records.record(
      dataclasses.replace(config, model_dir="/runs/bu_seed2"),
      other_rung)) == records.identity(record)
  for changed in (dict(encoder_width=pretrained.encoder_width * 2),
                  dict(norm="batch"), dict(patch_size=11, patch_stride=7)):
    assert records.identity(records.record(
        config, dataclasses.replace(pretrained, **changed))) != (
            records.identity(record)), changed
  assert records.identity(records.record(
      dataclasses.replace(config, seed=1), pretrained)) != (
          records.identity(record))
  # A trained encoder's probe still depends on all of its pretraining.
  trained = dataclasses.replace(config, random_init=False)
  assert records.identity(records.record(trained, other_rung)) != (
      records.identity(records.record(trained, pretrained)))

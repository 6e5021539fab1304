"""Result records: appended one JSON line each, read back in order."""

from cpc_tf import results


def test_append_then_read_on_any_filesystem(tmp_path):
  for directory in (str(tmp_path), "ram://cpc_tf_results"):
    path = f"{directory}/{results.RESULTS_FILE}"
    assert results.read(path) == []
    assert results.append(directory, {"b": 1, "a": [0.5]}) == path
    results.append(directory, {"c": "two"})
    assert results.read(path) == [{"a": [0.5], "b": 1}, {"c": "two"}]


def test_explicit_path_overrides_the_model_dir(tmp_path):
  other = str(tmp_path / "elsewhere.jsonl")
  assert results.append(str(tmp_path / "unused"), {"x": 1}, other) == other
  assert results.read(other) == [{"x": 1}]

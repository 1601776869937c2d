"""ae-bench --quick and ae-compare's command line (no timed assertions: numbers are reported, not judged)."""
import json

import pytest

from ae_research.bench.cli import run_bench
from ae_research.compare import main as compare_main

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.


def test_bench_quick_writes_every_measurement(tmp_path):
  result = run_bench(quick=True, out=str(tmp_path), population_sizes=(1, 2))
  saved = json.load(open(tmp_path / "bench.json"))
  assert saved["models"] == result["models"]
  assert {r["model"] for r in saved["models"]} == {"mlp_2d", "mlp_2d_streamed", "vae", "conv"}
  for row in saved["models"]:
    assert row["samples_per_s"] > 0 and row["compile_s"] > 0 and row["step_flops"] > 0
    assert 0 < row["fraction_of_peak"]
  assert saved["peak_flop_per_s"] > 0
  assert saved["reference"]["reference_samples_per_s"] > 0 and saved["reference"]["framework_samples_per_s"] > 0
  assert [r["members"] for r in saved["population"]] == [1, 2]
  assert [r["run"] for r in saved["end_to_end"]] == ["cold", "warm"]
  for row in saved["end_to_end"]:  # A fresh process each: wall time covers start-up, which the phases do not.
    assert row["wall_s"] > row["compile"] + row["train"] > 0 and row["to_first_step"] > 0 and row["eval"] > 0
  conv = saved["conv_impl"]  # PyTorch rows where torch is importable, else the reason they are not there.
  assert conv["auto"]["samples_per_s"] > 0 and conv["xla"]["samples_per_s"] > 0 and conv["auto_over_xla"] > 0
  assert (conv["torch"] is None) != (conv["torch_skipped"] is None)
  table = (tmp_path / "bench.md").read_text()
  assert "model.conv_impl=auto" in table
  assert "| mlp_2d" in table and "population members K" in table and "the reference" in table
  assert "End to end" in table and "| warm |" in table
  assert [r["metric"] for r in saved["metrics"]][:2] == ["disent/mig", "disent/modularity"]
  assert all(r["samples"] == 500 and r["seconds"] > 0 for r in saved["metrics"])
  assert "| disent/mig | 500 |" in table and "| samples/fid | 500 |" in table


def test_compare_needs_runs(tmp_path):
  with pytest.raises(SystemExit, match="no finished runs"):
    compare_main([str(tmp_path)])
  with pytest.raises(SystemExit, match="not a directory"):
    compare_main([str(tmp_path / "missing")])

"""The benchmark still runs through the public API (a smoke run: no timing is asserted)."""

import json
import subprocess
import sys

from fa import paths


def test_the_benchmark_runs_and_writes_its_table(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(paths.CHECKOUT / "benchmarks" / "bench_trainer.py"),
                          "--widths", "20", "--replicas", "2", "--dtypes", "float64",
                          "--steps", "3", "--repeats", "1", "--columns", "reference",
                          "fused row", "numpy xp", "--output", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fused row" in run.stdout and out.exists()
    assert json.loads(out.read_text())

"""The README's example script runs: the original workflow end to end."""

import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "original_workflow.py"


def test_the_original_workflow_runs(cli, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ROC-AUC" in done.stdout and "weighted avg" in done.stdout
    auc = float(done.stdout.split("ROC-AUC ")[1].split(";")[0])
    assert auc > 0.95
    assert (tmp_path / "tsne.png").stat().st_size > 10_000

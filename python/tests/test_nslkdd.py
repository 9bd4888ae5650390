"""NSL-KDD from Python: the ROC-AUC the command line reports, on the same seed."""

import json

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import floodwatch


def test_roc_auc_equals_the_clis(cli, shared, tmp_path):
    d = shared / "nsl-kdd"
    train, test, columns = d / "KDDTrain+_20Percent.txt", d / "KDDTest+.txt", d / "columns.txt"
    model, report = tmp_path / "nsl.fw", tmp_path / "r.json"
    cli("train", "--data", train, "--columns", columns, "--drop", "difficulty", "--model", model, "--seed", 42)
    cli("test", "--data", test, "--columns", columns, "--model", model, "--report", report)
    expected = json.loads(report.read_text())["reconstruction"]["roc_auc"]

    names = columns.read_text().split()
    read = lambda p: pd.read_csv(p, header=None, names=names)  # noqa: E731
    tr, te = read(train), read(test)
    m = floodwatch.AutoEncoder(seed=42).fit(tr.drop(columns=["label", "difficulty"]), tr["label"])
    s = m.decision_function(te.drop(columns=["label", "difficulty"]))
    truth = (te["label"] != "normal").to_numpy()
    assert abs(floodwatch.roc_auc(s.astype(np.float32), truth) - expected) < 1e-6
    assert abs(roc_auc_score(truth, s) - expected) < 1e-6
    print(f"NSL-KDD ROC-AUC: CLI {expected:.6f}, Python {roc_auc_score(truth, s):.6f}")

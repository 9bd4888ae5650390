"""IForest, LOF, OCSVM and KitNET from Python score as `floodwatch eval` scores them."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

import floodwatch

DETECTORS = {"isolation_forest": floodwatch.IForest, "lof": floodwatch.LOF,
             "ocsvm": floodwatch.OCSVM, "kitnet": floodwatch.KitNET}


@pytest.fixture(scope="module")
def evaluated(cli, tables, tmp_path_factory):
    train, test = tables
    out = tmp_path_factory.mktemp("eval")
    cli("eval", "--train", train, "--test", test, "--out", out, "--epochs", 2, "--tsne-points", 200)
    return json.loads((out / "eval.json").read_text())["detectors"], pd.read_csv(train), pd.read_csv(test)


@pytest.mark.parametrize("name", DETECTORS)
def test_roc_auc_and_f1_are_evals(evaluated, name):
    expected, train, test = evaluated
    m = DETECTORS[name]().fit(train)
    truth = (test["label"] != "normal").to_numpy()
    s = m.decision_function(test)
    assert floodwatch.roc_auc(s.astype(np.float32), truth) == expected[name]["roc_auc"]
    assert f1_score(truth, m.predict(test)) == pytest.approx(expected[name]["f1"], abs=1e-12)
    assert m.feature_names_in_ == floodwatch.AutoEncoder(epochs=1).fit(train).feature_names_in_


def test_an_unfitted_detector_says_so():
    with pytest.raises(floodwatch.Error, match="this lof is not fitted yet"):
        floodwatch.LOF().predict(np.zeros((1, 2)))

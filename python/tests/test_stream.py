"""floodwatch.Stream: `watch --stdin --model` fed from Python, scores and alerts as the command gives them."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

import floodwatch


@pytest.fixture(scope="module")
def trained(cli, tables, tmp_path_factory):
    train, test = tables
    model = tmp_path_factory.mktemp("stream") / "m.fw"
    cli("train", "--data", train, "--model", model, "--epochs", 3)
    return model, test


def test_scores_and_alerts_are_watchs(trained, cli_exe, tmp_path):
    model, test = trained
    alerts_file = tmp_path / "alerts.jsonl"
    with open(test) as stdin:
        subprocess.run([str(cli_exe), "-q", "watch", "--stdin", "--model", str(model), "--alerts",
                        str(alerts_file)], stdin=stdin, check=True)
    expected = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    df = pd.read_csv(test)
    s = floodwatch.Stream(str(model))
    fed = [s.feed(df.iloc[a:b]) for a, b in [(0, 700), (700, 701), (701, len(df))]]
    last, summary = s.close()
    scores = np.concatenate([f[0] for f in fed])
    assert np.array_equal(scores, floodwatch.load(model).decision_function(df))
    alerts = [a for f in fed for a in f[1]] + last
    assert expected and len(alerts) == len(expected) == summary["alerts"]
    key = lambda a: (a["alert"]["context"]["state"], a.get("dest_ip"), a["alert"]["signature"])  # noqa: E731
    assert [key(a) for a in alerts] == [key(a) for a in expected]
    assert summary["records"] == len(df) and summary["rejected"] == 0


def test_a_fitted_estimator_streams_and_bad_rows_raise(trained):
    model, test = trained
    df = pd.read_csv(test)
    m = floodwatch.load(model)
    s = floodwatch.Stream(m, vote=(4, 2), episode_timeout=5.0)
    with pytest.raises(floodwatch.Error, match="row 1: column 'kIn'"):
        s.feed(df.head(3).assign(kIn=["1", "x", "2"]))
    scores, _ = s.feed(df.head(10))
    assert np.array_equal(scores, m.decision_function(df.head(10)))
    with pytest.raises(floodwatch.Error, match="the stream started with"):
        s.feed(df.head(2).drop(columns=["uid"]))
    s.close()
    with pytest.raises(floodwatch.Error, match="closed"):
        s.feed(df.head(1))
    with pytest.raises(floodwatch.Error, match="vote window"):
        floodwatch.Stream(m, vote=(0, 1))

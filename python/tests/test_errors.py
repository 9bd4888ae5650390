"""Errors are floodwatch.Error (a ValueError) with the command line's messages; none panics."""

import subprocess

import numpy as np
import pandas as pd
import pytest

import floodwatch


@pytest.fixture(scope="module")
def model():
    x = pd.DataFrame({"a": np.linspace(0, 1, 400), "b": np.linspace(1, 2, 400), "kind": ["p", "q"] * 200})
    return floodwatch.AutoEncoder(epochs=2).fit(x)


def test_a_missing_column_is_named(model):
    with pytest.raises(floodwatch.Error, match="column 'kind' the model was trained on is missing"):
        model.decision_function(pd.DataFrame({"a": [0.5], "b": [1.5]}))


def test_text_in_a_numeric_column_gets_the_clis_message(model, tmp_path):
    bad = pd.DataFrame({"a": ["oops"], "b": [1.5], "kind": ["p"]})
    with pytest.raises(floodwatch.Error, match=r"row 0: column 'a': 'oops' is not a number \(numeric at train time\)"):
        model.decision_function(bad)
    with pytest.raises(ValueError):  # a subclass, so ValueError handlers catch it
        model.decision_function(bad)


def test_nan_and_infinity_are_refused(model):
    for v, msg in [(np.nan, "missing value"), (np.inf, "inf is not a finite number"), (1e300, "overflows f32")]:
        with pytest.raises(floodwatch.Error, match=msg):
            model.decision_function(pd.DataFrame({"a": [v], "b": [1.0], "kind": ["p"]}))


def test_an_unknown_value_is_scored_not_refused(model):
    s = model.decision_function(pd.DataFrame({"a": [0.5, 0.5], "b": [1.5, 1.5], "kind": ["p", "new"]}))
    assert s[1] > s[0]


def test_bad_options_and_files_give_the_clis_messages(tmp_path, cli_exe):
    x = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(floodwatch.Error, match="scaling should be minmax"):
        floodwatch.AutoEncoder(scaling="zscore").fit(x)
    with pytest.raises(floodwatch.Error, match="need at least 2 to train"):
        floodwatch.AutoEncoder().fit(x[:5], np.ones(5))
    with pytest.raises(floodwatch.Error, match="y has 3 labels, but X has 100 rows"):
        floodwatch.AutoEncoder().fit(x, [0, 1, 0])
    with pytest.raises(floodwatch.Error, match="must be 2-D"):
        floodwatch.AutoEncoder().fit(x[:, 0])
    junk = tmp_path / "junk.fw"
    junk.write_bytes(b"FLDWATCH" + b"\0" * 40)
    with pytest.raises(floodwatch.Error) as e:
        floodwatch.load(junk)
    done = subprocess.run([str(cli_exe), "inspect", str(junk)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == f"floodwatch: {e.value}"
    with pytest.raises(floodwatch.Error, match="No such file"):
        floodwatch.load(tmp_path / "absent.fw")
    with pytest.raises(floodwatch.Error, match="layout"):
        floodwatch.extract(tmp_path / "absent.pcap", layout="nope")

"""The same model file and the same scores, bit for bit, in Python and on the command line."""

import numpy as np
import pandas as pd

import floodwatch


def read(path):
    # pandas 3 parses floats correctly rounded (its old default parser did not).
    return pd.read_csv(path)


def cli_scores(path):
    """The `score` column of `floodwatch test --out` as float32, from its exact text."""
    return pd.read_csv(path, dtype={"score": str})["score"].to_numpy().astype(np.float32)


def test_a_cli_model_scores_the_same_bits_in_python(cli, tables, tmp_path):
    train, test = tables
    model, out = tmp_path / "m.fw", tmp_path / "p.csv"
    cli("train", "--data", train, "--model", model, "--epochs", 3)
    cli("test", "--data", test, "--model", model, "--out", out)
    m = floodwatch.load(model)
    s = m.decision_function(read(test))
    assert s.dtype == np.float64
    expected = cli_scores(out)
    assert len(s) == len(expected) == 2000
    assert np.array_equal(s.astype(np.float32).view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(s, s.astype(np.float32))  # float64 holding float32 values exactly
    flagged = pd.read_csv(out)["is_anomaly"].to_numpy()
    assert np.array_equal(m.predict(read(test)), flagged)


def test_a_python_model_scores_the_same_bits_on_the_cli(cli, tables, tmp_path):
    train, test = tables
    m = floodwatch.AutoEncoder(epochs=3, seed=7).fit(read(train))
    model, out = tmp_path / "py.fw", tmp_path / "p.csv"
    m.save(model)
    cli("test", "--data", test, "--model", model, "--out", out)
    s = m.decision_function(read(test)).astype(np.float32)
    assert np.array_equal(s.view(np.uint32), cli_scores(out).view(np.uint32))


def test_fit_on_a_frame_trains_the_model_train_does(cli, tables, tmp_path):
    train, test = tables
    model = tmp_path / "m.fw"
    cli("train", "--data", train, "--model", model, "--epochs", 3, "--seed", 5)
    from_cli = floodwatch.load(model)
    in_python = floodwatch.AutoEncoder(epochs=3, seed=5).fit(read(train))
    assert in_python.threshold_ == from_cli.threshold_
    assert in_python.feature_names_in_ == from_cli.feature_names_in_
    assert "uid" not in in_python.feature_names_in_  # identifier-like, left out as by train
    assert in_python.classes_ == from_cli.classes_ == ["normal", "UDP.flood"]
    x = read(test)
    assert np.array_equal(in_python.decision_function(x), from_cli.decision_function(x))
    assert in_python.predict_class(x) == from_cli.predict_class(x)


def test_labels_given_as_y_train_the_same_model_as_a_label_column(tables):
    train, _ = tables
    df = read(train)
    with_column = floodwatch.AutoEncoder(epochs=2).fit(df)
    with_y = floodwatch.AutoEncoder(epochs=2).fit(df.drop(columns=["label"]), df["label"])
    x = df.head(500)
    assert np.array_equal(with_column.decision_function(x), with_y.decision_function(x))
    assert with_y.classes_ == with_column.classes_


def test_neighbours_is_trains_flag(cli, tables, tmp_path):
    train, test = tables
    x = read(test)
    scores = {}
    for n in (0, 100):
        model = tmp_path / f"m{n}.fw"
        cli("train", "--data", train, "--model", model, "--epochs", 2, "--neighbours", n)
        from_cli = floodwatch.load(model)
        in_python = floodwatch.AutoEncoder(epochs=2, neighbours=n).fit(read(train))
        assert from_cli.get_params()["neighbours"] == in_python.get_params()["neighbours"] == n
        assert in_python.threshold_ == from_cli.threshold_
        scores[n] = in_python.decision_function(x)
        assert np.array_equal(scores[n], from_cli.decision_function(x))
    # The same network: the latent distance alone tells the scores apart.
    assert not np.array_equal(scores[0], scores[100])
    assert floodwatch.AutoEncoder().get_params()["neighbours"] == 2048

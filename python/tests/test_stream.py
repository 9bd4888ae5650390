"""floodwatch.Stream: `watch --model` fed from Python (rows or packets), scores and alerts as the command gives them."""

import json
import struct
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


@pytest.fixture(scope="module")
def learned(cli, tmp_path_factory):
    """A capture, a stream model learned on it by `watch --grace`, and `watch --model`'s outputs."""
    d = tmp_path_factory.mktemp("packets")
    pcap, model, scores, alerts = d / "s.pcap", d / "learned.fw", d / "scores.csv", d / "alerts.jsonl"
    cli("synth", "--pcap", pcap, "--labels", d / "l.csv", "--packets", 30000, "--rate", 1000, "--attack", "udp")
    cli("watch", "--pcap", pcap, "--grace", "12s", "--save-model", model, "--alerts", "/dev/null")
    cli("watch", "--pcap", pcap, "--model", model, "--scores", scores, "--alerts", alerts)
    return pcap, model, pd.read_csv(scores), [json.loads(x) for x in alerts.read_text().splitlines()]


def frames(pcap):
    """(timestamp, bytes) of each record of a classic little-endian pcap file."""
    data = pcap.read_bytes()
    magic, = struct.unpack_from("<I", data)
    scale = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9}[magic]
    at = 24
    while at < len(data):
        sec, frac, caplen, _ = struct.unpack_from("<IIII", data, at)
        yield sec + frac * scale, data[at + 16:at + 16 + caplen]
        at += 16 + caplen


def test_packets_score_as_watch_model_scores_them(learned):
    pcap, model, expected, expected_alerts = learned
    s = floodwatch.Stream(str(model))
    scores, alerts = s.feed_pcap(pcap)
    last, summary = s.close()
    assert scores.shape == (len(expected), 2)
    assert np.array_equal(scores[:, 0], expected["score"].to_numpy())
    assert np.array_equal(scores[:, 1], expected["src_score"].to_numpy())
    alerts += last
    key = lambda a: (a["alert"]["context"]["state"], a.get("dest_ip"), a.get("src_ip"), a["alert"]["signature"])  # noqa: E731
    assert expected_alerts and [key(a) for a in alerts] == [key(a) for a in expected_alerts]
    assert summary["records"] == len(expected)


def test_packets_fed_as_bytes_score_as_the_file(learned):
    pcap, model, expected, _ = learned
    s = floodwatch.Stream(str(model))
    packets = list(frames(pcap))
    first, _ = s.feed_packets(packets[:5000])
    rest, _ = s.feed_packets(packets[5000:])
    s.close()
    assert np.array_equal(np.vstack([first, rest])[:, 0], expected["score"].to_numpy())
    with pytest.raises(floodwatch.Error, match="feed it with feed_packets or feed_pcap"):
        floodwatch.Stream(str(model)).feed(np.zeros((1, 3)))
    with pytest.raises(floodwatch.Error, match=r"\(timestamp, bytes\) pairs"):
        floodwatch.Stream(str(model)).feed_packets([b"not a pair"])

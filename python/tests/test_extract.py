"""Packet features into numpy: the values `floodwatch extract` writes, without text."""

import numpy as np
import pandas as pd
import pytest

import floodwatch


@pytest.fixture(scope="module")
def capture(cli, tmp_path_factory):
    d = tmp_path_factory.mktemp("pcap")
    pcap, labels = d / "s.pcap", d / "s.csv"
    cli("synth", "--pcap", pcap, "--labels", labels, "--packets", 20000, "--rate", 1000, "--attack", "udp")
    return pcap


@pytest.mark.parametrize("layout", ["kitsune-corrected", "victim", "nbaiot"])
def test_extract_matches_the_clis_csv(cli, capture, tmp_path, layout):
    out = tmp_path / "f.csv"
    cli("extract", "--pcap", capture, "--out", out, "--layout", layout)
    expected = pd.read_csv(out)
    x = floodwatch.extract(capture, layout=layout)
    assert x.dtype == np.float64 and x.shape == (len(expected), len(expected.columns) - 2)
    # The CSV holds shortest round-trip decimals: equal to the last bit.
    assert np.array_equal(x, expected.iloc[:, 2:].to_numpy())
    df = floodwatch.extract(capture, layout=layout, as_frame=True)
    assert list(df.columns) == list(expected.columns)
    assert list(df.columns[2:]) == floodwatch.feature_names(layout)
    assert np.array_equal(df["packet_index"].to_numpy(), expected["packet_index"].to_numpy())
    assert np.array_equal(df["timestamp"].to_numpy(), expected["timestamp"].to_numpy())


def test_chunks_add_up_to_the_whole(capture):
    whole = floodwatch.extract(capture, layout="kitsune-corrected")
    chunks = list(floodwatch.iter_extract(capture, layout="kitsune-corrected", chunk=6000))
    assert [len(c) for c in chunks] == [6000, 6000, 6000, len(whole) - 18000]
    assert np.array_equal(np.vstack(chunks), whole)
    frames = list(floodwatch.iter_extract(capture, layout="victim", chunk=15000, as_frame=True))
    assert frames[1]["packet_index"].iloc[0] == 15001  # 1-based, as in the CSV


def test_a_truncated_capture_warns_and_keeps_what_it_read(capture, tmp_path):
    cut = tmp_path / "cut.pcap"
    data = capture.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])
    with pytest.warns(UserWarning, match="capture ends early"):
        x = floodwatch.extract(cut, layout="victim")
    assert 0 < len(x) < len(floodwatch.extract(capture, layout="victim"))


def test_a_bad_chunk_or_file_is_an_error(tmp_path):
    with pytest.raises(floodwatch.Error, match="chunk"):
        floodwatch.iter_extract(tmp_path / "x.pcap", chunk=0)
    with pytest.raises(floodwatch.Error, match="x.pcap"):
        floodwatch.extract(tmp_path / "x.pcap")

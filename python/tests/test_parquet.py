"""Parquet written by `floodwatch extract` (feature `parquet`), read by pandas
through pyarrow: the CSV's columns and values, whatever the pages.

The binary needs the `parquet` feature, so it is named by
FLOODWATCH_PARQUET_BIN; `.ci/run` runs this file once it has built one.
"""

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import runner

BIN = os.environ.get("FLOODWATCH_PARQUET_BIN")
pytestmark = pytest.mark.skipif(
    not BIN,
    reason="FLOODWATCH_PARQUET_BIN is not set: name a binary built with "
    "`cargo build --release --features parquet` (.ci/run does)",
)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    run = runner(BIN)
    d = tmp_path_factory.mktemp("pq")
    pcap = d / "s.pcap"
    run("synth", "--pcap", pcap, "--labels", d / "s.csv", "--packets", 20000, "--rate", 1000,
        "--attack", "udp", "--attack", "syn-spoofed")
    return run, pcap, d


@pytest.mark.parametrize("layout", ["kitsune-corrected", "nbaiot"])
@pytest.mark.parametrize("flags", [[], ["--compression", "snappy"], ["--float64"]])
def test_pandas_reads_the_csvs_values(capture, layout, flags):
    run, pcap, d = capture
    csv, parquet = d / f"{layout}.csv", d / f"{layout}{''.join(flags)}.parquet"
    run("extract", "--pcap", pcap, "--layout", layout, "--out", csv)
    run("extract", "--pcap", pcap, "--layout", layout, "--out", parquet, *flags)
    expected = pd.read_csv(csv)
    got = pd.read_parquet(parquet)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) == 20000
    feature = np.float64 if "--float64" in flags else np.float32
    assert got.dtypes.iloc[0] == np.int64 and got.dtypes.iloc[1] == np.float64
    assert all(t == feature for t in got.dtypes.iloc[2:])
    assert np.array_equal(got["packet_index"].to_numpy(), expected["packet_index"].to_numpy())
    assert np.array_equal(got["timestamp"].to_numpy(), expected["timestamp"].to_numpy())
    want = expected.iloc[:, 2:].to_numpy().astype(feature)
    assert np.array_equal(got.iloc[:, 2:].to_numpy(), want, equal_nan=True)
    meta = pq.ParquetFile(parquet).metadata
    codec = "SNAPPY" if "snappy" in flags else "UNCOMPRESSED"
    codecs = {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
              for c in range(meta.num_columns)}
    assert codecs == {codec}

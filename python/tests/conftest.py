"""Shared fixtures: the command-line binary, the shared data, small tables."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
REQUIRE = os.environ.get("FLOODWATCH_REQUIRE_DATA") == "1"


def missing(what):
    """Skip with the reason, or fail under FLOODWATCH_REQUIRE_DATA=1."""
    if REQUIRE:
        pytest.fail(f"{what} (FLOODWATCH_REQUIRE_DATA=1)")
    pytest.skip(f"skipping: {what}")


@pytest.fixture(scope="session")
def cli_exe():
    """The release `floodwatch` binary (FLOODWATCH_BIN, else the repo's)."""
    exe = pathlib.Path(os.environ.get("FLOODWATCH_BIN", ROOT / "target" / "release" / "floodwatch"))
    if not exe.exists():
        missing(f"no floodwatch binary at {exe}: run `cargo build --release`")
    return exe


def runner(exe):
    """A function that runs `exe` quietly and fails the test when it fails."""

    def run(*args):
        done = subprocess.run([str(exe), "-q", *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, f"floodwatch {' '.join(map(str, args))}: {done.stderr}"
        return done

    return run


@pytest.fixture(scope="session")
def cli(cli_exe):
    """Runs the binary quietly; fails the test when it fails."""
    return runner(cli_exe)


@pytest.fixture(scope="session")
def shared():
    """The shared data folder (../shared/data), or a skip saying it is absent."""
    if not SHARED.is_dir():
        missing(f"{SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def tables(cli, tmp_path_factory):
    """Synthetic train and test tables written by `floodwatch synth`."""
    d = tmp_path_factory.mktemp("synth")
    train, test = d / "train.csv", d / "test.csv"
    cli("synth", "--out", train, "--rows", 3000, "--seed", 1, "--attack-mix", "UDP.flood=1")
    cli("synth", "--out", test, "--rows", 2000, "--seed", 2, "--attack-mix", "UDP.flood=2,TCP.SYN.flood=1")
    return train, test

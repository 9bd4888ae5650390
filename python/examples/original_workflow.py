"""The original Keras notebook's workflow, with floodwatch doing the work.

    python examples/original_workflow.py [--out DIR]

Synthesises the original tool's IoT table with Mirai floods (`floodwatch synth`),
trains on it (the autoencoder on the normal rows, the latent classifier on the
attacks), scores a test table, prints the metrics and the classification report,
and draws the t-SNE of raw (scaled) rows against their latent codes to DIR/tsne.png
when matplotlib is installed. Every number comes from floodwatch; scikit-learn only
formats the report as the notebook printed it.
"""

import argparse
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd

import floodwatch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def synth(out, rows, seed, mix):
    exe = ROOT / "target" / "release" / "floodwatch"
    subprocess.run([exe, "-q", "synth", "--out", out, "--rows", str(rows), "--seed", str(seed),
                    "--attack-mix", mix], check=True)
    return pd.read_csv(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("floodwatch-notebook"))
    out = p.parse_args().out
    out.mkdir(exist_ok=True)
    mix = "UDP.flood=2,TCP.SYN.flood=1,TCP.ACK.flood=1"
    train = synth(out / "train.csv", 20000, 1, mix)
    test = synth(out / "test.csv", 10000, 2, mix)

    # 1. Train: normal rows teach the autoencoder, attack rows the latent classifier.
    model = floodwatch.AutoEncoder(epochs=10, seed=42).fit(train.drop(columns=["label"]), train["label"])
    print(f"threshold {model.threshold_:.6f}; classes {model.classes_}")
    for note in model.notes_:
        print("note:", note)

    # 2. Score: reconstruction error against the calibrated threshold.
    x, y = test.drop(columns=["label"]), test["label"].to_numpy()
    scores, flagged = model.decision_function(x), model.predict(x)
    attack = y != "normal"
    print(f"ROC-AUC {floodwatch.roc_auc(scores.astype(np.float32), attack):.4f}; "
          f"{flagged.sum()} of {len(y)} rows flagged, {np.mean(flagged == attack):.4f} accuracy")

    # 3. Classification report of the latent classifier, per attack class.
    from sklearn.metrics import classification_report

    print(classification_report(y, model.predict_class(x), digits=4, zero_division=0))

    # 4. t-SNE of the raw (scaled) rows against their latent codes.
    raw_rows, raw = floodwatch.tsne(model.features(x), max_points=3000)
    lat_rows, latent = floodwatch.tsne(model.transform(x), max_points=3000)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: t-SNE computed, not drawn", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, rows, pts, title in [(axes[0], raw_rows, raw, "raw (scaled)"), (axes[1], lat_rows, latent, "latent")]:
        for label in np.unique(y):
            keep = y[rows] == label
            ax.scatter(pts[keep, 0], pts[keep, 1], s=3, label=label)
        ax.set_title(f"t-SNE, {title}")
    axes[1].legend(markerscale=4)
    fig.savefig(out / "tsne.png", dpi=100)
    print(f"wrote {out / 'tsne.png'}")


if __name__ == "__main__":
    main()

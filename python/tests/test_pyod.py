"""PyOD's detector contract, checked against pyod.models.iforest.IForest on the same data."""

import numpy as np
import pandas as pd
import pytest
from pyod.models.iforest import IForest

import floodwatch


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    normal = rng.normal(size=(2000, 6))
    test = np.vstack([rng.normal(size=(300, 6)), rng.normal(loc=6.0, size=(30, 6))])
    truth = np.r_[np.zeros(300), np.ones(30)].astype(bool)
    return normal, test, truth


OURS = [floodwatch.AutoEncoder(epochs=5, contamination=0.05), floodwatch.IForest(contamination=0.05),
        floodwatch.LOF(contamination=0.05), floodwatch.OCSVM(contamination=0.05),
        floodwatch.KitNET(contamination=0.05)]


@pytest.fixture(scope="module", params=OURS, ids=lambda m: type(m).__name__)
def fitted(data, request):
    normal, _, _ = data
    ours = request.param
    theirs = IForest(random_state=0, contamination=0.05)
    assert ours.fit(normal) is ours and theirs.fit(normal) is theirs
    return ours, theirs


def test_attributes_have_pyods_names_shapes_and_kinds(data, fitted):
    normal, _, _ = data
    for m in fitted:
        assert isinstance(m.threshold_, float)
        assert m.decision_scores_.shape == (len(normal),)
        assert m.decision_scores_.dtype == np.float64
        assert m.labels_.shape == (len(normal),)
        assert m.labels_.dtype.kind == "i"
        assert set(np.unique(m.labels_)) <= {0, 1}
        # labels_ are the training scores above threshold_, as in PyOD.
        assert np.array_equal(m.labels_, (m.decision_scores_ > m.threshold_).astype(int))


def test_methods_return_what_pyod_returns(data, fitted):
    _, test, truth = data
    ours, theirs = fitted
    for m in fitted:
        s = m.decision_function(test)
        assert s.shape == (len(test),) and s.dtype == np.float64
        p = m.predict(test)
        assert p.shape == (len(test),) and p.dtype == theirs.predict(test).dtype
        assert np.array_equal(p, (s > m.threshold_).astype(int))
        proba = m.predict_proba(test)
        assert proba.shape == (len(test), 2) and proba.dtype == np.float64
        assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all() and (proba <= 1).all()
        # Higher = more anomalous: the far rows rank above the normal ones.
        assert floodwatch.roc_auc(s.astype(np.float32), truth) > 0.99


def test_contamination_is_the_share_of_normal_rows_flagged(data, fitted):
    normal, _, _ = data
    ours, _ = fitted
    # Calibrated on held-back normal rows (fpr:0.05), so near 5 % of all normal rows.
    assert 0.01 < ours.labels_.mean() < 0.10
    assert ours.get_params()["contamination"] == 0.05


def test_a_frame_and_an_array_of_the_same_numbers_score_alike(data, fitted):
    _, test, _ = data
    ours, _ = fitted
    assert np.array_equal(ours.decision_function(pd.DataFrame(test)), ours.decision_function(test))


def test_an_unfitted_model_says_so():
    m = floodwatch.AutoEncoder()
    assert not hasattr(m, "threshold_")
    with pytest.raises(floodwatch.Error, match="not fitted yet"):
        m.decision_function(np.zeros((2, 2)))

//! The streaming engine as the `watch` and `flows` benchmarks run it.

use std::path::PathBuf;
use std::sync::Arc;

use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::sink::JsonLines;
use floodwatch::detect::stream::source::RecordSource;
use floodwatch::detect::stream::{
    learning_sides, Calibrate, Engine, EngineParams, Grace, OnlineDetector, SavedModel,
};
use floodwatch::features::packet::FeatureGroup;

/// `watch`'s defaults: 5 top features, the 0.999 quantile, drift over 10
/// minutes; learning for `grace` and saving to `save` when given.
pub fn params(grace: Option<Grace>, save: Option<PathBuf>) -> EngineParams {
    EngineParams {
        tracker: TrackerParams::new(),
        top_features: 5,
        save_model: save,
        grace,
        calibrate: Calibrate::Quantile(0.999),
        drift: Some(600.0),
        layout: None,
    }
}

/// A model learned by `detector` from the first `grace` records of `src`
/// (features in `groups`), as `watch --grace` learns it, without the
/// tables' state.
pub fn learn(
    src: &mut dyn RecordSource,
    groups: Vec<FeatureGroup>,
    detector: OnlineDetector,
    grace: u64,
) -> SavedModel {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.json");
    let sides = learning_sides(groups, detector, 20_000);
    let p = params(Some(Grace::Records(grace)), Some(path.clone()));
    let mut engine = Engine::new(p, sides, Arc::default(), Arc::default()).expect("engine");
    engine
        .run(src, &mut JsonLines::new(std::io::sink()))
        .expect("learn");
    let mut model = SavedModel::load(&path).expect("model");
    model.state = None;
    model
}

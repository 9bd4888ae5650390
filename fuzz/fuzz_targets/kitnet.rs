//! The KitNET state loader (JSON), then one record through a loaded model.
#![no_main]

use floodwatch::model::kitnet::KitNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut net) = serde_json::from_slice::<KitNet>(data) else {
        return;
    };
    // A loaded state must process and score a record of its width.
    let x = vec![0.25f64; net.n_features().min(4096)];
    if x.len() == net.n_features() {
        let _ = net.score(&x);
        let _ = net.process(&x);
    }
});

//! The model-file loader, raw and with a valid header around the payload
//! (a random payload almost never matches its checksum): as a format-1 table
//! model (the payload is the bundle) and as a current file (the payload is
//! the envelope naming the kind).
#![no_main]

use std::path::Path;

use floodwatch::detect::stream::SavedModel;
use floodwatch::model::bundle::Bundle;
use floodwatch::model::file::{Kind, ModelFile, FORMAT_VERSION, MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.fw");
    let _ = Bundle::from_bytes(data, name);
    for version in [1, FORMAT_VERSION] {
        let Ok(file) = ModelFile::from_bytes(&framed(version, data), name) else {
            continue;
        };
        match file.kind {
            Kind::Table => {
                if let Ok(b) = Bundle::from_file(&file) {
                    // A loaded bundle scores a row of its width without panicking.
                    let row = vec![0.5f32; b.autoencoder.input_dim()];
                    let _ = b.autoencoder.score(&row);
                }
            }
            Kind::Stream => {
                let _ = SavedModel::from_file(&file);
            }
        }
    }
});

/// `data` behind a valid header of `version`.
fn framed(version: u32, data: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(24 + data.len());
    framed.extend_from_slice(&MAGIC);
    framed.extend_from_slice(&version.to_le_bytes());
    framed.extend_from_slice(&crc32fast_hash(data).to_le_bytes());
    framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
    framed.extend_from_slice(data);
    framed
}

/// CRC-32 (IEEE), bitwise: the fuzz crate needs no extra dependency for it.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

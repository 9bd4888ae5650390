//! Any saved model, loaded: the one place that tells a table model (from
//! `train`) from a stream model (from `watch --save-model`).

use std::path::Path;

use crate::detect::stream::SavedModel;
use crate::model::bundle::Bundle;
use crate::model::file::{self, Kind, ModelFile};
use crate::Result;

/// A model of either kind.
#[derive(Debug)]
pub enum Saved {
    /// Trained by `train` on table rows.
    Table(Box<Bundle>),
    /// Learned by `watch`.
    Stream(SavedModel),
}

/// Reads the model at `path`, whatever its kind (and a stream model saved
/// as plain JSON by an older floodwatch).
pub fn load(path: &Path) -> Result<Saved> {
    if !file::is_model_file(path) && starts_like_json(path) {
        return SavedModel::load(path).map(Saved::Stream);
    }
    let f = ModelFile::open(path)?;
    match f.kind {
        Kind::Table => Bundle::from_file(&f).map(|b| Saved::Table(Box::new(b))),
        Kind::Stream => SavedModel::from_file(&f).map(Saved::Stream),
    }
}

/// Whether the file's first non-blank byte opens a JSON object.
fn starts_like_json(path: &Path) -> bool {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_files_are_named_in_the_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notes.txt");
        std::fs::write(&p, "hello").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("notes.txt") && e.contains("not a floodwatch model"),
            "{e}"
        );
        assert!(load(&d.path().join("none.fw")).is_err());
    }
}

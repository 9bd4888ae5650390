//! Parquet tables in: a `--data`, `--train` or `--test` file ending in
//! `.parquet` is read as the CSV table with the same columns and values
//! (feature `parquet`; without it, such a file is refused with a note on
//! how to rebuild).

use std::path::Path;

use crate::ingest::csv::TableInput;
use crate::Result;

#[cfg(feature = "parquet")]
mod table;
#[cfg(feature = "parquet")]
pub use table::ParquetTable;

/// True when `path` ends in `.parquet` (any case).
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// The table behind an input file: Parquet by its extension, else CSV.
pub fn table_input(path: &Path) -> Result<TableInput> {
    if !is_parquet(path) {
        return Ok(TableInput::Csv(path.to_owned()));
    }
    parquet_input(path)
}

#[cfg(feature = "parquet")]
fn parquet_input(path: &Path) -> Result<TableInput> {
    Ok(TableInput::Generated(std::sync::Arc::new(
        ParquetTable::new(path),
    )))
}

#[cfg(not(feature = "parquet"))]
fn parquet_input(path: &Path) -> Result<TableInput> {
    Err(crate::Error::Data(format!(
        "{}: a Parquet file, but {NO_PARQUET}",
        path.display()
    )))
}

/// Why Parquet files are refused by a build without the feature.
pub const NO_PARQUET: &str = "this floodwatch was built without Parquet support: rebuild it \
    with `cargo build --release --features parquet`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_files_are_told_by_their_extension() {
        assert!(is_parquet(Path::new("a/b.parquet")));
        assert!(is_parquet(Path::new("B.PARQUET")));
        assert!(!is_parquet(Path::new("parquet")));
        assert!(!is_parquet(Path::new("b.parquet.csv")));
        let csv = table_input(Path::new("t.csv")).unwrap();
        assert!(matches!(csv, TableInput::Csv(_)));
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn without_the_feature_a_parquet_file_says_how_to_rebuild() {
        let err = table_input(Path::new("t.parquet")).unwrap_err().to_string();
        assert!(
            err.starts_with("t.parquet: ") && err.contains("--features parquet"),
            "{err}"
        );
    }
}

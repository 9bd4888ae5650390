//! The model file: every model floodwatch saves (a table model from `train`,
//! a stream model from `watch --save-model`) in one framed, checksummed format.
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! |-------|---------|
//! | 8     | magic `FLDWATCH` |
//! | 4     | format version (u32, currently [`FORMAT_VERSION`]) |
//! | 4     | CRC-32 of the payload (u32) |
//! | 8     | payload length (u64) |
//! | n     | payload: JSON `{"kind", "floodwatch_version", "model"}` |
//!
//! Format 1 held a table model alone as its payload; it is still read. JSON
//! keeps the file inspectable (`floodwatch inspect`, or `tail -c +25 m.fw |
//! jq .kind`) and round-trips `f32` and `f64` weights bit-exactly. The claimed
//! length is checked against the file size before anything is allocated; the
//! file is written to a temporary file and renamed.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Error, Result};

/// The 8 bytes a model file starts with.
pub const MAGIC: [u8; 8] = *b"FLDWATCH";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: u64 = 24;

/// What a model file holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A model of table rows trained by `train` (schema, scaler,
    /// autoencoder, threshold, classifier).
    Table,
    /// A model learned by `watch`: features, a detector and threshold per
    /// side, and the feature tables for a warm restart.
    Stream,
}

impl Kind {
    /// How a user knows it: what wrote it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Table => "a table model (from `train`)",
            Kind::Stream => "a stream model (from `watch --save-model`)",
        }
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    kind: Kind,
    floodwatch_version: &'a str,
    model: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    kind: Kind,
    floodwatch_version: String,
    #[serde(borrow)]
    model: &'a RawValue,
}

/// The envelope without its model.
#[derive(Deserialize)]
struct Head {
    kind: Kind,
    floodwatch_version: String,
}

/// How many places a cut before a last field is tried at: the head of what
/// floodwatch writes holds few of its key, if any.
const CUT_TRIES: usize = 8;

/// `json`, an object whose last field is `key` (as floodwatch writes its
/// envelope and its stream models), cut before that field: the other fields
/// decoded as `T`, and the range of the field's value, found without walking
/// it (a stream model's host tables run to tens of MB). Only a cut that
/// leaves a whole object decodes, so a `,"key":` in a nested value is passed
/// over, and none lies in a string (a quote inside one is escaped). The
/// value's JSON is checked when it is decoded. `None` for another layout.
fn last_field<T: DeserializeOwned>(json: &[u8], key: &str) -> Option<(T, Range<usize>)> {
    let end = json.len().checked_sub(1).filter(|&e| json[e] == b'}')?;
    let mark = format!(",\"{key}\":");
    memchr::memmem::find_iter(json, mark.as_bytes())
        .take(CUT_TRIES)
        .find_map(|at| {
            let mut head = json[..at].to_vec();
            head.push(b'}');
            let head = serde_json::from_slice(&head).ok()?;
            Some((head, at + mark.len()..end))
        })
}

/// The head and the model's range of any envelope, by a full parse.
fn envelope(payload: &[u8]) -> std::result::Result<(Head, Range<usize>), String> {
    let e: EnvelopeIn<'_> =
        serde_json::from_slice(payload).map_err(|e| format!("payload does not decode: {e}"))?;
    let start = e.model.get().as_ptr() as usize - payload.as_ptr() as usize;
    let head = Head {
        kind: e.kind,
        floodwatch_version: e.floodwatch_version,
    };
    Ok((head, start..start + e.model.get().len()))
}

/// A model file read and checked, its model not yet decoded.
#[derive(Debug)]
pub struct ModelFile {
    path: PathBuf,
    /// Format version of the file.
    pub version: u32,
    /// What it holds.
    pub kind: Kind,
    /// The floodwatch that wrote it, when the format records it.
    pub written_by: Option<String>,
    /// Size of the whole file in bytes.
    pub bytes: u64,
    payload: Vec<u8>,
    /// Where the model's JSON lies in the payload (all of it before
    /// format 2), found once when the envelope is checked.
    model: Range<usize>,
}

/// The header framing `payload` in format `version`.
fn header(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&version.to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header
}

/// Writes `model` of `kind` to `path` crash-safely.
pub fn save<T: Serialize>(path: &Path, kind: Kind, model: &T) -> Result<()> {
    let envelope = EnvelopeOut {
        kind,
        floodwatch_version: env!("CARGO_PKG_VERSION"),
        model,
    };
    let payload = serde_json::to_vec(&envelope)
        .map_err(|e| Error::Model(format!("cannot serialise the model: {e}")))?;
    let header = header(FORMAT_VERSION, &payload);
    crate::util::write_atomically(path, |mut f| {
        use std::io::Write;
        f.write_all(&header)?;
        f.write_all(&payload)
    })
}

/// Whether the file at `path` starts with the model file's magic bytes.
pub fn is_model_file(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == MAGIC
}

impl ModelFile {
    /// Reads and checks the file at `path` (header, length, checksum, kind).
    pub fn open(path: &Path) -> Result<ModelFile> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        if size < HEADER_LEN {
            return Err(bad(path, too_short(size)));
        }
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        // The claimed length is checked against the file size first, so a
        // huge claim allocates nothing.
        let (version, crc, len) =
            parse_header(&header, size - HEADER_LEN).map_err(|m| bad(path, m))?;
        let mut payload = Vec::with_capacity(len as usize);
        file.read_to_end(&mut payload)
            .map_err(|e| Error::io(path, e))?;
        if payload.len() as u64 != len {
            return Err(bad(path, "file changed while being read".into()));
        }
        Self::checked(path, version, crc, payload)
    }

    /// Reads a model file from the bytes of a whole file; `name` labels
    /// errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<ModelFile> {
        let Some((header, payload)) = bytes.split_first_chunk::<{ HEADER_LEN as usize }>() else {
            return Err(bad(name, too_short(bytes.len() as u64)));
        };
        let (version, crc, _) =
            parse_header(header, payload.len() as u64).map_err(|m| bad(name, m))?;
        Self::checked(name, version, crc, payload.to_vec())
    }

    fn checked(path: &Path, version: u32, crc: u32, payload: Vec<u8>) -> Result<ModelFile> {
        if crc32fast::hash(&payload) != crc {
            return Err(bad(
                path,
                "checksum mismatch: the file is corrupt; train the model again or restore a copy"
                    .into(),
            ));
        }
        let mut file = ModelFile {
            path: path.to_owned(),
            version,
            kind: Kind::Table,
            written_by: None,
            bytes: HEADER_LEN + payload.len() as u64,
            model: 0..payload.len(),
            payload,
        };
        if version >= 2 {
            // serde_json refuses nesting deeper than 128 levels (its default
            // recursion limit), so a hostile payload cannot overflow the
            // stack.
            let (head, model) = match last_field::<Head>(&file.payload, "model") {
                Some(found) => found,
                None => envelope(&file.payload).map_err(|e| bad(path, e))?,
            };
            (file.kind, file.written_by) = (head.kind, Some(head.floodwatch_version));
            file.model = model;
        }
        Ok(file)
    }

    /// The file's name, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decodes the model, which must be of `kind`; `need` says which
    /// command or use asked for it, for the message when it is not.
    pub fn decode<T: DeserializeOwned>(&self, kind: Kind, need: &str) -> Result<T> {
        self.check_kind(kind, need)?;
        serde_json::from_slice(&self.payload[self.model.clone()])
            .map_err(|e| bad(&self.path, format!("payload does not decode: {e}")))
    }

    /// [`decode`](Self::decode) of a model whose last field `key` is large:
    /// the rest decoded, and that field's JSON, taken without a scan when
    /// the model is laid out as floodwatch writes it (else `None`, and the
    /// whole model decoded).
    pub fn decode_but_last<T: DeserializeOwned>(
        &self,
        kind: Kind,
        need: &str,
        key: &str,
    ) -> Result<(T, Option<&str>)> {
        self.check_kind(kind, need)?;
        let json = &self.payload[self.model.clone()];
        let Some((rest, value)) = last_field(json, key) else {
            return self.decode(kind, need).map(|m| (m, None));
        };
        let value = std::str::from_utf8(&json[value])
            .map_err(|e| bad(&self.path, format!("payload is not UTF-8: {e}")))?;
        Ok((rest, Some(value)))
    }

    /// An error unless the file holds a model of `kind`.
    fn check_kind(&self, kind: Kind, need: &str) -> Result<()> {
        if self.kind != kind {
            return Err(bad(
                &self.path,
                format!(
                    "this is {}, but {need} needs {}",
                    self.kind.describe(),
                    kind.describe()
                ),
            ));
        }
        Ok(())
    }
}

/// An error about the model file at `path`.
pub(crate) fn bad(path: &Path, msg: String) -> Error {
    Error::Bundle {
        path: path.to_owned(),
        msg,
    }
}

fn too_short(size: u64) -> String {
    format!("not a floodwatch model: {size} bytes, shorter than the {HEADER_LEN}-byte header")
}

/// Checks magic, version and claimed length against the `available` payload
/// bytes; returns the version, the checksum and the length.
fn parse_header(
    header: &[u8; HEADER_LEN as usize],
    available: u64,
) -> std::result::Result<(u32, u32, u64), String> {
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err(
            "not a floodwatch model (wrong magic bytes): give a file written by `train` or \
             `watch --save-model`"
                .into(),
        );
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    let (version, crc) = (word(0), word(4));
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&rest[8..16]);
    let len = u64::from_le_bytes(len_bytes);
    if version > FORMAT_VERSION {
        return Err(format!(
            "format version {version} is newer than this floodwatch reads ({FORMAT_VERSION}): upgrade floodwatch"
        ));
    }
    if version == 0 {
        return Err("format version 0 is invalid".into());
    }
    if len != available {
        return Err(format!(
            "truncated or padded: header says {len} payload bytes, file has {available}; \
             the file was cut short or damaged, train the model again or restore a copy"
        ));
    }
    Ok((version, crc, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Toy {
        w: Vec<f32>,
    }

    fn toy() -> Toy {
        Toy {
            w: vec![0.1, 1.0 / 3.0, f32::MIN_POSITIVE],
        }
    }

    #[test]
    fn round_trip_keeps_kind_version_and_bits() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.fw");
        save(&p, Kind::Stream, &toy()).unwrap();
        assert!(is_model_file(&p));
        let f = ModelFile::open(&p).unwrap();
        // What `save` writes is opened without walking the model.
        assert!(last_field::<Head>(&f.payload, "model").is_some());
        assert_eq!((f.version, f.kind), (FORMAT_VERSION, Kind::Stream));
        assert_eq!(f.written_by.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(f.bytes, std::fs::metadata(&p).unwrap().len());
        assert_eq!(f.decode::<Toy>(Kind::Stream, "t").unwrap(), toy());
        let e = f.decode::<Toy>(Kind::Table, "`test`").unwrap_err();
        assert!(
            e.to_string().contains("is a stream model")
                && e.to_string().contains("`test` needs a table model"),
            "{e}"
        );
    }

    #[test]
    fn format_1_payloads_are_table_models() {
        let payload = serde_json::to_vec(&toy()).unwrap();
        let f = ModelFile::from_bytes(&framed(1, &payload), Path::new("old.fw")).unwrap();
        assert_eq!((f.version, f.kind, &f.written_by), (1, Kind::Table, &None));
        assert_eq!(f.decode::<Toy>(Kind::Table, "t").unwrap(), toy());
    }

    /// The bytes of a file of format `version` holding `payload`.
    fn framed(version: u32, payload: &[u8]) -> Vec<u8> {
        [header(version, payload), payload.to_vec()].concat()
    }

    /// A file of the current format around `payload`, opened.
    fn open_payload(payload: &str) -> Result<ModelFile> {
        ModelFile::from_bytes(
            &framed(FORMAT_VERSION, payload.as_bytes()),
            Path::new("m.fw"),
        )
    }

    #[test]
    fn the_model_is_found_in_any_envelope_as_a_full_parse_finds_it() {
        let model = r#"{"w":[0.1,0.33333334,1.1754944e-38]}"#;
        let written = format!(r#"{{"kind":"stream","floodwatch_version":"9.9","model":{model}}}"#);
        let (head, range) =
            last_field::<Head>(written.as_bytes(), "model").expect("as save writes it");
        assert_eq!(
            (head.kind, head.floodwatch_version.as_str()),
            (Kind::Stream, "9.9")
        );
        assert_eq!(
            Some(range.clone()),
            envelope(written.as_bytes()).ok().map(|e| e.1)
        );
        assert_eq!(&written[range], model);
        // A key of the same name in a nested value is passed over.
        let nested = format!(
            r#"{{"kind":"stream","floodwatch_version":"9.9","x":{{"a":1,"model":2}},"model":{model}}}"#
        );
        let (_, range) = last_field::<Head>(nested.as_bytes(), "model").expect("the second cut");
        assert_eq!(
            Some(range.clone()),
            envelope(nested.as_bytes()).ok().map(|e| e.1)
        );
        let sneaky = r#"9.9\",\"model\":{}"#;
        for payload in [
            written.clone(),
            format!(r#"{{"model":{model},"kind":"stream","floodwatch_version":"9.9"}}"#),
            format!(r#"{{ "kind": "stream", "floodwatch_version": "9.9", "model": {model} }}"#),
            format!(r#"{{"kind":"stream","floodwatch_version":"{sneaky}","model":{model}}}"#),
        ] {
            let f = open_payload(&payload).unwrap();
            assert_eq!(f.kind, Kind::Stream, "{payload}");
            assert!(
                f.written_by.as_deref().unwrap().starts_with("9.9"),
                "{payload}"
            );
            assert_eq!(
                f.decode::<Toy>(Kind::Stream, "t").unwrap(),
                toy(),
                "{payload}"
            );
        }
        // A model that is not JSON is refused when it is decoded.
        let f = open_payload(r#"{"kind":"table","floodwatch_version":"9.9","model":{"w":[1,}"#);
        let e = f.unwrap().decode::<Toy>(Kind::Table, "t").unwrap_err();
        assert!(e.to_string().contains("payload does not decode"), "{e}");
        assert!(open_payload(r#"{"kind":"table","model":{"w":[]}"#).is_err());
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.fw");
        save(&p, Kind::Table, &toy()).unwrap();
        let good = std::fs::read(&p).unwrap();
        let load = |bytes: &[u8]| {
            std::fs::write(&p, bytes).unwrap();
            ModelFile::open(&p).unwrap_err().to_string()
        };
        assert!(load(&good[..10]).contains("shorter than"));
        assert!(load(&good[..good.len() - 5]).contains("truncated"));
        let mut wrong = good.clone();
        wrong[0] = b'X';
        assert!(load(&wrong).contains("wrong magic"));
        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert!(load(&newer).contains("newer"));
        let mut zero = good.clone();
        zero[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert!(load(&zero).contains("version 0"));
        let mut corrupt = good.clone();
        let last = corrupt.len() - 2;
        corrupt[last] ^= 1;
        assert!(load(&corrupt).contains("checksum"));
        // A huge claimed length is refused before any allocation.
        let mut huge = good.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(load(&huge).contains("truncated"));
        assert!(ModelFile::open(&d.path().join("none")).is_err());
        assert!(!is_model_file(&d.path().join("none")));
    }
}

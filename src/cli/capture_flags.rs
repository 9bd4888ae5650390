//! The `--pcap` flags that `train` and `test` share: captures read as tables
//! of per-packet features, with optional per-packet label files.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use floodwatch::features::capture_table::{CaptureFeatures, CaptureTable};
use floodwatch::run::offline::LabelledCapture;

/// Capture inputs.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct CaptureFlags {
    /// Captures (pcap or pcapng) to read as tables of per-packet features,
    /// after any --data files.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    /// Label files (`packet_index,label`, as `synth --pcap` and `splice`
    /// write them), one per --pcap in the same order. Without them every
    /// packet is normal for `train` and unlabelled for `test`.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "pcap")]
    pub labels: Vec<PathBuf>,
    /// The captures hold flow export datagrams (NetFlow, IPFIX, sFlow over
    /// UDP): one row per flow record, in the `victim` layout.
    #[arg(long, requires = "pcap", conflicts_with = "labels")]
    pub flows: bool,
}

impl CaptureFlags {
    /// The capture tables; `label_all` labels every packet of a capture
    /// that has no label file.
    pub fn tables(
        &self,
        features: &CaptureFeatures,
        label_all: Option<&str>,
    ) -> anyhow::Result<Vec<CaptureTable>> {
        if self.flows != features.flows && !self.pcap.is_empty() {
            let (model, given) = match features.flows {
                true => ("flow records", "packets: add --flows"),
                false => ("packets", "flow records: drop --flows"),
            };
            anyhow::bail!("the model reads {model}, but these captures are read as {given}");
        }
        Ok(self
            .captures()?
            .into_iter()
            .map(|c| CaptureTable {
                path: c.path,
                labels: c.labels,
                label_all: label_all.map(str::to_owned),
                features: features.clone(),
            })
            .collect())
    }

    /// Each capture with its label file, if any.
    pub fn captures(&self) -> anyhow::Result<Vec<LabelledCapture>> {
        if !self.labels.is_empty() && self.labels.len() != self.pcap.len() {
            anyhow::bail!(
                "{} --labels files for {} --pcap files: give one per capture, in order",
                self.labels.len(),
                self.pcap.len()
            );
        }
        Ok(self
            .pcap
            .iter()
            .enumerate()
            .map(|(i, path)| LabelledCapture {
                path: path.clone(),
                labels: self.labels.get(i).cloned(),
            })
            .collect())
    }
}

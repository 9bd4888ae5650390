//! pcap and pcapng byte streams through the capture reader and the decoder,
//! and as captures of export datagrams.
#![no_main]

use floodwatch::ingest::flows::capture::ExportCapture;
use floodwatch::ingest::packets::capture::{CaptureReader, PacketSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::from_reader(data, "fuzz.pcap") else {
        return;
    };
    let mut packets = PacketSource::new(reader);
    // Every record is decoded or counted; the loop must end.
    let n = packets.by_ref().count() as u64;
    assert!(n <= packets.reader().records());
    let _ = packets.damage();
    let Ok(reader) = CaptureReader::from_reader(data, "fuzz.pcap") else {
        return;
    };
    // Every datagram lies within its record.
    let mut exports = ExportCapture::new(reader);
    let mut datagrams = 0u64;
    while let Some(d) = exports.next_datagram() {
        assert!(d.payload.len() <= data.len());
        datagrams += 1;
    }
    let _ = (datagrams + exports.skipped(), exports.damage());
});

//! pcap and pcapng byte streams through the capture reader and the decoder.
#![no_main]

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
});

//! The packet decoder on every link type it knows (and unknown ones).
#![no_main]

use floodwatch::ingest::packets::capture::{LinkType, RawFrame};
use floodwatch::ingest::packets::decode::decode_checked;
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 8] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    // First byte: the link type (known ones mostly, any u8 value otherwise).
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS
        .get(usize::from(sel) % 9)
        .copied()
        .unwrap_or(LinkType(u16::from(sel)));
    let raw = RawFrame {
        index: 1,
        ts_ns: 1_700_000_000_000_000_000,
        wire_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        link_type: link,
        interface: 0,
        data: frame,
    };
    let (meta, _bad) = decode_checked(&raw);
    assert_eq!(meta.wire_len, raw.wire_len);
});

//! Names of the columns that carry a table row's flow context (addresses,
//! ports, protocol, time), lower case with spaces and dashes as `_`: read
//! for the alerts of `watch --stdin`, and as the key of `produce --data`.

/// The destination address (also the Kafka key of `produce --data`).
pub const DST_IP: [&str; 6] = [
    "dst_ip",
    "dest_ip",
    "dstip",
    "destip",
    "daddr",
    "destination_ip",
];
/// The source address.
pub const SRC_IP: [&str; 5] = ["src_ip", "srcip", "sourceip", "saddr", "source_ip"];
/// The destination port.
pub const DST_PORT: [&str; 6] = [
    "dst_port",
    "dest_port",
    "destport",
    "dsport",
    "dport",
    "destination_port",
];
/// The source port.
pub const SRC_PORT: [&str; 5] = ["src_port", "sport", "srcport", "sourceport", "source_port"];
/// The protocol.
pub const PROTO: [&str; 2] = ["proto", "protocol"];
/// The record's time (Unix seconds).
pub const TIME: [&str; 3] = ["timestamp", "ts", "stime"];

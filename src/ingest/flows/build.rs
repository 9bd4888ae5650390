//! Export datagrams, field by field (tests, benchmarks, fuzz seeds).

/// A NetFlow v9 template: (field type, length) pairs.
pub const V9_FIELDS: [(u16, u16); 9] = [
    (8, 4),  // IPV4_SRC_ADDR
    (12, 4), // IPV4_DST_ADDR
    (7, 2),  // L4_SRC_PORT
    (11, 2), // L4_DST_PORT
    (4, 1),  // PROTOCOL
    (6, 1),  // TCP_FLAGS
    (2, 4),  // IN_PKTS
    (1, 4),  // IN_BYTES
    (22, 4), // FIRST_SWITCHED
];

/// A flow for the builders.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Source and destination ports.
    pub ports: (u16, u16),
    /// IP protocol.
    pub proto: u8,
    /// TCP flags.
    pub flags: u8,
    /// Packets.
    pub packets: u32,
    /// Bytes.
    pub bytes: u32,
}

/// A TCP SYN flow from 10.0.0.1 to 192.168.1.`dst_last`, 60 bytes a packet.
pub fn flow(dst_last: u8, packets: u32) -> Flow {
    Flow {
        src: [10, 0, 0, 1],
        dst: [192, 168, 1, dst_last],
        ports: (40_000, 80),
        proto: 6,
        flags: 0x02,
        packets,
        bytes: packets * 60,
    }
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = id.to_be_bytes().to_vec();
    s.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// NetFlow v5: unix time 1,000,000 s, uptime 10 s, flows that began
/// 1 s before export.
pub fn v5(flows: &[Flow], sampling: u16) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [5u16, flows.len() as u16] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    for v in [10_000u32, 1_000_000, 0, 1] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&sampling.to_be_bytes());
    for f in flows {
        d.extend_from_slice(&f.src);
        d.extend_from_slice(&f.dst);
        d.extend_from_slice(&[0; 8]); // next hop, input, output
        for v in [f.packets, f.bytes, 9_000, 10_000] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&f.ports.0.to_be_bytes());
        d.extend_from_slice(&f.ports.1.to_be_bytes());
        d.extend_from_slice(&[0, f.flags, f.proto, 0]);
        d.extend_from_slice(&[0; 8]);
    }
    d
}

/// A NetFlow v9 header: uptime 10 s at unix time 1,000,000 s.
fn v9_header(count: u16, source_id: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&9u16.to_be_bytes());
    d.extend_from_slice(&count.to_be_bytes());
    for v in [10_000u32, 1_000_000, 1, source_id] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d
}

/// A v9 template flowset with `fields`.
pub fn v9_template_set(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (t, l) in fields {
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    set(0, &b)
}

/// A v9 datagram of the given flowsets.
pub fn v9(source_id: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = v9_header(sets.len() as u16, source_id);
    sets.iter().for_each(|s| d.extend_from_slice(s));
    d
}

/// A v9 data flowset of template `id` ([`V9_FIELDS`]), first switched
/// at uptime 9 s.
pub fn v9_data_set(id: u16, flows: &[Flow]) -> Vec<u8> {
    let mut b = Vec::new();
    for f in flows {
        b.extend_from_slice(&f.src);
        b.extend_from_slice(&f.dst);
        b.extend_from_slice(&f.ports.0.to_be_bytes());
        b.extend_from_slice(&f.ports.1.to_be_bytes());
        b.extend_from_slice(&[f.proto, f.flags]);
        for v in [f.packets, f.bytes, 9_000] {
            b.extend_from_slice(&v.to_be_bytes());
        }
    }
    set(id, &b)
}

/// An IPFIX message (export time 1,000,000 s) of the given sets.
pub fn ipfix(domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = 16 + sets.iter().map(Vec::len).sum::<usize>();
    let mut d = 10u16.to_be_bytes().to_vec();
    d.extend_from_slice(&(len as u16).to_be_bytes());
    for v in [1_000_000u32, 1, domain] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    sets.iter().for_each(|s| d.extend_from_slice(s));
    d
}

/// IPFIX template 300: addresses, ports, protocol, packet and octet
/// deltas, flowStart/EndMilliseconds.
pub fn ipfix_template() -> Vec<u8> {
    let fields: [(u16, u16); 9] = [
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (2, 8),
        (1, 8),
        (152, 8),
        (153, 8),
    ];
    let mut b = 300u16.to_be_bytes().to_vec();
    b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (t, l) in fields {
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    set(2, &b)
}

/// IPFIX data of template 300, from 999,999.0 s to 999,999.5 s.
pub fn ipfix_data(flows: &[Flow]) -> Vec<u8> {
    let mut b = Vec::new();
    for f in flows {
        b.extend_from_slice(&f.src);
        b.extend_from_slice(&f.dst);
        b.extend_from_slice(&f.ports.0.to_be_bytes());
        b.extend_from_slice(&f.ports.1.to_be_bytes());
        b.push(f.proto);
        for v in [
            u64::from(f.packets),
            u64::from(f.bytes),
            999_999_000,
            999_999_500,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
    }
    set(300, &b)
}

/// IPFIX options template 400 (scope: observation domain) with
/// samplingInterval, and its data saying one in `rate`.
pub fn ipfix_sampling(rate: u32) -> Vec<Vec<u8>> {
    let mut t = 400u16.to_be_bytes().to_vec();
    for v in [2u16, 1, 149, 4, 34, 4] {
        t.extend_from_slice(&v.to_be_bytes());
    }
    let mut data = 1u32.to_be_bytes().to_vec();
    data.extend_from_slice(&rate.to_be_bytes());
    vec![set(3, &t), set(400, &data)]
}

/// An Ethernet + IPv4 + TCP header of `f` (the sampled packet).
pub fn frame(f: &Flow) -> Vec<u8> {
    let mut p = vec![0x02; 12];
    p.extend_from_slice(&[0x08, 0x00]);
    p.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, f.proto, 0, 0]);
    p.extend_from_slice(&f.src);
    p.extend_from_slice(&f.dst);
    p.extend_from_slice(&f.ports.0.to_be_bytes());
    p.extend_from_slice(&f.ports.1.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0x50, f.flags, 0xff, 0xff, 0, 0, 0, 0]);
    p
}

/// An sFlow v5 datagram of flow samples (one raw header each) at one in
/// `rate`; `claimed` overrides the sample count.
pub fn sflow(flows: &[Flow], rate: u32, claimed: Option<u32>) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [5u32, 1] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(&[10, 9, 9, 9]);
    let count = claimed.unwrap_or(flows.len() as u32);
    for v in [1u32, 1, 5_000, count] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    for f in flows {
        let hdr = frame(f);
        let mut rec = Vec::new();
        for v in [1u32, 60, 4, hdr.len() as u32] {
            rec.extend_from_slice(&v.to_be_bytes());
        }
        rec.extend_from_slice(&hdr);
        while rec.len() % 4 != 0 {
            rec.push(0);
        }
        let mut sample = Vec::new();
        for v in [1u32, 3, rate, 1_000, 0, 1, 2, 1] {
            sample.extend_from_slice(&v.to_be_bytes());
        }
        sample.extend_from_slice(&1u32.to_be_bytes());
        sample.extend_from_slice(&(rec.len() as u32).to_be_bytes());
        sample.extend_from_slice(&rec);
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(&(sample.len() as u32).to_be_bytes());
        d.extend_from_slice(&sample);
    }
    d
}

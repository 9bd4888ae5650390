//! Export datagrams received live on UDP sockets (`--netflow`, `--sflow`).
//!
//! The sockets are read by the scoring thread itself: the kernel's receive
//! buffer (`SO_RCVBUF`, [`RECV_BUFFER`] asked) is the queue, so nothing is
//! copied twice and memory stays bounded; what overflows it is dropped by
//! the kernel, which counts it per socket (the `drops` column of
//! `/proc/net/udp`), and [`Collector::kernel_drops`] reports it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::{Accept, Arrival, Datagram, DatagramSource};

/// How long [`DatagramSource::next_datagram`] waits before it says idle.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Receive buffer asked of the kernel per socket (it may grant less:
/// `net.core.rmem_max`).
pub const RECV_BUFFER: usize = 32 << 20;

/// Largest datagram read (UDP's maximum payload).
const MAX_DATAGRAM: usize = 65_535;

/// UDP sockets bound for flow export, read in turn.
#[derive(Debug)]
pub struct Collector {
    sockets: Vec<(UdpSocket, Accept, u64)>,
    buf: Vec<u8>,
    next: usize,
    drops: (Instant, u64),
}

impl Collector {
    /// Binds one socket per address, accepting what its [`Accept`] says.
    pub fn bind(addrs: &[(SocketAddr, Accept)]) -> crate::Result<Self> {
        let mut sockets = Vec::with_capacity(addrs.len());
        for &(addr, accept) in addrs {
            let what = format!("binding UDP {addr}");
            let s = UdpSocket::bind(addr).map_err(|e| crate::Error::io(&what, e))?;
            grow_buffer(&s);
            s.set_nonblocking(true)
                .map_err(|e| crate::Error::io(&what, e))?;
            let inode = socket_inode(&s).unwrap_or(0);
            sockets.push((s, accept, inode));
        }
        Ok(Collector {
            sockets,
            buf: vec![0; MAX_DATAGRAM],
            next: 0,
            drops: (Instant::now() - Duration::from_secs(10), 0),
        })
    }

    /// The bound addresses (a port 0 made concrete).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        (self.sockets.iter())
            .filter_map(|(s, _, _)| s.local_addr().ok())
            .collect()
    }

    /// The next datagram of any socket, waiting at most `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<Datagram<'_>> {
        let deadline = Instant::now() + wait;
        self.refresh_drops();
        loop {
            let n = self.sockets.len();
            for k in 0..n {
                let i = (self.next + k) % n;
                let (s, accept, _) = &self.sockets[i];
                if let Ok((len, from)) = s.recv_from(&mut self.buf) {
                    self.next = (i + 1) % n;
                    return Some(Datagram {
                        accept: *accept,
                        exporter: from,
                        at: wall_clock(),
                        arrived: Instant::now(),
                        payload: &self.buf[..len],
                    });
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Datagrams the kernel dropped on these sockets (full receive
    /// buffers), as last read from `/proc/net/udp` and `/proc/net/udp6`
    /// (at most once a second, when a datagram is asked for).
    pub fn kernel_drops(&self) -> u64 {
        self.drops.1
    }

    fn refresh_drops(&mut self) {
        if self.drops.0.elapsed() >= Duration::from_secs(1) {
            let inodes: Vec<u64> = self.sockets.iter().map(|s| s.2).collect();
            self.drops = (Instant::now(), proc_drops(&inodes));
        }
    }
}

impl DatagramSource for Collector {
    fn next_datagram(&mut self) -> Arrival<'_> {
        match self.recv(IDLE_WAIT) {
            Some(d) => Arrival::Datagram(d),
            None => Arrival::Idle,
        }
    }

    fn dropped(&self) -> u64 {
        self.kernel_drops()
    }
}

/// Seconds since the Unix epoch.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The socket's inode, which `/proc/net/udp` lists it by.
fn socket_inode(s: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd())).ok()?;
    Some(link.ino())
}

/// The `drops` column of the sockets `inodes` in `/proc/net/udp{,6}`.
fn proc_drops(inodes: &[u64]) -> u64 {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|table| drops_in(&table, inodes))
        .sum()
}

/// Parses a `/proc/net/udp` table: inode is the 10th column, drops the
/// 13th.
fn drops_in(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            let drops: u64 = cols.get(12)?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
}

/// Asks for a [`RECV_BUFFER`]-byte receive buffer: beyond
/// `net.core.rmem_max` when the process may (`SO_RCVBUFFORCE`, with
/// CAP_NET_ADMIN), else up to it.
fn grow_buffer(s: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = RECV_BUFFER as libc::c_int;
    let set = |option| {
        // SAFETY: a valid socket descriptor, an int option and its exact size.
        #[allow(unsafe_code)]
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
}

/// Whether `exporter` may send: any when `allow` is empty.
pub fn allowed(allow: &[IpAddr], exporter: IpAddr) -> bool {
    allow.is_empty() || allow.contains(&exporter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_come_from_the_sockets_own_line() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1: 0100007F:0807 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
          2: 0100007F:0808 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 5\n";
        assert_eq!(drops_in(table, &[4242]), 17);
        assert_eq!(drops_in(table, &[4242, 4243]), 22);
        assert_eq!(drops_in(table, &[1]), 0);
    }

    #[test]
    fn a_collector_receives_and_names_the_sender() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut c = Collector::bind(&[(any, Accept::Netflow), (any, Accept::Sflow)]).unwrap();
        let addrs = c.local_addrs();
        let tx = UdpSocket::bind(any).unwrap();
        tx.send_to(b"hello", addrs[1]).unwrap();
        let got = c.recv(Duration::from_secs(2)).expect("a datagram");
        assert_eq!((got.payload, got.accept), (&b"hello"[..], Accept::Sflow));
        let from = got.exporter;
        assert_eq!(from, tx.local_addr().unwrap());
        assert!(c.recv(Duration::from_millis(5)).is_none());
        assert_eq!(c.kernel_drops(), 0);
        assert!(allowed(&[], from.ip()) && !allowed(&["10.0.0.1".parse().unwrap()], from.ip()));
    }
}

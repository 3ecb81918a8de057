//! Instrument and EHR listeners: each connection a task driving a sans-IO codec from the
//! protocol crates, calling the app's interop use cases, and writing back what they answer.
//!
//! Anyone on the network can open connections to a listener, so a listener keeps its
//! connection slots for the lab's analyzers: the addresses listed on some instrument
//! (Interfaces → the instrument's allowed addresses) have slots of their own, every other
//! address shares a small pool, one address holds only a few connections at once, and a
//! connection over its cap is closed at once and logged with its address rather than left
//! waiting. A connection must deliver whole frames in time and is closed when it delivers no
//! message for its idle timeout, however many stray bytes it sends ([`ListenerLimits`]).

pub mod astm;
pub mod mllp;
pub mod outbox;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Which interface listeners to run.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// HL7 v2 over MLLP (instruments and the EHR), e.g. 127.0.0.1:2575.
    pub mllp: Option<SocketAddr>,
    /// ASTM E1381/E1394 over TCP, one listener per address (instruments), e.g.
    /// 127.0.0.1:5100.
    pub astm: Vec<SocketAddr>,
    /// The EHR's MLLP listener that released results are sent to (ORU^R01): runs the outbox
    /// worker. The lab queues them when `LabConfig::ehr_destination` is set.
    pub ehr: Option<SocketAddr>,
    /// What a peer of the MLLP listener may hold.
    pub mllp_limits: ListenerLimits,
    /// What a peer of each ASTM listener may hold.
    pub astm_limits: ListenerLimits,
}

impl Default for InterfaceConfig {
    fn default() -> InterfaceConfig {
        InterfaceConfig {
            mllp: None,
            astm: Vec::new(),
            ehr: None,
            mllp_limits: ListenerLimits::mllp(),
            astm_limits: ListenerLimits::astm(),
        }
    }
}

/// What keeps a hostile or broken peer from holding an instrument listener. Each listener has
/// its own slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections kept for the addresses listed on some instrument.
    pub listed_connections: usize,
    /// Connections shared by every other address; one more is closed at once.
    pub unlisted_connections: usize,
    /// Connections one address may hold at once; one more is closed at once.
    pub connections_per_address: usize,
    /// An MLLP frame must arrive whole within this of its start block (not reset by each
    /// byte). ASTM frames have the protocol's own timers instead (E1381: 30 s for the next
    /// frame or `EOT`, 15 s for a reply), which the link keeps.
    pub frame_timeout: Duration,
    /// A connection from a listed address that delivers no message for this long is closed.
    pub idle_timeout: Duration,
    /// The same for any other address.
    pub unlisted_idle_timeout: Duration,
}

impl ListenerLimits {
    /// MLLP: senders connect per batch or keep one connection and reconnect when it drops.
    pub fn mllp() -> ListenerLimits {
        ListenerLimits { idle_timeout: Duration::from_secs(300), ..ListenerLimits::common() }
    }

    /// ASTM: analyzers keep their connection open between runs, so a listed one's may stay
    /// quiet for an hour.
    pub fn astm() -> ListenerLimits {
        ListenerLimits { idle_timeout: Duration::from_secs(3600), ..ListenerLimits::common() }
    }

    fn common() -> ListenerLimits {
        ListenerLimits {
            listed_connections: 64,
            unlisted_connections: 32,
            connections_per_address: 8,
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            unlisted_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How long one connection's frames and silences may last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// See [`ListenerLimits::frame_timeout`].
    pub frame_timeout: Duration,
    /// The idle timeout of this connection's pool.
    pub idle_timeout: Duration,
}

/// How often the listed addresses are read again: a changed allow-list applies to new
/// connections within this.
const LISTED_REFRESH: Duration = Duration::from_secs(5);

/// Binds a listener; the returned address is the one bound (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The addresses some instrument is restricted to, read again every [`LISTED_REFRESH`].
struct Listed {
    addresses: HashSet<IpAddr>,
    read_at: Option<Instant>,
}

impl Listed {
    async fn contains(&mut self, lab: &cuvette_app::Lab, address: IpAddr) -> bool {
        if self.read_at.is_none_or(|at| at.elapsed() >= LISTED_REFRESH) {
            match lab.listed_peer_addresses().await {
                Ok(addresses) => self.addresses = addresses,
                // The last list read stays: a database fault must not hand the analyzers'
                // slots to anyone.
                Err(e) => {
                    tracing::warn!(error = %e, "the instruments' allowed addresses could not be read; the last ones read apply")
                }
            }
            self.read_at = Some(Instant::now());
        }
        self.addresses.contains(&address)
    }
}

/// Connections open per address, each held by an [`AddressSlot`].
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(address).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot { counts: self.clone(), address })
    }
}

struct AddressSlot {
    counts: Arc<PerAddress>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Accepts connections until the task is dropped, each served by `connection` in a task of
/// its own within `limits`. Messages are logged on the channel `<protocol>:<port>`.
pub(crate) async fn accept_loop<F, Fut>(
    lab: Arc<cuvette_app::Lab>,
    listener: tokio::net::TcpListener,
    protocol: &'static str,
    limits: ListenerLimits,
    watch: crate::health::ListenerWatch,
    connection: F,
) where
    F: Fn(Arc<cuvette_app::Lab>, tokio::net::TcpStream, SocketAddr, String, Timing) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let channel = listener
        .local_addr()
        .map(|a| format!("{protocol}:{}", a.port()))
        .unwrap_or_else(|_| protocol.into());
    let listed_slots = Arc::new(Semaphore::new(limits.listed_connections));
    let unlisted_slots = Arc::new(Semaphore::new(limits.unlisted_connections));
    let per_address = Arc::new(PerAddress::default());
    let mut listed = Listed { addresses: HashSet::new(), read_at: None };
    let _running = watch.running();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => {
                watch.accept_result(true);
                c
            }
            Err(e) => {
                watch.accept_result(false);
                tracing::warn!(error = %e, protocol, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let address = peer.ip().to_canonical();
        let is_listed = listed.contains(&lab, address).await;
        let (pool, idle_timeout) = if is_listed {
            (&listed_slots, limits.idle_timeout)
        } else {
            (&unlisted_slots, limits.unlisted_idle_timeout)
        };
        // Over a cap the connection is closed at once: left waiting it would hold a socket
        // and make the peer believe it is served.
        let Ok(slot): Result<OwnedSemaphorePermit, _> = pool.clone().try_acquire_owned() else {
            // The analyzers' own slots all taken, or — when the lab lists no address — every
            // slot: real instruments are being turned away.
            if is_listed || listed.addresses.is_empty() {
                watch.full(true);
            }
            tracing::warn!(%peer, protocol, listed = is_listed, "connection closed at once: every connection slot for its addresses is in use");
            continue;
        };
        let Some(address_slot) = per_address.take(address, limits.connections_per_address) else {
            tracing::warn!(%peer, protocol, limit = limits.connections_per_address, "connection closed at once: this address has as many connections open as one address may");
            continue;
        };
        let reports_full = is_listed || listed.addresses.is_empty();
        if reports_full {
            watch.full(false);
        }
        let timing = Timing { frame_timeout: limits.frame_timeout, idle_timeout };
        let served = connection(lab.clone(), stream, peer, channel.clone(), timing);
        let watch = watch.clone();
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::info!(%peer, error = %e, protocol, "connection ended");
            }
            drop((slot, address_slot));
            // A slot is free again: the listener is no longer full, whether or not anyone
            // connects next.
            if reports_full {
                watch.full(false);
            }
        });
    }
}

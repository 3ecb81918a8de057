//! Instrument and EHR listeners: each connection a task driving a sans-IO codec from the
//! protocol crates, calling the app's interop use cases, and writing back what they answer.

pub mod astm;
pub mod mllp;
pub mod outbox;

use std::net::SocketAddr;

/// Which interface listeners to run.
#[derive(Debug, Clone, Default)]
pub struct InterfaceConfig {
    /// HL7 v2 over MLLP (instruments and the EHR), e.g. 127.0.0.1:2575.
    pub mllp: Option<SocketAddr>,
    /// ASTM E1381/E1394 over TCP, one listener per address (instruments), e.g.
    /// 127.0.0.1:5100.
    pub astm: Vec<SocketAddr>,
    /// The EHR's MLLP listener that released results are sent to (ORU^R01): runs the outbox
    /// worker. The lab queues them when `LabConfig::ehr_destination` is set.
    pub ehr: Option<SocketAddr>,
}

/// The most connections served at once per listener; more wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 256;

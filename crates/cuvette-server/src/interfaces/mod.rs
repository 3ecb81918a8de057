//! Instrument and EHR listeners: each connection a task driving a sans-IO codec from the
//! protocol crates, calling the app's interop use cases, and writing back what they answer.

pub mod mllp;

use std::net::SocketAddr;

/// Which interface listeners to run.
#[derive(Debug, Clone, Default)]
pub struct InterfaceConfig {
    /// HL7 v2 over MLLP (instruments and the EHR), e.g. 127.0.0.1:2575.
    pub mllp: Option<SocketAddr>,
    /// ASTM over TCP ports.
    pub astm: Vec<SocketAddr>,
}

/// The most connections served at once per listener; more wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 256;

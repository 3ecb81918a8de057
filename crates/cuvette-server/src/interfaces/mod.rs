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

/// Binds a listener; the returned address is the one bound (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accepts connections until the task is dropped, each served by `connection` in a task of
/// its own, at most [`CONNECTIONS_MAX`] at once. Messages are logged on the channel
/// `<protocol>:<port>`.
pub(crate) async fn accept_loop<F, Fut>(
    lab: std::sync::Arc<cuvette_app::Lab>,
    listener: tokio::net::TcpListener,
    protocol: &'static str,
    watch: crate::health::ListenerWatch,
    connection: F,
) where
    F: Fn(std::sync::Arc<cuvette_app::Lab>, tokio::net::TcpStream, SocketAddr, String) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let channel = listener
        .local_addr()
        .map(|a| format!("{protocol}:{}", a.port()))
        .unwrap_or_else(|_| protocol.into());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
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
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                watch.full(true);
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                watch.full(false);
                permit
            }
        };
        let served = connection(lab.clone(), stream, peer, channel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = served.await {
                tracing::info!(%peer, error = %e, protocol, "connection ended");
            }
        });
    }
}

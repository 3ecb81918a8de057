//! The MLLP listener: HL7 v2 messages in, acknowledgements out, one message at a time per
//! connection (HL7 v2.5.1 Appendix C, MLLP Release 2: the sender waits for the ACK).

use std::net::SocketAddr;
use std::sync::Arc;

use cuvette_app::Lab;
use cuvette_app::interop;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::{ListenerLimits, Timing};
use crate::health::ListenerWatch;

/// Bytes read per call: a few kB per connection, however many are open (a message longer
/// than this takes several reads).
const READ_BYTES: usize = 8 * 1024;

/// Binds the listener; the returned address is the one bound (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    super::bind(addr).await
}

/// Serves connections until the task is dropped, on the channel `mllp:<port>`, within
/// [`ListenerLimits::mllp`].
pub async fn serve(lab: Arc<Lab>, listener: TcpListener) {
    serve_limited(lab, listener, ListenerLimits::mllp()).await
}

/// [`serve`] within `limits`.
pub async fn serve_limited(lab: Arc<Lab>, listener: TcpListener, limits: ListenerLimits) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    serve_watched(lab, listener, limits, ListenerWatch::unwatched("MLLP", port)).await
}

/// [`serve_limited`], reporting to `/readyz` through `watch` whether it accepts connections.
pub async fn serve_watched(
    lab: Arc<Lab>,
    listener: TcpListener,
    limits: ListenerLimits,
    watch: ListenerWatch,
) {
    super::accept_loop(
        lab,
        listener,
        "mllp",
        limits,
        watch,
        |lab, stream, peer, channel, timing| async move {
            connection(&lab, stream, peer, &channel, timing).await
        },
    )
    .await
}

async fn connection(
    lab: &Lab,
    mut stream: TcpStream,
    peer: SocketAddr,
    channel: &str,
    timing: Timing,
) -> std::io::Result<()> {
    let peer = peer.to_string();
    let mut deframer = MllpDeframer::new();
    let ended = serve_frames(lab, &mut stream, &mut deframer, channel, &peer, timing).await;
    if deframer.is_mid_frame() {
        // A message cut off mid-frame is not a message: nothing of it is stored, and the
        // sender, which got no acknowledgement, sends it again. The lab sees it in the log.
        let how = match &ended {
            Ended::Idle => {
                format!("no message arrived for {} s", timing.idle_timeout.as_secs())
            }
            Ended::FrameTimeout => format!(
                "the frame did not arrive whole within {} s of its start",
                timing.frame_timeout.as_secs()
            ),
            Ended::Closed => "the sender closed the connection".to_owned(),
            Ended::Failed(e) => format!("the connection failed: {e}"),
        };
        let partial = deframer.partial_frame().to_vec();
        deframer.reset();
        tracing::warn!(%peer, %how, bytes = partial.len(), "MLLP frame cut off: nothing in it was stored");
        if let Err(e) = interop::hl7::log_aborted(lab, &partial, &how, channel, &peer).await {
            tracing::error!(%peer, error = %e, "could not log a cut-off MLLP frame");
        }
    } else if let Ended::Idle = ended {
        tracing::info!(%peer, seconds = timing.idle_timeout.as_secs(), "closing an MLLP connection that sent no message");
    }
    match ended {
        Ended::Failed(e) => Err(e),
        Ended::Idle | Ended::FrameTimeout | Ended::Closed => Ok(()),
    }
}

/// How a connection's serving ended.
enum Ended {
    /// No message arrived for the idle timeout (stray bytes outside a frame do not count).
    Idle,
    /// A frame did not arrive whole within the frame timeout of its start block.
    FrameTimeout,
    /// The peer closed it.
    Closed,
    /// Reading or writing failed.
    Failed(std::io::Error),
}

async fn serve_frames(
    lab: &Lab,
    stream: &mut TcpStream,
    deframer: &mut MllpDeframer,
    channel: &str,
    peer: &str,
    timing: Timing,
) -> Ended {
    let mut buf = vec![0u8; READ_BYTES];
    let mut last_message = Instant::now();
    // When the frame being read began: its whole frame is due within the frame timeout of
    // this, however its bytes are spread out.
    let mut frame_started: Option<Instant> = None;
    loop {
        let deadline = match frame_started {
            Some(at) => at + timing.frame_timeout,
            None => last_message + timing.idle_timeout,
        };
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Ended::Failed(e),
            Err(_) if frame_started.is_some() => return Ended::FrameTimeout,
            Err(_) => return Ended::Idle,
        };
        if n == 0 {
            return Ended::Closed;
        }
        deframer.push(&buf[..n]);
        while let Some(next) = deframer.next_frame() {
            last_message = Instant::now();
            frame_started = None;
            let replies = match next {
                Ok(message) => answer(lab, &message, channel, peer).await,
                Err(e) => {
                    // The codec dropped the frame; an AR makes the sender resend it.
                    tracing::warn!(%peer, error = %e, "MLLP framing error");
                    let (id, ts) = interop::hl7::stamp(lab);
                    vec![interop::hl7::reject(b"", &format!("framing error: {e}"), &id, &ts)]
                }
            };
            for reply in replies {
                if let Err(e) = stream.write_all(&frame(&reply)).await {
                    return Ended::Failed(e);
                }
            }
        }
        frame_started = if deframer.is_mid_frame() {
            frame_started.or_else(|| Some(Instant::now()))
        } else {
            None
        };
    }
}

/// The acknowledgements for one message — or the RSP^K11 answering a host query —, written
/// only after the message and its results are committed: the application acknowledgement in
/// original mode; in enhanced mode the accept
/// and application acknowledgements the message asked for (MSH-15/16), possibly none. When
/// the database fails nothing is acknowledged as accepted: the sender gets an AR (CR in
/// enhanced mode) and resends.
async fn answer(lab: &Lab, message: &[u8], channel: &str, peer: &str) -> Vec<Vec<u8>> {
    // An analyzer's host query (QBP^Q11) is answered with its RSP^K11, not acknowledged.
    let received = match interop::hl7::answer_query(lab, message, channel, peer).await {
        Ok(Some(response)) => return vec![response],
        Ok(None) => interop::hl7::receive(lab, message, channel, peer).await,
        Err(e) => Err(e),
    };
    match received {
        Ok((outcome, ack)) => {
            let (id, ts) = interop::hl7::stamp(lab);
            interop::hl7::replies(message, &outcome, ack, &id, &ts)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store an HL7 message; answering AR so the sender retries");
            let (id, ts) = interop::hl7::stamp(lab);
            vec![interop::hl7::reject(
                message,
                "the laboratory system could not store the message now: resend it later",
                &id,
                &ts,
            )]
        }
    }
}

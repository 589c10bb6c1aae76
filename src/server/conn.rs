//! The bounded frame reader both links share: a read-idle timeout between frames, a
//! whole-frame deadline once a frame's first byte arrived (a header trickled byte by byte is
//! cut off), and shutdown between frames. "Need more bytes" (`Ok(None)` from the decoder) is
//! kept apart from "bad bytes" (`Err`).

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::Shared;

/// What the reader got.
pub enum ReadOutcome<T, E> {
    /// A whole frame.
    Frame(T),
    /// Bytes that can never become a valid frame.
    Bad(E),
    /// End of stream, a timeout, a read error, or shutdown while idle.
    Closed,
}

/// Reads until `codec` yields a frame or an error, within the limits of `shared.config`.
pub async fn next_frame<S, D>(
    stream: &mut S,
    buf: &mut BytesMut,
    codec: &mut D,
    shared: &Shared,
) -> ReadOutcome<D::Item, D::Error>
where
    S: AsyncRead + Unpin,
    D: Decoder,
{
    let limits = &shared.config.limits;
    let mut shutdown = shared.shutdown.clone();
    let mut frame_started = (!buf.is_empty()).then(Instant::now);
    loop {
        match codec.decode(buf) {
            Ok(Some(f)) => return ReadOutcome::Frame(f),
            Ok(None) => {}
            Err(e) => return ReadOutcome::Bad(e),
        }
        if buf.is_empty() && *shutdown.borrow() {
            return ReadOutcome::Closed;
        }
        let deadline = match frame_started {
            None => Instant::now() + Duration::from_millis(limits.read_idle_ms),
            Some(t) => t + Duration::from_millis(limits.frame_deadline_ms),
        };
        let idle = buf.is_empty();
        tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return ReadOutcome::Closed,
                Ok(Ok(_)) => {
                    if frame_started.is_none() {
                        frame_started = Some(Instant::now());
                    }
                }
            },
            _ = shutdown.changed(), if idle => return ReadOutcome::Closed,
        }
    }
}

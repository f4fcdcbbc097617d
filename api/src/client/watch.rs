//! The client end of `GET /v1/watch`: newline-delimited JSON, decoded one
//! [`WatchMessage`] per line as bytes arrive.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::ClientError;
use crate::wire::WatchMessage;

/// Longest line accepted (one revision's events); guards memory against a broken server.
const MAX_LINE: usize = 64 << 20;

/// An open watch stream.
#[derive(Debug)]
pub struct WatchStream {
    body: Incoming,
    buf: BytesMut,
    server_revision: u64,
    idle_timeout: Duration,
    done: bool,
}

impl WatchStream {
    pub(crate) fn new(body: Incoming, server_revision: u64, idle_timeout: Duration) -> WatchStream {
        WatchStream {
            body,
            buf: BytesMut::new(),
            server_revision,
            idle_timeout,
            done: false,
        }
    }

    /// The server's revision when the stream started (`X-Bridgehead-Revision`).
    pub fn server_revision(&self) -> u64 {
        self.server_revision
    }

    /// The next message; `None` once the server ended the stream. An error
    /// (broken connection, nothing at all within the idle timeout, a line
    /// that is not a message) also ends it.
    pub async fn next(&mut self) -> Option<Result<WatchMessage, ClientError>> {
        if self.done {
            return None;
        }
        let r = self.next_inner().await;
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    async fn next_inner(&mut self) -> Option<Result<WatchMessage, ClientError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let line = &line[..i];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(line)
                        .map_err(|e| ClientError::Decode(format!("watch line: {e}"))),
                );
            }
            if self.buf.len() > MAX_LINE {
                return Some(Err(ClientError::Decode("watch line too long".into())));
            }
            let frame = match tokio::time::timeout(self.idle_timeout, self.body.frame()).await {
                Err(_) => return Some(Err(ClientError::Timeout("watch idle"))),
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some(Err(ClientError::Http(e))),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(mut data) = frame.into_data() {
                while data.has_remaining() {
                    let c = data.chunk();
                    self.buf.extend_from_slice(c);
                    let n = c.len();
                    data.advance(n);
                }
            }
        }
    }

    /// As a `futures::Stream`.
    pub fn into_stream(self) -> impl Stream<Item = Result<WatchMessage, ClientError>> + Send {
        futures::stream::unfold(self, |mut w| async move {
            let m = w.next().await?;
            Some((m, w))
        })
    }
}

//! A response body that is cut (`truncate` fault) or trickled (`dribble` fault).

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A response body that is cut (`truncate`) or trickled (`dribble`).
pub(crate) struct FaultBody {
    chunks: std::collections::VecDeque<Bytes>,
    interval: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Wait one interval before the next frame.
    wait_next: bool,
    /// After the chunks: fail (truncate) instead of ending (dribble).
    cut: bool,
}

impl std::fmt::Debug for FaultBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultBody")
            .field("chunks", &self.chunks.len())
            .field("cut", &self.cut)
            .finish()
    }
}

impl FaultBody {
    /// True when the body ends in a cut (`truncate`): the client gets no complete response.
    pub(crate) fn cuts(&self) -> bool {
        self.cut
    }

    /// The first half of `body` at once, then (after 20 ms, so hyper flushes what it has) an
    /// error that makes hyper drop the connection. The response's `Content-Length` is the
    /// whole body, so the client sees the body cut.
    pub(crate) fn truncate(body: Bytes) -> Self {
        let half = body.slice(..body.len() / 2);
        let chunks: std::collections::VecDeque<Bytes> =
            std::iter::once(half).filter(|b| !b.is_empty()).collect();
        Self {
            wait_next: chunks.is_empty(),
            chunks,
            interval: Duration::from_millis(20),
            sleep: None,
            cut: true,
        }
    }

    /// `body` in `chunks` pieces (at most one per byte), one every `total / pieces`, the first
    /// after one interval: the last byte arrives after about `total`.
    pub(crate) fn dribble(body: Bytes, total: Duration, chunks: u32) -> Self {
        let n = (chunks.max(1) as usize).min(body.len().max(1));
        let size = body.len().div_ceil(n).max(1);
        let pieces: std::collections::VecDeque<Bytes> = (0..body.len())
            .step_by(size)
            .map(|i| body.slice(i..(i + size).min(body.len())))
            .collect();
        let interval = total / u32::try_from(pieces.len().max(1)).unwrap_or(1);
        Self {
            chunks: pieces,
            interval,
            sleep: None,
            wait_next: true,
            cut: false,
        }
    }
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.wait_next {
            let interval = this.interval;
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
            this.wait_next = false;
        }
        match this.chunks.pop_front() {
            Some(c) => {
                this.wait_next = this.cut || !this.chunks.is_empty();
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None if this.cut => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "response truncated by an injected fault",
            )))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.cut && !self.wait_next && self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

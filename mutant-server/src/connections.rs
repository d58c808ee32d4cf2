//! Connection hygiene: how long a client may take to send a request head,
//! how long a kept-alive connection may sit idle, how many connections are
//! served at once, and how the accept loop backs off when accepting fails.
//!
//! hyper's own header timeout starts whenever it waits for a head, idle
//! time included, so it cannot tell a slow head from a quiet keep-alive
//! connection. [`GuardedStream`] keeps the two apart: it wraps the socket,
//! learns from the request handler when a request is in flight
//! ([`InFlight`]), and while none is, ends the connection once its deadline
//! passes: the header timeout from the connection's start or from the first
//! byte of a later head, the idle timeout from the end of the previous
//! answer until that first byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// The longest a request head may take, from the connection's start or
    /// from the first byte of a later request.
    pub(crate) header: Duration,
    /// The longest a kept-alive connection may wait for the next request
    /// after an answer.
    pub(crate) idle: Duration,
}

/// What the socket and the request handler of one connection share.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    /// Requests whose answer is not fully written yet.
    in_flight: AtomicUsize,
    /// When the last answer finished (the connection's start before any).
    idle_since: Mutex<Option<Instant>>,
    /// The task waiting to read while a request was in flight, with no
    /// deadline set: woken when the request ends, so the deadline is set.
    reader: Mutex<Option<Waker>>,
}

impl ConnectionState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnectionState {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(None),
            reader: Mutex::new(None),
        })
    }

    /// Marks a request in flight until the returned guard is dropped (with
    /// the answer's body, once hyper has written it).
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            state: Arc::clone(self),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub(crate) struct InFlight {
    state: Arc<ConnectionState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self
            .state
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        let reader = self
            .state
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The socket of one connection, ended by [`Timeouts`] while no request is
/// in flight.
pub(crate) struct GuardedStream {
    stream: TcpStream,
    state: Arc<ConnectionState>,
    timeouts: Timeouts,
    opened: Instant,
    /// When the first byte of the head being read arrived, if one did.
    head_started: Option<Instant>,
    /// The idle period that `head_started` belongs to.
    head_idle_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl GuardedStream {
    pub(crate) fn new(stream: TcpStream, state: Arc<ConnectionState>, timeouts: Timeouts) -> Self {
        let opened = Instant::now();
        GuardedStream {
            stream,
            state,
            timeouts,
            opened,
            head_started: None,
            head_idle_since: None,
            timer: Box::pin(tokio::time::sleep_until(opened + timeouts.header)),
        }
    }

    /// When the connection must have sent its head, `None` while a request
    /// is in flight.
    fn deadline(&mut self) -> Option<Instant> {
        if self.state.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle_since = self.state.idle_since();
        if self.head_idle_since != idle_since {
            // A new idle period: whatever head was started belonged to the
            // previous request.
            self.head_idle_since = idle_since;
            self.head_started = None;
        }
        Some(match (idle_since, self.head_started) {
            (None, _) => self.opened + self.timeouts.header,
            (Some(_), Some(first_byte)) => first_byte + self.timeouts.header,
            (Some(answered), None) => answered + self.timeouts.idle,
        })
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let filled_before = buffer.filled().len();
        match Pin::new(&mut this.stream).poll_read(context, buffer) {
            Poll::Ready(result) => {
                if buffer.filled().len() > filled_before && this.head_started.is_none() {
                    this.deadline();
                    this.head_started = Some(Instant::now());
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.deadline() {
                None => {
                    *this
                        .state
                        .reader
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(context.waker().clone());
                    // The request may have ended since the look at it.
                    if this.state.in_flight.load(Ordering::SeqCst) == 0 {
                        context.waker().wake_by_ref();
                    }
                    Poll::Pending
                }
                Some(deadline) => {
                    this.timer.as_mut().reset(deadline);
                    match this.timer.as_mut().poll(context) {
                        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client sent no complete request in time",
                        ))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// An answer's body that keeps its request in flight until hyper has
/// written it whole (or dropped it), so a long download is not idle time.
pub(crate) struct TrackedBody<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        TrackedBody {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The pause after a failed accept: doubling from 5 ms up to a second, so a
/// listener out of file descriptors neither spins nor stalls for long once
/// they free up; a successful accept starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AcceptBackoff {
    next: Duration,
}

const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

impl AcceptBackoff {
    pub(crate) fn new() -> Self {
        AcceptBackoff {
            next: FIRST_ACCEPT_PAUSE,
        }
    }

    /// The pause to take now; the next one is twice as long.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(LONGEST_ACCEPT_PAUSE);
        pause
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = FIRST_ACCEPT_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::new();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed()).collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert_eq!(pauses[9], Duration::from_secs(1));
        assert!(pauses.windows(2).all(|pair| pair[0] <= pair[1]));
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(5));
    }
}

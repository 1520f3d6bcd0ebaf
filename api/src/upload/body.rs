//! An upload's request body as the parsers see it: counted and timed before multer or the
//! storage pipeline reads a byte, so a body of any shape stops at its limit and a client that
//! stops sending is let go, in bounded memory and time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Why the guard ended a body early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Cut {
    /// More than the limit arrived (what was still coming has been read and dropped).
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    /// Nothing arrived for this long.
    #[error("no data for {0:?}")]
    Idle(Duration),
}

/// An item of a guarded body that is not data.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Cut(Cut),
    /// The connection failed or the body was malformed.
    #[error("{0}")]
    Read(String),
}

/// What a guarded body may be.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes past which the body is cut.
    pub max_bytes: u64,
    /// Longest wait for the next chunk.
    pub idle: Duration,
    /// Once cut for its size: how much more is read, and for how long at most, so the client
    /// reads the answer instead of a reset connection.
    pub drain_bytes: u64,
    pub drain_time: Duration,
}

enum State {
    Reading,
    /// Over the limit: reading and dropping the rest until this deadline.
    Draining {
        until: Instant,
        left: u64,
    },
    Done,
}

/// A body stream that ends in [`BodyError::Cut`] past `max_bytes` or after `idle` without
/// data; the cut is also kept in a [`CutFlag`], for errors that lose their source on the way.
pub struct GuardedBody<S> {
    inner: S,
    limits: BodyLimits,
    seen: u64,
    /// Armed when a wait for the client begins: time spent while the consumer was busy
    /// elsewhere (slow storage) is not the client's silence.
    timer: Pin<Box<Sleep>>,
    waiting: bool,
    state: State,
    cut: CutFlag,
}

/// Whether, and why, a [`GuardedBody`] was cut; shared with whoever reports the failure.
#[derive(Debug, Clone, Default)]
pub struct CutFlag(Arc<OnceLock<Cut>>);

impl CutFlag {
    pub fn get(&self) -> Option<Cut> {
        self.0.get().copied()
    }
}

impl<S> GuardedBody<S> {
    pub fn new(inner: S, limits: BodyLimits) -> Self {
        Self {
            inner,
            limits,
            seen: 0,
            timer: Box::pin(tokio::time::sleep(limits.idle)),
            waiting: false,
            state: State::Reading,
            cut: CutFlag::default(),
        }
    }

    pub fn cut_flag(&self) -> CutFlag {
        self.cut.clone()
    }

    /// The client has sent nothing since the wait began, for `idle` or until `cap`; arms the
    /// timer (and the wake-up) when a wait begins.
    fn silent_for_too_long(&mut self, cx: &mut Context<'_>, cap: Option<Instant>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let at = Instant::now() + self.limits.idle;
            self.timer.as_mut().reset(cap.map_or(at, |c| at.min(c)));
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// Lets other tasks run between drained chunks: a fast client would otherwise keep this
    /// poll going.
    fn yield_now(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn end(&mut self, cut: Cut) -> Poll<Option<Result<Bytes, BodyError>>> {
        let _ = self.cut.0.set(cut);
        self.state = State::Done;
        Poll::Ready(Some(Err(BodyError::Cut(cut))))
    }
}

impl<S, E> Stream for GuardedBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.state {
            State::Done => Poll::Ready(None),
            State::Reading => match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.waiting = false;
                    this.seen = this.seen.saturating_add(chunk.len() as u64);
                    if this.seen <= this.limits.max_bytes {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    let until = Instant::now() + this.limits.drain_time;
                    this.state = State::Draining {
                        until,
                        left: this.limits.drain_bytes,
                    };
                    this.yield_now(cx)
                }
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    Poll::Ready(Some(Err(BodyError::Read(e.to_string()))))
                }
                Poll::Ready(None) => {
                    this.state = State::Done;
                    Poll::Ready(None)
                }
                Poll::Pending if this.silent_for_too_long(cx, None) => {
                    this.end(Cut::Idle(this.limits.idle))
                }
                Poll::Pending => Poll::Pending,
            },
            State::Draining { until, left } => {
                let too_large = Cut::TooLarge(this.limits.max_bytes);
                if left == 0 || Instant::now() >= until {
                    return this.end(too_large);
                }
                match Pin::new(&mut this.inner).poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        this.waiting = false;
                        this.state = State::Draining {
                            until,
                            left: left.saturating_sub(chunk.len() as u64),
                        };
                        this.yield_now(cx)
                    }
                    Poll::Ready(_) => this.end(too_large),
                    // The client's silence or the deadline, whichever comes first.
                    Poll::Pending if this.silent_for_too_long(cx, Some(until)) => {
                        this.end(too_large)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn limits(max_bytes: u64, idle_ms: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle: Duration::from_millis(idle_ms),
            drain_bytes: 1 << 20,
            drain_time: Duration::from_secs(5),
        }
    }

    fn chunks(n: usize, size: usize) -> Vec<Result<Bytes, String>> {
        (0..n).map(|_| Ok(Bytes::from(vec![b'x'; size]))).collect()
    }

    #[tokio::test]
    async fn passes_a_body_within_the_limit_and_cuts_one_past_it() {
        let mut body =
            GuardedBody::new(futures_util::stream::iter(chunks(4, 10)), limits(40, 1000));
        let mut seen = 0;
        while let Some(chunk) = body.next().await {
            seen += chunk
                .map(|c| c.len())
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        assert_eq!((seen, body.cut_flag().get()), (40, None));

        let mut body =
            GuardedBody::new(futures_util::stream::iter(chunks(9, 10)), limits(35, 1000));
        let flag = body.cut_flag();
        let mut passed = 0;
        let end = loop {
            match body.next().await {
                Some(Ok(c)) => passed += c.len(),
                other => break other,
            }
        };
        assert_eq!(passed, 30, "nothing past the limit is handed on");
        assert!(matches!(end, Some(Err(BodyError::Cut(Cut::TooLarge(35))))));
        assert_eq!(flag.get(), Some(Cut::TooLarge(35)));
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn a_silent_client_is_cut_but_a_busy_consumer_is_not_its_fault() {
        let first = futures_util::stream::iter(chunks(1, 3));
        let stream = first.chain(futures_util::stream::pending());
        let mut body = GuardedBody::new(stream, limits(100, 50));
        assert!(matches!(body.next().await, Some(Ok(_))));
        // The consumer is away for longer than the idle timeout: the wait starts on its return.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let started = Instant::now();
        let end = body.next().await;
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(end, Some(Err(BodyError::Cut(Cut::Idle(_))))));
        assert_eq!(
            body.cut_flag().get(),
            Some(Cut::Idle(Duration::from_millis(50)))
        );
    }

    #[tokio::test]
    async fn a_body_cut_for_its_size_is_drained_until_the_client_goes_quiet() {
        let sent = futures_util::stream::iter(chunks(10, 10));
        let stream = sent.chain(futures_util::stream::pending());
        let mut body = GuardedBody::new(stream, limits(25, 50));
        let mut passed = 0;
        let end = loop {
            match body.next().await {
                Some(Ok(c)) => passed += c.len(),
                other => break other,
            }
        };
        assert_eq!(passed, 20);
        assert!(matches!(end, Some(Err(BodyError::Cut(Cut::TooLarge(25))))));
    }
}

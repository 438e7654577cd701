//! The connection slots of a direct-mode run: `max_in_flight` long-lived tasks, each owning
//! at most one HTTP/1.1 keep-alive connection to the target and sending one request at a
//! time on it.
//!
//! The scheduler takes a free slot (a semaphore permit plus the id of an idle slot), hands
//! it the request, and goes on: no task is spawned and no connection pool is locked per
//! request. Idle slots are reused most-recently-freed first, so a light load keeps using the
//! same warm connection instead of opening one per slot. A slot connects lazily, on its
//! first request or after its connection broke, timed out or was closed by the target.
//!
//! Transport failures are named as the report counts them: `connect` (no TCP connection),
//! `io` (the connection broke before a whole answer came back), `timeout` (no whole answer
//! within the scenario's `request_timeout`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// A request's answer: status and body, or the transport failure's name.
pub(crate) type Answer = Result<(u16, Bytes), &'static str>;

/// Where the slots connect and what every request carries.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The request line's target (origin form: the endpoint's path).
    pub path: hyper::Uri,
    /// The `Host` header: the URL's authority, or the region's host when one is asked for.
    pub host: hyper::header::HeaderValue,
}

/// A free slot: the right to one request in flight and the slot that will send it. Dropped
/// unused (the request came too late to send), it goes back to the idle slots.
pub(crate) struct Slot {
    taken: Option<(usize, OwnedSemaphorePermit)>,
    idle: Arc<Mutex<Vec<usize>>>,
}

impl Slot {
    fn take(mut self) -> Option<(usize, OwnedSemaphorePermit)> {
        self.taken.take()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Back on the idle stack before its permit is released, like a slot that finished.
        if let Some((id, permit)) = self.taken.take() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(id);
            }
            drop(permit);
        }
    }
}

/// What a slot does once the answer is in: called on the slot's task with the answer.
pub(crate) trait OnAnswer: Send + 'static {
    /// Consumes the job's bookkeeping with the request's answer.
    fn answered(self, answer: Answer);
}

struct Job<D> {
    body: Bytes,
    done: D,
    permit: OwnedSemaphorePermit,
}

/// `count` connection slots to one target.
pub(crate) struct Slots<D: OnAnswer> {
    sem: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<usize>>>,
    jobs: Vec<mpsc::Sender<Job<D>>>,
    tasks: Vec<JoinHandle<()>>,
    count: usize,
}

impl<D: OnAnswer> Slots<D> {
    /// Starts `count` (at least 1) idle slots; none connects before its first request.
    /// `timeout` bounds each exchange, connecting included.
    pub(crate) fn new(target: Target, count: usize, timeout: Duration) -> Self {
        let count = count.max(1);
        let target = Arc::new(target);
        let idle = Arc::new(Mutex::new((0..count).rev().collect::<Vec<_>>()));
        let mut jobs = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for id in 0..count {
            let (tx, rx) = mpsc::channel::<Job<D>>(1);
            jobs.push(tx);
            tasks.push(tokio::spawn(slot_task(
                id,
                rx,
                Arc::clone(&target),
                Arc::clone(&idle),
                timeout,
            )));
        }
        Slots {
            sem: Arc::new(Semaphore::new(count)),
            idle,
            jobs,
            tasks,
            count,
        }
    }

    /// A free slot now, if there is one.
    pub(crate) fn try_acquire(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.sem).try_acquire_owned().ok()?;
        self.slot(permit)
    }

    /// A free slot within `budget`, or `None` when every slot stayed busy that long.
    pub(crate) async fn acquire_within(&self, budget: Duration) -> Option<Slot> {
        let permit = tokio::time::timeout(budget, Arc::clone(&self.sem).acquire_owned())
            .await
            .ok()?
            .ok()?;
        self.slot(permit)
    }

    /// Every permit has an idle slot: a slot pushes itself back before it drops its permit.
    fn slot(&self, permit: OwnedSemaphorePermit) -> Option<Slot> {
        let id = self.idle.lock().ok()?.pop()?;
        Some(Slot {
            taken: Some((id, permit)),
            idle: Arc::clone(&self.idle),
        })
    }

    /// Sends `body` (a POST to the target's path) on `slot`; `done` gets the answer. When
    /// the slot's task is gone (it cannot be, short of a panic), `done` gets `io`.
    pub(crate) fn send(&self, slot: Slot, body: Bytes, done: D) {
        let Some((id, permit)) = slot.take() else {
            done.answered(Err("io"));
            return;
        };
        let job = Job { body, done, permit };
        match self.jobs.get(id) {
            Some(tx) => {
                if let Err(e) = tx.try_send(job) {
                    let job = match e {
                        mpsc::error::TrySendError::Full(j)
                        | mpsc::error::TrySendError::Closed(j) => j,
                    };
                    job.done.answered(Err("io"));
                }
            }
            None => job.done.answered(Err("io")),
        }
    }

    /// Waits until every request handed out has its answer, then stops the slots (their
    /// connections close).
    pub(crate) async fn finish(self) {
        let all = u32::try_from(self.count).unwrap_or(u32::MAX);
        let _ = self.sem.acquire_many(all).await;
        drop(self.jobs);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn slot_task<D: OnAnswer>(
    id: usize,
    mut jobs: mpsc::Receiver<Job<D>>,
    target: Arc<Target>,
    idle: Arc<Mutex<Vec<usize>>>,
    timeout: Duration,
) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while let Some(job) = jobs.recv().await {
        let answer =
            match tokio::time::timeout(timeout, exchange(&mut conn, &target, job.body)).await {
                Ok(Ok(a)) => Ok(a),
                Ok(Err(e)) => {
                    conn = None;
                    Err(e)
                }
                // The answer may still arrive on this connection: it cannot carry another.
                Err(_) => {
                    conn = None;
                    Err("timeout")
                }
            };
        job.done.answered(answer);
        if let Ok(mut idle) = idle.lock() {
            idle.push(id);
        }
        drop(job.permit);
    }
}

/// One request and its whole answer on the slot's connection, connecting first when it has
/// none. A kept connection that the target closed meanwhile is replaced before the request
/// is written (what a pooled client does), so an idle-timeout close is not a failure.
async fn exchange(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    target: &Target,
    body: Bytes,
) -> Result<(u16, Bytes), &'static str> {
    let reused = match conn {
        Some(s) if !s.is_closed() => s.ready().await.is_ok(),
        _ => false,
    };
    let sender = match conn {
        Some(s) if reused => s,
        _ => {
            let fresh = conn.insert(connect(&target.addr).await?);
            fresh.ready().await.map_err(|_| "io")?;
            fresh
        }
    };
    let resp = sender
        .send_request(request(target, body))
        .await
        .map_err(|_| "io")?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| "io")?
        .to_bytes();
    Ok((status, body))
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, &'static str> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|_| "connect")?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "connect")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(target: &Target, body: Bytes) -> hyper::Request<Full<Bytes>> {
    use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
    let mut req = hyper::Request::new(Full::new(body));
    *req.method_mut() = hyper::Method::POST;
    *req.uri_mut() = target.path.clone();
    let h = req.headers_mut();
    h.insert(HOST, target.host.clone());
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ACCEPT, HeaderValue::from_static("*/*"));
    req
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::oneshot;

    struct Reply(oneshot::Sender<Answer>);
    impl OnAnswer for Reply {
        fn answered(self, answer: Answer) {
            let _ = self.0.send(answer);
        }
    }

    #[derive(Default)]
    struct Seen {
        connections: AtomicU64,
        requests: AtomicU64,
        lines: Mutex<Vec<String>>,
    }

    /// A target on port 0 answering 200 `{"code":200}`; `close` adds `connection: close` to
    /// every answer; request number `hang` (0-based) is never answered.
    async fn target(close: bool, hang: Option<u64>) -> (Target, Arc<Seen>) {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let s = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = Arc::clone(&s);
                        async move {
                            let n = s.requests.fetch_add(1, Ordering::SeqCst);
                            let host = req.headers().get("host").cloned();
                            s.lines.lock().unwrap().push(format!(
                                "{} {} host={}",
                                req.method(),
                                req.uri(),
                                host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-")
                            ));
                            if hang == Some(n) {
                                std::future::pending::<()>().await;
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from_static(
                                br#"{"code":200}"#,
                            )));
                            if close {
                                resp.headers_mut()
                                    .insert("connection", "close".parse().unwrap());
                            }
                            Ok::<_, hyper::Error>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let t = Target {
            addr: addr.to_string(),
            path: hyper::Uri::from_static("/base/2/httpapi"),
            host: hyper::header::HeaderValue::from_static("api.eu.amplitude.com"),
        };
        (t, seen)
    }

    async fn one(slots: &Slots<Reply>) -> Answer {
        let slot = slots.try_acquire().unwrap();
        let (tx, rx) = oneshot::channel();
        slots.send(slot, Bytes::from_static(b"{}"), Reply(tx));
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn one_request_at_a_time_reuses_one_connection_with_the_path_and_host() {
        let (t, seen) = target(false, None).await;
        let slots = Slots::<Reply>::new(t, 8, Duration::from_secs(10));
        for _ in 0..20 {
            assert_eq!(
                one(&slots).await,
                Ok((200, Bytes::from_static(br#"{"code":200}"#)))
            );
        }
        slots.finish().await;
        assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        let lines = seen.lines.lock().unwrap();
        assert!(
            lines
                .iter()
                .all(|l| l == "POST /base/2/httpapi host=api.eu.amplitude.com"),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_requests_take_one_slot_each_and_no_more() {
        let (t, seen) = target(false, None).await;
        let slots = Slots::<Reply>::new(t, 3, Duration::from_secs(10));
        let mut waits = Vec::new();
        for _ in 0..3 {
            let slot = slots.try_acquire().unwrap();
            let (tx, rx) = oneshot::channel();
            slots.send(slot, Bytes::from_static(b"{}"), Reply(tx));
            waits.push(rx);
        }
        // The three slots are busy until their answers are in.
        assert!(slots.try_acquire().is_none());
        for w in waits {
            assert_eq!(w.await.unwrap().map(|a| a.0), Ok(200));
        }
        assert!(slots.acquire_within(Duration::from_secs(5)).await.is_some());
        slots.finish().await;
        assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_slot_taken_and_not_used_is_free_again() {
        // A request too late to send drops its slot unused: the slot must come back, or
        // each late request would lose one for the rest of the run.
        let (t, seen) = target(false, None).await;
        let slots = Slots::<Reply>::new(t, 2, Duration::from_secs(10));
        for _ in 0..5 {
            let a = slots.try_acquire().unwrap();
            let b = slots.try_acquire().unwrap();
            assert!(slots.try_acquire().is_none());
            drop((a, b));
        }
        assert_eq!(one(&slots).await.map(|a| a.0), Ok(200));
        let (a, b) = (slots.try_acquire(), slots.try_acquire());
        assert!(a.is_some() && b.is_some());
        drop((a, b));
        slots.finish().await;
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_target_closing_after_each_answer_costs_no_failure() {
        let (t, seen) = target(true, None).await;
        let slots = Slots::<Reply>::new(t, 1, Duration::from_secs(10));
        for _ in 0..10 {
            assert_eq!(one(&slots).await.map(|a| a.0), Ok(200));
        }
        slots.finish().await;
        assert_eq!(seen.connections.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn a_timed_out_exchange_leaves_its_connection_and_the_next_one_connects_again() {
        let (t, seen) = target(false, Some(0)).await;
        let slots = Slots::<Reply>::new(t, 1, Duration::from_millis(200));
        assert_eq!(one(&slots).await, Err("timeout"));
        assert_eq!(one(&slots).await.map(|a| a.0), Ok(200));
        slots.finish().await;
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let t = Target {
            addr: addr.to_string(),
            path: hyper::Uri::from_static("/2/httpapi"),
            host: hyper::header::HeaderValue::from_static("localhost"),
        };
        let slots = Slots::<Reply>::new(t, 2, Duration::from_secs(10));
        assert_eq!(one(&slots).await, Err("connect"));
        slots.finish().await;
    }
}

//! The baseline of the "mock vs bare hyper" comparison (`benches/compare.sh`): a hyper 1
//! HTTP/1.1 server on the same tokio runtime flavour as the mock that reads each request's
//! body in full and answers a fixed Amplitude-shaped 200, doing no other work.
//!
//! `bare-hyper [--bind 127.0.0.1:0]` prints `listening on http://HOST:PORT` like the mock.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"code":200,"events_ingested":1,"payload_size_bytes":400,"server_upload_time":1700000000000}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body like the mock does (a fair baseline), then answer the fixed body.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bind = String::from("127.0.0.1:0");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => bind = args.next().unwrap_or(bind),
            other => anyhow::bail!("unknown argument {other}; usage: bare-hyper [--bind ADDR]"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&bind).await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}

//! OpenTelemetry: the real binary, pointed at an OTLP/HTTP receiver on loopback, continues a
//! caller's W3C trace, logs its trace id, names its own span in the response and exports that
//! span (flushed at SIGTERM).

use crate::helpers::free_port;
use reqwest::StatusCode;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got: (request path, body) per request.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP collector: answers every POST with 200 and keeps (path, body).
fn receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    sink.lock().expect("lock").push((path, body));
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_web::test]
async fn spans_continue_the_callers_trace_and_are_exported_over_otlp() {
    let (otlp_port, exported) = receiver();
    let port = free_port();
    // The in-memory store: no database needed to trace a request.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("APP_PORT", port.to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp_port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,gateway=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let log_lines =
        std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/health")).send().await.map(|r| r.status() != StatusCode::OK).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let res = http
        .get(format!("{base}/api/v1/resources"))
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let back = res.headers().get("traceparent").and_then(|v| v.to_str().ok()).expect("traceparent").to_owned();
    let parts: Vec<&str> = back.split('-').collect();
    assert_eq!((parts.len(), parts[1], parts[3]), (4, trace, "01"), "{back}");
    let our_span = parts[2].to_owned();
    assert_ne!(our_span, caller_span, "the response names our span, not the caller's");

    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "could not send SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = log_lines.join().expect("logs");

    // The exported span: our span id, in the caller's trace, with the caller's span as parent.
    let bodies = exported.lock().expect("lock").clone();
    assert!(!bodies.is_empty(), "nothing was exported");
    assert!(
        bodies.iter().all(|(path, _)| path == "/v1/traces"),
        "{:?}",
        bodies.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    let bytes = |h: &str| hex::decode(h).expect("hex");
    let span = bodies.iter().find(|(_, b)| contains(b, &bytes(&our_span))).map(|(_, b)| b);
    let span = span.unwrap_or_else(|| panic!("no exported span has id {our_span}"));
    assert!(contains(span, &bytes(trace)), "the span is in the caller's trace");
    assert!(contains(span, &bytes(caller_span)), "the caller's span is its parent");
    assert!(contains(span, b"/api/v1/resources"), "the span names the route");

    // The request's access-log line (at debug) carries the trace id.
    let served = logs.iter().find(|l| l.contains("request served") && l.contains("/api/v1/resources"));
    let served = served.unwrap_or_else(|| panic!("no access-log line:\n{}", logs.join("\n")));
    assert!(served.contains(&format!("\"trace_id\":\"{trace}\"")), "{served}");
}

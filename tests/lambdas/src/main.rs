//! `ebfleet-lambdas [PORT]`: the real Lambda handlers of `ebfleet-control`
//! in one process, on 127.0.0.1, answering Lambda's Invoke API
//! (`POST /2015-03-31/functions/<name>/invocations`, the request body the
//! event, the response body the handler's output, or HTTP 500 with
//! `{errorType, errorMessage}` as `cargo lambda watch` answers) — for the
//! scale benchmark, where thousands of executions call them.
//!
//! Settings come from the environment as each Lambda's would (one process
//! for all, so the union of theirs). The clock is the caller's: each
//! request's `x-ebfleet-now` header (Unix seconds) sets it, so leases,
//! idle times and timestamps follow the benchmark's virtual time.
//! Prints `listening <port>` once it accepts connections.

use ebfleet_control::{capacity, dispatch, env, plan, record, release, schedule, trigger, Env};
use ebfleet_core::clock::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

struct Lambdas {
    env: Env,
    now: Arc<AtomicU64>,
    plan: plan::Settings,
    capacity: capacity::Settings,
    schedule: schedule::Settings,
    dispatch: dispatch::Settings,
    record: record::Settings,
    trigger: trigger::Settings,
}

/// A handler's result as the Invoke API answers it.
fn answer<T: serde::Serialize, E: ebfleet_control::failure::Failure>(
    r: Result<T, E>,
) -> (u16, serde_json::Value) {
    match r {
        Ok(v) => (200, serde_json::to_value(v).unwrap_or_default()),
        Err(e) => (
            500,
            serde_json::json!({"errorType": e.kind().error_type(), "errorMessage": e.to_string()}),
        ),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (u16, serde_json::Value)> {
    serde_json::from_slice(body).map_err(|e| {
        (
            500,
            serde_json::json!({"errorType": "ebfleet.Invalid", "errorMessage": format!("event: {e}")}),
        )
    })
}

impl Lambdas {
    async fn call(&self, function: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let env = &self.env;
        macro_rules! with {
            ($f:expr) => {
                match parse(body) {
                    Ok(input) => answer($f(input).await),
                    Err(e) => e,
                }
            };
        }
        match function {
            "plan" => with!(|i| plan::handle(env, &self.plan, i)),
            "capacity" => with!(|i| capacity::handle(env, &self.capacity, i)),
            "schedule" => with!(|i| schedule::handle(env, &self.schedule, i)),
            "dispatch" => with!(|i| dispatch::handle(env, &self.dispatch, i)),
            "record" => with!(|i| record::handle(env, &self.record, i)),
            "release" => with!(|i| release::handle_request(env, i)),
            "trigger" => with!(|i| trigger::handle(env, &self.trigger, i)),
            other => (
                404,
                serde_json::json!({"errorType": "ResourceNotFoundException", "errorMessage": format!("no function {other}")}),
            ),
        }
    }
}

/// One connection: HTTP/1.1 requests with a Content-Length body, kept
/// alive.
async fn serve(lambdas: Arc<Lambdas>, stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut now, mut close) = (0usize, None, false);
        loop {
            let mut h = String::new();
            read.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "x-ebfleet-now" => now = v.trim().parse::<f64>().ok(),
                "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        if let Some(t) = now {
            lambdas.now.store(t as u64, Ordering::Relaxed);
        }
        let function = path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|p| p.strip_suffix("/invocations"))
            .unwrap_or("");
        let (status, out) = lambdas.call(function, &body).await;
        let data = out.to_string();
        let reason = if status == 200 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            data.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(data.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let port: u16 = std::env::args().nth(1).map_or(Ok(0), |p| p.parse())?;
    let now = Arc::new(AtomicU64::new(ebfleet_core::clock::unix_now()));
    let mut env = Env::from_env().await?;
    env.clock = Clock::manual(now.clone());
    let lookup = env::from_env;
    let lambdas = Arc::new(Lambdas {
        env,
        now,
        plan: plan::Settings::from_lookup(lookup)?,
        capacity: capacity::Settings::from_lookup(lookup)?,
        schedule: schedule::Settings::from_lookup(lookup)?,
        dispatch: dispatch::Settings::from_lookup(lookup)?,
        record: record::Settings::from_lookup(lookup)?,
        trigger: trigger::Settings::from_lookup(lookup)?,
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    loop {
        let (stream, _) = listener.accept().await?;
        let lambdas = lambdas.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(lambdas, stream).await {
                eprintln!("ebfleet-lambdas: connection: {e}");
            }
        });
    }
}

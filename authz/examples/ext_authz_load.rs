//! Load generator for `benches/envoy_grpc.sh`: drives gRPC `Check` or HTTP `/auth` with the same
//! request (an allowed member listing projects), at peak (closed loop) or at a fixed rate.
//!
//!   ext_authz_load grpc|auth ADDR [--seconds S] [--conns N] [--inflight N] [--rate R]
//!
//! The secret comes from AUTHZ_SECRET. Prints one line of figures; exits 1 if any request was
//! not allowed, so a misconfigured run cannot pass for a fast one. At a fixed rate, latency is
//! measured from when each request was due, so a stall counts against every request it delayed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::transport::Channel;

const USER: &str = "bob@example.com";
const PATH: &str = "/api/projects?limit=20";

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Grpc,
    Auth,
}

struct Args {
    target: Target,
    addr: String,
    seconds: u64,
    conns: usize,
    inflight: usize,
    rate: Option<u64>,
    secret: String,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let target = match it.next().as_deref() {
        Some("grpc") => Target::Grpc,
        Some("auth") => Target::Auth,
        _ => panic!(
            "usage: ext_authz_load grpc|auth ADDR [--seconds S] [--conns N] [--inflight N] [--rate R]"
        ),
    };
    let addr = it.next().expect("ADDR");
    let mut a = Args {
        target,
        addr,
        seconds: 10,
        conns: 4,
        inflight: 32,
        rate: None,
        secret: std::env::var("AUTHZ_SECRET").expect("AUTHZ_SECRET"),
    };
    while let Some(flag) = it.next() {
        let v: u64 = it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--seconds" => a.seconds = v,
            "--conns" => a.conns = usize::try_from(v).unwrap(),
            "--inflight" => a.inflight = usize::try_from(v).unwrap(),
            "--rate" => a.rate = Some(v),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// One client, cheap to clone, that sends the benchmark's request and says whether it was allowed.
#[derive(Clone)]
enum Client {
    Grpc(AuthorizationClient<Channel>, Arc<CheckRequest>),
    Auth(reqwest::Client, Arc<String>, Arc<String>),
}

impl Client {
    async fn allowed(&mut self) -> bool {
        match self {
            Self::Grpc(c, req) => match c.check(CheckRequest::clone(req)).await {
                Ok(r) => r.into_inner().status.is_some_and(|s| s.code == 0),
                Err(_) => false,
            },
            Self::Auth(c, url, secret) => c
                .get(url.as_str())
                .header("x-proxy-secret", secret.as_str())
                .header("x-user-email", USER)
                .header("x-original-method", "GET")
                .header("x-original-uri", PATH)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
        }
    }
}

async fn clients(a: &Args) -> Vec<Client> {
    match a.target {
        Target::Grpc => {
            let req = Arc::new(CheckRequest {
                attributes: Some(AttributeContext {
                    request: Some(Request {
                        http: Some(HttpRequest {
                            method: "GET".into(),
                            path: PATH.into(),
                            headers: HashMap::from([
                                ("x-proxy-secret".to_string(), a.secret.clone()),
                                ("x-user-email".to_string(), USER.to_string()),
                                (":authority".to_string(), "ipm.example.com".to_string()),
                                ("user-agent".to_string(), "curl/8.5.0".to_string()),
                                ("accept".to_string(), "*/*".to_string()),
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            });
            let mut out = Vec::new();
            for _ in 0..a.conns {
                let ch = Channel::from_shared(format!("http://{}", a.addr))
                    .unwrap()
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .expect("gRPC connects");
                out.push(Client::Grpc(AuthorizationClient::new(ch), req.clone()));
            }
            out
        }
        Target::Auth => {
            let c = reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(a.inflight)
                .build()
                .unwrap();
            vec![Client::Auth(
                c,
                Arc::new(format!("http://{}/auth", a.addr)),
                Arc::new(a.secret.clone()),
            )]
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let clients = clients(&a).await;
    // Warm up connections and caches.
    for c in &clients {
        for _ in 0..100 {
            assert!(
                c.clone().allowed().await,
                "the benchmark request is not allowed"
            );
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for i in 0..a.inflight {
        let mut client = clients[i % clients.len()].clone();
        let period = a
            .rate
            .map(|r| Duration::from_secs_f64(a.inflight as f64 / r as f64));
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut failed = 0u64;
            let mut ticker = period.map(|p| {
                // Spread the workers over one period so the rate is smooth.
                let first = tokio::time::Instant::now() + p.mul_f64(i as f64 / 64.0 % 1.0);
                let mut t = tokio::time::interval_at(first, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            loop {
                let due = match &mut ticker {
                    Some(t) => t.tick().await.into_std(),
                    None => Instant::now(),
                };
                if due >= end {
                    break;
                }
                if !client.allowed().await {
                    failed += 1;
                }
                let us = due.elapsed().as_micros();
                latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            (latencies, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)));
    let name = match a.target {
        Target::Grpc => "grpc_check",
        Target::Auth => "http_auth",
    };
    println!(
        "{name}: {} requests in {elapsed:.1}s = {:.0}/s, p50 {} us, p99 {} us, p99.9 {} us, not allowed {failed}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50).copied().unwrap_or_default(),
        pct(0.99).copied().unwrap_or_default(),
        pct(0.999).copied().unwrap_or_default(),
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

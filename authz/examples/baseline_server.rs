//! The smallest warp server that answers 200 to everything: the baseline `benches/auth_wrk.sh`
//! measures `/auth` against, on the same machine in the same run.

use warp::Filter;

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8190)));
    let route = warp::any().map(warp::reply);
    warp::serve(route).run(addr).await;
}

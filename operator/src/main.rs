//! txu-operator: a small web page for txu's failed-task list.
//!
//! Environment: `PORT` (default 8080; 0 picks a free one), `BIND` (default 127.0.0.1),
//! `REDIS_URL` (default `redis://127.0.0.1:6379`; `redis://user:password@host:port/db`, and
//! `?protocol=resp3` work as in the `redis` crate). The page acts as the URL's user, so that
//! user's ACL applies to everything it shows and does; it keeps no data of its own.

mod api;
mod txu;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_BIND: &str = "127.0.0.1";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

/// The URL with its password left out: `redis://user:secret@host` → `redis://user@host`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let host = &rest[at + 1..];
    if user.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{user}@{host}")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = match env_or("PORT", &DEFAULT_PORT.to_string()).parse::<u16>() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("txu-operator: PORT must be a port number: {e}");
            return ExitCode::from(2);
        }
    };
    let bind = env_or("BIND", DEFAULT_BIND);
    let url = env_or("REDIS_URL", DEFAULT_REDIS_URL);
    let shown = without_password(&url);
    let client = match redis::Client::open(url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("txu-operator: REDIS_URL {shown}: {}", txu::error_text(&e));
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match format!("{bind}:{port}").parse().or_else(|_| {
        // An IPv6 address without brackets.
        format!("[{bind}]:{port}").parse()
    }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("txu-operator: BIND must be an IP address, not {bind:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("txu-operator: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    let app = Arc::new(api::App {
        redis: txu::Redis::new(client),
        page: api::render_page(&shown),
    });
    println!("txu operator on http://{local} (Redis {shown})");
    let served = axum::serve(listener, api::router(app))
        .with_graceful_shutdown(shutdown())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("txu-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        // Without a handler the default action (exit) stays: nothing to wait for here.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn the_printed_url_has_no_password() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://ops:s3cr@t@host:1/0", "redis://ops@host:1/0"),
            ("redis://:pw@host", "redis://host"),
            (
                "rediss://u:p@h:6380/2?protocol=resp3",
                "rediss://u@h:6380/2?protocol=resp3",
            ),
            ("redis://h/0?x=a@b", "redis://h/0?x=a@b"),
            ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
        ];
        for (url, want) in cases {
            assert_eq!(without_password(url), want, "{url}");
        }
    }
}

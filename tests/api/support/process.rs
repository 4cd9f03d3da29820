//! The `payymo` binary as a separate process, and a private redis-server.

use std::{net::TcpListener, process::Stdio, time::Duration};

use sqlx::postgres::PgConnectOptions;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// `payymo` with none of the developer's configuration: only what the test sets.
pub fn payymo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payymo"));
    for name in payymo::config::Config::variable_names() {
        command.env_remove(name);
    }
    command.kill_on_drop(true);
    command
}

/// A running `payymo serve` process.
pub struct Server {
    pub child: Child,
    pub base: String,
}

/// Starts `payymo serve` on a free port with `envs` and waits until it listens. Its log is
/// drained in the background so the pipe never fills.
pub async fn serve(envs: &[(&str, &str)]) -> Server {
    let mut command = payymo();
    command.arg("serve").env("PAYYMO_LISTEN", "127.0.0.1:0").stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening:\n{log}");
    })
    .await
    .expect("the server starts within two minutes");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, base }
}

/// A `DATABASE_URL` for `options` as the test app role, socket or TCP.
pub fn database_url(options: &PgConnectOptions, password: &str) -> String {
    let user = options.get_username();
    let database = options.get_database().unwrap_or("postgres");
    match options.get_socket() {
        Some(dir) => {
            let dir: String = form_urlencoded::byte_serialize(dir.to_string_lossy().as_bytes()).collect();
            format!("postgres://{user}:{password}@localhost/{database}?host={dir}")
        }
        None => format!("postgres://{user}:{password}@{}:{}/{database}", options.get_host(), options.get_port()),
    }
}

/// A Redis for the test: `REDIS_URL` when set, otherwise a private redis-server on a free port.
pub struct Redis {
    pub url: String,
    _child: Option<Child>,
}

pub async fn redis() -> Redis {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.is_empty()
    {
        return Redis { url, _child: None };
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs Redis: install redis-server (apt-get install redis-server) or set REDIS_URL ({e})")
        });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Redis { url: format!("redis://127.0.0.1:{port}"), _child: Some(child) };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}");
}

//! A TCP proxy in front of Postgres that a test can cut, hang or restore, to watch the service
//! lose its database and get it back without a restart.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use sqlx::postgres::PgConnectOptions;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream, UnixStream},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward traffic.
    Up,
    /// Close every connection and refuse new ones at once.
    Down,
    /// Accept connections but never answer (a database that hangs).
    Hang,
}

/// Where the real database listens.
#[derive(Debug, Clone)]
enum Upstream {
    Tcp(String, u16),
    Unix(PathBuf),
}

pub struct DbProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    upstream_options: PgConnectOptions,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl DbProxy {
    /// Starts a proxy to the database `options` point at.
    pub async fn start(options: &PgConnectOptions) -> DbProxy {
        let upstream = match options.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", options.get_port()))),
            None => Upstream::Tcp(options.get_host().to_owned(), options.get_port()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watcher) = watch::channel(Mode::Up);
        let held = Arc::new(Mutex::new(Vec::new()));
        let held_by_task = held.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                match *watcher.borrow() {
                    Mode::Down => drop(client),
                    Mode::Hang => held_by_task.lock().expect("lock").push(client),
                    Mode::Up => {
                        let (upstream, watcher) = (upstream.clone(), watcher.clone());
                        tokio::spawn(forward(client, upstream, watcher));
                    }
                }
            }
        });
        DbProxy { addr, mode, upstream_options: options.clone(), held }
    }

    /// Options that connect through the proxy.
    pub fn connect_options(&self) -> PgConnectOptions {
        let o = &self.upstream_options;
        if o.get_socket().is_none() {
            return o.clone().host("127.0.0.1").port(self.addr.port());
        }
        // Over the proxy the Unix-socket cluster is reached by TCP; its trust auth still applies.
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.addr.port())
            .username(o.get_username())
            .database(o.get_database().unwrap_or("postgres"))
    }

    pub fn set(&self, mode: Mode) {
        if mode == Mode::Up {
            self.held.lock().expect("lock").clear();
        }
        self.mode.send_replace(mode);
    }
}

async fn forward(mut client: TcpStream, upstream: Upstream, mut mode: watch::Receiver<Mode>) {
    match upstream {
        Upstream::Tcp(host, port) => {
            if let Ok(server) = TcpStream::connect((host.as_str(), port)).await {
                pipe(&mut client, server, &mut mode).await;
            }
        }
        Upstream::Unix(path) => {
            if let Ok(server) = UnixStream::connect(path).await {
                pipe(&mut client, server, &mut mode).await;
            }
        }
    }
}

/// Copies both ways until either side closes or the proxy leaves `Up`. In `Hang` the connection
/// stays open and silent, as a stuck database's would; in `Down` it is closed.
async fn pipe<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut TcpStream,
    mut server: S,
    mode: &mut watch::Receiver<Mode>,
) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(client, &mut server) => {}
        _ = mode.wait_for(|m| *m != Mode::Up) => {}
    }
    if *mode.borrow() == Mode::Hang {
        let _ = mode.wait_for(|m| *m != Mode::Hang).await;
    }
}

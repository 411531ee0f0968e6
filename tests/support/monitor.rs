//! Watching what Redis runs: `MONITOR` lines and `INFO commandstats`.

use std::time::Duration;

use super::redis::{Redis, port_of};

/// A `MONITOR` connection: every command the server runs, one line each.
/// Commands a script runs inside Redis are marked ` [0 lua] `; commands from
/// clients carry the client's address.
pub struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl Monitor {
    pub async fn start(redis: &Redis) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port_of(redis.url())))
            .await
            .expect("connect for MONITOR");
        tcp.write_all(b"MONITOR\r\n").await.expect("MONITOR");
        let mut lines = tokio::io::BufReader::new(tcp).lines();
        let ok = lines.next_line().await.expect("MONITOR reply");
        assert_eq!(ok.as_deref(), Some("+OK"));
        Self { lines }
    }

    /// Lines up to (not including) the command that carries `sentinel`.
    pub async fn until(&mut self, sentinel: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("MONITOR went quiet before the sentinel")
                .expect("MONITOR read")
                .expect("MONITOR closed");
            if line.contains(sentinel) {
                return out;
            }
            out.push(line);
        }
    }
}

/// The command name (lower case) of a `MONITOR` line sent by a client;
/// `None` for a command a script ran inside Redis.
pub fn monitor_client_command(line: &str) -> Option<String> {
    if line.contains(" [0 lua] ") {
        return None;
    }
    let (_, rest) = line.split_once("] ")?;
    let name = rest.strip_prefix('"')?.split('"').next()?;
    Some(name.to_ascii_lowercase())
}

/// Calls of one Redis command so far (`INFO commandstats`).
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection, cmd: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let needle = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

//! A minimal HTTP/1.0 responder for `GET /metrics`: one scrape at a time is
//! all Prometheus needs, and it keeps an async runtime out of the daemon.

use bfd::control::Handle;
use bfd::metrics::{CONTENT_TYPE, Metrics};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Serves scrapes until the loop ends.
pub fn serve(listener: TcpListener, handle: Handle, metrics: Metrics) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        if let Err(e) = answer(&mut conn, &handle, &metrics) {
            tracing::debug!(error = %e, "metrics request failed");
        }
        if handle.counters().is_err() {
            return;
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn answer(conn: &mut TcpStream, handle: &Handle, metrics: &Metrics) -> anyhow::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(conn.try_clone()?.take(8192));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Read the headers so the client sees an orderly close.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut words = request.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => {
            metrics.update(&handle.snapshot()?);
            respond(conn, "200 OK", CONTENT_TYPE, &metrics.render()?)?;
        }
        (Some("GET"), _) => respond(conn, "404 Not Found", "text/plain", "try /metrics\n")?,
        _ => respond(conn, "405 Method Not Allowed", "text/plain", "GET only\n")?,
    }
    Ok(())
}

//! HTTP/1.1 over TCP or TLS with hyper's connection API and a small pool
//! of keep-alive connections (no reqwest: hyper is already in the tree).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig as TlsConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::ClientError;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Where the server is: scheme, host and port of a base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Target {
    /// Parses `http://HOST[:PORT]` or `https://HOST[:PORT]` (IPv6 in brackets); no path.
    pub(crate) fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |why: &str| ClientError::BadUrl(format!("{url:?}: {why}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("only scheme://host[:port] is supported"));
        }
        let default = if tls { 443 } else { 80 };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default,
                None => return Err(bad("junk after ']'")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad("bad port"))?),
                None => (rest.to_string(), default),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target { tls, host, port })
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connections to one server.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    target: Target,
    tls: Option<Arc<TlsConfig>>,
    token: Option<HeaderValue>,
    connect_timeout: Duration,
    idle: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl Transport {
    pub(crate) fn new(
        target: Target,
        tls: Option<Arc<TlsConfig>>,
        token: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<Transport, ClientError> {
        let token = token
            .map(|t| {
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| ClientError::BadToken)
            })
            .transpose()?;
        if target.tls && tls.is_none() {
            return Err(ClientError::BadUrl(
                "https:// needs a TLS configuration (a CA file)".into(),
            ));
        }
        Ok(Transport {
            target,
            tls,
            token,
            connect_timeout,
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let t = &self.target;
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((t.host.as_str(), t.port)),
        )
        .await
        .map_err(|_| ClientError::Timeout("connect"))?
        .map_err(ClientError::Connect)?;
        // Small requests and watch lines: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let sender = if t.tls {
            let cfg = self.tls.clone().ok_or(ClientError::BadUrl(
                "https:// needs a TLS configuration".into(),
            ))?;
            let name = ServerName::try_from(t.host.clone())
                .map_err(|e| ClientError::BadUrl(format!("{}: {e}", t.host)))?;
            let s = tokio::time::timeout(
                self.connect_timeout,
                TlsConnector::from(cfg).connect(name, tcp),
            )
            .await
            .map_err(|_| ClientError::Timeout("TLS handshake"))?
            .map_err(ClientError::Connect)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        };
        Ok(sender)
    }

    fn build(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(HOST, self.target.host_header());
        if let Some(t) = &self.token {
            b = b.header(AUTHORIZATION, t.clone());
        }
        if body.is_some() {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(body.cloned().unwrap_or_default()))
            .map_err(|e| ClientError::BadUrl(e.to_string()))
    }

    /// Sends a request; the answer's head, with the connection to return
    /// to the pool once its body is read (`None` for a fresh one-off).
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<(Response<Incoming>, SendRequest<Full<Bytes>>), ClientError> {
        // A pooled connection may have been closed by the server meanwhile;
        // hyper hands the request back if it was never sent, so retrying on
        // a fresh connection cannot apply a write twice.
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut sender) = pooled else { break };
            if sender.ready().await.is_err() {
                continue;
            }
            let req = self.build(&method, path_and_query, body.as_ref())?;
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => {
                    if e.take_message().is_none() {
                        return Err(ClientError::Http(e.into_error()));
                    }
                }
            }
        }
        let mut sender = self.connect().await?;
        let req = self.build(&method, path_and_query, body.as_ref())?;
        let resp = sender.send_request(req).await?;
        Ok((resp, sender))
    }

    /// A whole request/response; returns (status, body).
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ClientError> {
        tokio::time::timeout(timeout, async {
            let (resp, sender) = self.send(method, path_and_query, body).await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            if !sender.is_closed() {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
            Ok((status, bytes))
        })
        .await
        .map_err(|_| ClientError::Timeout("request"))?
    }

    /// A request whose body is read as it arrives (watch): on its own connection.
    pub(crate) async fn stream(
        &self,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        tokio::time::timeout(timeout, async {
            let mut sender = self.connect().await?;
            let req = self.build(&Method::GET, path_and_query, None)?;
            Ok(sender.send_request(req).await?)
        })
        .await
        .map_err(|_| ClientError::Timeout("watch request"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:7480").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 7480));
        let t = Target::parse("https://ctl.example/").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "ctl.example", 443));
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header()),
            ("::1", 8080, "[::1]:8080".into())
        );
        for bad in [
            "ftp://x",
            "127.0.0.1:80",
            "http://",
            "http://x:y",
            "http://x/v1",
            "http://[::1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}

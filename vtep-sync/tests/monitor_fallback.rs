//! The fallback from `monitor_cond` to `monitor` for servers older than
//! OVS 2.6. Installed ovsdb-server has monitor_cond, so this uses a minimal
//! scripted peer on loopback that answers like an old server; the plain
//! `monitor` path itself is tested against the real server in ovsdb_server.rs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vtep_sync::client::{Client, ClientConfig, Event, MonitorConfig};
use vtep_sync::framing::JsonSplitter;
use vtep_sync::replica::MonitorSpec;

#[tokio::test]
async fn falls_back_to_monitor_when_monitor_cond_is_unknown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let schema: Value = serde_json::from_str(include_str!("data/vtep.ovsschema")).unwrap();
    let peer = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut split = JsonSplitter::new(1 << 20);
        let mut buf = [0u8; 4096];
        let mut methods = Vec::new();
        loop {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                return methods;
            }
            split.push(&buf[..n]);
            while let Some(req) = split.next_value().unwrap() {
                let method = req["method"].as_str().unwrap_or_default().to_owned();
                let id = req["id"].clone();
                let reply = match method.as_str() {
                    "get_schema" => json!({"id": id, "result": schema, "error": null}),
                    // What ovsdb-server answers for a method it does not know.
                    "monitor_cond" => json!({"id": id, "error": "unknown method"}),
                    "monitor" => json!({"id": id, "result": {"Logical_Switch": {
                        "6b32a7aa-7854-4da3-a746-cfd068ceb71b": {"new": {"name": "ls0", "tunnel_key": ["set", [5000]]}}
                    }}, "error": null}),
                    _ => json!({"id": id, "result": [], "error": null}),
                };
                methods.push(method);
                sock.write_all(reply.to_string().as_bytes()).await.unwrap();
            }
        }
    });
    let mut cfg = ClientConfig::new(format!("tcp:127.0.0.1:{port}").parse().unwrap());
    let mut tables = MonitorSpec::new();
    tables.insert("Logical_Switch".into(), None);
    cfg.monitor = Some(MonitorConfig {
        db: "hardware_vtep".into(),
        tables,
        prefer_monitor_cond: true,
    });
    let (c, mut ev) = Client::start(cfg).unwrap();
    let synced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ev.recv().await.unwrap() {
                e @ Event::Synced { .. } => return e,
                Event::Disconnected { reason } => panic!("{reason}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        synced,
        Event::Synced {
            monitor_cond: false
        }
    );
    assert_eq!(c.with_replica(|r| r.unwrap().len("Logical_Switch")), 1);
    c.shutdown();
    let methods = peer.await.unwrap();
    assert_eq!(methods, ["get_schema", "monitor_cond", "monitor"]);
}

//! `/metrics` of the real binary after some traffic.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Controller, WatchStream, json, request, start_controller};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format (enough of it for these metrics).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut m = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label");
                    m.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), m)
            }
        };
        out.push((name, labels, value.parse().expect("value")));
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

fn scrape(c: &Controller) -> Vec<Sample> {
    let (s, body) = request(c.addr, "GET", "/metrics", None).unwrap();
    assert_eq!(s, 200);
    parse(&body)
}

#[test]
fn metrics_show_requests_store_and_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let a = c.addr;
    for i in 1..=3 {
        let (s, _) = json(
            a,
            "POST",
            "/v1/logical-switches",
            Some(&format!(r#"{{"name":"s{i}","vni":{i}}}"#)),
        );
        assert_eq!(s, 201);
    }
    assert_eq!(json(a, "GET", "/v1/logical-switches/s1", None).0, 200);
    assert_eq!(json(a, "GET", "/v1/logical-switches/zz", None).0, 404);
    assert_eq!(json(a, "GET", "/v1/nothing/here", None).0, 404);
    assert_eq!(
        json(a, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#)).0,
        201
    );
    let mut w = WatchStream::open(a, "revision=0");
    assert_eq!(w.next_line().unwrap()["revision"], 1);

    let m = scrape(&c);
    let req = "bridgehead_http_requests_total";
    assert_eq!(
        value(
            &m,
            req,
            &[
                ("route", "/v1/logical-switches"),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &m,
            req,
            &[
                ("route", "/v1/logical-switches/{name}"),
                ("method", "GET"),
                ("status", "200")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            req,
            &[("route", "/v1/logical-switches/{name}"), ("status", "404")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, req, &[("route", "other"), ("status", "404")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, req, &[("route", "/v1/watch"), ("status", "200")]),
        Some(1.0)
    );
    let lat = "bridgehead_http_request_duration_seconds";
    assert_eq!(
        value(
            &m,
            &format!("{lat}_count"),
            &[("route", "/v1/logical-switches"), ("method", "POST")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &m,
            &format!("{lat}_bucket"),
            &[
                ("route", "/v1/logical-switches"),
                ("method", "POST"),
                ("le", "+Inf")
            ]
        ),
        Some(3.0)
    );
    assert!(
        value(
            &m,
            &format!("{lat}_sum"),
            &[("route", "/v1/logical-switches")]
        )
        .unwrap()
            > 0.0
    );

    assert_eq!(value(&m, "bridgehead_store_revision", &[]), Some(3.0));
    assert!(value(&m, "bridgehead_raft_term", &[]).unwrap() >= 1.0);
    let commit = value(&m, "bridgehead_raft_commit_index", &[]).unwrap();
    let applied = value(&m, "bridgehead_raft_applied_index", &[]).unwrap();
    // Three creates and a lease grant, after the bootstrap entries.
    assert!(applied >= 4.0 && commit >= applied, "{commit} {applied}");
    assert_eq!(value(&m, "bridgehead_raft_is_leader", &[]), Some(1.0));
    assert_eq!(value(&m, "bridgehead_watchers", &[]), Some(1.0));
    assert!(value(&m, "bridgehead_store_file_bytes", &[]).unwrap() > 0.0);
    assert_eq!(value(&m, "bridgehead_leases", &[]), Some(1.0));
    assert_eq!(
        value(&m, "bridgehead_objects", &[("kind", "logical-switches")]),
        Some(3.0)
    );
    assert!(value(&m, "bridgehead_store_durable_batches", &[]).unwrap() >= 4.0);

    // The watcher gauge drops when the stream's connection goes.
    drop(w);
    let mut gone = false;
    for _ in 0..100 {
        // Writing makes the server notice the closed connection.
        json(
            a,
            "PUT",
            "/v1/logical-switches/s1",
            Some(r#"{"name":"s1","vni":1}"#),
        );
        if value(&scrape(&c), "bridgehead_watchers", &[]) == Some(0.0) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "watcher gauge never dropped");
}

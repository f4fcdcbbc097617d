//! Durability: `kill -9` the controller in the middle of a stream of
//! acknowledged writes, restart it on the same data dir, and every
//! acknowledged write is there, with the revision it was acknowledged at,
//! and revisions continue without a gap.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Controller, WatchStream, json, start_controller};

/// Runs 4 writers until they fail (the process died); returns name -> acknowledged revision.
fn write_until_killed(c: Controller, round: usize, kill_after: usize) -> BTreeMap<String, u64> {
    let addr = c.addr;
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..4 {
        let (acked, count, stop) = (acked.clone(), count.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("r{round}-t{t}-{i}");
                let vni = 1 + (round * 4_000_000 + t * 1_000_000 + i) as u32;
                let body = format!(r#"{{"name":"{name}","vni":{vni}}}"#);
                match common::request(addr, "POST", "/v1/logical-switches", Some(&body)) {
                    Ok((201, b)) => {
                        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .insert(name, v["revision"].as_u64().unwrap());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((s, b)) => panic!("unexpected answer {s}: {b}"),
                    // The process is gone: connection refused or reset mid-request.
                    Err(_) => break,
                }
            }
        }));
    }
    let t0 = Instant::now();
    while count.load(Ordering::Relaxed) < kill_after {
        assert!(t0.elapsed() < Duration::from_secs(60), "writes too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    let rate = count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    // SIGKILL while all four writers are mid-stream.
    c.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "round {round}: {} acknowledged writes before kill -9 ({rate:.0} writes/s, 4 clients)",
        acked.len()
    );
    acked
}

#[test]
fn kill9_mid_stream_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..3 {
        let c = start_controller(dir.path(), &[]);
        all_acked.extend(write_until_killed(c, round, 150));

        let c = start_controller(dir.path(), &[]);
        let (s, list) = json(c.addr, "GET", "/v1/logical-switches", None);
        assert_eq!(s, 200);
        let current = list["revision"].as_u64().unwrap();
        let present: BTreeMap<String, u64> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["object"]["spec"]["name"].as_str().unwrap().to_string(),
                    i["mod_revision"].as_u64().unwrap(),
                )
            })
            .collect();
        for (name, rev) in &all_acked {
            assert_eq!(
                present.get(name),
                Some(rev),
                "acknowledged write {name}@{rev} lost"
            );
        }
        // Unacknowledged writes may or may not have landed, but revisions are
        // dense: one per object here, since each write created one object.
        assert_eq!(current, present.len() as u64);
        let max_acked = all_acked.values().max().copied().unwrap();
        assert!(current >= max_acked);

        // The history is intact: watching from 0 replays 1..=current, in order.
        let mut w = WatchStream::open(c.addr, "revision=0&progress_ms=60000");
        for r in 1..=current {
            let l = w.next_line().unwrap();
            assert_eq!(l["revision"].as_u64(), Some(r), "{l}");
        }
        // Revisions continue.
        let (s, v) = json(
            c.addr,
            "POST",
            "/v1/logical-switches",
            Some(&format!(
                r#"{{"name":"after-{round}","vni":{}}}"#,
                16_000_000 + round
            )),
        );
        assert_eq!(s, 201);
        assert_eq!(v["revision"].as_u64(), Some(current + 1));
        all_acked.insert(format!("after-{round}"), current + 1);
        c.kill9();
    }
}

//! Test support: a real ovsdb-server serving the installed hardware_vtep
//! schema from a temporary directory, stopped by PID when dropped; what the
//! switch's own agent writes into it; the one-switch desired state several
//! tests program; waiting on a reconciler's watch channels.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::model::Replication;
use tokio::sync::watch;
use vtep_sync::desired::{DesiredLogicalSwitch, DesiredState, RemoteTarget};
use vtep_sync::target::Target;

/// The schema installed by the openvswitch-vtep package.
pub const VTEP_SCHEMA: &str = "/usr/share/openvswitch/vtep.ovsschema";

/// A free TCP port on loopback (the listener is closed before use; the
/// window in which another process could take it is small).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates the database file `db` from `schema` with `ovsdb-tool`.
fn create_db(db: &Path, schema: &Path) {
    let out = Command::new("ovsdb-tool")
        .arg("create")
        .arg(db)
        .arg(schema)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ovsdb-tool create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extra listening options for the server.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// Server key, certificate and the CA that signs clients.
    pub key: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// CA certificate.
    pub ca: PathBuf,
}

/// A running ovsdb-server child process.
pub struct OvsdbServer {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub sock: PathBuf,
    pub ctl: PathBuf,
    pub tcp_port: u16,
    pub ssl_port: Option<u16>,
    tls: Option<Tls>,
    child: Option<Child>,
}

impl OvsdbServer {
    /// Creates a fresh database and starts serving it on a unix socket and TCP.
    pub fn start() -> Self {
        Self::start_with_tls(None)
    }

    /// Same, plus an `pssl:` remote when `tls` is given.
    pub fn start_with_tls(tls: Option<Tls>) -> Self {
        Self::start_opts(Path::new(VTEP_SCHEMA), tls)
    }

    /// Serves a database created from another schema file (e.g. an old version).
    pub fn start_with_schema(schema: &Path) -> Self {
        Self::start_opts(schema, None)
    }

    fn start_opts(schema: &Path, tls: Option<Tls>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vtep-sync-ovsdb")
            .tempdir()
            .unwrap();
        let db = dir.path().join("vtep.db");
        create_db(&db, schema);
        let ssl_port = tls.as_ref().map(|_| free_port());
        let mut s = OvsdbServer {
            sock: dir.path().join("db.sock"),
            ctl: dir.path().join("ctl"),
            db,
            dir,
            tcp_port: free_port(),
            ssl_port,
            tls,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ovsdb-server.log"))
            .unwrap();
        let mut cmd = Command::new("/usr/sbin/ovsdb-server");
        cmd.arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(format!("--remote=ptcp:{}:127.0.0.1", self.tcp_port))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg("--no-chdir")
            // Remotes from Manager rows too, as a switch serves them (their
            // inactivity_probe is configurable, unlike command-line remotes).
            .arg("--remote=db:hardware_vtep,Global,managers")
            .arg("-vconsole:info");
        if let (Some(tls), Some(port)) = (&self.tls, self.ssl_port) {
            cmd.arg(format!("--private-key={}", tls.key.display()))
                .arg(format!("--certificate={}", tls.cert.display()))
                .arg(format!("--ca-cert={}", tls.ca.display()))
                .arg(format!("--remote=pssl:{port}:127.0.0.1"));
        }
        cmd.arg(&self.db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start ovsdb-server"));
        // Ready once both the unix socket and the TCP port accept.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let unix_ok = std::os::unix::net::UnixStream::connect(&self.sock).is_ok();
            let tcp_ok = std::net::TcpStream::connect(("127.0.0.1", self.tcp_port)).is_ok();
            if unix_ok && tcp_ok {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ovsdb-server exited with {st}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ovsdb-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ovsdb-server.log")).unwrap_or_default()
    }

    /// Kills the server by PID and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same socket, port and database file.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.sock);
        self.spawn();
    }

    /// Kills the server and starts it on a freshly created, empty database
    /// (a switch that lost its configuration).
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.sock);
        std::fs::remove_file(&self.db).unwrap();
        create_db(&self.db, Path::new(VTEP_SCHEMA));
        self.spawn();
    }

    /// `unix:SOCK`
    pub fn unix_target(&self) -> Target {
        format!("unix:{}", self.sock.display()).parse().unwrap()
    }

    /// `tcp:127.0.0.1:PORT`
    pub fn tcp_target(&self) -> Target {
        format!("tcp:127.0.0.1:{}", self.tcp_port).parse().unwrap()
    }

    /// Runs `vtep-ctl --db=unix:SOCK ARGS` (an independent writer) and returns stdout.
    pub fn vtep_ctl(&self, args: &[&str]) -> String {
        let out = Command::new("vtep-ctl")
            .arg(format!("--db=unix:{}", self.sock.display()))
            .arg("--timeout=10")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vtep-ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the switch's own agent writes first: switch tor1 with tunnel IP
    /// 198.18.0.1 and its `ports`.
    pub fn add_tor1(&self, ports: &[&str]) {
        let mut args = vec![
            "add-ps",
            "tor1",
            "--",
            "set",
            "Physical_Switch",
            "tor1",
            "tunnel_ips=198.18.0.1",
        ];
        for port in ports {
            args.extend(["--", "add-port", "tor1", port]);
        }
        self.vtep_ctl(&args);
    }

    /// The switch learns an IP for a MAC it already has in Ucast_Macs_Local
    /// (as ovs-vtep does from ARP).
    pub fn set_local_mac_ip(&self, mac: &str, ip: &str) {
        let row = self.vtep_ctl(&[
            "--columns=_uuid",
            "--bare",
            "find",
            "Ucast_Macs_Local",
            &format!("MAC=\"{mac}\""),
        ]);
        self.vtep_ctl(&[
            "set",
            "Ucast_Macs_Local",
            row.trim(),
            &format!("ipaddr=\"{ip}\""),
        ]);
    }

    /// The `_uuid` of the Physical_Locator toward `ip`.
    pub fn locator(&self, ip: &str) -> String {
        self.vtep_ctl(&[
            "--columns=_uuid",
            "--bare",
            "find",
            "Physical_Locator",
            &format!("dst_ip=\"{ip}\""),
        ])
        .trim()
        .to_owned()
    }

    /// The switch's agent creates a tunnel on tor1 between the locators
    /// toward `local` and `remote` (both must exist) with `bfd_status`
    /// entries (`KEY=VALUE`), as it does when BFD runs toward a peer.
    pub fn add_tunnel(&self, local: &str, remote: &str, bfd_status: &[&str]) {
        let (local, remote) = (
            format!("local={}", self.locator(local)),
            format!("remote={}", self.locator(remote)),
        );
        let bfd_status: Vec<String> = bfd_status
            .iter()
            .map(|kv| format!("bfd_status:{kv}"))
            .collect();
        let mut args = vec!["--", "--id=@t", "create", "Tunnel", &local, &remote];
        args.extend(bfd_status.iter().map(String::as_str));
        args.extend(["--", "add", "Physical_Switch", "tor1", "tunnels", "@t"]);
        self.vtep_ctl(&args);
    }

    /// Runs `ovsdb-tool transact DB JSON` on the database file (server must be down).
    pub fn offline_transact(&self, json: &str) {
        let out = Command::new("ovsdb-tool")
            .arg("transact")
            .arg(&self.db)
            .arg(json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovsdb-tool transact: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes a CA and a server and a client certificate signed by it with
/// `openssl`, in `dir`. Returns (ca, server cert, server key, client cert, client key).
pub fn make_pki(dir: &Path, prefix: &str) -> [PathBuf; 5] {
    let p = |n: &str| dir.join(format!("{prefix}-{n}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ext = p("ext.cnf");
    std::fs::write(
        &ext,
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n\
         [leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (ca_key, ca) = (p("ca.key"), p("ca.pem"));
    // Debian's default openssl.cnf gives `req -x509` the v3_ca extensions.
    let ca_subject = format!("/CN={prefix} test CA");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "2",
        "-subj",
        &ca_subject,
    ]);
    let leaf = |name: &str| -> (PathBuf, PathBuf) {
        let (key, csr, cert) = (
            p(&format!("{name}.key")),
            p(&format!("{name}.csr")),
            p(&format!("{name}.pem")),
        );
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
            "-subj",
            &format!("/CN={name}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca),
            "-CAkey",
            &s(&ca_key),
            "-CAcreateserial",
            "-out",
            &s(&cert),
            "-days",
            "2",
            "-extfile",
            &s(&ext),
            "-extensions",
            "leaf",
        ]);
        (cert, key)
    };
    let (server_cert, server_key) = leaf("server");
    let (client_cert, client_key) = leaf("client");
    [ca, server_cert, server_key, client_cert, client_key]
}

/// One logical switch "web" (VNI 5001, source-node replication) bound on
/// tor1's port p1 VLAN 10, with one remote MAC behind hv1 (198.18.0.11).
pub fn web_desired() -> DesiredState {
    let mut d = DesiredState::default();
    d.logical_switches.insert(
        "web".into(),
        DesiredLogicalSwitch {
            vni: 5001,
            replication: Replication::SourceNode,
            remote_macs: BTreeMap::from([(
                "02:00:00:00:00:01".parse().unwrap(),
                RemoteTarget {
                    locator: Ipv4Addr::new(198, 18, 0, 11),
                    ip: None,
                },
            )]),
            service_nodes: BTreeSet::new(),
            peers: BTreeSet::from([Ipv4Addr::new(198, 18, 0, 11)]),
        },
    );
    d.bindings
        .insert("p1".into(), BTreeMap::from([(10, "web".to_owned())]));
    d
}

/// Waits up to `limit` for the value on `rx` to satisfy `pred` and returns
/// it; on timeout panics with `what` and the state `current` reports then.
pub async fn until_watched<S: Clone, D: Debug>(
    mut rx: watch::Receiver<S>,
    limit: Duration,
    what: &str,
    pred: impl Fn(&S) -> bool,
    current: impl FnOnce() -> D,
) -> S {
    let res = tokio::time::timeout(limit, async {
        loop {
            {
                let s = rx.borrow_and_update();
                if pred(&s) {
                    return s.clone();
                }
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    res.unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", current()))
}

//! `bridgehead-ctl`: the operators' command line for the controller.
//!
//! ```text
//! bridgehead-ctl [--server URL] [--token T] [--ca FILE] [-o table|json] COMMAND
//!   create KIND (flags | -f FILE|-) [--lease ID]   create (observed kinds: PUT under --lease)
//!   replace KIND -f FILE|-                         create or replace (PUT)
//!   get KIND NAME                                  one object (NAME: key, e.g. web/02:00:00:00:00:01)
//!   list [KIND|all]                                objects at one revision
//!   delete KIND NAME
//!   watch [--from REV] [--kinds K1,K2]             stream changes
//!   lease grant --ttl-ms N | renew ID | revoke ID | list
//! ```
//!
//! KIND is a path segment (`logical-switches`), its singular
//! (`logical-switch`) or `ls`, `tn`, `gg`. Errors print the server's field and reason and exit 1.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use api::client::{Client, ClientConfig, ClientError, Method};
use api::model::{Key, Kind};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "bridgehead-ctl",
    version,
    about = "Operate the Bridgehead controller"
)]
struct Cli {
    /// Controller URL.
    #[arg(
        long,
        env = "BRIDGEHEAD_SERVER",
        default_value = "http://127.0.0.1:7480"
    )]
    server: String,
    /// Bearer token.
    #[arg(long, env = "BRIDGEHEAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA file to trust for https.
    #[arg(long, env = "BRIDGEHEAD_CA")]
    ca: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns for people.
    Table,
    /// The server's JSON, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create an object from flags or a JSON file.
    Create {
        /// Kind, e.g. logical-switch.
        kind: String,
        #[command(flatten)]
        fields: Box<Fields>,
        /// Read the object from a JSON file ('-' for stdin) instead of flags.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Lease of an observed object.
        #[arg(long)]
        lease: Option<u64>,
    },
    /// Create or replace an object from a JSON file.
    Replace {
        /// Kind.
        kind: String,
        /// JSON file ('-' for stdin).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Lease of an observed object.
        #[arg(long)]
        lease: Option<u64>,
    },
    /// Show one object.
    Get {
        /// Kind.
        kind: String,
        /// Name (key), e.g. `web` or `web/02:00:00:00:00:01`.
        name: String,
    },
    /// List objects of a kind, or everything.
    List {
        /// Kind, or `all`.
        #[arg(default_value = "all")]
        kind: String,
    },
    /// Delete an object.
    Delete {
        /// Kind.
        kind: String,
        /// Name (key).
        name: String,
    },
    /// Stream changes.
    Watch {
        /// Start after this revision (default: now).
        #[arg(long)]
        from: Option<u64>,
        /// Only these kinds (comma-separated).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// Leases.
    #[command(subcommand)]
    Lease(LeaseCmd),
}

#[derive(Debug, Subcommand)]
enum LeaseCmd {
    /// Grant a lease.
    Grant {
        /// Time to live in ms.
        #[arg(long)]
        ttl_ms: u64,
    },
    /// Renew a lease.
    Renew {
        /// Lease id.
        id: u64,
    },
    /// Revoke a lease (deletes what hangs off it).
    Revoke {
        /// Lease id.
        id: u64,
    },
    /// List leases.
    List,
}

/// Flags that build an object; which apply depends on the kind.
#[derive(Debug, Args, Default)]
struct Fields {
    /// Name (logical-switch, transport-node, gateway-group, binding).
    #[arg(long)]
    name: Option<String>,
    /// VNI (logical-switch).
    #[arg(long)]
    vni: Option<u64>,
    /// service_node or source_node (logical-switch).
    #[arg(long)]
    replication: Option<String>,
    /// hypervisor, gateway, service_node or hardware_switch (transport-node).
    #[arg(long)]
    node_kind: Option<String>,
    /// Tunnel IP (transport-node).
    #[arg(long)]
    tunnel_ip: Option<String>,
    /// OVSDB target, e.g. tcp:198.18.1.9:6640 (transport-node, hardware_switch).
    #[arg(long)]
    ovsdb_target: Option<String>,
    /// BFD desired min TX interval, ms (transport-node).
    #[arg(long)]
    bfd_min_tx_ms: Option<u64>,
    /// BFD required min RX interval, ms (transport-node).
    #[arg(long)]
    bfd_min_rx_ms: Option<u64>,
    /// BFD detection multiplier (transport-node).
    #[arg(long)]
    bfd_detect_mult: Option<u64>,
    /// Disable BFD toward the node (transport-node).
    #[arg(long)]
    bfd_disabled: bool,
    /// Member `NODE:MEPID[:PRIORITY]`, repeatable (gateway-group).
    #[arg(long = "member")]
    members: Vec<String>,
    /// Group VTEP IP (gateway-group).
    #[arg(long)]
    vtep_ip: Option<String>,
    /// Physical interface (gateway-group).
    #[arg(long)]
    physical_interface: Option<String>,
    /// CFM maintenance association name (gateway-group).
    #[arg(long)]
    ma_name: Option<String>,
    /// CCM interval, ms (gateway-group).
    #[arg(long)]
    interval_ms: Option<u64>,
    /// Maintenance domain level (gateway-group).
    #[arg(long)]
    md_level: Option<u64>,
    /// Logical switch (binding, remote-mac).
    #[arg(long)]
    logical_switch: Option<String>,
    /// VLAN, 0 = untagged (binding).
    #[arg(long)]
    vlan: Option<u64>,
    /// Hardware switch of the attachment (binding; with --port).
    #[arg(long)]
    switch: Option<String>,
    /// Switch port of the attachment (binding; with --switch).
    #[arg(long)]
    port: Option<String>,
    /// Gateway group of the attachment (binding).
    #[arg(long)]
    group: Option<String>,
    /// MAC (remote-mac).
    #[arg(long)]
    mac: Option<String>,
    /// IP (remote-mac, optional).
    #[arg(long)]
    ip: Option<String>,
    /// Transport node (remote-mac).
    #[arg(long)]
    transport_node: Option<String>,
}

/// A kind from its path segment or singular name.
fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    let s = s.trim().to_ascii_lowercase().replace('_', "-");
    let short = match s.as_str() {
        "ls" => Some(Kind::LogicalSwitch),
        "tn" => Some(Kind::TransportNode),
        "gg" => Some(Kind::GatewayGroup),
        _ => None,
    };
    if let Some(k) = short {
        return Ok(k);
    }
    for k in Kind::ALL {
        let seg = k.segment();
        let singular = seg
            .strip_suffix("es")
            .filter(|x| x.ends_with("ch"))
            .or_else(|| seg.strip_suffix('s'))
            .unwrap_or(seg);
        if s == seg || s == singular {
            return Ok(k);
        }
    }
    let all: Vec<&str> = Kind::ALL.iter().map(|k| k.segment()).collect();
    bail!("unknown kind {s:?}; one of: {}", all.join(", "))
}

/// Builds a spec from flags, refusing flags that do not belong to the kind.
fn spec_from_flags(kind: Kind, f: &Fields) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut used: Vec<&str> = Vec::new();
    macro_rules! put {
        ($flag:literal, $field:literal, $v:expr) => {
            if let Some(v) = &$v {
                m.insert($field.to_string(), json!(v));
                used.push($flag);
            }
        };
    }
    match kind {
        Kind::LogicalSwitch => {
            put!("name", "name", f.name);
            put!("vni", "vni", f.vni);
            put!("replication", "replication", f.replication);
        }
        Kind::TransportNode => {
            put!("name", "name", f.name);
            put!("node-kind", "kind", f.node_kind);
            put!("tunnel-ip", "tunnel_ip", f.tunnel_ip);
            put!("ovsdb-target", "ovsdb_target", f.ovsdb_target);
            let mut bfd = Map::new();
            for (flag, field, v) in [
                ("bfd-min-tx-ms", "min_tx_ms", f.bfd_min_tx_ms),
                ("bfd-min-rx-ms", "min_rx_ms", f.bfd_min_rx_ms),
                ("bfd-detect-mult", "detect_mult", f.bfd_detect_mult),
            ] {
                if let Some(v) = v {
                    bfd.insert(field.into(), json!(v));
                    used.push(flag);
                }
            }
            if f.bfd_disabled {
                bfd.insert("enabled".into(), json!(false));
                used.push("bfd-disabled");
            }
            if !bfd.is_empty() {
                m.insert("bfd".into(), Value::Object(bfd));
            }
        }
        Kind::GatewayGroup => {
            put!("name", "name", f.name);
            put!("vtep-ip", "vtep_ip", f.vtep_ip);
            put!(
                "physical-interface",
                "physical_interface",
                f.physical_interface
            );
            let mut members = Vec::new();
            for s in &f.members {
                let parts: Vec<&str> = s.split(':').collect();
                let num = |p: &str, what: &str| -> anyhow::Result<u64> {
                    p.parse()
                        .with_context(|| format!("--member {s:?}: {what} {p:?} is not a number"))
                };
                let mut mem = Map::new();
                match parts.as_slice() {
                    [node, mep] | [node, mep, _] => {
                        mem.insert("node".into(), json!(node));
                        mem.insert("mep_id".into(), json!(num(mep, "MEP id")?));
                    }
                    _ => bail!("--member {s:?}: want NODE:MEPID[:PRIORITY]"),
                }
                if let [_, _, prio] = parts.as_slice() {
                    mem.insert("priority".into(), json!(num(prio, "priority")?));
                }
                members.push(Value::Object(mem));
            }
            if !f.members.is_empty() {
                m.insert("members".into(), Value::Array(members));
                used.push("member");
            }
            let mut el = Map::new();
            for (flag, field, v) in [
                (
                    "interval-ms",
                    "interval_ms",
                    f.interval_ms.map(|v| json!(v)),
                ),
                ("md-level", "md_level", f.md_level.map(|v| json!(v))),
                ("ma-name", "ma_name", f.ma_name.as_ref().map(|v| json!(v))),
            ] {
                if let Some(v) = v {
                    el.insert(field.into(), v);
                    used.push(flag);
                }
            }
            if !el.is_empty() {
                m.insert("election".into(), Value::Object(el));
            }
        }
        Kind::Binding => {
            put!("name", "name", f.name);
            put!("logical-switch", "logical_switch", f.logical_switch);
            put!("vlan", "vlan", f.vlan);
            let att = match (&f.switch, &f.port, &f.group) {
                (None, None, None) => None,
                (s, p, None) if s.is_some() || p.is_some() => {
                    used.extend(["switch", "port"]);
                    Some(json!({"type": "hardware_switch", "switch": s, "port": p}))
                }
                (None, None, Some(g)) => {
                    used.push("group");
                    Some(json!({"type": "gateway_group", "group": g}))
                }
                _ => bail!("a binding attaches to --switch and --port, or to --group, not both"),
            };
            if let Some(a) = att {
                // Drop nulls so the server names the missing field.
                let a: Map<String, Value> = a
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                m.insert("attachment".into(), Value::Object(a));
            }
        }
        Kind::RemoteMac => {
            put!("logical-switch", "logical_switch", f.logical_switch);
            put!("mac", "mac", f.mac);
            put!("ip", "ip", f.ip);
            put!("transport-node", "transport_node", f.transport_node);
        }
        k => bail!(
            "{} is observed state: write it with -f FILE --lease ID",
            k.segment()
        ),
    }
    // Every flag given must have been used by this kind.
    let given: Vec<(&str, bool)> = vec![
        ("name", f.name.is_some()),
        ("vni", f.vni.is_some()),
        ("replication", f.replication.is_some()),
        ("node-kind", f.node_kind.is_some()),
        ("tunnel-ip", f.tunnel_ip.is_some()),
        ("ovsdb-target", f.ovsdb_target.is_some()),
        ("bfd-min-tx-ms", f.bfd_min_tx_ms.is_some()),
        ("bfd-min-rx-ms", f.bfd_min_rx_ms.is_some()),
        ("bfd-detect-mult", f.bfd_detect_mult.is_some()),
        ("bfd-disabled", f.bfd_disabled),
        ("member", !f.members.is_empty()),
        ("vtep-ip", f.vtep_ip.is_some()),
        ("physical-interface", f.physical_interface.is_some()),
        ("ma-name", f.ma_name.is_some()),
        ("interval-ms", f.interval_ms.is_some()),
        ("md-level", f.md_level.is_some()),
        ("logical-switch", f.logical_switch.is_some()),
        ("vlan", f.vlan.is_some()),
        ("switch", f.switch.is_some()),
        ("port", f.port.is_some()),
        ("group", f.group.is_some()),
        ("mac", f.mac.is_some()),
        ("ip", f.ip.is_some()),
        ("transport-node", f.transport_node.is_some()),
    ];
    let stray: Vec<String> = given
        .iter()
        .filter(|(flag, set)| *set && !used.contains(flag))
        .map(|(flag, _)| format!("--{flag}"))
        .collect();
    if !stray.is_empty() {
        let verb = if stray.len() == 1 { "does" } else { "do" };
        bail!(
            "{} {verb} not apply to {}",
            stray.join(", "),
            kind.segment()
        );
    }
    Ok(Value::Object(m))
}

fn read_file(path: &PathBuf) -> anyhow::Result<Value> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Path of one object from its kind and name, segments percent-encoded.
fn item_path(kind: Kind, name: &str) -> String {
    api::client::object_path(&Key::new(kind, name))
}

/// The key an object spec will have (the server's own rule: identifying fields joined by '/').
fn key_of(kind: Kind, spec: &Value) -> anyhow::Result<String> {
    let s = |f: &str| -> anyhow::Result<String> {
        spec[f]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the object has no string field {f:?}"))
    };
    // The server spells MACs in keys lower-case (and accepts either in paths).
    let mac = || s("mac").map(|m| m.to_ascii_lowercase());
    Ok(match kind {
        Kind::RemoteMac => format!("{}/{}", s("logical_switch")?, mac()?),
        Kind::LearnedMac => format!("{}/{}/{}", s("reporter")?, s("logical_switch")?, mac()?),
        Kind::TunnelStatus => format!("{}/{}", s("reporter")?, s("remote_ip")?),
        Kind::ElectionState => format!("{}/{}", s("group")?, s("member")?),
        Kind::SwitchStatus => s("switch")?,
        _ => s("name")?,
    })
}

/// Table columns per kind: header and where in the stored object.
fn columns(kind: Kind) -> Vec<(&'static str, &'static str)> {
    match kind {
        Kind::LogicalSwitch => vec![
            ("NAME", "name"),
            ("VNI", "vni"),
            ("REPLICATION", "replication"),
        ],
        Kind::TransportNode => vec![
            ("NAME", "name"),
            ("KIND", "kind"),
            ("TUNNEL_IP", "tunnel_ip"),
            ("OVSDB_TARGET", "ovsdb_target"),
        ],
        Kind::GatewayGroup => vec![
            ("NAME", "name"),
            ("VTEP_IP", "vtep_ip"),
            ("INTERFACE", "physical_interface"),
            ("MEMBERS", "members"),
        ],
        Kind::Binding => vec![
            ("NAME", "name"),
            ("LOGICAL_SWITCH", "logical_switch"),
            ("ATTACHMENT", "attachment"),
            ("VLAN", "vlan"),
        ],
        Kind::RemoteMac => vec![
            ("LOGICAL_SWITCH", "logical_switch"),
            ("MAC", "mac"),
            ("IP", "ip"),
            ("TRANSPORT_NODE", "transport_node"),
        ],
        Kind::LearnedMac => vec![
            ("REPORTER", "reporter"),
            ("LOGICAL_SWITCH", "logical_switch"),
            ("MAC", "mac"),
            ("IP", "ip"),
        ],
        Kind::TunnelStatus => vec![
            ("REPORTER", "reporter"),
            ("REMOTE_IP", "remote_ip"),
            ("STATE", "state"),
            ("DIAG", "diag"),
        ],
        Kind::ElectionState => vec![
            ("GROUP", "group"),
            ("MEMBER", "member"),
            ("ROLE", "role"),
            ("LEADER", "leader"),
        ],
        Kind::SwitchStatus => vec![
            ("SWITCH", "switch"),
            ("CONNECTED", "connected"),
            ("FAULTS", "faults"),
        ],
    }
}

/// One cell: strings bare, lists joined, objects summarised.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) => {
            // Attachments and members read best as their values.
            if let Some(node) = o.get("node") {
                let mut s = format!("{}:{}", cell(node), cell(&o["mep_id"]));
                if let Some(p) = o.get("priority").filter(|p| **p != json!(0)) {
                    s.push_str(&format!(":{}", cell(p)));
                }
                return s;
            }
            if let (Some(sw), Some(port)) = (o.get("switch"), o.get("port")) {
                return format!("{}:{}", cell(sw), cell(port));
            }
            o.iter()
                .filter(|(k, _)| k.as_str() != "type")
                .map(|(_, v)| cell(v))
                .collect::<Vec<_>>()
                .join("/")
        }
        other => other.to_string(),
    }
}

fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Prints stored objects as a table (one kind: its columns; mixed: kind and key).
fn print_objects(out: &mut impl Write, kind: Option<Kind>, items: &[Value]) -> std::io::Result<()> {
    match kind {
        Some(k) => {
            let cols = columns(k);
            let mut header: Vec<&str> = cols.iter().map(|c| c.0).collect();
            header.extend(["LEASE", "MOD_REV"]);
            if !k.is_observed() {
                header.retain(|h| *h != "LEASE");
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|s| {
                    let spec = &s["object"]["spec"];
                    let mut r: Vec<String> = cols.iter().map(|c| cell(&spec[c.1])).collect();
                    if k.is_observed() {
                        r.push(cell(&s["lease"]));
                    }
                    r.push(cell(&s["mod_revision"]));
                    r
                })
                .collect();
            print_table(out, &header, &rows)
        }
        None => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|s| {
                    let kind = s["object"]["kind"].as_str().unwrap_or("?").to_string();
                    let key = serde_json::from_value::<api::model::Object>(s["object"].clone())
                        .map(|o| o.key().to_string())
                        .unwrap_or_else(|_| "?".into());
                    vec![kind, key, cell(&s["mod_revision"])]
                })
                .collect();
            print_table(out, &["KIND", "KEY", "MOD_REV"], &rows)
        }
    }
}

fn print_json(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::new(&cli.server);
    cfg.token = cli.token.clone();
    cfg.ca_file = cli.ca.clone();
    let client = Client::new(cfg)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let json_out = cli.output == Output::Json;
    match cli.cmd {
        Cmd::Create {
            kind,
            fields,
            file,
            lease,
        } => {
            let kind = parse_kind(&kind)?;
            let spec = match file {
                Some(f) => {
                    let given = spec_from_flags(kind, &fields).ok();
                    if given.is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
                        bail!("give either -f or field flags, not both");
                    }
                    read_file(&f)?
                }
                None => spec_from_flags(kind, &fields)?,
            };
            let ans = if kind.is_observed() {
                let lease = lease.context("observed state needs --lease ID")?;
                let path = format!("{}?lease={lease}", item_path(kind, &key_of(kind, &spec)?));
                client.request_json(Method::PUT, &path, Some(&spec)).await?
            } else {
                if lease.is_some() {
                    bail!("--lease is only for observed state");
                }
                client
                    .request_json(Method::POST, &kind.collection_path(), Some(&spec))
                    .await?
            };
            written(&mut out, json_out, "created", kind, &ans)?;
        }
        Cmd::Replace { kind, file, lease } => {
            let kind = parse_kind(&kind)?;
            let spec = read_file(&file)?;
            let mut path = item_path(kind, &key_of(kind, &spec)?);
            match (kind.is_observed(), lease) {
                (true, Some(l)) => path.push_str(&format!("?lease={l}")),
                (true, None) => bail!("observed state needs --lease ID"),
                (false, Some(_)) => bail!("--lease is only for observed state"),
                (false, None) => {}
            }
            let ans = client.request_json(Method::PUT, &path, Some(&spec)).await?;
            written(&mut out, json_out, "replaced", kind, &ans)?;
        }
        Cmd::Get { kind, name } => {
            let kind = parse_kind(&kind)?;
            let ans = client
                .request_json(Method::GET, &item_path(kind, &name), None)
                .await?;
            if json_out {
                print_json(&mut out, &ans)?;
            } else {
                print_objects(&mut out, Some(kind), &[ans])?;
            }
        }
        Cmd::List { kind } => {
            let kind = match kind.as_str() {
                "all" => None,
                k => Some(parse_kind(k)?),
            };
            let path = kind
                .map(Kind::collection_path)
                .unwrap_or_else(|| "/v1/state".into());
            let ans = client.request_json(Method::GET, &path, None).await?;
            if json_out {
                print_json(&mut out, &ans)?;
            } else {
                let items = ans["items"].as_array().cloned().unwrap_or_default();
                print_objects(&mut out, kind, &items)?;
                writeln!(out, "(revision {})", cell(&ans["revision"]))?;
            }
        }
        Cmd::Delete { kind, name } => {
            let kind = parse_kind(&kind)?;
            let ans = client
                .request_json(Method::DELETE, &item_path(kind, &name), None)
                .await?;
            if json_out {
                print_json(&mut out, &ans)?;
            } else {
                writeln!(
                    out,
                    "deleted {}/{name} at revision {}",
                    kind.segment(),
                    cell(&ans["revision"])
                )?;
            }
        }
        Cmd::Watch { from, kinds } => {
            let kinds: Vec<Kind> = kinds
                .iter()
                .map(|k| parse_kind(k))
                .collect::<Result<_, _>>()?;
            let from = match from {
                Some(r) => r,
                None => client.list(None).await?.revision,
            };
            let ks = (!kinds.is_empty()).then_some(kinds.as_slice());
            let mut w = client.watch(from, ks).await?;
            if !json_out {
                writeln!(out, "{:<8}  {:<6}  KEY", "REV", "TYPE")?;
                out.flush()?;
            }
            while let Some(m) = w.next().await {
                let m = m?;
                if json_out {
                    writeln!(out, "{}", serde_json::to_string(&m)?)?;
                } else {
                    match &m {
                        api::watch::WatchMessage::Events { revision, events } => {
                            for e in events {
                                let t = serde_json::to_value(e.event_type)?;
                                writeln!(out, "{revision:<8}  {:<6}  {}", cell(&t), e.key)?;
                            }
                        }
                        api::watch::WatchMessage::Progress { .. } => {}
                        api::watch::WatchMessage::Compacted { floor, current } => {
                            bail!(
                                "history compacted (floor {floor}, current {current}): start again with --from {current}"
                            )
                        }
                    }
                }
                out.flush()?;
            }
            bail!("the server ended the watch stream");
        }
        Cmd::Lease(l) => {
            let (method, path, body) = match l {
                LeaseCmd::Grant { ttl_ms } => (
                    Method::POST,
                    "/v1/leases".to_string(),
                    Some(json!({"ttl_ms": ttl_ms})),
                ),
                LeaseCmd::Renew { id } => (Method::POST, format!("/v1/leases/{id}/renew"), None),
                LeaseCmd::Revoke { id } => (Method::DELETE, format!("/v1/leases/{id}"), None),
                LeaseCmd::List => (Method::GET, "/v1/leases".to_string(), None),
            };
            let ans = client.request_json(method, &path, body.as_ref()).await?;
            if json_out {
                print_json(&mut out, &ans)?;
            } else {
                let leases = match &ans {
                    Value::Array(a) => a.clone(),
                    Value::Object(o) if o.contains_key("id") => vec![ans.clone()],
                    _ => {
                        writeln!(out, "revoked at revision {}", cell(&ans["revision"]))?;
                        return Ok(());
                    }
                };
                let rows: Vec<Vec<String>> = leases
                    .iter()
                    .map(|l| {
                        ["id", "ttl_ms", "expires_at_ms", "owner"]
                            .iter()
                            .map(|f| cell(&l[*f]))
                            .collect()
                    })
                    .collect();
                print_table(&mut out, &["ID", "TTL_MS", "EXPIRES_AT_MS", "OWNER"], &rows)?;
            }
        }
    }
    Ok(())
}

fn written(
    out: &mut impl Write,
    json_out: bool,
    verb: &str,
    kind: Kind,
    ans: &Value,
) -> anyhow::Result<()> {
    if json_out {
        print_json(out, ans)?;
    } else {
        let key = serde_json::from_value::<api::model::Object>(ans["value"]["object"].clone())
            .map(|o| o.key().to_string())
            .unwrap_or_else(|_| kind.segment().to_string());
        writeln!(out, "{verb} {key} at revision {}", cell(&ans["revision"]))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ClientError>() {
                Some(ClientError::Api {
                    status,
                    error,
                    errors,
                    reason,
                    ..
                }) => {
                    eprintln!("error: {status} {error}");
                    if errors.is_empty() {
                        eprintln!("  {reason}");
                    }
                    for fe in errors {
                        eprintln!("  {}: {}", fe.field, fe.reason);
                    }
                }
                _ => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

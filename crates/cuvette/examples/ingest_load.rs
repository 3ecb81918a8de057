//! End-to-end ingest under load: HL7 ORU^R01 over MLLP into a real lab, against the raw insert
//! rate of the same rows into the same database engine, in one process and one run.
//!
//! `cargo run --release -p cuvette --example ingest_load -- [--specimens N] [--connections C]
//! [--tests K] [--database postgres://…] [--dir DIR] [--keep] [--probe M]` (`bench/ingest.sh`
//! runs it).
//!
//! 1. **Prepare** a fresh lab (a SQLite file under `--dir`, or a new database on the PostgreSQL
//!    server named by `--database`): one HL7 instrument with its code map (the eight BMP tests
//!    by LOINC code), and N patients each with an order, collected and received. With
//!    `--tests 8` (the default) the order is the BMP panel: eight measured tests plus the two
//!    calculations the panel carries (anion gap, eGFR). With `--tests K` < 8 it is the first K
//!    BMP tests ordered one by one, and no calculation.
//! 2. **Ingest**: the MLLP listener (`cuvette_server::interfaces::mllp`) serves that lab on
//!    127.0.0.1:0 in this process; C connections each send their share of the N messages (one
//!    ORU^R01 per specimen, every result mapped), waiting for each ACK before sending the next
//!    (MLLP). Every rule runs as in production: decoding, mapping, evaluation against the
//!    reference intervals, calculations, the audit chain, the message log, one transaction per
//!    message with `synchronous = FULL`. Reported: results/s committed and acknowledged (CA),
//!    and the ACK latency (send → ACK read) p50/p99.
//! 3. **Raw baseline**: a second fresh database on the same engine, same pragmas (SQLite: WAL,
//!    `synchronous = FULL`, foreign keys on, `BEGIN IMMEDIATE`), its schema made by Cuvette's
//!    own migrations (`Store::open`), so every column, constraint, index and foreign key of
//!    `result` and `interface_message` is the one the ingest pays for. Before the clock starts
//!    it gets what those rows refer to (an instrument, and per message an order, a specimen and
//!    its ordered tests). The very rows the ingest stored — each message's measured result rows
//!    and its message-log row, copied from the ingest database — are then inserted again, one
//!    transaction and one commit per message, by C concurrent writers. Reported: result
//!    rows/s (and transactions/s).
//! 4. **Ratio** ingest results/s ÷ raw rows/s (1.0 would mean Cuvette costs nothing over
//!    writing its result rows), and a **probe** of where the time goes: the ingest's own
//!    pre-commit time per message (`interface_message.processed_us`), and the reads an ingest
//!    makes (all before its transaction but the calculations' one), replayed one message at a
//!    time through the store's public API beneath the app (`cuvette-store`, a dev-dependency
//!    for this example alone), on the database before the load and after it.
//!
//! The last line is for scripts: `RESULT ingest_results_per_s=… raw_rows_per_s=… ratio=… …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use cuvette_app::{Actor, IdentityCheck, Lab, LabConfig, PlaceOrder, RegisterPatient, SystemClock};
use cuvette_domain::workflow::{Priority, TestStatus};
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_store::{
    Direction, MessageOutcome, NewOrder, NewOrderedTest, NewPatient, NewSpecimen, Protocol, Store,
    WorklistFilter,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The BMP as an analyser reports it: (catalog code, LOINC sent in OBX-3, name, unit, low,
/// high, decimals).
const BMP: [(&str, &str, &str, &str, f64, f64, usize); 8] = [
    ("NA", "2951-2", "Sodium", "mmol/L", 135.0, 145.0, 0),
    ("K", "2823-3", "Potassium", "mmol/L", 3.5, 5.1, 1),
    ("CL", "2075-0", "Chloride", "mmol/L", 98.0, 107.0, 0),
    ("CO2", "2028-9", "Carbon dioxide, total", "mmol/L", 22.0, 29.0, 0),
    ("BUN", "3094-0", "Urea nitrogen", "mg/dL", 6.0, 20.0, 0),
    ("CREAT", "2160-0", "Creatinine", "mg/dL", 0.6, 1.1, 2),
    ("GLU", "2345-7", "Glucose", "mg/dL", 70.0, 99.0, 0),
    ("CA", "17861-6", "Calcium", "mg/dL", 8.6, 10.3, 1),
];

/// What MSH-3 says; the instrument is registered under it.
const SENDER: &str = "BENCHCHEM";

#[derive(Parser, Debug)]
#[command(about = "End-to-end HL7/MLLP ingest load against the raw insert rate of the same rows")]
struct Args {
    /// Specimens prepared, and messages sent (one per specimen).
    #[arg(long, default_value_t = 1000)]
    specimens: usize,
    /// Concurrent MLLP connections, and concurrent writers in the raw baseline.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Results per message: 8 orders the BMP panel (with its calculations); fewer orders the
    /// first K BMP tests alone (no calculation).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=8))]
    tests: u8,
    /// A PostgreSQL server (`postgres://user:pw@host:5432/db`) to run on instead of SQLite:
    /// two fresh databases are created on it and dropped afterwards.
    #[arg(long)]
    database: Option<String>,
    /// Where the SQLite files go (default: a new directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the databases afterwards.
    #[arg(long)]
    keep: bool,
    /// Messages replayed in the read probe (0 skips it).
    #[arg(long, default_value_t = 200)]
    probe: usize,
    /// Switch autoverification on for every test sent: each test gets a control material, a
    /// target and an acceptable QC run, and an approved rule set (the catalog's defaults,
    /// enabled), so every result is judged by QC state, delta, ranges and the rest, and those
    /// that pass are released before the ACK.
    #[arg(long)]
    autoverify: bool,
}

/// Where the two databases live.
enum Place {
    Sqlite { dir: PathBuf },
    Postgres { admin_url: String, ingest: String, raw: String },
}

impl Place {
    fn ingest_url(&self) -> String {
        match self {
            Place::Sqlite { dir } => {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.join("ingest").join("cuvette.sqlite3").display()
                )
            }
            Place::Postgres { admin_url, ingest, .. } => with_database(admin_url, ingest),
        }
    }

    fn raw_url(&self) -> String {
        match self {
            Place::Sqlite { dir } => {
                format!("sqlite://{}?mode=rwc", dir.join("raw").join("raw.sqlite3").display())
            }
            Place::Postgres { admin_url, raw, .. } => with_database(admin_url, raw),
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Place::Postgres { .. })
    }

    async fn create(args: &Args) -> anyhow::Result<Place> {
        let tag = format!("{}_{}", std::process::id(), now_micros());
        match &args.database {
            Some(url) => {
                ensure!(
                    url.starts_with("postgres:") || url.starts_with("postgresql:"),
                    "--database takes a postgres:// URL (SQLite is the default)"
                );
                let mut admin = sqlx::postgres::PgConnection::connect(url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?;
                let (ingest, raw) =
                    (format!("cuvette_bench_{tag}_in"), format!("cuvette_bench_{tag}_raw"));
                for name in [&ingest, &raw] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut admin)
                        .await
                        .with_context(|| format!("creating database {name}"))?;
                }
                admin.close().await.ok();
                Ok(Place::Postgres { admin_url: url.clone(), ingest, raw })
            }
            None => {
                let dir = match &args.dir {
                    Some(d) => d.join(format!("cuvette-bench-{tag}")),
                    None => std::env::temp_dir().join(format!("cuvette-bench-{tag}")),
                };
                std::fs::create_dir_all(dir.join("ingest"))?;
                std::fs::create_dir_all(dir.join("raw"))?;
                Ok(Place::Sqlite { dir })
            }
        }
    }

    async fn remove(&self) {
        match self {
            Place::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Place::Postgres { admin_url, ingest, raw } => {
                if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(admin_url).await {
                    for name in [ingest, raw] {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                    let _ = admin.close().await;
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Place::Sqlite { dir } => format!("SQLite files under {}", dir.display()),
            Place::Postgres { admin_url, ingest, raw } => {
                format!("PostgreSQL databases {ingest} and {raw} on {}", redact(admin_url))
            }
        }
    }
}

/// Now, in microseconds, from the lab's system clock (names the databases).
fn now_micros() -> i64 {
    cuvette_app::Clock::now(&SystemClock).as_microsecond()
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{name}?{q}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// A tiny deterministic generator (values need only be plausible and repeatable).
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One specimen to result.
#[derive(Clone)]
struct Prepared {
    accession: String,
    mrn: String,
    family: String,
    birth: String,
    sex: &'static str,
}

/// The ORU^R01 an analyser sends for one specimen: MSH, PID, OBR (accession in OBR-3) and one
/// OBX per test, NM, with LOINC code, UCUM unit, reference range and the analyser's flag.
fn oru(n: usize, p: &Prepared, tests: usize, rng: &mut Lcg) -> Vec<u8> {
    let ts = "20261124081500+0000";
    let mut m = format!(
        "MSH|^~\\&|{SENDER}|CORE LAB|CUVETTE|LAB|{ts}||ORU^R01^ORU_R01|BENCH{n:07}|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||{mrn}^^^HOSP^MR||{family}^Alex||{birth}|{sex}\r\
         ORC|RE||{acc}||CM\r\
         OBR|1||{acc}|24321-2^Basic metabolic 2000 panel^LN|||{ts}|||||||{ts}||||||||{ts}|||F\r",
        mrn = p.mrn,
        family = p.family,
        birth = p.birth.replace('-', ""),
        sex = p.sex,
        acc = p.accession,
    );
    for (i, (_, loinc, name, unit, low, high, decimals)) in BMP.iter().take(tests).enumerate() {
        let span = high - low;
        let r = rng.next_f64();
        let (v, flag) = if r < 0.85 {
            (low + rng.next_f64() * span, "N")
        } else if r < 0.93 {
            (high + rng.next_f64() * span * 0.4, "H")
        } else {
            (low - rng.next_f64() * span * 0.2, "L")
        };
        let value = format!("{v:.decimals$}");
        m.push_str(&format!(
            "OBX|{}|NM|{loinc}^{name}^LN||{value}|{unit}^{unit}^UCUM|{low}-{high}|{flag}|||F|||{ts}\r",
            i + 1
        ));
    }
    m.into_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.specimens > 0 && args.connections > 0,
        "--specimens and --connections must be > 0"
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let place = Place::create(&args).await?;
    let outcome = run(&args, &place).await;
    if args.keep {
        eprintln!("kept: {}", place.describe());
    } else {
        place.remove().await;
    }
    outcome
}

async fn run(args: &Args, place: &Place) -> anyhow::Result<()> {
    let (n, c, k) = (args.specimens, args.connections, usize::from(args.tests));
    println!(
        "ingest_load: {n} specimens, {k} results per message, {c} connections, {}",
        place.describe()
    );

    // 1. The lab.
    let started = Instant::now();
    let store = Store::open(&place.ingest_url()).await?;
    let lab = Arc::new(
        Lab::open(store.clone().into(), Arc::new(SystemClock), LabConfig::default()).await?,
    );
    let sys = Actor::system();
    let instrument = lab.add_instrument(&sys, "Bench chemistry analyser", "hl7", SENDER).await?;
    for (code, loinc, _, unit, ..) in BMP.iter().take(k) {
        lab.map_test_code(&sys, instrument, loinc, code, unit).await?;
    }
    if args.autoverify {
        switch_on_autoverification(&lab, &sys, instrument, k).await?;
    }
    let tests: Vec<String> = if k == 8 {
        vec!["BMP".into()]
    } else {
        BMP.iter().take(k).map(|t| t.0.to_owned()).collect()
    };
    let mut setup = Vec::new();
    for w in 0..c {
        let (lab, tests) = (lab.clone(), tests.clone());
        setup.push(tokio::spawn(async move {
            let sys = Actor::system();
            let mut out = Vec::new();
            for i in (w..n).step_by(c) {
                out.push((i, prepare(&lab, &sys, i, &tests).await?));
            }
            anyhow::Ok(out)
        }));
    }
    let mut specimens: Vec<Option<Prepared>> = vec![None; n];
    for task in setup {
        for (i, p) in task.await?? {
            specimens[i] = Some(p);
        }
    }
    let specimens: Vec<Prepared> = specimens.into_iter().map(|p| p.expect("prepared")).collect();
    let mut rng = Lcg(20261124);
    let messages: Vec<Vec<u8>> =
        specimens.iter().enumerate().map(|(i, p)| oru(i, p, k, &mut rng)).collect();
    println!(
        "prepared {n} received specimens in {:.1} s (not measured)",
        started.elapsed().as_secs_f64()
    );

    // The reads one ingest makes, timed before the load (see 4.).
    let probe_before = if args.probe > 0 {
        Some(probe_reads(&store, &specimens, k, args.probe.min(n)).await?)
    } else {
        None
    };

    // 2. Ingest over MLLP.
    let (listener, addr) = cuvette_server::interfaces::mllp::bind("127.0.0.1:0".parse()?).await?;
    let server = tokio::spawn(cuvette_server::interfaces::mllp::serve(lab.clone(), listener));
    let messages = Arc::new(messages);
    let gate = Arc::new(tokio::sync::Barrier::new(c + 1));
    let mut senders = Vec::new();
    for w in 0..c {
        let (messages, gate) = (messages.clone(), gate.clone());
        senders.push(tokio::spawn(async move { send_share(addr, &messages, w, c, &gate).await }));
    }
    gate.wait().await;
    let t0 = Instant::now();
    let mut acked = Vec::with_capacity(n);
    for s in senders {
        acked.extend(s.await??);
    }
    let ingest_s = t0.elapsed().as_secs_f64();
    server.abort();
    ensure!(acked.len() == n, "{} of {n} messages acknowledged", acked.len());
    let mut latencies: Vec<Duration> = acked.iter().map(|a| a.1).collect();
    latencies.sort();
    let results = n * k;
    let ingest_rate = results as f64 / ingest_s;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));

    // What the ingest committed.
    let ingest_db = pool(&place.ingest_url(), 2, place.is_postgres()).await?;
    let count = |sql: &'static str| {
        let db = ingest_db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await }
    };
    let stored_results = count("SELECT COUNT(*) FROM result").await?;
    let accepted = count(
        "SELECT COUNT(*) FROM interface_message WHERE direction = 'in' AND outcome = 'accepted'",
    )
    .await?;
    let audit_events = count("SELECT COUNT(*) FROM audit_event").await?;
    let audit_before = count(
        "SELECT COUNT(*) FROM audit_event WHERE action NOT IN ('result.enter', 'result.correct')",
    )
    .await?;
    ensure!(accepted as usize == n, "{accepted} of {n} messages accepted");
    let calculated = stored_results as usize - results;
    // processed_us runs from the start of `Lab::ingest` to the message-log insert, the last
    // statement before COMMIT; the rest of an ACK's latency is the commit, the ACK and the wire.
    let mut by_control = std::collections::HashMap::new();
    for r in
        sqlx::query("SELECT control_id, processed_us FROM interface_message WHERE direction = 'in'")
            .fetch_all(&ingest_db)
            .await?
    {
        by_control
            .insert(r.try_get::<String, _>("control_id")?, r.try_get::<i64, _>("processed_us")?);
    }
    let mut processed: Vec<i64> = by_control.values().copied().collect();
    processed.sort_unstable();
    let mut after_commit: Vec<Duration> = acked
        .iter()
        .filter_map(|(i, latency)| {
            let us = by_control.get(&format!("BENCH{i:07}"))?;
            Some(latency.saturating_sub(Duration::from_micros(u64::try_from(*us).ok()?)))
        })
        .collect();
    after_commit.sort();
    let proc_p50 = processed[processed.len() / 2];
    let proc_p99 = processed[(processed.len() * 99 / 100).min(processed.len() - 1)];
    println!();
    println!("INGEST over MLLP ({c} connections, one ACK awaited per message)");
    println!(
        "  {n} messages, {results} results acknowledged CA in {ingest_s:.2} s: {ingest_rate:.0} results/s ({:.0} messages/s)",
        n as f64 / ingest_s
    );
    println!(
        "  ACK latency: p50 {:.1} ms, p99 {:.1} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    if args.autoverify {
        let released: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM result WHERE released_by = 'autoverify'")
                .fetch_one(&ingest_db)
                .await?;
        println!(
            "  autoverification on: {released} of {results} results released automatically before their ACK, the rest held"
        );
    } else {
        println!("  autoverification off: every result waits for review");
    }
    println!(
        "  committed per message: {k} measured + {:.1} calculated result rows, {:.1} audit events, 1 message-log row",
        calculated as f64 / n as f64,
        (audit_events - audit_before) as f64 / n as f64
    );
    println!(
        "  ingest time before COMMIT (interface_message.processed_us): p50 {:.1} ms, p99 {:.1} ms",
        proc_p50 as f64 / 1e3,
        proc_p99 as f64 / 1e3
    );
    println!(
        "  the rest of each ACK's latency (COMMIT with its fsync, ACK, loopback): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&after_commit, 50.0).as_secs_f64() * 1e3,
        percentile(&after_commit, 99.0).as_secs_f64() * 1e3
    );

    // 3. Raw baseline: the same rows, one transaction per message, C writers.
    let mut rows = copy_rows(&ingest_db, k).await?;
    prepare_baseline(&place.raw_url(), &mut rows).await?;
    let raw = pool(&place.raw_url(), c as u32, place.is_postgres()).await?;
    let rows = Arc::new(rows);
    let gate = Arc::new(tokio::sync::Barrier::new(c + 1));
    let mut writers = Vec::new();
    for w in 0..c {
        let (raw, rows, gate) = (raw.clone(), rows.clone(), gate.clone());
        let pg = place.is_postgres();
        writers.push(tokio::spawn(async move {
            gate.wait().await;
            let mut written = 0usize;
            for batch in rows.iter().skip(w).step_by(c) {
                written += insert_batch(&raw, batch, pg).await?;
            }
            anyhow::Ok(written)
        }));
    }
    gate.wait().await;
    let t0 = Instant::now();
    let mut raw_rows = 0;
    for w in writers {
        raw_rows += w.await??;
    }
    let raw_s = t0.elapsed().as_secs_f64();
    raw.close().await;
    let raw_rate = raw_rows as f64 / raw_s;
    println!();
    println!(
        "RAW INSERTS, same engine and pragmas ({c} writers, one transaction + commit per message)"
    );
    println!(
        "  {raw_rows} result rows + {} message-log rows in {} transactions, {raw_s:.2} s: {raw_rate:.0} rows/s ({:.0} transactions/s, {:.2} ms of wall time each)",
        rows.len(),
        rows.len(),
        rows.len() as f64 / raw_s,
        raw_s * 1e3 / rows.len() as f64
    );
    let ratio = ingest_rate / raw_rate;
    println!();
    println!(
        "RATIO ingest results/s / raw rows/s = {ingest_rate:.0} / {raw_rate:.0} = {ratio:.3} (raw is {:.1}x faster)",
        1.0 / ratio
    );

    // 4. Where the time goes: the reads an ingest makes, replayed one message at a time, on
    // the database as the load found it and as it left it.
    let (mut reads_before, mut reads_after) = (f64::NAN, f64::NAN);
    if let Some(before) = &probe_before {
        let count = args.probe.min(n);
        let after = probe_reads(&store, &specimens, k, count).await?;
        let ordered: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM ordered_test").fetch_one(&ingest_db).await?;
        println!();
        println!(
            "PROBE: the reads of one ingest, replayed for {count} messages one at a time ({ordered} ordered tests in the database)"
        );
        println!("  {:<36} {:>12} {:>12}", "ms per message", "before load", "after load");
        let line = |what: &str, b: f64, a: f64| println!("  {what:<36} {b:>12.2} {a:>12.2}");
        line(&format!("{} reads in all", 4 + 2 * k), before.total(), after.total());
        line(&format!("{k} x work_items(specimen)"), before.specimen_items, after.specimen_items);
        line("1 x work_items(patient) [in tx]", before.patient_items, after.patient_items);
        line(&format!("{k} x specimen_by_accession"), before.specimens, after.specimens);
        line("3 x duplicate, instrument, code map", before.lookups, after.lookups);
        println!(
            "  (all but work_items(patient) run before the transaction; that one runs while the write lock is held)"
        );
        reads_before = before.total();
        reads_after = after.total();
    }
    ingest_db.close().await;
    lab.close().await;
    println!(
        "RESULT autoverify={} ingest_results_per_s={ingest_rate:.1} ingest_messages_per_s={:.2} ack_p50_ms={:.2} ack_p99_ms={:.2} \
         raw_rows_per_s={raw_rate:.1} raw_tx_per_s={:.2} ratio={ratio:.4} precommit_p50_ms={:.2} \
         reads_ms_before={reads_before:.2} reads_ms_after={reads_after:.2}",
        u8::from(args.autoverify),
        n as f64 / ingest_s,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        rows.len() as f64 / raw_s,
        proc_p50 as f64 / 1e3,
    );
    Ok(())
}

/// Registers a patient, orders the tests, collects and receives the specimen.
/// QC acceptable and an approved, enabled rule set for each of the first `k` BMP tests.
async fn switch_on_autoverification(
    lab: &Lab,
    sys: &Actor,
    instrument: i64,
    k: usize,
) -> anyhow::Result<()> {
    use cuvette_domain::autoverify::AutoverifyRules;
    for (code, _, name, _, low, high, _) in BMP.iter().take(k) {
        let material = lab
            .add_material(
                sys,
                &cuvette_app::qc::MaterialForm {
                    product: format!("{name} control"),
                    manufacturer: "Bench".into(),
                    lot: "1".into(),
                    level: "1".into(),
                    expires_on: "2099-12-31".into(),
                    sample_id: format!("QC-{code}"),
                },
            )
            .await?;
        let mean = (low + high) / 2.0;
        let target = lab
            .set_target(
                sys,
                material,
                instrument,
                code,
                &mean.to_string(),
                &((high - low) / 4.0).to_string(),
            )
            .await?;
        lab.record_qc(sys, instrument, code, &[(target, mean.to_string())]).await?;
        let definition =
            lab.catalog().catalog.test(code).context("BMP test in the catalog")?.clone();
        let rules = AutoverifyRules { enabled: true, ..AutoverifyRules::default_for(&definition) };
        lab.save_autoverify_rules(sys, code, &rules).await?;
    }
    Ok(())
}

async fn prepare(lab: &Lab, sys: &Actor, i: usize, tests: &[String]) -> anyhow::Result<Prepared> {
    let sex = if i.is_multiple_of(2) { "F" } else { "M" };
    let birth = format!("{}-{:02}-{:02}", 1940 + i % 60, 1 + i % 12, 1 + i % 28);
    let family = format!("Bench{i:06}");
    let p = lab
        .register_patient(
            sys,
            &RegisterPatient {
                mrn: format!("BM{i:07}"),
                family_name: family.clone(),
                given_name: "Alex".into(),
                birth_date: birth.clone(),
                sex: sex.into(),
            },
        )
        .await?;
    let placed = lab
        .place_order(
            sys,
            &PlaceOrder {
                patient_id: p.id,
                provider: "Dr. Bench".into(),
                priority: "routine".into(),
                tests: tests.to_vec(),
                ..Default::default()
            },
        )
        .await?;
    ensure!(placed.specimens.len() == 1, "the order needs {} specimens", placed.specimens.len());
    let accession = placed.specimens[0].accession.clone();
    lab.collect(sys, &accession).await?;
    lab.receive(
        sys,
        &accession,
        &IdentityCheck {
            mrn: Some(p.mrn.clone()),
            birth_date: Some(p.birth_date.clone()),
            family_name: None,
        },
    )
    .await?;
    Ok(Prepared { accession, mrn: p.mrn, family, birth, sex })
}

/// One connection's share: messages w, w+c, …, each sent after the previous ACK; returns each
/// message's index and ACK latency.
async fn send_share(
    addr: SocketAddr,
    messages: &[Vec<u8>],
    w: usize,
    c: usize,
    gate: &tokio::sync::Barrier,
) -> anyhow::Result<Vec<(usize, Duration)>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut deframer = MllpDeframer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut latencies = Vec::new();
    gate.wait().await;
    for (i, m) in messages.iter().enumerate().skip(w).step_by(c) {
        let t = Instant::now();
        stream.write_all(&frame(m)).await?;
        let ack = loop {
            if let Some(f) = deframer.next_frame() {
                break f.context("a malformed ACK frame")?;
            }
            let read = stream.read(&mut buf).await?;
            if read == 0 {
                bail!("the listener closed the connection");
            }
            deframer.push(&buf[..read]);
        };
        latencies.push((i, t.elapsed()));
        let text = String::from_utf8_lossy(&ack);
        // The messages ask for enhanced mode (MSH-15 AL, MSH-16 NE): the answer is the commit
        // accept, sent once the message is durably stored, and no application acknowledgement.
        ensure!(text.contains("MSA|CA|"), "message {i} not accepted: {text}");
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A pool on `url` with Cuvette's SQLite pragmas (see `cuvette_store::Store::open`).
async fn pool(url: &str, connections: u32, postgres: bool) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let options = AnyConnectOptions::from_str(url)?;
    let mut builder = AnyPoolOptions::new().max_connections(connections);
    if !postgres {
        builder = builder.after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        });
    }
    Ok(builder.connect_with(options).await?)
}

/// One result row as stored.
struct ResultRow {
    test_code: String,
    ordered_test_id: i64,
    version: i64,
    value_text: String,
    value_number: Option<f64>,
    report_text: String,
    unit: String,
    flags: String,
    reference_interval: String,
    review: String,
    reasons: String,
    definition_version: i64,
    entered_at: i64,
    entered_by: String,
    entered_by_role: String,
    instrument_flags: String,
    instrument_id: Option<i64>,
    autoverify: Option<String>,
    released_at: Option<i64>,
    released_by: Option<String>,
    release_status: Option<String>,
    sent_value: Option<String>,
    sent_unit: Option<String>,
}

/// One message-log row as stored.
struct MessageRow {
    channel: String,
    peer: String,
    control_id: Option<String>,
    message_type: String,
    raw: Vec<u8>,
    received_at: i64,
    detail: String,
    ack: Option<Vec<u8>>,
    accession: Option<String>,
    results: i64,
    processed_us: i64,
}

/// What one ingest transaction stored, to be inserted again.
struct Batch {
    message: MessageRow,
    results: Vec<ResultRow>,
}

/// The rows the ingest stored, per message: its measured results (calculated results, audit
/// events and status updates are the ingest's own work, not copied) and its message-log row.
async fn copy_rows(db: &AnyPool, k: usize) -> anyhow::Result<Vec<Batch>> {
    let codes: Vec<String> = BMP.iter().take(k).map(|t| format!("'{}'", t.0)).collect();
    let sql = format!(
        "SELECT r.ordered_test_id, r.version, r.value_text, r.value_number, r.report_text, r.unit, r.flags, \
         r.reference_interval, r.review, r.reasons, r.definition_version, r.entered_at, r.entered_by, \
         r.entered_by_role, r.instrument_flags, r.instrument_id, r.autoverify, r.released_at, r.released_by, \
         r.release_status, r.sent_value, r.sent_unit, t.test_code, s.accession \
         FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id JOIN specimen s ON s.id = t.specimen_id \
         WHERE t.test_code IN ({}) ORDER BY r.id",
        codes.join(", ")
    );
    let mut by_accession: std::collections::HashMap<String, Vec<ResultRow>> = Default::default();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db).await? {
        by_accession.entry(r.try_get("accession")?).or_default().push(ResultRow {
            test_code: r.try_get("test_code")?,
            ordered_test_id: r.try_get("ordered_test_id")?,
            version: r.try_get("version")?,
            value_text: r.try_get("value_text")?,
            value_number: r.try_get("value_number")?,
            report_text: r.try_get("report_text")?,
            unit: r.try_get("unit")?,
            flags: r.try_get("flags")?,
            reference_interval: r.try_get("reference_interval")?,
            review: r.try_get("review")?,
            reasons: r.try_get("reasons")?,
            definition_version: r.try_get("definition_version")?,
            entered_at: r.try_get("entered_at")?,
            entered_by: r.try_get("entered_by")?,
            entered_by_role: r.try_get("entered_by_role")?,
            instrument_flags: r.try_get("instrument_flags")?,
            instrument_id: r.try_get("instrument_id")?,
            autoverify: r.try_get("autoverify")?,
            released_at: r.try_get("released_at")?,
            released_by: r.try_get("released_by")?,
            release_status: r.try_get("release_status")?,
            sent_value: r.try_get("sent_value")?,
            sent_unit: r.try_get("sent_unit")?,
        });
    }
    let mut batches = Vec::new();
    for m in sqlx::query(
        "SELECT channel, peer, control_id, message_type, raw, received_at, detail, ack, accession, results, processed_us \
         FROM interface_message WHERE direction = 'in' ORDER BY id",
    )
    .fetch_all(db)
    .await?
    {
        let accession: Option<String> = m.try_get("accession")?;
        let results = accession.as_ref().and_then(|a| by_accession.remove(a)).unwrap_or_default();
        ensure!(results.len() == k, "a message has {} measured results stored", results.len());
        batches.push(Batch {
            message: MessageRow {
                channel: m.try_get("channel")?,
                peer: m.try_get("peer")?,
                control_id: m.try_get("control_id")?,
                message_type: m.try_get("message_type")?,
                raw: m.try_get("raw")?,
                received_at: m.try_get("received_at")?,
                detail: m.try_get("detail")?,
                ack: m.try_get("ack")?,
                accession,
                results: m.try_get("results")?,
                processed_us: m.try_get("processed_us")?,
            },
            results,
        });
    }
    Ok(batches)
}

/// The baseline database as Cuvette's migrations make it, holding what the copied rows
/// refer to — the instrument, and per message an order with its specimen and ordered tests —
/// so that every foreign key and index the ingest pays for is paid here too. The copied rows
/// are pointed at them. Nothing here is timed.
async fn prepare_baseline(url: &str, batches: &mut [Batch]) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let mut tx = store.begin().await?;
    let instrument = tx
        .insert_instrument(
            "Bench chemistry analyser",
            Protocol::Hl7,
            SENDER,
            cuvette_domain::time::Timestamp::EPOCH,
        )
        .await?;
    let patient = NewPatient {
        mrn: "BASELINE",
        family_name: "Baseline",
        given_name: "Raw",
        birth_date: "1970-01-01",
        sex: "U",
    };
    let patient_id =
        tx.insert_patient(&patient, "bench", cuvette_domain::time::Timestamp::EPOCH).await?;
    for b in batches.iter_mut() {
        let accession = b.message.accession.clone().context("a message names no accession")?;
        let order = NewOrder {
            patient_id,
            provider: "Dr. Bench",
            priority: Priority::Routine,
            clinical_note: "",
            placer_number: None,
        };
        let order_id =
            tx.insert_order(&order, "bench", cuvette_domain::time::Timestamp::EPOCH).await?;
        let specimen = NewSpecimen {
            accession: &accession,
            container: "SST",
            specimen_type: "serum",
            recollection_of: None,
            placer_specimen_id: None,
            collected: None,
        };
        let specimen_id = tx.insert_specimen(order_id, &specimen).await?;
        for r in &mut b.results {
            let test = NewOrderedTest {
                test_code: &r.test_code,
                panel_code: None,
                discipline: "chemistry",
            };
            r.ordered_test_id = tx
                .insert_ordered_test(
                    order_id,
                    specimen_id,
                    &test,
                    TestStatus::Received,
                    cuvette_domain::time::Timestamp::EPOCH,
                )
                .await?;
            r.instrument_id = r.instrument_id.map(|_| instrument);
        }
    }
    tx.commit().await?;
    store.close().await;
    Ok(())
}

/// One message's rows in one transaction (taking SQLite's write lock at once, as Cuvette
/// does); returns the result rows written.
async fn insert_batch(db: &AnyPool, b: &Batch, postgres: bool) -> anyhow::Result<usize> {
    let mut tx =
        if postgres { db.begin().await? } else { db.begin_with("BEGIN IMMEDIATE").await? };
    for r in &b.results {
        sqlx::query(
            "INSERT INTO result (ordered_test_id, version, value_text, value_number, report_text, unit, flags, reference_interval, \
             review, reasons, definition_version, entered_at, entered_by, entered_by_role, correction_reason, instrument_flags, \
             instrument_id, autoverify, released_at, released_by, release_status, sent_value, sent_unit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
        )
        .bind(r.ordered_test_id)
        .bind(r.version)
        .bind(&r.value_text)
        .bind(r.value_number)
        .bind(&r.report_text)
        .bind(&r.unit)
        .bind(&r.flags)
        .bind(&r.reference_interval)
        .bind(&r.review)
        .bind(&r.reasons)
        .bind(r.definition_version)
        .bind(r.entered_at)
        .bind(&r.entered_by)
        .bind(&r.entered_by_role)
        .bind(None::<String>)
        .bind(&r.instrument_flags)
        .bind(r.instrument_id)
        .bind(&r.autoverify)
        .bind(r.released_at)
        .bind(&r.released_by)
        .bind(&r.release_status)
        .bind(&r.sent_value)
        .bind(&r.sent_unit)
        .execute(&mut *tx)
        .await?;
    }
    let m = &b.message;
    let _id: i64 = sqlx::query_scalar(
        "INSERT INTO interface_message (direction, protocol, channel, peer, sender, control_id, message_type, raw, received_at, \
         outcome, detail, ack, accession, results, quarantine, replay_of, processed_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
    )
    .bind(Direction::In.code())
    .bind(Protocol::Hl7.code())
    .bind(&m.channel)
    .bind(&m.peer)
    .bind(SENDER)
    .bind(&m.control_id)
    .bind(&m.message_type)
    .bind(m.raw.clone())
    .bind(m.received_at)
    .bind(MessageOutcome::Accepted.code())
    .bind(&m.detail)
    .bind(m.ack.clone())
    .bind(&m.accession)
    .bind(m.results)
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(m.processed_us)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(b.results.len())
}

/// Milliseconds per message spent in each kind of read `Lab::ingest` makes.
struct ReadProbe {
    /// Duplicate check, instrument, code map.
    lookups: f64,
    /// `specimen_by_accession`, once per result.
    specimens: f64,
    /// `work_items` of the specimen, once per result.
    specimen_items: f64,
    /// `work_items` of the patient, once per message (the calculations' inputs; read while the
    /// write transaction is open).
    patient_items: f64,
}

impl ReadProbe {
    fn total(&self) -> f64 {
        self.lookups + self.specimens + self.specimen_items + self.patient_items
    }
}

/// Replays, one message at a time, the reads `Lab::ingest` makes for a message (duplicate
/// check, instrument, code map, then per result the specimen and its work items, and the
/// patient's work items its calculations read), timing each kind.
async fn probe_reads(
    store: &Store,
    specimens: &[Prepared],
    k: usize,
    count: usize,
) -> anyhow::Result<ReadProbe> {
    let mut spent = [Duration::ZERO; 4];
    for (i, p) in specimens.iter().take(count).enumerate() {
        let t = Instant::now();
        store.message_by_control(Direction::In, SENDER, &format!("PROBE{i}")).await?;
        let instrument =
            store.instrument_by_sender(Protocol::Hl7, SENDER).await?.context("instrument")?;
        store.test_codes(instrument.id).await?;
        spent[0] += t.elapsed();
        let mut patient = None;
        for _ in 0..k {
            let t = Instant::now();
            let s = store.specimen_by_accession(&p.accession).await?.context("specimen")?;
            spent[1] += t.elapsed();
            let t = Instant::now();
            let items = store
                .work_items(&WorklistFilter {
                    specimen_id: Some(s.id),
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            spent[2] += t.elapsed();
            patient = items.first().map(|i| i.patient.id);
        }
        let t = Instant::now();
        store
            .work_items(&WorklistFilter {
                patient_id: patient,
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        spent[3] += t.elapsed();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / count as f64;
    Ok(ReadProbe {
        lookups: ms(spent[0]),
        specimens: ms(spent[1]),
        specimen_items: ms(spent[2]),
        patient_items: ms(spent[3]),
    })
}

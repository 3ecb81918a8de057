//! `cuvette`: the laboratory information system's one binary. Thin: it parses arguments,
//! opens the database and calls the app and the server.

mod demo;
mod demo_qc;
mod demo_staff;
mod simulate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use cuvette_app::checkpoint::AuditAnchor;
use cuvette_app::records::AuditVerification;
use cuvette_app::{Actor, Database, Lab, LabConfig, NewUser, SystemClock};
use cuvette_domain::Role;

/// jemalloc instead of the system allocator. After a crowd of connections leaves (a slowloris
/// attack, a burst of clients), glibc keeps the freed memory in its per-thread arenas and the
/// server stays at its high-water mark; jemalloc's background threads give freed pages back
/// to the system within seconds, idle or not, so memory returns to its baseline
/// (`scripts/slowloris.sh`; ARCHITECTURE.md, "Memory").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Cuvette, a clinical laboratory information system.
#[derive(Parser)]
#[command(name = "cuvette", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the lab over HTTP (the bench's pages and the JSON API).
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
    /// Serve a demo lab: users of every role (passwords printed), an API key, patients,
    /// orders in every state and a week of history.
    Demo {
        /// Directory of the demo database (created and filled on first use).
        #[arg(long, default_value = "./cuvette-demo")]
        data: PathBuf,
        /// Database URL instead of the directory (sqlite://… or postgres://…).
        #[arg(long, env = "CUVETTE_DATABASE_URL")]
        database: Option<String>,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Act as the lab's instruments: send realistic results for the received specimens to a
    /// running Cuvette over HL7/MLLP or ASTM (instruments and their codes come from the
    /// database).
    Simulate {
        #[command(flatten)]
        db: DbArgs,
        /// The protocol to speak: `hl7` (ORU^R01 over MLLP) as the lab's HL7 instruments, or
        /// `astm` (E1394 records over the E1381 link layer) as its ASTM instruments.
        #[arg(long, value_enum, default_value = "hl7")]
        protocol: simulate::SimProtocol,
        /// The listener to send to: by default the MLLP listener (127.0.0.1:2575) for `hl7`,
        /// the ASTM listener (127.0.0.1:5100) for `astm`.
        #[arg(long)]
        to: Option<SocketAddr>,
        /// At most this many result messages.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Chance of a result outside its reference interval.
        #[arg(long, default_value_t = 0.2)]
        abnormal: f64,
    },
    /// Send work orders to an analyzer that takes downloads over ASTM: for each accession, the
    /// instrument's codes of the tests still waiting on it (as if it had queried them).
    SendOrders {
        #[command(flatten)]
        db: DbArgs,
        /// The analyzer's ASTM receiver.
        #[arg(long)]
        to: SocketAddr,
        /// The instrument, by the sender name it uses (H-5), whose code map applies.
        #[arg(long)]
        instrument: String,
        /// Accession numbers.
        #[arg(required = true)]
        accessions: Vec<String>,
    },
    /// Write a consistent copy of the SQLite database while Cuvette runs.
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// File to write (must not exist).
        #[arg(long)]
        to: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from --password or, if absent, from standard input.
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// Full name, as shown on screens and reports.
        #[arg(long)]
        name: String,
        /// Role: phlebotomist, lab_assistant, technician, technologist, supervisor, pathologist, student.
        #[arg(long)]
        role: String,
        /// Password (at least 12 characters, not a common one, not the user ID); prefer standard
        /// input on shared machines.
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key acting with a role; the key is printed once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// Name of the key (the system using it); it is the actor in the audit log.
        #[arg(long)]
        name: String,
        /// Role the key acts with.
        #[arg(long)]
        role: String,
        /// A SMART scope for the FHIR API (`system/*.read`, `system/Observation.read`,
        /// `patient/Observation.read`, …); repeat for more. Without one the key reads nothing
        /// through FHIR.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and name the first broken link; with the audit key and
    /// checkpoint file, also check the chain against every signed checkpoint (a cut tail, a
    /// rewritten chain, a forged checkpoint).
    Verify {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
    /// Sign the chain's head now and append it to the checkpoint file (the server also does
    /// this every --checkpoint-minutes).
    Checkpoint {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
}

/// Where the audit chain is anchored outside the database.
#[derive(Args, Clone)]
struct AnchorArgs {
    /// The Ed25519 key that signs audit checkpoints: a file outside the database (and
    /// ideally off its machine's backups), created readable by its owner only on first use.
    #[arg(long, env = "CUVETTE_AUDIT_KEY", value_name = "FILE")]
    audit_key: Option<PathBuf>,
    /// The append-only file checkpoints go to, one signed JSON line each.
    #[arg(long, env = "CUVETTE_AUDIT_CHECKPOINTS", value_name = "FILE")]
    audit_checkpoints: Option<PathBuf>,
    /// Minutes between checkpoints while serving (a head that has not moved is not written
    /// again).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1440))]
    checkpoint_minutes: u64,
}

impl AnchorArgs {
    /// The anchor, if both files are given; `create` makes the key on first use.
    fn open(&self, create: bool) -> anyhow::Result<Option<AuditAnchor>> {
        match (&self.audit_key, &self.audit_checkpoints) {
            (Some(key), Some(checkpoints)) => {
                let anchor = if create {
                    AuditAnchor::open_or_create(key, checkpoints)?
                } else {
                    AuditAnchor::open(key, checkpoints)?
                };
                Ok(Some(anchor))
            }
            (None, None) => Ok(None),
            _ => bail!(
                "give both --audit-key and --audit-checkpoints (or neither): a checkpoint needs the key that signs it and the file it goes to"
            ),
        }
    }

    /// Starts writing checkpoints in the background while the server runs.
    fn start(&self, lab: &Arc<Lab>) -> anyhow::Result<()> {
        match self.open(true)? {
            Some(anchor) => {
                eprintln!(
                    "Audit checkpoints every {} min to {} (public key {}).",
                    self.checkpoint_minutes,
                    anchor.checkpoints().display(),
                    anchor.public_key()
                );
                let every = std::time::Duration::from_secs(self.checkpoint_minutes * 60);
                tokio::spawn(lab.clone().keep_checkpoints(anchor, every));
            }
            None => tracing::warn!(
                "audit checkpoints are off: without --audit-key and --audit-checkpoints, events deleted from the end of the audit log cannot be detected"
            ),
        }
        Ok(())
    }
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Directory for the SQLite database and files.
    #[arg(long, default_value = "./cuvette-data")]
    data: PathBuf,
    /// Database URL instead of --data: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "CUVETTE_DATABASE_URL")]
    database: Option<String>,
}

#[derive(Args, Clone)]
struct HttpArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Mark cookies Secure (serve over HTTPS, directly or behind a proxy).
    #[arg(long)]
    secure_cookies: bool,
    /// HL7 v2 over MLLP listener for instruments and the EHR.
    #[arg(long, default_value = "127.0.0.1:2575")]
    mllp: SocketAddr,
    /// Run no MLLP listener.
    #[arg(long)]
    no_mllp: bool,
    /// ASTM E1381/E1394 over TCP listener for instruments; repeat for several ports.
    #[arg(long, default_value = "127.0.0.1:5100")]
    astm: Vec<SocketAddr>,
    /// Run no ASTM listener.
    #[arg(long)]
    no_astm: bool,
    /// The EHR's MLLP listener that released results are sent to (HL7 ORU^R01, queued in the
    /// outbox with each release and retried until acknowledged). None by default: no results
    /// are queued.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_address)]
    ehr: Option<SocketAddr>,
    /// The longest result text taken from an instrument, in characters (a text report in HL7
    /// TX, FT or ST): stored whole up to it; a longer one is refused with its message.
    #[arg(long, default_value_t = cuvette_app::INSTRUMENT_TEXT_CHARS_MAX)]
    instrument_text_chars_max: usize,
    /// The largest file taken from an instrument as a result (HL7 ED: a PDF report, a
    /// histogram image), in bytes once decoded: stored with the result up to it; a larger
    /// one is refused (AE) and its message kept in the quarantine.
    #[arg(long, default_value_t = cuvette_app::INSTRUMENT_ATTACHMENT_BYTES_MAX)]
    instrument_attachment_bytes_max: usize,
}

impl HttpArgs {
    fn interfaces(&self) -> cuvette_server::interfaces::InterfaceConfig {
        cuvette_server::interfaces::InterfaceConfig {
            mllp: (!self.no_mllp).then_some(self.mllp),
            astm: if self.no_astm { vec![] } else { self.astm.clone() },
            ehr: self.ehr,
            ..Default::default()
        }
    }

    /// The lab's settings with the EHR destination, when results go to one.
    fn lab_config(&self) -> LabConfig {
        LabConfig {
            ehr_destination: self.ehr.map(|a| a.to_string()),
            instrument_text_chars_max: self.instrument_text_chars_max,
            instrument_attachment_bytes_max: self.instrument_attachment_bytes_max,
            ..config()
        }
    }
}

/// A HOST:PORT, the host a name or an address (resolved once, at start).
fn parse_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// How long the server waits between attempts to reach a database server that is down.
const DATABASE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl DbArgs {
    /// Opens the database; a database server that cannot be reached (still starting, or
    /// down) is tried again every few seconds, each failure logged, rather than ending the
    /// server. A SQLite directory that cannot be opened is no outage: it ends it at once.
    async fn open_waiting(&self) -> anyhow::Result<Database> {
        if self.database.is_none() {
            return self.open().await;
        }
        loop {
            match self.open().await {
                Ok(database) => return Ok(database),
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the database cannot be reached: trying again in {} s",
                        DATABASE_RETRY.as_secs()
                    );
                    tokio::time::sleep(DATABASE_RETRY).await;
                }
            }
        }
    }

    async fn open(&self) -> anyhow::Result<Database> {
        let database = match &self.database {
            Some(url) => Database::open(url).await.with_context(|| {
                format!(
                    "cannot open the database {} (check the URL, and that the database server runs and lets this user in)",
                    redact(url)
                )
            })?,
            None => Database::open_dir(&self.data).await.with_context(|| {
                format!(
                    "cannot open the database in {} (give the lab's data directory with --data, one this user may create and write)",
                    self.data.display()
                )
            })?,
        };
        Ok(database)
    }
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn config() -> LabConfig {
    LabConfig { time_zone: jiff::tz::TimeZone::system(), ..LabConfig::default() }
}

async fn open_lab(database: Database) -> anyhow::Result<Lab> {
    open_lab_with(database, config()).await
}

async fn open_lab_with(database: Database, config: LabConfig) -> anyhow::Result<Lab> {
    Lab::open(database, Arc::new(SystemClock), config).await.context("opening the lab")
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).with_context(|| {
        let all: Vec<&str> = cuvette_domain::role::ROLES.iter().map(|r| r.code()).collect();
        format!("unknown role {role:?}: use one of {}", all.join(", "))
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Colour codes only for a person at a terminal: a log file, journald or a pipe gets plain
    // text a grep and a log shipper read as written.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // An ordinary failure is a sentence for the operator: what went wrong and, in its
            // context, what to do. No debug dump and no backtrace (those are for panics).
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { db, http, anchor } => {
            // The address is taken before the database is opened, so that a probe finds a
            // server that says why it is not ready rather than a refused connection.
            let listener = tokio::net::TcpListener::bind(http.listen).await.with_context(|| {
                format!("cannot listen on {} (is another program using that port?)", http.listen)
            })?;
            let lab_config = http.lab_config();
            let open = async move {
                let lab = Arc::new(open_lab_with(db.open_waiting().await?, lab_config).await?);
                anchor.start(&lab)?;
                if lab.users(&Actor::system()).await?.is_empty() {
                    eprintln!(
                        "No users yet: add a supervisor with `cuvette user add --username NAME --name \"Full Name\" --role supervisor`."
                    );
                }
                Ok::<_, anyhow::Error>(lab)
            };
            cuvette_server::serve_once_open(
                listener,
                async { open.await.map_err(Into::into) },
                cuvette_server::ServerConfig {
                    secure_cookies: http.secure_cookies,
                    ..Default::default()
                },
                http.interfaces(),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await?;
        }
        Command::Demo { data, database, http, anchor } => {
            let db = DbArgs { data, database };
            let database = db.open().await?;
            demo::seed_if_empty(&database, config()).await?;
            let lab = Arc::new(open_lab_with(database, http.lab_config()).await?);
            anchor.start(&lab)?;
            // The demo's key also reads every FHIR resource, so an EHR can be tried at once.
            let fhir = cuvette_domain::scope::Scopes::parse("system/*.read")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let key = lab
                .create_api_key_with_scopes(
                    &Actor::system(),
                    &format!("demo-{}", lab.now().as_second()),
                    Role::Technologist,
                    &fhir,
                )
                .await?;
            demo::print_welcome(http.listen, &key);
            cuvette_server::serve(
                lab,
                http.listen,
                cuvette_server::ServerConfig {
                    secure_cookies: http.secure_cookies,
                    ..Default::default()
                },
                http.interfaces(),
            )
            .await?;
        }
        Command::User { command: UserCommand::Add { db, username, name, role, password } } => {
            let role = parse_role(&role)?;
            let password = match password {
                Some(p) => p,
                None => {
                    eprintln!("Password for {username} (at least 12 characters), then Enter:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let lab = open_lab(db.open().await?).await?;
            lab.add_user(
                &Actor::system(),
                NewUser { username: username.clone(), display_name: name, role, password },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("Added {username} ({role}).");
        }
        Command::Apikey { command: ApikeyCommand::Create { db, name, role, scopes } } => {
            let role = parse_role(&role)?;
            let scopes = cuvette_domain::scope::Scopes::parse(&scopes.join(" "))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let lab = open_lab(db.open().await?).await?;
            let key = lab
                .create_api_key_with_scopes(&Actor::system(), &name, role, &scopes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let reads = if scopes.is_empty() {
                "no FHIR resources".to_owned()
            } else {
                format!("FHIR with {scopes}")
            };
            eprintln!(
                "API key {name:?} acting as {role}, reading {reads}. Store it now: it is not shown again."
            );
            println!("{key}");
        }
        Command::Audit { command: AuditCommand::Verify { db, anchor } } => {
            let anchor = anchor.open(false)?;
            let database = db.open().await?;
            match anchor {
                Some(anchor) => {
                    let outcome = database.verify_audit_anchored(&anchor).await?;
                    println!("{outcome}.");
                    if !outcome.is_intact() {
                        std::process::exit(1);
                    }
                }
                None => match database.verify_audit().await? {
                    AuditVerification::Intact { events } => println!(
                        "Audit chain intact: {events} events verified. No checkpoints checked: give --audit-key and --audit-checkpoints to see a cut tail too."
                    ),
                    AuditVerification::Broken { seq, reason } => {
                        println!("Audit chain BROKEN at event {seq}: {reason}.");
                        std::process::exit(1);
                    }
                },
            }
        }
        Command::Audit { command: AuditCommand::Checkpoint { db, anchor } } => {
            let Some(anchor) = anchor.open(true)? else {
                bail!(
                    "give --audit-key and --audit-checkpoints: the key that signs the checkpoint and the file it goes to"
                );
            };
            let database = db.open().await?;
            let now = cuvette_app::Clock::now(&SystemClock);
            match database.write_checkpoint(&anchor, now).await? {
                Some(c) => println!(
                    "Checkpoint written to {}: seq {} hash {} at {}.",
                    anchor.checkpoints().display(),
                    c.seq,
                    c.hash,
                    c.at
                ),
                None => println!("The chain has not moved since the last checkpoint."),
            }
        }
        Command::Simulate { db, protocol, to, count, abnormal } => {
            let lab = open_lab(db.open().await?).await?;
            let to = to.unwrap_or_else(|| protocol.default_listener());
            simulate::run(&lab, protocol, to, count, abnormal).await?;
        }
        Command::SendOrders { db, to, instrument, accessions } => {
            let lab = open_lab(db.open().await?).await?;
            let mut query = format!("H|\\^&|||{instrument}\r");
            for (i, a) in accessions.iter().enumerate() {
                query.push_str(&format!("Q|{}|^{a}||ALL\r", i + 1));
            }
            query.push_str("L|1|N\r");
            let channel = format!("send-orders to {to}");
            let records =
                cuvette_app::interop::astm::answer_query(&lab, query.as_bytes(), &channel, "cli")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .context("no work orders to send")?;
            cuvette_server::interfaces::astm::send_records(to, records.clone())
                .await
                .with_context(|| format!("sending to {to}"))?;
            for r in &records {
                println!("{}", String::from_utf8_lossy(r));
            }
        }
        Command::Backup { db, to } => {
            let database = db.open().await?;
            let to = to.unwrap_or_else(|| {
                let stamp =
                    cuvette_app::Clock::now(&SystemClock).strftime("%Y%m%dT%H%M%SZ").to_string();
                PathBuf::from(format!("cuvette-backup-{stamp}.sqlite3"))
            });
            if to.exists() {
                bail!("{} exists: choose another file with --to", to.display());
            }
            database.backup_to(&to).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("Backup written to {}.", to.display());
        }
    }
    Ok(())
}

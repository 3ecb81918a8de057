//! `cuvette simulate`: an instrument simulator. It takes the lab's received specimens, finds
//! an instrument whose code map covers each test, and sends realistic results to a running
//! Cuvette — as HL7 ORU^R01 over MLLP, or as ASTM E1394 records over the E1381 link layer —
//! so a newcomer sees the lab at work.
//!
//! What it sends is what analyzers send: values in the unit the instrument's code is mapped
//! in (a chemistry analyzer set up in SI units reports glucose in mmol/L), abnormal flags
//! (OBX-8, R-7: `L`, `H`, `<`), values below the measuring range censored as `<0.1`, and on
//! chemistry the serum indices as results of their own (`H`, `I`, `L`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use cuvette_app::records::{MessageFilter, Protocol};
use cuvette_app::{Actor, Clock, Lab, SystemClock};
use cuvette_astm::records::{Delimiters, MessageBuilder as AstmMessage, RecordBuilder, RecordType};
use cuvette_domain::workflow::TestStatus;
use cuvette_domain::{ReportedValue, TestDefinition};
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_hl7::{FieldValue, Message, MessageBuilder, SegmentBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::demo::{Lcg, plausible_value};

/// How long to wait for an acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The chance that a test with a lower limit of its measuring range reads below it, and is
/// reported censored (`<0.01` for a suppressed TSH).
const CENSORED_CHANCE: f64 = 0.1;
/// The chance that a chemistry specimen is hemolyzed (hemolysis index above 100).
const HEMOLYZED_CHANCE: f64 = 0.1;

/// The protocol the simulated instruments speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SimProtocol {
    /// HL7 v2.5.1 ORU^R01 over MLLP, to the MLLP listener (default 127.0.0.1:2575).
    Hl7,
    /// ASTM E1394 records over the E1381 link layer, to the ASTM listener (default
    /// 127.0.0.1:5100).
    Astm,
}

impl SimProtocol {
    /// Where `cuvette serve` and `cuvette demo` listen for this protocol by default.
    pub fn default_listener(self) -> SocketAddr {
        match self {
            SimProtocol::Hl7 => SocketAddr::from(([127, 0, 0, 1], 2575)),
            SimProtocol::Astm => SocketAddr::from(([127, 0, 0, 1], 5100)),
        }
    }

    fn speaks(self, protocol: Protocol) -> bool {
        matches!(
            (self, protocol),
            (SimProtocol::Hl7, Protocol::Hl7) | (SimProtocol::Astm, Protocol::Astm)
        )
    }
}

/// One result as an instrument reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observation {
    /// The instrument's code for the test.
    code: String,
    /// The value as sent: in the instrument's unit, `<0.1` when below the measuring range.
    value: String,
    /// The instrument's unit (empty for an index or a coded result).
    unit: String,
    /// The abnormal flag (HL7 table 0078, ASTM R-7): `L`, `H`, `<`, or empty.
    flag: String,
}

/// One result message to send: a specimen's tests measured on one instrument.
struct Run {
    sender: String,
    accession: String,
    /// Whether the instrument measured chemistry on it, and so reports the serum indices.
    chemistry: bool,
    observations: Vec<Observation>,
}

/// Sends results for up to `limit` received specimens to the listener at `to`, as the lab's
/// instruments that speak `protocol`.
pub async fn run(
    lab: &Lab,
    protocol: SimProtocol,
    to: SocketAddr,
    limit: usize,
    abnormal: f64,
) -> anyhow::Result<()> {
    let system = Actor::system();
    let catalog = lab.catalog();
    let instruments = lab.instruments(&system).await?;
    if !instruments.iter().any(|(i, _)| protocol.speaks(i.protocol) && i.active) {
        bail!(
            "no active {protocol:?} instrument is configured: add one (Interfaces page) with its test codes, or run `cuvette demo`"
        );
    }
    let items = lab.worklist(&system, None).await?;
    let mut runs: BTreeMap<(String, String), Run> = BTreeMap::new();
    let mut rng = Lcg(SystemClock.now().as_microsecond() as u64);
    let on = lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date();
    for item in items.iter().filter(|i| i.test.status == TestStatus::Received) {
        let Some(def) = catalog.catalog.test(&item.test.test_code) else { continue };
        let Some((instrument, code)) = instruments
            .iter()
            .filter(|(i, _)| protocol.speaks(i.protocol) && i.active)
            .find_map(|(i, codes)| codes.iter().find(|c| c.test_code == def.code).map(|c| (i, c)))
        else {
            continue;
        };
        let sex =
            cuvette_domain::Sex::parse(&item.patient.sex).unwrap_or(cuvette_domain::Sex::Unknown);
        let Ok(born) = item.patient.birth_date.parse() else { continue };
        let Some(value) = plausible_value(def, sex, born, on, &mut rng, abnormal) else { continue };
        let (value, flag) = as_measured(def, value, sex, born, on, &mut rng);
        // An instrument whose code is mapped in another unit sends its results in that unit.
        let value = match cuvette_domain::units::conversion(&def.code, &code.unit, &def.unit) {
            Some(to_instrument) => {
                match ReportedValue::parse(&value).ok().and_then(|v| to_instrument.apply(&v, None))
                {
                    Some(v) => v.text,
                    None => continue,
                }
            }
            None => value,
        };
        let key = (item.specimen.accession.clone(), instrument.sender.clone());
        if !runs.contains_key(&key) && runs.len() >= limit {
            continue;
        }
        let run = runs.entry(key).or_insert_with(|| Run {
            sender: instrument.sender.clone(),
            accession: item.specimen.accession.clone(),
            chemistry: false,
            observations: vec![],
        });
        run.chemistry |= def.discipline == "chemistry";
        run.observations.push(Observation {
            code: code.instrument_code.clone(),
            value,
            unit: code.unit.clone(),
            flag,
        });
    }
    if runs.is_empty() {
        println!(
            "No received specimen has a test an instrument can run: receive some specimens first."
        );
        return Ok(());
    }
    for run in runs.values_mut().filter(|r| r.chemistry) {
        run.observations.extend(serum_indices(&mut rng));
    }
    match protocol {
        SimProtocol::Hl7 => send_hl7(&runs, to).await,
        SimProtocol::Astm => send_astm(lab, &runs, to).await,
    }
}

/// The value as the analyzer reports it, with its abnormal flag: below the lower limit of the
/// measuring range (sometimes, where the catalog has one) it is censored, `<` that limit;
/// otherwise flagged `L` or `H` against the patient's reference interval.
fn as_measured(
    def: &TestDefinition,
    value: String,
    sex: cuvette_domain::Sex,
    born: jiff::civil::Date,
    on: jiff::civil::Date,
    rng: &mut Lcg,
) -> (String, String) {
    if let Some(limit) = def.amr_low.filter(|l| !l.is_zero())
        && rng.next() < CENSORED_CHANCE
    {
        return (format!("<{}", limit.normalize()), "<".to_owned());
    }
    let Some(number) = value.parse::<rust_decimal::Decimal>().ok() else {
        return (value, String::new());
    };
    let flag = match def.interval_for(sex, born, on) {
        Some(r) if r.low.is_some_and(|low| number < low) => "L",
        Some(r) if r.high.is_some_and(|high| number > high) => "H",
        _ => "",
    };
    (value, flag.to_owned())
}

/// The serum indices a chemistry analyzer reports beside its results (Roche cobas: `H`, `I`,
/// `L`, whole numbers in its index units): mostly clear serum, sometimes hemolyzed.
fn serum_indices(rng: &mut Lcg) -> Vec<Observation> {
    let hemolysis = if rng.next() < HEMOLYZED_CHANCE {
        120 + (rng.next() * 200.0) as u32
    } else {
        (rng.next() * 30.0) as u32
    };
    let icterus = (rng.next() * 3.0) as u32;
    let lipemia = (rng.next() * 25.0) as u32;
    [("H", hemolysis), ("I", icterus), ("L", lipemia)]
        .into_iter()
        .map(|(code, value)| Observation {
            code: code.to_owned(),
            value: value.to_string(),
            unit: String::new(),
            flag: String::new(),
        })
        .collect()
}

async fn send_hl7(runs: &BTreeMap<(String, String), Run>, to: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(to)
        .await
        .with_context(|| format!("connecting to the MLLP listener at {to}"))?;
    let mut deframer = MllpDeframer::new();
    for (n, run) in runs.values().enumerate() {
        let control_id = format!("SIM{}{n:04}", SystemClock.now().as_millisecond());
        let message = oru(run, &control_id)?;
        stream.write_all(&frame(&message)).await?;
        let ack = read_frame(&mut stream, &mut deframer).await?;
        let parsed = Message::parse(&ack).ok();
        let code = parsed
            .as_ref()
            .and_then(|m| m.segment("MSA"))
            .map(|s| s.field(1).text().to_string())
            .unwrap_or_else(|| "?".into());
        let why = parsed
            .as_ref()
            .and_then(|m| m.segment("MSA"))
            .map(|s| s.field(3).text().to_string())
            .unwrap_or_default();
        println!(
            "{}  {:<10} {:>2} results  → {code} {why}",
            run.accession,
            run.sender,
            run.observations.len()
        );
    }
    Ok(())
}

/// Sends each run as one ASTM message on a session of its own, bidding for the line as an
/// instrument, then reads what became of it in the message log (ASTM has no application
/// acknowledgement: the link layer's ACK says only that the frames arrived).
async fn send_astm(
    lab: &Lab,
    runs: &BTreeMap<(String, String), Run>,
    to: SocketAddr,
) -> anyhow::Result<()> {
    for run in runs.values() {
        cuvette_server::interfaces::astm::send_records_as(
            to,
            cuvette_astm::Role::Instrument,
            astm_records(run),
        )
        .await
        .with_context(|| format!("sending to the ASTM listener at {to}"))?;
        let filter = MessageFilter {
            text: Some(run.accession.clone()),
            limit: 1,
            ..MessageFilter::default()
        };
        let outcome = lab
            .message_log(&Actor::system(), &filter)
            .await?
            .into_iter()
            .next()
            .map(|m| format!("{} {}", m.outcome.code(), m.detail))
            .unwrap_or_else(|| "sent".to_owned());
        println!(
            "{}  {:<10} {:>2} results  → {outcome}",
            run.accession,
            run.sender,
            run.observations.len()
        );
    }
    Ok(())
}

/// A run as ASTM E1394 records (LIS02-A2): `H` with the instrument's name (H-5) and the time
/// (H-14), `P`, `O` with the accession (O-3) and the tests (O-5), an `R` per result (R-3
/// `^^^code`, R-4 value, R-5 unit, R-7 flag, R-9 `F`, R-13 completed) and `L|1|N`.
fn astm_records(run: &Run) -> Vec<Vec<u8>> {
    let now = SystemClock.now().strftime("%Y%m%d%H%M%S").to_string();
    let mut message = AstmMessage::new(Delimiters::STANDARD)
        .record(
            RecordBuilder::header()
                .field(5, run.sender.as_str())
                .field(12, "P")
                .field(14, now.as_str()),
        )
        .record(RecordBuilder::patient(1))
        .record(
            RecordBuilder::order(
                1,
                run.accession.as_str(),
                run.observations.iter().map(|o| o.code.as_str()),
            )
            .field(26, "F"),
        );
    for (n, o) in run.observations.iter().enumerate() {
        message = message.record(
            RecordBuilder::new(RecordType::Result)
                .field(2, (n + 1).to_string())
                .components(3, ["", "", "", o.code.as_str()])
                .field(4, o.value.as_str())
                .field(5, o.unit.as_str())
                .field(7, o.flag.as_str())
                .field(9, "F")
                .field(13, now.as_str()),
        );
    }
    message.record(RecordBuilder::terminator("N")).encode()
}

fn oru(run: &Run, control_id: &str) -> anyhow::Result<Vec<u8>> {
    let now = SystemClock.now().strftime("%Y%m%d%H%M%S").to_string();
    let mut b = MessageBuilder::new()
        .segment(
            SegmentBuilder::new("MSH")
                .field(3, run.sender.as_str())
                .field(4, "LAB")
                .field(5, "CUVETTE")
                .field(6, "LAB")
                .field(7, now.as_str())
                .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
                .field(10, control_id)
                .field(11, "P")
                .field(12, "2.5.1"),
        )
        .segment(
            SegmentBuilder::new("OBR")
                .field(1, "1")
                .field(3, run.accession.as_str())
                .field(7, now.as_str())
                .field(25, "F"),
        );
    for (i, o) in run.observations.iter().enumerate() {
        let numeric = o.value.parse::<f64>().is_ok();
        // A censored value is a structured numeric (SN): comparator, then the number.
        let (value_type, value) = match o.value.strip_prefix('<') {
            Some(limit) => ("SN", FieldValue::components(["<", limit])),
            None if numeric => ("NM", FieldValue::text(o.value.as_str())),
            None => ("ST", FieldValue::text(o.value.as_str())),
        };
        b = b.segment(
            SegmentBuilder::new("OBX")
                .field(1, (i + 1).to_string())
                .field(2, value_type)
                .field(3, FieldValue::components([o.code.as_str(), "", "LN"]))
                .field(5, value)
                .field(6, o.unit.as_str())
                .field(8, o.flag.as_str())
                .field(11, "F")
                .field(14, now.as_str()),
        );
    }
    Ok(b.finish()?)
}

async fn read_frame(
    stream: &mut TcpStream,
    deframer: &mut MllpDeframer,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(next) = deframer.next_frame() {
            return Ok(next?);
        }
        let n = tokio::time::timeout(ACK_TIMEOUT, stream.read(&mut buf))
            .await
            .context("no acknowledgement within 30 s")??;
        if n == 0 {
            bail!("the server closed the connection before acknowledging");
        }
        deframer.push(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cuvette_app::records::{Direction, MessageOutcome};

    /// The demo lab on a fresh SQLite folder of its own, with both listeners serving it.
    async fn the_demo_lab_listening()
    -> (std::path::PathBuf, std::sync::Arc<Lab>, SocketAddr, SocketAddr) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cuvette-simulate-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = cuvette_app::Database::open_dir(&dir).await.unwrap();
        crate::demo::seed_if_empty(&database, cuvette_app::LabConfig::default()).await.unwrap();
        let lab = std::sync::Arc::new(
            Lab::open(
                database,
                std::sync::Arc::new(SystemClock),
                cuvette_app::LabConfig::default(),
            )
            .await
            .unwrap(),
        );
        let (mllp, mllp_addr) =
            cuvette_server::interfaces::mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        tokio::spawn(cuvette_server::interfaces::mllp::serve(lab.clone(), mllp));
        let (astm, astm_addr) =
            cuvette_server::interfaces::astm::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        tokio::spawn(cuvette_server::interfaces::astm::serve(lab.clone(), astm));
        (dir, lab, mllp_addr, astm_addr)
    }

    /// What the listeners logged from one protocol's analyzers: (sender, outcome, results).
    async fn received(lab: &Lab, protocol: Protocol) -> Vec<(String, MessageOutcome, i64, String)> {
        let filter = cuvette_app::records::MessageFilter {
            direction: Some(Direction::In),
            limit: 10_000,
            ..Default::default()
        };
        lab.message_log(&Actor::system(), &filter)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.protocol == protocol)
            .map(|m| (m.sender, m.outcome, m.results, String::from_utf8_lossy(&m.raw).into_owned()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_analyzers_results_over_both_listeners_are_all_taken_in_the_units_they_are_mapped_in()
     {
        let (dir, lab, mllp, astm) = the_demo_lab_listening().await;
        let before_hl7 = received(&lab, Protocol::Hl7).await.len();
        let before_astm = received(&lab, Protocol::Astm).await.len();

        // The demo keeps a few specimens received and waiting: one for the HL7 analyzers,
        // the rest for the ASTM ones.
        run(&lab, SimProtocol::Hl7, mllp, 1, 0.3).await.unwrap();
        run(&lab, SimProtocol::Astm, astm, 6, 0.3).await.unwrap();

        let astm_log = received(&lab, Protocol::Astm).await;
        let hl7_log = received(&lab, Protocol::Hl7).await;
        let new_astm = &astm_log[..astm_log.len() - before_astm];
        let new_hl7 = &hl7_log[..hl7_log.len() - before_hl7];
        assert!(!new_astm.is_empty(), "the ASTM analyzers sent something");
        assert!(!new_hl7.is_empty(), "the HL7 analyzers sent something");
        for (sender, outcome, results, raw) in new_astm.iter().chain(new_hl7) {
            // Every message the simulator sends is one a real lab takes whole: nothing
            // quarantined, nothing partial, and results stored from each.
            assert_eq!(*outcome, MessageOutcome::Accepted, "{sender}: {raw}");
            assert!(*results > 0, "{sender} stored nothing: {raw}");
        }
        // The chemistry analyzer set up in SI units speaks ASTM in mmol/L and µmol/L, and
        // those messages are taken (converted, not quarantined for their unit).
        let si: Vec<_> = new_astm.iter().filter(|m| m.0 == "DEMOSI").collect();
        assert!(!si.is_empty(), "the demo keeps a chemistry specimen for the SI analyzer");
        assert!(
            si.iter().any(|m| m.3.contains("mmol/L") || m.3.contains("umol/L")),
            "the SI analyzer reports in SI units: {si:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_astm_run_is_one_order_with_a_result_record_per_test_and_the_indices() {
        let run = Run {
            sender: "DEMOSI".into(),
            accession: "26-0000012-3".into(),
            chemistry: true,
            observations: vec![
                Observation {
                    code: "GLU".into(),
                    value: "5.2".into(),
                    unit: "mmol/L".into(),
                    flag: String::new(),
                },
                Observation {
                    code: "CREAT".into(),
                    value: "412".into(),
                    unit: "umol/L".into(),
                    flag: "H".into(),
                },
                Observation {
                    code: "H".into(),
                    value: "140".into(),
                    unit: "".into(),
                    flag: "".into(),
                },
            ],
        };
        let records: Vec<String> =
            astm_records(&run).iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
        assert!(records[0].starts_with("H|\\^&|||DEMOSI|"), "{}", records[0]);
        assert_eq!(records[1], "P|1");
        assert_eq!(records[2], "O|1|26-0000012-3||^^^GLU\\^^^CREAT\\^^^H|||||||||||||||||||||F");
        assert!(records[3].starts_with("R|1|^^^GLU|5.2|mmol/L||||F||||"), "{}", records[3]);
        assert!(records[4].starts_with("R|2|^^^CREAT|412|umol/L||H||F||||"), "{}", records[4]);
        assert!(records[5].starts_with("R|3|^^^H|140|||||F||||"), "{}", records[5]);
        assert_eq!(records[6], "L|1|N");
    }
}

//! `cuvette simulate`: an instrument simulator. It takes the lab's received specimens, finds
//! an instrument whose code map covers each test, and sends realistic results to a running
//! Cuvette as HL7 ORU^R01 over MLLP — so a newcomer sees the lab at work.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use cuvette_app::{Actor, Clock, Lab, SystemClock};
use cuvette_domain::workflow::TestStatus;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_hl7::{FieldValue, Message, MessageBuilder, SegmentBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::demo::{Lcg, plausible_value};

/// How long to wait for an acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// One result message to send: a specimen's tests measured on one instrument.
struct Run {
    sender: String,
    accession: String,
    observations: Vec<(String, String, String)>, // (instrument code, value, unit)
}

/// Sends results for up to `limit` received specimens to the MLLP listener at `to`.
pub async fn run(lab: &Lab, to: SocketAddr, limit: usize, abnormal: f64) -> anyhow::Result<()> {
    let system = Actor::system();
    let catalog = lab.catalog();
    let instruments = lab.instruments(&system).await?;
    if instruments.is_empty() {
        bail!(
            "no instruments are configured: add one (Interfaces page) with its test codes, or run `cuvette demo`"
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
            .filter(|(i, _)| i.protocol == cuvette_app::records::Protocol::Hl7 && i.active)
            .find_map(|(i, codes)| codes.iter().find(|c| c.test_code == def.code).map(|c| (i, c)))
        else {
            continue;
        };
        let sex =
            cuvette_domain::Sex::parse(&item.patient.sex).unwrap_or(cuvette_domain::Sex::Unknown);
        let Ok(born) = item.patient.birth_date.parse() else { continue };
        let Some(value) = plausible_value(def, sex, born, on, &mut rng, abnormal) else { continue };
        // An instrument whose code is mapped in another unit sends its results in that unit.
        let value = match cuvette_domain::units::conversion(&def.code, &code.unit, &def.unit) {
            Some(to_instrument) => match cuvette_domain::ReportedValue::parse(&value)
                .ok()
                .and_then(|v| to_instrument.apply(&v, None))
            {
                Some(v) => v.text,
                None => continue,
            },
            None => value,
        };
        let key = (item.specimen.accession.clone(), instrument.sender.clone());
        if !runs.contains_key(&key) && runs.len() >= limit {
            continue;
        }
        runs.entry(key)
            .or_insert_with(|| Run {
                sender: instrument.sender.clone(),
                accession: item.specimen.accession.clone(),
                observations: vec![],
            })
            .observations
            .push((code.instrument_code.clone(), value, code.unit.clone()));
    }
    if runs.is_empty() {
        println!(
            "No received specimen has a test an instrument can run: receive some specimens first."
        );
        return Ok(());
    }
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
            "{}  {:<9} {:>2} results  → {code} {why}",
            run.accession,
            run.sender,
            run.observations.len()
        );
    }
    Ok(())
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
    for (i, (code, value, unit)) in run.observations.iter().enumerate() {
        let numeric = value.parse::<f64>().is_ok();
        b = b.segment(
            SegmentBuilder::new("OBX")
                .field(1, (i + 1).to_string())
                .field(2, if numeric { "NM" } else { "ST" })
                .field(3, FieldValue::components([code.as_str(), "", "LN"]))
                .field(5, value.as_str())
                .field(6, unit.as_str())
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

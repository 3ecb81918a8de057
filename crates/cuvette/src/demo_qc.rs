//! The demo lab's quality control and autoverification: two control levels for the eight
//! basic chemistries on the demo chemistry analyzer, run every morning of the demo week; a
//! glucose rejection with its corrective action mid-week; a potassium rejection this morning
//! that nobody has acted on yet (so today's potassium results are held); approved rule sets
//! for the basic chemistries; a sodium moving average; and chemistry results that arrive
//! through the analyzer's interface, so autoverification, the message log and the dry run
//! have a history to work on.

use cuvette_app::interop::{self, Ingested};
use cuvette_app::qc::MaterialForm;
use cuvette_app::records::MovingAverageRow;
use cuvette_app::{Actor, EnteredResult, Lab};
use cuvette_domain::autoverify::AutoverifyRules;
use cuvette_domain::catalog::ResultType;

use crate::demo::{Lcg, demo_instrument_code, plausible_value};

/// The analyzer the demo runs QC on.
pub const QC_ANALYZER: &str = "DEMOCHEM";

/// (test, [(level 1 mean, SD), (level 2 mean, SD)]) on the demo chemistry analyzer.
const CONTROLS: [(&str, [(f64, f64); 2]); 8] = [
    ("GLU", [(95.0, 2.5), (280.0, 6.0)]),
    ("K", [(4.0, 0.08), (6.5, 0.12)]),
    ("NA", [(140.0, 1.2), (155.0, 1.5)]),
    ("CREAT", [(1.00, 0.03), (5.00, 0.12)]),
    ("CL", [(100.0, 1.5), (115.0, 1.8)]),
    ("CO2", [(24.0, 0.8), (35.0, 1.0)]),
    ("BUN", [(15.0, 0.6), (60.0, 1.8)]),
    ("CA", [(9.5, 0.15), (12.5, 0.2)]),
];

/// What the demo analyzer calls its hemolysis index.
const HEMOLYSIS_CODE: &str = "HIDX";

/// Tests whose approved rule set is switched on.
const AUTOVERIFIED: [&str; 8] = ["NA", "K", "CL", "CO2", "BUN", "CREAT", "GLU", "CA"];

/// The instrument's id and the targets: (test, level, target id, mean, sd).
pub struct DemoQc {
    instrument: i64,
    targets: Vec<(String, u8, i64, f64, f64)>,
}

/// Sets up control materials, targets, rule sets and the sodium moving average.
pub async fn set_up(lab: &Lab, supervisor: &Actor, director: &Actor) -> anyhow::Result<DemoQc> {
    let instrument = lab
        .instruments(supervisor)
        .await?
        .into_iter()
        .find(|(i, _)| i.sender == QC_ANALYZER)
        .map(|(i, _)| i.id)
        .ok_or_else(|| anyhow::anyhow!("the demo chemistry analyzer is missing"))?;
    // Its control runs arrive with the vials' barcodes as sample ids, and it measures the
    // hemolysis index of every chemistry specimen.
    lab.set_qc_pattern(supervisor, instrument, "QC-*").await?;
    lab.map_test_code(supervisor, instrument, HEMOLYSIS_CODE, "SI_H", "").await?;
    let mut materials = Vec::new();
    for level in 1..=2u8 {
        materials.push(
            lab.add_material(
                supervisor,
                &MaterialForm {
                    product: "Demo Chemistry Control".into(),
                    manufacturer: "Demo Diagnostics".into(),
                    lot: "DC-2611".into(),
                    level: level.to_string(),
                    expires_on: "2027-12-31".into(),
                    sample_id: format!("QC-{QC_ANALYZER}-L{level}"),
                },
            )
            .await?,
        );
    }
    let mut targets = Vec::new();
    for (test, levels) in CONTROLS {
        for (i, (mean, sd)) in levels.iter().enumerate() {
            let id = lab
                .set_target(
                    supervisor,
                    materials[i],
                    instrument,
                    test,
                    &mean.to_string(),
                    &sd.to_string(),
                )
                .await?;
            targets.push((test.to_owned(), i as u8 + 1, id, *mean, *sd));
        }
    }
    let catalog = lab.catalog();
    for code in AUTOVERIFIED {
        let Some(def) = catalog.catalog.test(code) else { continue };
        let rules = AutoverifyRules {
            enabled: true,
            hemolysis_max: (code == "K").then_some(50),
            ..AutoverifyRules::default_for(def)
        };
        lab.save_autoverify_rules(director, code, &rules).await?;
    }
    lab.set_moving_average(
        supervisor,
        &MovingAverageRow {
            instrument_id: instrument,
            test_code: "NA".into(),
            window_size: 10,
            truncate_low: Some(125.0),
            truncate_high: Some(155.0),
            target: 140.0,
            lower_limit: 135.0,
            upper_limit: 145.0,
        },
    )
    .await?;
    Ok(DemoQc { instrument, targets })
}

/// A normal-looking z-score (the sum of three uniforms, centred and scaled).
fn z(rng: &mut Lcg) -> f64 {
    (rng.next() + rng.next() + rng.next() - 1.5) * 2.0
}

impl DemoQc {
    /// The morning QC run of every test, both levels; `forced` sets one level's z.
    pub async fn morning(
        &self,
        lab: &Lab,
        tech: &Actor,
        rng: &mut Lcg,
        forced: Option<(&str, u8, f64)>,
    ) -> anyhow::Result<()> {
        for (test, _) in CONTROLS {
            let values: Vec<(i64, String)> = self
                .targets
                .iter()
                .filter(|t| t.0 == test)
                .map(|(_, level, id, mean, sd)| {
                    let z = match forced {
                        Some((t, l, z)) if t == test && l == *level => z,
                        _ => z(rng).clamp(-1.9, 1.9),
                    };
                    (*id, format!("{:.3}", mean + z * sd))
                })
                .collect();
            lab.record_qc(tech, self.instrument, test, &values).await?;
        }
        Ok(())
    }

    /// Documents a corrective action on a test.
    pub async fn corrective_action(
        &self,
        lab: &Lab,
        mls: &Actor,
        test: &str,
        action: &str,
        note: &str,
    ) -> anyhow::Result<()> {
        lab.document_corrective_action(mls, self.instrument, test, action, note).await?;
        Ok(())
    }
}

/// Results for a specimen: chemistry the demo analyzer measures arrives as its ORU^R01 over
/// the interface path; anything else is typed at the bench by `tech`.
pub async fn analyze(
    lab: &Lab,
    tech: &Actor,
    accession: &str,
    rng: &mut Lcg,
    abnormal: f64,
) -> anyhow::Result<()> {
    let catalog = lab.catalog();
    let view = lab.specimen_view(tech, accession).await?;
    let sex = cuvette_domain::Sex::parse(&view.patient.sex).unwrap_or(cuvette_domain::Sex::Unknown);
    let born: jiff::civil::Date = view.patient.birth_date.parse()?;
    let on = lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date();
    let mapped: Vec<(String, String)> = lab
        .instruments(tech)
        .await?
        .into_iter()
        .find(|(i, _)| i.sender == QC_ANALYZER)
        .map(|(_, codes)| codes.into_iter().map(|c| (c.test_code, c.instrument_code)).collect())
        .unwrap_or_default();
    let mut obx = Vec::new();
    let mut manual = Vec::new();
    for t in &view.tests {
        let Some(def) = catalog.catalog.test(&t.item.test.test_code) else { continue };
        if def.is_calculated() || !t.item.test.status.accepts_results() {
            continue;
        }
        let Some(text) = plausible_value(def, sex, born, on, rng, abnormal) else { continue };
        let code = mapped.iter().find(|(test, _)| *test == def.code).map(|(_, c)| c.clone());
        match code {
            Some(code)
                if def.result_type == ResultType::Numeric && code == demo_instrument_code(def) =>
            {
                obx.push((code, text, def.unit.clone()));
            }
            _ => manual.push(EnteredResult {
                ordered_test_id: t.item.test.id,
                row_version: t.item.test.row_version,
                text,
            }),
        }
    }
    if !obx.is_empty() {
        let ts = lab.now().strftime("%Y%m%d%H%M%S");
        let mut message = format!(
            "MSH|^~\\&|{QC_ANALYZER}|CORE LAB|CUVETTE|LAB|{ts}||ORU^R01^ORU_R01|DEMO-{accession}|P|2.5.1\r\
             PID|1||{}^^^HOSP^MR\rOBR|1||{accession}|CHEM^Chemistry|||{ts}\r",
            view.patient.mrn
        );
        for (i, (code, value, unit)) in obx.iter().enumerate() {
            message
                .push_str(&format!("OBX|{}|NM|{code}^^LN||{value}|{unit}|||||F|||{ts}\r", i + 1));
        }
        // Most specimens are clear; about one in twelve is hemolysed.
        let hemolysis = if rng.next() < 0.08 {
            80 + (rng.next() * 150.0) as u32
        } else {
            (rng.next() * 30.0) as u32
        };
        message.push_str(&format!(
            "OBX|{}|NM|{HEMOLYSIS_CODE}^Hemolysis index^L||{hemolysis}||||||F|||{ts}\r",
            obx.len() + 1
        ));
        let (outcome, _) =
            interop::hl7::receive(lab, message.as_bytes(), "demo", "demo-seed").await?;
        if !matches!(outcome, Ingested::Accepted { .. }) {
            anyhow::bail!(
                "the demo analyzer's results for {accession} were not accepted: {outcome:?}"
            );
        }
    }
    if !manual.is_empty() {
        // The bench sees the analyzer's results: row versions moved on.
        let fresh = lab.specimen_view(tech, accession).await?;
        for m in &mut manual {
            if let Some(t) = fresh.tests.iter().find(|t| t.item.test.id == m.ordered_test_id) {
                m.row_version = t.item.test.row_version;
            }
        }
        lab.enter_results(tech, &manual, None).await?;
    }
    Ok(())
}

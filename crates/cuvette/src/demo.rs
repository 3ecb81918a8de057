//! The demo lab: users of every role, an API key, patients, orders in every state and a week
//! of history, made by driving the real use cases with a clock that walks through the week.
//! Demo patients are obviously synthetic (family names start with "Demo").

use std::net::SocketAddr;
use std::sync::Arc;

use cuvette_app::{
    Actor, Clock, CriticalCall, Database, EnteredResult, FixedClock, IdentityCheck, Lab, LabConfig,
    NewUser, PlaceOrder, RegisterPatient, SystemClock,
};
use cuvette_domain::Role;
use cuvette_domain::catalog::ResultType;
use cuvette_domain::workflow::TestStatus;
use jiff::{SignedDuration, ToSpan};

/// The demo's users: (username, display name, role, password).
pub const DEMO_USERS: [(&str, &str, Role, &str); 7] = [
    ("phleb", "Demo Phlebotomist", Role::Phlebotomist, "demo-tourniquet"),
    ("assistant", "Demo Lab Assistant", Role::LabAssistant, "demo-centrifuge"),
    ("tech", "Demo Technician", Role::Technician, "demo-pipette-tip"),
    ("mls", "Demo Technologist", Role::Technologist, "demo-westgard"),
    ("super", "Demo Supervisor", Role::Supervisor, "demo-levey-jennings"),
    ("director", "Demo Pathologist", Role::Pathologist, "demo-signout-desk"),
    ("student", "Demo Student", Role::Student, "demo-practicum"),
];

const GIVEN: [&str; 12] = [
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Luis",
];
const FAMILY: [&str; 10] = [
    "Demo-Ashby",
    "Demo-Brook",
    "Demo-Castillo",
    "Demo-Dahl",
    "Demo-Eze",
    "Demo-Fontaine",
    "Demo-Gupta",
    "Demo-Holm",
    "Demo-Ito",
    "Demo-Jansen",
];
const ORDERS: [&[&str]; 7] =
    [&["BMP"], &["CBC"], &["CMP"], &["LIPID"], &["BMP", "CBC"], &["TSH"], &["PTINR"]];

/// A small deterministic generator, so every demo lab is the same.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() * xs.len() as f64) as usize % xs.len()]
    }
}

fn actor(lab_user: &(&str, &str, Role, &str)) -> Actor {
    Actor { name: lab_user.0.into(), display_name: lab_user.1.into(), role: lab_user.2 }
}

/// Fills an empty database with the demo lab; leaves a used one alone.
pub async fn seed_if_empty(database: &Database, config: LabConfig) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let start = now.checked_sub(SignedDuration::from_hours(24 * 7))?;
    let clock = Arc::new(FixedClock::new(start));
    let lab = Lab::open(database.clone(), clock.clone(), config).await?;
    let system = Actor::system();
    if !lab.users(&system).await?.is_empty() {
        eprintln!("The demo database already has data: serving it as it is.");
        return Ok(());
    }
    eprintln!("Creating the demo lab (a week of history)…");
    for u in &DEMO_USERS {
        lab.add_user(
            &system,
            NewUser {
                username: u.0.into(),
                display_name: u.1.into(),
                role: u.2,
                password: u.3.into(),
            },
        )
        .await?;
    }
    let [phleb, assistant, tech, mls, sup, director, student] = DEMO_USERS.map(|u| actor(&u));
    add_demo_instruments(&lab, &sup).await?;
    let qc = crate::demo_qc::set_up(&lab, &sup, &director).await?;
    let mut rng = Lcg(0x5eed_cafe);

    // Patients.
    let mut patients = Vec::new();
    for i in 0..20 {
        // Adults: the example catalog has few paediatric intervals.
        let year = 1940 + (rng.next() * 64.0) as i16;
        let month = 1 + (rng.next() * 12.0) as i8 % 12;
        let day = 1 + (rng.next() * 28.0) as i8 % 28;
        let p = lab
            .register_patient(
                &phleb,
                &RegisterPatient {
                    mrn: format!("D{:06}", 100 + i),
                    family_name: FAMILY[i % FAMILY.len()].into(),
                    given_name: GIVEN[(i * 7) % GIVEN.len()].into(),
                    birth_date: format!("{year:04}-{month:02}-{day:02}"),
                    sex: if i % 2 == 0 { "F".into() } else { "M".into() },
                },
            )
            .await?;
        patients.push(p);
    }

    // A week of finished work: ordered, drawn, received, resulted, verified.
    for day in 0..7 {
        // Morning QC; on day 4 glucose level 2 reads 3.4 SD high: rejected, recalibrated,
        // re-run.
        clock.set(start.checked_add((day * 24).hours())?.checked_add(6.hours())?);
        let glucose_fails = day == 4;
        qc.morning(&lab, &tech, &mut rng, glucose_fails.then_some(("GLU", 2, 3.4))).await?;
        if glucose_fails {
            clock.advance(SignedDuration::from_mins(20));
            qc.corrective_action(
                &lab,
                &mls,
                "GLU",
                "recalibrated",
                "GLU recalibrated; calibrator lot C-88",
            )
            .await?;
            clock.advance(SignedDuration::from_mins(15));
            qc.morning(&lab, &tech, &mut rng, None).await?;
        }
        clock.set(start.checked_add((day * 24).hours())?.checked_add(7.hours())?);
        for n in 0..5 {
            let p = rng.pick(&patients).clone();
            // From day 3 the student on her chemistry rotation runs one panel a day, which
            // the technologist who supervises her co-signs: her logbook.
            let by_student = n == 4 && day >= 3;
            let tests: Vec<String> = if by_student {
                vec!["BMP".into()]
            } else {
                rng.pick(&ORDERS).iter().map(|s| s.to_string()).collect()
            };
            let stat = n == 0;
            clock.advance(SignedDuration::from_mins(20));
            let placed = lab
                .place_order(
                    &phleb,
                    &PlaceOrder {
                        patient_id: p.id,
                        provider: "Dr. Demo Ward".into(),
                        priority: if stat { "stat".into() } else { "routine".into() },
                        tests,
                        clinical_note: String::new(),
                        placer_number: None,
                    },
                )
                .await?;
            for s in &placed.specimens {
                lab.collect(&phleb, &s.accession).await?;
                clock.advance(SignedDuration::from_mins(25));
                lab.receive(
                    &assistant,
                    &s.accession,
                    &IdentityCheck {
                        mrn: Some(p.mrn.clone()),
                        birth_date: Some(p.birth_date.clone()),
                        family_name: None,
                    },
                )
                .await?;
                clock.advance(SignedDuration::from_mins(30));
                if by_student {
                    enter_plausible(&lab, &student, &s.accession, &mut rng, 0.0).await?;
                } else {
                    crate::demo_qc::analyze(&lab, &tech, &s.accession, &mut rng, 0.15).await?;
                }
                clock.advance(SignedDuration::from_mins(15));
                release_all(&lab, &mls, &s.accession).await?;
            }
        }
    }

    // This morning's QC: potassium level 1 reads 3.4 SD low. Nobody has acted on it yet, so
    // potassium on the chemistry analyzer is locked out and today's results are held.
    clock.set(now.checked_sub(SignedDuration::from_hours(3))?);
    qc.morning(&lab, &tech, &mut rng, Some(("K", 1, -3.4))).await?;
    // Today: one order in every state.
    clock.set(now.checked_sub(SignedDuration::from_hours(2))?);
    let today = |i: usize| patients[i].clone();
    let order = |p: cuvette_app::records::PatientRow, tests: &[&str], stat: bool| PlaceOrder {
        patient_id: p.id,
        provider: "Dr. Demo Emergency".into(),
        priority: if stat { "stat".into() } else { "routine".into() },
        tests: tests.iter().map(|s| s.to_string()).collect(),
        clinical_note: "Demo order".into(),
        placer_number: None,
    };
    let check = |p: &cuvette_app::records::PatientRow| IdentityCheck {
        mrn: Some(p.mrn.clone()),
        birth_date: Some(p.birth_date.clone()),
        family_name: None,
    };
    // Ordered, waiting to be drawn.
    lab.place_order(&phleb, &order(today(0), &["CBC"], false)).await?;
    lab.place_order(&phleb, &order(today(1), &["BMP"], true)).await?;
    // Collected, on its way to the lab.
    let o = lab.place_order(&phleb, &order(today(2), &["TSH"], false)).await?;
    lab.collect(&phleb, &o.specimens[0].accession).await?;
    // Received, waiting on the bench (worklist), one STAT.
    for (i, tests, stat) in
        [(3, &["BMP"][..], true), (4, &["CBC"][..], false), (5, &["LIPID"][..], false)]
    {
        let p = today(i);
        let o = lab.place_order(&phleb, &order(p.clone(), tests, stat)).await?;
        for s in &o.specimens {
            lab.collect(&phleb, &s.accession).await?;
            clock.advance(SignedDuration::from_mins(5));
            lab.receive(&assistant, &s.accession, &check(&p)).await?;
        }
    }
    // Resulted, waiting for review: routine, abnormal, a student's, and a critical potassium.
    for (i, who, abnormal) in [(6, &tech, 0.0), (7, &tech, 1.0), (8, &student, 0.0)] {
        let p = today(i);
        let o = lab.place_order(&phleb, &order(p.clone(), &["BMP"], false)).await?;
        let acc = &o.specimens[0].accession;
        lab.collect(&phleb, acc).await?;
        lab.receive(&assistant, acc, &check(&p)).await?;
        clock.advance(SignedDuration::from_mins(10));
        if who.role == Role::Student {
            enter_plausible(&lab, who, acc, &mut rng, abnormal).await?;
        } else {
            // From the analyzer: autoverification releases what passes, and potassium is
            // held by this morning's QC failure.
            crate::demo_qc::analyze(&lab, who, acc, &mut rng, abnormal).await?;
        }
    }
    let p = today(9);
    let o = lab.place_order(&phleb, &order(p.clone(), &["BMP"], true)).await?;
    let acc = o.specimens[0].accession.clone();
    lab.collect(&phleb, &acc).await?;
    lab.receive(&assistant, &acc, &check(&p)).await?;
    enter_plausible(&lab, &tech, &acc, &mut rng, 0.0).await?;
    let view = lab.specimen_view(&tech, &acc).await?;
    if let Some(k) = view.tests.iter().find(|t| t.item.test.test_code == "K") {
        let entry = EnteredResult {
            ordered_test_id: k.item.test.id,
            row_version: k.item.test.row_version,
            text: "6.8".into(),
        };
        lab.enter_results(&tech, &[entry], None).await?;
    }
    // Final, and a corrected final.
    let p = today(10);
    let o = lab.place_order(&phleb, &order(p.clone(), &["TSH"], false)).await?;
    let acc = o.specimens[0].accession.clone();
    lab.collect(&phleb, &acc).await?;
    lab.receive(&assistant, &acc, &check(&p)).await?;
    enter_plausible(&lab, &tech, &acc, &mut rng, 0.0).await?;
    release_all(&lab, &mls, &acc).await?;
    clock.advance(SignedDuration::from_mins(30));
    let view = lab.specimen_view(&mls, &acc).await?;
    let t = &view.tests[0];
    let entry = EnteredResult {
        ordered_test_id: t.item.test.id,
        row_version: t.item.test.row_version,
        text: "2.10".into(),
    };
    let correction = cuvette_app::Correction {
        reason: "transcription error: wrong specimen result keyed".into(),
        signature: "demo-westgard".into(),
    };
    lab.enter_results(&mls, &[entry], Some(&correction)).await?;
    release_all(&lab, &mls, &acc).await?;
    // Rejected, with its recollection waiting to be drawn.
    let p = today(11);
    let o = lab.place_order(&phleb, &order(p.clone(), &["BMP"], false)).await?;
    let acc = o.specimens[0].accession.clone();
    lab.collect(&phleb, &acc).await?;
    lab.receive(&assistant, &acc, &check(&p)).await?;
    lab.reject(&assistant, &acc, "hemolyzed", "grossly hemolyzed; recollect").await?;
    // The staff's records, and from now on their qualifications are enforced.
    clock.set(now);
    let today = now.to_zoned_datetime(lab.config().time_zone.clone()).date();
    let people = [&phleb, &assistant, &tech, &mls, &sup, &director];
    crate::demo_staff::set_up(&lab, today, people, &director, &sup).await?;
    crate::demo_staff::rotation(&lab, today, &student, &mls, &sup).await?;
    Ok(())
}

/// A plausible value for a test: inside the patient's reference interval, or with chance
/// `abnormal` a little above it; coded tests get their first normal value.
pub fn plausible_value(
    def: &cuvette_domain::TestDefinition,
    sex: cuvette_domain::Sex,
    born: jiff::civil::Date,
    on: jiff::civil::Date,
    rng: &mut Lcg,
    abnormal: f64,
) -> Option<String> {
    match def.result_type {
        ResultType::Numeric => {
            let as_f64 = |d: Option<rust_decimal::Decimal>| {
                d.and_then(|d| d.to_string().parse::<f64>().ok())
            };
            let (low, high) = match def.interval_for(sex, born, on) {
                Some(r) => (as_f64(r.low), as_f64(r.high)),
                None => (None, None),
            };
            let (low, high) = match (low, high) {
                (Some(l), Some(h)) => (l, h),
                (Some(l), None) => (l, l * 1.5 + 1.0),
                (None, Some(h)) => (h * 0.4, h),
                (None, None) => return None,
            };
            let span = high - low;
            let u = rng.next();
            let x = if rng.next() < abnormal {
                high + span * (0.05 + 0.2 * u)
            } else {
                low + span * (0.1 + 0.8 * u)
            };
            let decimals = def.decimals.unwrap_or(1) as usize;
            Some(format!("{x:.decimals$}"))
        }
        ResultType::Coded => def.normal_values.first().or(def.allowed_values.first()).cloned(),
        _ => None,
    }
}

/// The demo's analyzers: HL7 senders whose codes are the catalog's LOINC codes (or the test
/// code where there is none), one per bench.
pub const DEMO_INSTRUMENTS: [(&str, &str, &str); 3] = [
    ("Demo chemistry analyzer", "DEMOCHEM", "chemistry"),
    ("Demo hematology analyzer", "DEMOHEME", "hematology"),
    ("Demo coagulation analyzer", "DEMOCOAG", "coagulation"),
];

/// The code a demo analyzer sends for a test.
pub fn demo_instrument_code(def: &cuvette_domain::TestDefinition) -> String {
    if def.loinc.is_empty() { def.code.clone() } else { def.loinc.clone() }
}

/// The demo's ASTM analyzer: immunoassays, codes as the catalog's test codes.
pub const DEMO_ASTM_INSTRUMENT: (&str, &str, &[&str]) =
    ("Demo immunoassay analyzer", "DEMOIMMUNO", &["TSH", "FT4"]);

/// The demo's ASTM analyzers of a bench, codes as the catalog's test codes: a chemistry
/// analyzer set up in SI units — each test with a built-in conversion mapped in the other
/// unit (glucose in mmol/L, creatinine in µmol/L), so its results arrive converted — and a
/// hematology analyzer. `cuvette simulate --protocol astm` plays them.
pub const DEMO_ASTM_ANALYZERS: [(&str, &str, &str, Units); 2] = [
    ("Demo chemistry analyzer, SI units", "DEMOSI", "chemistry", Units::Si),
    ("Demo hematology analyzer, ASTM", "DEMOHEMA", "hematology", Units::Catalog),
];

/// The units a demo analyzer reports in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// The catalog's.
    Catalog,
    /// SI: a test whose catalog unit is conventional is mapped in its molar unit (mass per
    /// litre where there is none: haemoglobin in g/L), with the built-in conversion.
    Si,
}

/// The unit a demo analyzer's code for `def` is mapped in ("" for the catalog's).
pub fn demo_unit(def: &cuvette_domain::TestDefinition, units: Units) -> &'static str {
    if units == Units::Catalog {
        return "";
    }
    let candidates = cuvette_domain::units::convertible_units(&def.code, &def.unit);
    candidates
        .iter()
        .find(|u| u.contains("mol/"))
        .or_else(|| candidates.iter().find(|u| u.ends_with("g/L")))
        .copied()
        .unwrap_or("")
}

async fn add_demo_instruments(lab: &Lab, supervisor: &Actor) -> anyhow::Result<()> {
    let catalog = lab.catalog();
    // The hospital's EHR sends orders (OML^O21, ORM^O01) as DEMOEHR.
    lab.add_instrument(supervisor, "Demo EHR", "hl7", "DEMOEHR").await?;
    let (name, sender, codes) = DEMO_ASTM_INSTRUMENT;
    let id = lab.add_instrument(supervisor, name, "astm", sender).await?;
    for code in codes {
        lab.map_test_code(supervisor, id, code, code, "").await?;
    }
    for (name, sender, bench, units) in DEMO_ASTM_ANALYZERS {
        let id = lab.add_instrument(supervisor, name, "astm", sender).await?;
        for def in catalog.catalog.tests().filter(|t| t.discipline == bench && !t.is_calculated()) {
            lab.map_test_code(supervisor, id, &def.code, &def.code, demo_unit(def, units)).await?;
        }
    }
    for (name, sender, bench) in DEMO_INSTRUMENTS {
        let id = lab.add_instrument(supervisor, name, "hl7", sender).await?;
        let mut seen = std::collections::BTreeSet::new();
        for def in catalog.catalog.tests().filter(|t| t.discipline == bench && !t.is_calculated()) {
            let code = demo_instrument_code(def);
            if seen.insert(code.clone()) {
                lab.map_test_code(supervisor, id, &code, &def.code, "").await?;
            }
        }
    }
    Ok(())
}

/// Enters a plausible value for every measured test on a specimen; `abnormal` is the chance
/// of a value outside the reference interval.
async fn enter_plausible(
    lab: &Lab,
    who: &Actor,
    accession: &str,
    rng: &mut Lcg,
    abnormal: f64,
) -> anyhow::Result<()> {
    let catalog = lab.catalog();
    let view = lab.specimen_view(who, accession).await?;
    let ctx_sex =
        cuvette_domain::Sex::parse(&view.patient.sex).unwrap_or(cuvette_domain::Sex::Unknown);
    let born: jiff::civil::Date = view.patient.birth_date.parse()?;
    let on = lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date();
    let mut entries = Vec::new();
    for t in &view.tests {
        let Some(def) = catalog.catalog.test(&t.item.test.test_code) else { continue };
        if def.is_calculated() || !t.item.test.status.accepts_results() {
            continue;
        }
        let Some(text) = plausible_value(def, ctx_sex, born, on, rng, abnormal) else { continue };
        entries.push(EnteredResult {
            ordered_test_id: t.item.test.id,
            row_version: t.item.test.row_version,
            text,
        });
    }
    if !entries.is_empty() {
        lab.enter_results(who, &entries, None).await?;
    }
    Ok(())
}

/// Verifies everything on a specimen, documenting the call for criticals first.
async fn release_all(lab: &Lab, mls: &Actor, accession: &str) -> anyhow::Result<()> {
    let view = lab.specimen_view(mls, accession).await?;
    let mut tests = Vec::new();
    for t in &view.tests {
        let Some(r) = &t.item.result else { continue };
        if r.released_at.is_some() {
            continue;
        }
        if r.flags.is_critical() {
            lab.document_critical_call(
                mls,
                t.item.test.id,
                &CriticalCall {
                    called_person: "Dr. Demo Ward, attending".into(),
                    read_back: true,
                    notes: "called ward 4 extension 2210".into(),
                },
            )
            .await?;
        }
        tests.push((t.item.test.id, t.item.test.row_version));
    }
    lab.release(mls, &tests, TestStatus::Final).await?;
    Ok(())
}

/// What a newcomer needs to start.
pub fn print_welcome(listen: SocketAddr, api_key: &str) {
    println!();
    println!("Cuvette demo lab: open http://{listen}/ and sign in as one of:");
    println!();
    println!("  {:<10} {:<22} role", "username", "password");
    for (user, _, role, password) in DEMO_USERS {
        println!("  {user:<10} {password:<22} {role}");
    }
    println!();
    println!("API key (technologist): {api_key}");
    println!(
        "  try: curl -H 'Authorization: Bearer {api_key}' http://{listen}/api/v1/review-queue"
    );
    println!("  API description: http://{listen}/api/openapi.json");
    println!(
        "  FHIR (system/*.read): http://{listen}/fhir/metadata, /fhir/Observation?patient=<id>"
    );
    println!();
    println!("Example data only; not for clinical use. Stop with Ctrl+C.");
}

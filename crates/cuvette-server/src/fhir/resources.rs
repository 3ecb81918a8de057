//! The FHIR R4 resources Cuvette writes, as plain serde structs (only the elements it fills),
//! and how each is made from the app's read models. Shaped to US Core: the profile each
//! claims is in `meta.profile`.

use cuvette_app::fhir::{LabReport, OrderedTest, ReleasedResult, ReportStatus};
use cuvette_app::records::{PatientRow, SpecimenItem, Timestamp};
use cuvette_domain::Flag;
use cuvette_domain::catalog::ResultType;
use cuvette_domain::value::{Comparator, ReportedValue};
use cuvette_domain::workflow::{Priority, ReleaseStatus, SpecimenStatus, TestStatus};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

/// The identifier system of the lab's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:cuvette:mrn";
/// The identifier system of the lab's accession numbers.
pub const ACCESSION_SYSTEM: &str = "urn:cuvette:accession";
/// The identifier system of the placer's order numbers.
pub const PLACER_SYSTEM: &str = "urn:cuvette:placer-order";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// UCUM.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// FHIR observation categories.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7 v2 table 0074, diagnostic service section (DiagnosticReport.category).
pub const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const REFERENCE_MEANING: &str = "http://terminology.hl7.org/CodeSystem/referencerange-meaning";
const DATA_ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
const SNOMED: &str = "http://snomed.info/sct";

/// US Core profiles (STU 6.1+, on FHIR R4).
pub mod profile {
    /// US Core Patient.
    pub const PATIENT: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";
    /// US Core ServiceRequest.
    pub const SERVICE_REQUEST: &str =
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest";
    /// US Core Specimen.
    pub const SPECIMEN: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-specimen";
    /// US Core Laboratory Result Observation.
    pub const OBSERVATION_LAB: &str =
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab";
    /// US Core DiagnosticReport for Laboratory Results Reporting.
    pub const DIAGNOSTIC_REPORT_LAB: &str =
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab";
}

/// `Meta` with the profile claimed, and when a result was last changed (its release).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
    profile: [&'static str; 1],
}

fn meta(profile: &'static str) -> Meta {
    Meta { last_updated: None, profile: [profile] }
}

/// `Coding`.
#[derive(Debug, Clone, Serialize)]
pub struct Coding {
    system: &'static str,
    code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<String>,
}

fn coding(system: &'static str, code: impl Into<String>, display: impl Into<String>) -> Coding {
    Coding { system, code: code.into(), display: Some(display.into()) }
}

/// `CodeableConcept`.
#[derive(Debug, Clone, Serialize)]
pub struct CodeableConcept {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    coding: Vec<Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

fn concept(coding: Vec<Coding>, text: Option<String>) -> CodeableConcept {
    CodeableConcept { coding, text }
}

/// `Reference`.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<String>,
}

fn to(resource: &str, id: i64, display: Option<String>) -> Reference {
    Reference { reference: Some(format!("{resource}/{id}")), display }
}

fn named(display: impl Into<String>) -> Reference {
    Reference { reference: None, display: Some(display.into()) }
}

/// `Identifier`.
#[derive(Debug, Clone, Serialize)]
pub struct Identifier {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept>,
    system: &'static str,
    value: String,
}

fn identifier(kind: Option<(&str, &str)>, system: &'static str, value: &str) -> Identifier {
    Identifier {
        kind: kind.map(|(code, display)| concept(vec![coding(V2_0203, code, display)], None)),
        system,
        value: value.to_owned(),
    }
}

/// `Quantity` (with a comparator for censored values).
#[derive(Debug, Clone, Serialize)]
pub struct Quantity {
    value: serde_json::Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparator: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

fn quantity(value: Decimal, comparator: Option<Comparator>, unit: &str) -> Option<Quantity> {
    // JSON numbers carry no scale: 4.10 is written 4.1 (FHIR reads decimals by value).
    let value = serde_json::Number::from_f64(value.to_f64()?)?;
    let unit = unit.trim();
    let (system, code) = if !unit.is_empty() && cuvette_domain::units::is_known(unit) {
        (Some(UCUM), Some(cuvette_domain::units::normalize(unit).to_owned()))
    } else {
        (None, None)
    };
    Some(Quantity {
        value,
        comparator: comparator.map(Comparator::symbol),
        unit: (!unit.is_empty()).then(|| unit.to_owned()),
        system,
        code,
    })
}

fn instant(at: Timestamp) -> Option<String> {
    at.to_jiff().map(|t| t.to_string())
}

/// `HumanName`.
#[derive(Debug, Clone, Serialize)]
pub struct HumanName {
    family: String,
    given: Vec<String>,
}

/// Patient (US Core Patient).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    identifier: Vec<Identifier>,
    name: Vec<HumanName>,
    gender: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    birth_date: Option<String>,
}

impl From<&PatientRow> for Patient {
    fn from(p: &PatientRow) -> Patient {
        use cuvette_domain::patient::Sex;
        let gender = match Sex::parse(&p.sex) {
            Some(Sex::Female) => "female",
            Some(Sex::Male) => "male",
            Some(Sex::Unknown) | None => "unknown",
        };
        Patient {
            resource_type: "Patient",
            id: p.id.to_string(),
            meta: meta(profile::PATIENT),
            identifier: vec![identifier(Some(("MR", "Medical record number")), MRN_SYSTEM, &p.mrn)],
            name: vec![HumanName {
                family: p.family_name.clone(),
                given: if p.given_name.is_empty() { vec![] } else { vec![p.given_name.clone()] },
            }],
            gender,
            birth_date: (!p.birth_date.is_empty()).then(|| p.birth_date.clone()),
        }
    }
}

fn patient_ref(p: &PatientRow) -> Reference {
    to("Patient", p.id, Some(format!("{}, {}", p.family_name, p.given_name)))
}

/// `Specimen.collection`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    collected_date_time: String,
}

/// `Specimen.container`.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    description: String,
}

/// `Annotation`.
#[derive(Debug, Clone, Serialize)]
pub struct Annotation {
    text: String,
}

/// Specimen (US Core Specimen).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Specimen {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    identifier: Vec<Identifier>,
    accession_identifier: Identifier,
    status: &'static str,
    #[serde(rename = "type")]
    kind: CodeableConcept,
    subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<Collection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    container: Vec<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    note: Vec<Annotation>,
}

impl From<&SpecimenItem> for Specimen {
    fn from(s: &SpecimenItem) -> Specimen {
        let sp = &s.specimen;
        let status = match sp.status {
            // Labelled but not drawn: there is no specimen to test yet.
            SpecimenStatus::Pending => "unavailable",
            SpecimenStatus::Collected | SpecimenStatus::Received => "available",
            SpecimenStatus::Rejected => "unsatisfactory",
        };
        let mut note = Vec::new();
        if let Some(reason) = &sp.reject_reason {
            let detail = sp.reject_note.as_deref().unwrap_or("");
            note.push(Annotation {
                text: format!("Rejected: {reason}. {detail}").trim().to_owned(),
            });
        }
        let accession = identifier(Some(("ACSN", "Accession ID")), ACCESSION_SYSTEM, &sp.accession);
        Specimen {
            resource_type: "Specimen",
            id: sp.id.to_string(),
            meta: meta(profile::SPECIMEN),
            identifier: vec![accession.clone()],
            accession_identifier: accession,
            status,
            kind: concept(vec![], Some(sp.specimen_type.clone())),
            subject: patient_ref(&s.patient),
            received_time: sp.received_at.and_then(instant),
            collection: sp
                .collected_at
                .and_then(instant)
                .map(|collected_date_time| Collection { collected_date_time }),
            container: if sp.container.is_empty() {
                vec![]
            } else {
                vec![Container { description: sp.container.clone() }]
            },
            note,
        }
    }
}

/// ServiceRequest (US Core ServiceRequest): one ordered test.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    identifier: Vec<Identifier>,
    status: &'static str,
    intent: &'static str,
    category: Vec<CodeableConcept>,
    priority: &'static str,
    code: CodeableConcept,
    subject: Reference,
    authored_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    requester: Option<Reference>,
    specimen: Vec<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    note: Vec<Annotation>,
}

impl From<&OrderedTest> for ServiceRequest {
    fn from(t: &OrderedTest) -> ServiceRequest {
        let item = &t.item;
        let status = match item.test.status {
            TestStatus::Ordered
            | TestStatus::Collected
            | TestStatus::Received
            | TestStatus::InProcess
            | TestStatus::Preliminary => "active",
            TestStatus::Final => "completed",
            TestStatus::Cancelled => "revoked",
        };
        let mut ids = vec![identifier(
            Some(("FILL", "Filler Identifier")),
            ACCESSION_SYSTEM,
            &item.specimen.accession,
        )];
        if let Some(placer) = &item.order.placer_number {
            ids.push(identifier(Some(("PLAC", "Placer Identifier")), PLACER_SYSTEM, placer));
        }
        ServiceRequest {
            resource_type: "ServiceRequest",
            id: item.test.id.to_string(),
            meta: meta(profile::SERVICE_REQUEST),
            identifier: ids,
            status,
            intent: "order",
            category: vec![concept(
                vec![coding(SNOMED, "108252007", "Laboratory procedure")],
                None,
            )],
            priority: match item.order.priority {
                Priority::Stat => "stat",
                Priority::Routine => "routine",
            },
            code: test_code(t.definition.as_ref(), &item.test.test_code),
            subject: patient_ref(&item.patient),
            authored_on: instant(item.order.ordered_at).unwrap_or_default(),
            requester: (!item.order.provider.is_empty()).then(|| named(&item.order.provider)),
            specimen: vec![to("Specimen", item.specimen.id, Some(item.specimen.accession.clone()))],
            note: if item.order.clinical_note.is_empty() {
                vec![]
            } else {
                vec![Annotation { text: item.order.clinical_note.clone() }]
            },
        }
    }
}

fn test_code(
    definition: Option<&cuvette_domain::catalog::TestDefinition>,
    test_code: &str,
) -> CodeableConcept {
    match definition {
        Some(d) if !d.loinc.is_empty() => {
            concept(vec![coding(LOINC, &d.loinc, &d.name)], Some(d.name.clone()))
        }
        Some(d) => concept(vec![], Some(d.name.clone())),
        None => concept(vec![], Some(test_code.to_owned())),
    }
}

/// `Observation.referenceRange`.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    low: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<Quantity>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// Observation (US Core Laboratory Result Observation): a released result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    based_on: Vec<Reference>,
    status: &'static str,
    category: Vec<CodeableConcept>,
    code: CodeableConcept,
    subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    performer: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_codeable_concept: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_absent_reason: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interpretation: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    note: Vec<Annotation>,
    specimen: Reference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reference_range: Vec<ReferenceRange>,
}

/// The category every Observation Cuvette writes carries.
pub fn laboratory_category() -> CodeableConcept {
    concept(vec![coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")], None)
}

/// The FHIR Observation status of a released version (R4 `ObservationStatus`).
pub fn observation_status(release: Option<ReleaseStatus>) -> &'static str {
    match release {
        Some(ReleaseStatus::Preliminary) => "preliminary",
        Some(ReleaseStatus::Final) => "final",
        Some(ReleaseStatus::Corrected) => "corrected",
        // A released version always records how it was released; a row without is shown
        // as unknown rather than guessed final.
        None => "unknown",
    }
}

/// v3 ObservationInterpretation for a flag (INV is never released, so never written).
fn interpretation(flag: Flag) -> Option<(&'static str, &'static str)> {
    match flag {
        Flag::CriticalLow => Some(("LL", "Critical low")),
        Flag::CriticalHigh => Some(("HH", "Critical high")),
        Flag::Low => Some(("L", "Low")),
        Flag::High => Some(("H", "High")),
        Flag::Abnormal => Some(("A", "Abnormal")),
        Flag::BelowRange => Some(("<", "Off scale low")),
        Flag::AboveRange => Some((">", "Off scale high")),
        Flag::Invalid => None,
    }
}

impl From<&ReleasedResult> for Observation {
    fn from(r: &ReleasedResult) -> Observation {
        let item = &r.item;
        let result = r.result();
        let def = r.definition.as_ref();
        let unit = def.map_or(result.unit.as_str(), |d| d.unit.as_str());
        let result_type = def.map_or(ResultType::Text, |d| d.result_type);
        let reported = ReportedValue::parse(&result.value_text).ok();
        let mut obs = Observation {
            resource_type: "Observation",
            id: item.test.id.to_string(),
            meta: Meta {
                last_updated: result.released_at.and_then(instant),
                profile: [profile::OBSERVATION_LAB],
            },
            based_on: vec![to("ServiceRequest", item.test.id, None)],
            status: observation_status(result.release_status),
            category: vec![laboratory_category()],
            code: test_code(def, &item.test.test_code),
            subject: patient_ref(&item.patient),
            effective_date_time: item.specimen.collected_at.and_then(instant),
            issued: result.released_at.and_then(instant),
            performer: result.released_by.iter().map(named).collect(),
            value_quantity: None,
            value_codeable_concept: None,
            value_string: None,
            data_absent_reason: None,
            interpretation: Vec::new(),
            note: Vec::new(),
            specimen: to("Specimen", item.specimen.id, Some(item.specimen.accession.clone())),
            reference_range: Vec::new(),
        };
        match reported {
            Some(v) if v.no_value().is_some() => {
                // "Unable to report: clotted" carries no value; FHIR obs-6 then wants the
                // reason the value is absent.
                obs.data_absent_reason = Some(concept(
                    vec![coding(DATA_ABSENT, "error", "Error")],
                    Some(result.report_text.clone()),
                ));
            }
            Some(ReportedValue { number: Some(n), .. }) if result_type == ResultType::Numeric => {
                obs.value_quantity = quantity(n.value, n.comparator, unit);
                if obs.value_quantity.is_none() {
                    obs.value_string = Some(result.value_text.clone());
                }
            }
            _ if result_type == ResultType::Coded => {
                obs.value_codeable_concept = Some(concept(vec![], Some(result.value_text.clone())));
            }
            _ => obs.value_string = Some(result.value_text.clone()),
        }
        let flags: Vec<_> = result.flags.iter().filter_map(|f| interpretation(*f)).collect();
        let normal = match result_type {
            ResultType::Numeric => r.interval.is_some(),
            ResultType::Coded => def.is_some_and(|d| d.normal_values.contains(&result.value_text)),
            ResultType::Text | ResultType::Organism => false,
        };
        obs.interpretation = if !flags.is_empty() {
            flags
                .into_iter()
                .map(|(code, display)| concept(vec![coding(INTERPRETATION, code, display)], None))
                .collect()
        } else if normal && obs.data_absent_reason.is_none() {
            vec![concept(vec![coding(INTERPRETATION, "N", "Normal")], None)]
        } else {
            vec![]
        };
        if let Some(interval) = &r.interval {
            obs.reference_range.push(ReferenceRange {
                low: interval.low.and_then(|l| quantity(l, None, unit)),
                high: interval.high.and_then(|h| quantity(h, None, unit)),
                kind: Some(concept(
                    vec![coding(REFERENCE_MEANING, "normal", "Normal Range")],
                    None,
                )),
                text: Some(interval.display()),
            });
        } else if !result.reference_interval.is_empty() {
            obs.reference_range.push(ReferenceRange {
                low: None,
                high: None,
                kind: None,
                text: Some(result.reference_interval.clone()),
            });
        }
        if result.release_status == Some(ReleaseStatus::Corrected) {
            let reason = result.correction_reason.as_deref().unwrap_or("no reason recorded");
            obs.note.push(Annotation { text: format!("Corrected result: {reason}") });
        }
        obs
    }
}

/// `Attachment`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    content_type: &'static str,
    url: String,
    title: String,
}

/// DiagnosticReport (US Core DiagnosticReport for Laboratory Results Reporting): the released
/// results of one specimen.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticReport {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    identifier: Vec<Identifier>,
    based_on: Vec<Reference>,
    status: &'static str,
    category: Vec<CodeableConcept>,
    code: CodeableConcept,
    subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    performer: Vec<Reference>,
    specimen: Vec<Reference>,
    result: Vec<Reference>,
    presented_form: Vec<Attachment>,
}

impl DiagnosticReport {
    /// The report of a specimen; `base` is the FHIR base address, for the PDF's link.
    pub fn new(r: &LabReport, base: &str) -> DiagnosticReport {
        let s = &r.specimen;
        let mut performers: Vec<String> =
            r.results.iter().filter_map(|x| x.result().released_by.clone()).collect();
        performers.sort();
        performers.dedup();
        DiagnosticReport {
            resource_type: "DiagnosticReport",
            id: s.specimen.id.to_string(),
            meta: Meta {
                last_updated: r.issued.and_then(instant),
                profile: [profile::DIAGNOSTIC_REPORT_LAB],
            },
            identifier: vec![identifier(
                Some(("ACSN", "Accession ID")),
                ACCESSION_SYSTEM,
                &s.specimen.accession,
            )],
            based_on: r
                .results
                .iter()
                .map(|x| to("ServiceRequest", x.item.test.id, None))
                .collect(),
            status: match r.status {
                ReportStatus::Partial => "partial",
                ReportStatus::Preliminary => "preliminary",
                ReportStatus::Final => "final",
                ReportStatus::Corrected => "corrected",
            },
            category: vec![concept(vec![coding(V2_0074, "LAB", "Laboratory")], None)],
            code: concept(
                vec![coding(LOINC, "11502-2", "Laboratory report")],
                Some("Laboratory report".into()),
            ),
            subject: patient_ref(&s.patient),
            effective_date_time: s.specimen.collected_at.and_then(instant),
            issued: r.issued.and_then(instant),
            performer: performers.into_iter().map(named).collect(),
            specimen: vec![to("Specimen", s.specimen.id, Some(s.specimen.accession.clone()))],
            result: r.results.iter().map(|x| to("Observation", x.item.test.id, None)).collect(),
            presented_form: vec![Attachment {
                content_type: "application/pdf",
                url: format!("{base}/DiagnosticReport/{}/report.pdf", s.specimen.id),
                title: format!("Laboratory report, {}", s.patient.family_name),
            }],
        }
    }
}

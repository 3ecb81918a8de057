//! Every JSON body the API answers with, one struct per shape, and the conversions from the
//! application's rows. Nothing else in the API serialises a row: a column added to the store
//! is not published until it is added here, and the OpenAPI document's response schemas are
//! generated from these same structs ([`Schema`]), so the two cannot drift apart.

use std::collections::BTreeMap;

use cuvette_app::interop::{AckError, MappedCode};
use cuvette_app::records::{
    AttachmentRow, AuditEvent, CodeDisposition, CriticalCallRow, InstrumentRow, MessageRow,
    PatientRow, ResultRow, SpecimenRow, TestCodeRow, WorkItem,
};
use cuvette_app::{CumulativeReport, FieldError, Release, Saved, SpecimenView, TestView};
use cuvette_domain::TestDefinition;
use cuvette_domain::catalog::{CalculationRule, Panel, ReferenceInterval, ResultType};
use cuvette_domain::time::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

/// A JSON Schema (the OpenAPI 3.1 dialect) for a response type.
pub trait Schema {
    /// The schema of the type's JSON.
    fn schema() -> Value;
}

impl Schema for String {
    fn schema() -> Value {
        json!({ "type": "string" })
    }
}

impl Schema for i64 {
    fn schema() -> Value {
        json!({ "type": "integer" })
    }
}

impl Schema for u32 {
    fn schema() -> Value {
        json!({ "type": "integer", "minimum": 0 })
    }
}

impl Schema for f64 {
    fn schema() -> Value {
        json!({ "type": "number" })
    }
}

impl Schema for bool {
    fn schema() -> Value {
        json!({ "type": "boolean" })
    }
}

impl<T: Schema> Schema for Vec<T> {
    fn schema() -> Value {
        json!({ "type": "array", "items": T::schema() })
    }
}

impl<T: Schema> Schema for BTreeMap<String, T> {
    fn schema() -> Value {
        json!({ "type": "object", "additionalProperties": T::schema() })
    }
}

/// `null` or the value: the type becomes a type array (`["string", "null"]`).
impl<T: Schema> Schema for Option<T> {
    fn schema() -> Value {
        let mut s = T::schema();
        match s.get("type").cloned() {
            Some(Value::String(t)) => s["type"] = json!([t, "null"]),
            _ => s = json!({ "anyOf": [s, { "type": "null" }] }),
        }
        s
    }
}

/// An instant, as RFC 3339 in UTC ("2026-11-24T08:00:00Z"): every time the API shows goes
/// through here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Time(String);

impl Time {
    /// From a time the app read.
    pub fn at(at: Timestamp) -> Time {
        Time(
            at.to_jiff()
                .map(|t| t.to_string())
                // The store only holds times the clock produced; out of jiff's range would
                // be corrupt data, shown as the epoch rather than failing the whole answer.
                .unwrap_or_else(|| jiff::Timestamp::UNIX_EPOCH.to_string()),
        )
    }

    /// An optional time.
    pub fn opt(at: Option<Timestamp>) -> Option<Time> {
        at.map(Time::at)
    }
}

impl Schema for Time {
    fn schema() -> Value {
        json!({ "type": "string", "format": "date-time" })
    }
}

/// A calendar date, ISO 8601 ("1961-04-12").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Date(String);

impl Schema for Date {
    fn schema() -> Value {
        json!({ "type": "string", "format": "date" })
    }
}

/// Any JSON object (the OpenAPI document itself).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Document(pub Value);

impl Schema for Document {
    fn schema() -> Value {
        json!({ "type": "object" })
    }
}

/// The schema of a field: the type's, with the field's description and, for codes, the
/// values it takes (on the items of an array, and allowing null when the field may be null).
fn field(mut schema: Value, description: &str, codes: &[&str]) -> Value {
    if !codes.is_empty() {
        let target = if schema.get("items").is_some() { &mut schema["items"] } else { &mut schema };
        let mut values: Vec<Value> = codes.iter().map(|c| json!(c)).collect();
        if target["type"].as_array().is_some_and(|t| t.contains(&json!("null"))) {
            values.push(Value::Null);
        }
        target["enum"] = Value::Array(values);
    }
    if !description.is_empty() {
        schema["description"] = json!(description.trim());
    }
    schema
}

fn object(description: &str, fields: Vec<(&str, Value)>) -> Value {
    let required: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
    let properties: serde_json::Map<String, Value> =
        fields.into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
    json!({
        "type": "object",
        "description": description.trim(),
        "required": required,
        "properties": properties,
    })
}

/// Declares a response struct and its schema together: every field is always present (a
/// missing value is `null`), so every field is required.
macro_rules! response {
    ($(#[doc = $doc:literal])* pub struct $name:ident {
        $( $(#[doc = $fdoc:literal])* pub $field:ident : $ty:ty $(= [$($code:expr),+ $(,)?])? ),* $(,)?
    }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Serialize)]
        pub struct $name { $( $(#[doc = $fdoc])* pub $field: $ty ),* }

        impl Schema for $name {
            fn schema() -> Value {
                object(concat!($($doc),*), vec![$(
                    (stringify!($field), field(<$ty as Schema>::schema(), concat!($($fdoc),*), &[$($($code),+)?])),
                )*])
            }
        }
    };
}

const SEXES: [&str; 3] = ["F", "M", "U"];
const FLAGS: [&str; 8] = ["LL", "HH", "L", "H", "A", "<", ">", "INV"];
const REVIEWS: [&str; 2] = ["routine", "technologist"];
const RESULT_STATUSES: [&str; 4] = ["entered", "preliminary", "final", "corrected"];
const SPECIMEN_STATUSES: [&str; 4] = ["pending", "collected", "received", "rejected"];
const TEST_STATUSES: [&str; 7] =
    ["ordered", "collected", "received", "in_process", "preliminary", "final", "cancelled"];
const PRIORITIES: [&str; 2] = ["stat", "routine"];
const REJECTION_REASONS: [&str; 6] =
    ["hemolyzed", "clotted", "qns", "mislabeled", "wrong_container", "stability_exceeded"];
const RESULT_TYPES: [&str; 4] = ["numeric", "coded", "text", "organism"];
const COMPLEXITIES: [&str; 3] = ["waived", "moderate", "high"];
const STANDINGS: [&str; 3] = ["current", "overdue", "failed"];
const ASSESSMENT_OUTCOMES: [&str; 2] = ["pass", "fail"];

response! {
    /// A registered patient.
    pub struct Patient {
        pub id: i64,
        /// Medical record number.
        pub mrn: String,
        pub family_name: String,
        pub given_name: String,
        pub birth_date: Date,
        pub sex: String = [SEXES[0], SEXES[1], SEXES[2]],
    }
}

impl From<&PatientRow> for Patient {
    fn from(p: &PatientRow) -> Patient {
        Patient {
            id: p.id,
            mrn: p.mrn.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            birth_date: Date(p.birth_date.clone()),
            sex: p.sex.clone(),
        }
    }
}

response! {
    /// Patients matching a search, at most a page.
    pub struct PatientList {
        pub patients: Vec<Patient>,
    }
}

response! {
    /// One version of a result.
    pub struct ResultVersion {
        /// From 1; each correction or re-entry adds one.
        pub version: i64,
        /// As reported ("<0.5", ">750").
        pub value: String,
        /// Exactly as entered or sent.
        pub value_text: String,
        pub unit: String,
        /// The value as the instrument sent it (or the bench typed it) when the stored value
        /// differs: converted to the catalog's unit, or a synonym read as the catalog's coded
        /// value ("NEG" as Negative); also kept when a unit came with a test that has none.
        pub sent_value: Option<String>,
        /// The unit the instrument sent (UCUM when converted), when it sent one.
        pub sent_unit: Option<String>,
        /// Most severe first.
        pub flags: Vec<String> = [FLAGS[0], FLAGS[1], FLAGS[2], FLAGS[3], FLAGS[4], FLAGS[5], FLAGS[6], FLAGS[7]],
        /// As printed ("3.5–5.1"), empty when none applies.
        pub reference_interval: String,
        /// Who must verify it.
        pub review: String = [REVIEWS[0], REVIEWS[1]],
        /// Why a technologist must look at it.
        pub review_reasons: Vec<String>,
        pub status: String = [RESULT_STATUSES[0], RESULT_STATUSES[1], RESULT_STATUSES[2], RESULT_STATUSES[3]],
        pub entered_by: String,
        pub entered_at: Time,
        pub verified_by: Option<String>,
        pub verified_at: Option<Time>,
        /// Why a released value was corrected.
        pub correction_reason: Option<String>,
        /// The catalog definition version it was judged by.
        pub definition_version: i64,
        /// The file the instrument sent as this result (HL7 ED: a PDF report, a histogram
        /// image); `value` then says so ("See attached PDF"). Absent from work lists.
        pub attachment: Option<ResultAttachment>,
    }
}

response! {
    /// A file stored as a result: what it is, and where it is downloaded (the bytes as the
    /// instrument sent them, decoded; each download is audited as a view of the patient's
    /// record).
    pub struct ResultAttachment {
        pub id: i64,
        /// What the instrument calls it (OBX-3's text).
        pub name: String,
        /// Its media type (`application/pdf`).
        pub media_type: String,
        /// Its size in bytes.
        pub size: i64,
        /// SHA-256 of its bytes, lower-case hex.
        pub sha256: String,
        /// `GET` it with the same credentials as the API (API key or session).
        pub download_url: String,
    }
}

impl From<&AttachmentRow> for ResultAttachment {
    fn from(a: &AttachmentRow) -> ResultAttachment {
        ResultAttachment {
            id: a.id,
            name: a.name.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            download_url: crate::html::reports::attachment_href(a.id),
        }
    }
}

impl ResultVersion {
    /// A version of a test's result with its file, when it is one.
    fn of(t: &TestView, r: &ResultRow) -> ResultVersion {
        ResultVersion {
            attachment: t.attachment_of(r).map(ResultAttachment::from),
            ..ResultVersion::from(r)
        }
    }
}

impl From<&ResultRow> for ResultVersion {
    fn from(r: &ResultRow) -> ResultVersion {
        ResultVersion {
            version: r.version,
            value: r.report_text.clone(),
            value_text: r.value_text.clone(),
            unit: r.unit.clone(),
            sent_value: r.sent_value.clone(),
            sent_unit: r.sent_unit.clone(),
            flags: r.flags.iter().map(|f| f.code().to_owned()).collect(),
            reference_interval: r.reference_interval.clone(),
            review: r.review.code().to_owned(),
            // Stored as a JSON array of text by the store itself.
            review_reasons: r.reasons.clone(),
            status: r.release_status.map_or("entered", |s| s.code()).to_owned(),
            entered_by: r.entered_by.clone(),
            entered_at: Time::at(r.entered_at),
            verified_by: r.released_by.clone(),
            verified_at: Time::opt(r.released_at),
            correction_reason: r.correction_reason.clone(),
            definition_version: r.definition_version,
            attachment: None,
        }
    }
}

response! {
    /// A documented call of a critical result.
    pub struct CriticalCallRecord {
        /// Who was told (name and role).
        pub called_person: String,
        pub called_by: String,
        pub called_at: Time,
        /// Whether the recipient read the result back.
        pub read_back: bool,
        pub notes: String,
        /// The result version that was called.
        pub result_version: i64,
    }
}

impl From<&CriticalCallRow> for CriticalCallRecord {
    fn from(c: &CriticalCallRow) -> CriticalCallRecord {
        CriticalCallRecord {
            called_person: c.called_person.clone(),
            called_by: c.called_by.clone(),
            called_at: Time::at(c.called_at),
            read_back: c.read_back,
            notes: c.notes.clone(),
            result_version: c.result_version,
        }
    }
}

response! {
    /// A test ordered on a specimen, with its results.
    pub struct OrderedTest {
        pub ordered_test_id: i64,
        /// Send it back when entering a replacement result or releasing.
        pub row_version: i64,
        pub test_code: String,
        pub name: String,
        pub loinc: String,
        pub unit: String,
        /// The panel it was ordered in, if any.
        pub panel: Option<String>,
        /// Computed from other results rather than measured.
        pub calculated: bool,
        pub status: String = [TEST_STATUSES[0], TEST_STATUSES[1], TEST_STATUSES[2], TEST_STATUSES[3], TEST_STATUSES[4], TEST_STATUSES[5], TEST_STATUSES[6]],
        /// The latest version, released or not.
        pub result: Option<ResultVersion>,
        /// The latest released version: what the physician sees.
        pub released_result: Option<ResultVersion>,
        /// Every version, oldest first.
        pub versions: Vec<ResultVersion>,
        pub critical_calls: Vec<CriticalCallRecord>,
    }
}

impl From<&TestView> for OrderedTest {
    fn from(t: &TestView) -> OrderedTest {
        let test = &t.item.test;
        OrderedTest {
            ordered_test_id: test.id,
            row_version: test.row_version,
            test_code: test.test_code.clone(),
            name: t.name.clone(),
            loinc: t.loinc.clone(),
            unit: t.unit.clone(),
            panel: test.panel_code.clone(),
            calculated: t.calculated,
            status: test.status.code().to_owned(),
            result: t.item.result.as_ref().map(|r| ResultVersion::of(t, r)),
            released_result: t.released().map(|r| ResultVersion::of(t, r)),
            versions: t.versions.iter().map(|r| ResultVersion::of(t, r)).collect(),
            critical_calls: t.calls.iter().map(CriticalCallRecord::from).collect(),
        }
    }
}

response! {
    /// Why and when a specimen was rejected.
    pub struct Rejection {
        pub at: Time,
        pub by: Option<String>,
        pub reason: Option<String> = [REJECTION_REASONS[0], REJECTION_REASONS[1], REJECTION_REASONS[2], REJECTION_REASONS[3], REJECTION_REASONS[4], REJECTION_REASONS[5]],
        pub note: Option<String>,
    }
}

response! {
    /// The order a specimen belongs to.
    pub struct Order {
        pub id: i64,
        /// Ordering provider.
        pub provider: String,
        pub priority: String = [PRIORITIES[0], PRIORITIES[1]],
        pub clinical_note: String,
        /// The ordering system's order number.
        pub placer_number: Option<String>,
        pub ordered_at: Time,
        pub ordered_by: String,
    }
}

response! {
    /// A specimen with its patient, order, tests and results.
    pub struct Specimen {
        /// As printed on the label.
        pub accession: String,
        pub status: String = [SPECIMEN_STATUSES[0], SPECIMEN_STATUSES[1], SPECIMEN_STATUSES[2], SPECIMEN_STATUSES[3]],
        pub container: String,
        pub specimen_type: String,
        pub collected_at: Option<Time>,
        pub collected_by: Option<String>,
        pub received_at: Option<Time>,
        pub received_by: Option<String>,
        pub rejection: Option<Rejection>,
        pub row_version: i64,
        pub patient: Patient,
        pub order: Order,
        pub tests: Vec<OrderedTest>,
    }
}

impl From<&SpecimenView> for Specimen {
    fn from(v: &SpecimenView) -> Specimen {
        let s = &v.specimen;
        let o = &v.order;
        Specimen {
            accession: s.accession.clone(),
            status: s.status.code().to_owned(),
            container: s.container.clone(),
            specimen_type: s.specimen_type.clone(),
            collected_at: Time::opt(s.collected_at),
            collected_by: s.collected_by.clone(),
            received_at: Time::opt(s.received_at),
            received_by: s.received_by.clone(),
            rejection: s.rejected_at.map(|at| Rejection {
                at: Time::at(at),
                by: s.rejected_by.clone(),
                reason: s.reject_reason.map(|r| r.code().to_owned()),
                note: s.reject_note.clone(),
            }),
            row_version: s.row_version,
            patient: Patient::from(&v.patient),
            order: Order {
                id: o.id,
                provider: o.provider.clone(),
                priority: o.priority.code().to_owned(),
                clinical_note: o.clinical_note.clone(),
                placer_number: o.placer_number.clone(),
                ordered_at: Time::at(o.ordered_at),
                ordered_by: o.ordered_by.clone(),
            },
            tests: v.tests.iter().map(OrderedTest::from).collect(),
        }
    }
}

response! {
    /// One released result on a patient's cumulative report.
    pub struct ReportLine {
        pub accession: String,
        pub collected_at: Option<Time>,
        pub test: OrderedTest,
    }
}

response! {
    /// A patient's released results, newest specimen first.
    pub struct Report {
        pub patient: Patient,
        pub results: Vec<ReportLine>,
    }
}

impl From<&CumulativeReport> for Report {
    fn from(r: &CumulativeReport) -> Report {
        Report {
            patient: Patient::from(&r.patient),
            results: r
                .rows
                .iter()
                .map(|row| ReportLine {
                    accession: row.test.item.specimen.accession.clone(),
                    collected_at: Time::opt(row.collected_at),
                    test: OrderedTest::from(&row.test),
                })
                .collect(),
        }
    }
}

response! {
    /// A tube an order created.
    pub struct PlacedTube {
        /// Accession number as printed.
        pub accession: String,
        /// Container to draw.
        pub container: String,
        /// Test codes on it.
        pub tests: Vec<String>,
    }
}

response! {
    /// A placed order: its accession numbers, one per tube to draw.
    pub struct PlacedOrder {
        pub order_id: i64,
        pub patient_id: i64,
        pub accessions: Vec<String>,
        pub specimens: Vec<PlacedTube>,
    }
}

impl PlacedOrder {
    /// The order placed for `patient_id`.
    pub fn new(placed: &cuvette_app::PlacedOrder, patient_id: i64) -> PlacedOrder {
        PlacedOrder {
            order_id: placed.order_id,
            patient_id,
            accessions: placed.specimens.iter().map(|s| s.accession.clone()).collect(),
            specimens: placed
                .specimens
                .iter()
                .map(|s| PlacedTube {
                    accession: s.accession.clone(),
                    container: s.container.clone(),
                    tests: s.tests.clone(),
                })
                .collect(),
        }
    }
}

response! {
    /// A specimen's state after collection or receipt.
    pub struct SpecimenStep {
        pub accession: String,
        pub status: String = [SPECIMEN_STATUSES[0], SPECIMEN_STATUSES[1], SPECIMEN_STATUSES[2], SPECIMEN_STATUSES[3]],
        pub collected_at: Option<Time>,
        pub received_at: Option<Time>,
    }
}

impl From<&SpecimenRow> for SpecimenStep {
    fn from(s: &SpecimenRow) -> SpecimenStep {
        SpecimenStep {
            accession: s.accession.clone(),
            status: s.status.code().to_owned(),
            collected_at: Time::opt(s.collected_at),
            received_at: Time::opt(s.received_at),
        }
    }
}

response! {
    /// A rejected specimen and the specimen created to recollect it.
    pub struct Rejected {
        pub accession: String,
        pub status: String = [SPECIMEN_STATUSES[3]],
        /// The new specimen for the tests that were cancelled.
        pub recollection_accession: String,
    }
}

response! {
    /// A result version just written, with how it was judged.
    pub struct SavedResult {
        pub ordered_test_id: i64,
        pub version: i64,
        /// As reported.
        pub value: String,
        pub flags: Vec<String> = [FLAGS[0], FLAGS[1], FLAGS[2], FLAGS[3], FLAGS[4], FLAGS[5], FLAGS[6], FLAGS[7]],
        pub reference_interval: String,
        pub review: String = [REVIEWS[0], REVIEWS[1]],
        pub review_reasons: Vec<String>,
    }
}

impl From<&Saved> for SavedResult {
    fn from(r: &Saved) -> SavedResult {
        let e = &r.evaluation;
        SavedResult {
            ordered_test_id: r.ordered_test_id,
            version: r.version,
            value: e.report_text.clone(),
            flags: e.flags.iter().map(|f| f.code().to_owned()).collect(),
            reference_interval: e.interval.clone(),
            review: e.review.code().to_owned(),
            review_reasons: e.reasons.clone(),
        }
    }
}

response! {
    /// The results written, calculated ones included.
    pub struct SavedResults {
        pub saved: Vec<SavedResult>,
    }
}

response! {
    /// What became of one test asked to be released.
    pub struct ReleaseOutcome {
        pub ordered_test_id: i64,
        pub outcome: String = ["released", "held"],
        /// Why it was held, and what would allow it; null when released.
        pub reason: Option<String>,
    }
}

impl From<&Release> for ReleaseOutcome {
    fn from(r: &Release) -> ReleaseOutcome {
        match r {
            Release::Released { ordered_test_id } => ReleaseOutcome {
                ordered_test_id: *ordered_test_id,
                outcome: "released".into(),
                reason: None,
            },
            Release::Held { ordered_test_id, reason } => ReleaseOutcome {
                ordered_test_id: *ordered_test_id,
                outcome: "held".into(),
                reason: Some(reason.clone()),
            },
        }
    }
}

response! {
    /// Each test's outcome, in the order asked.
    pub struct ReleaseOutcomes {
        pub outcomes: Vec<ReleaseOutcome>,
    }
}

response! {
    /// A documented critical call.
    pub struct CallDocumented {
        pub id: i64,
    }
}

response! {
    /// An open test on a worklist or the review queue.
    pub struct WorkEntry {
        pub ordered_test_id: i64,
        pub row_version: i64,
        pub accession: String,
        pub test_code: String,
        /// Bench.
        pub discipline: String,
        pub status: String = [TEST_STATUSES[0], TEST_STATUSES[1], TEST_STATUSES[2], TEST_STATUSES[3], TEST_STATUSES[4], TEST_STATUSES[5], TEST_STATUSES[6]],
        pub priority: String = [PRIORITIES[0], PRIORITIES[1]],
        pub patient: Patient,
        pub received_at: Option<Time>,
        /// The latest result, if one was entered.
        pub result: Option<ResultVersion>,
    }
}

impl From<&WorkItem> for WorkEntry {
    fn from(i: &WorkItem) -> WorkEntry {
        WorkEntry {
            ordered_test_id: i.test.id,
            row_version: i.test.row_version,
            accession: i.specimen.accession.clone(),
            test_code: i.test.test_code.clone(),
            discipline: i.test.discipline.clone(),
            status: i.test.status.code().to_owned(),
            priority: i.order.priority.code().to_owned(),
            patient: Patient::from(&i.patient),
            received_at: Time::opt(i.specimen.received_at),
            result: i.result.as_ref().map(ResultVersion::from),
        }
    }
}

response! {
    /// Work items, most urgent first.
    pub struct WorkList {
        pub items: Vec<WorkEntry>,
    }
}

response! {
    /// What a scanned or typed text names: a specimen (by accession number, or the placer's
    /// specimen id on a ward-labelled tube), a patient (by MRN), or a name to search.
    pub struct Found {
        pub kind: String = ["specimen", "patient", "names"],
        /// The specimen's accession number, when a specimen was found.
        pub accession: Option<String>,
        /// The patient's id, when a patient was found by MRN.
        pub patient_id: Option<i64>,
        /// The text to search as a name, when neither was found.
        pub query: Option<String>,
        /// Where the bench opens what was found.
        pub href: String,
    }
}

impl From<&cuvette_app::search::Found> for Found {
    fn from(f: &cuvette_app::search::Found) -> Found {
        use cuvette_app::search::Found as F;
        let enc = |s: &str| crate::auth::urlencode(s);
        match f {
            F::Specimen { accession } => Found {
                kind: "specimen".into(),
                accession: Some(accession.clone()),
                patient_id: None,
                query: None,
                href: format!("/specimens/{}", enc(accession)),
            },
            F::Patient { patient_id } => Found {
                kind: "patient".into(),
                accession: None,
                patient_id: Some(*patient_id),
                query: None,
                href: format!("/patients/{patient_id}"),
            },
            F::Names { query } => Found {
                kind: "names".into(),
                accession: None,
                patient_id: None,
                query: Some(query.clone()),
                href: format!("/patients?q={}", enc(query)),
            },
        }
    }
}

response! {
    /// A test of an order found by the order search.
    pub struct OrderLine {
        pub ordered_test_id: i64,
        pub order_id: i64,
        pub accession: String,
        pub test_code: String,
        pub status: String = [TEST_STATUSES[0], TEST_STATUSES[1], TEST_STATUSES[2], TEST_STATUSES[3], TEST_STATUSES[4], TEST_STATUSES[5], TEST_STATUSES[6]],
        pub priority: String = [PRIORITIES[0], PRIORITIES[1]],
        /// The ordering provider, as written on the order.
        pub provider: String,
        pub ordered_at: Time,
        pub patient: Patient,
        /// The latest result, for those who may see results.
        pub result: Option<ResultVersion>,
    }
}

impl From<&WorkItem> for OrderLine {
    fn from(i: &WorkItem) -> OrderLine {
        OrderLine {
            ordered_test_id: i.test.id,
            order_id: i.order.id,
            accession: i.specimen.accession.clone(),
            test_code: i.test.test_code.clone(),
            status: i.test.status.code().to_owned(),
            priority: i.order.priority.code().to_owned(),
            provider: i.order.provider.clone(),
            ordered_at: Time::at(i.order.ordered_at),
            patient: Patient::from(&i.patient),
            result: i.result.as_ref().map(ResultVersion::from),
        }
    }
}

response! {
    /// One page of the order search, newest order first.
    pub struct OrderSearchResult {
        pub items: Vec<OrderLine>,
        /// The page shown, from 1.
        pub page: i64,
        /// The next page's number, when there is one.
        pub next_page: Option<i64>,
    }
}

response! {
    /// One event of the tamper-evident audit log.
    pub struct AuditRecord {
        /// Position in the hash chain, from 1; pass the smallest as before_seq for the next page.
        pub seq: i64,
        pub at: Time,
        /// Username, or "system".
        pub actor: String,
        /// The event's stored code (`result.release`, `login.fail`, …).
        pub action: String,
        /// What kind of thing it concerns (patient, specimen, result, …).
        pub entity: String,
        pub entity_id: String,
        pub patient_id: Option<i64>,
        /// The state before, as JSON text.
        pub before: Option<String>,
        /// The state after, as JSON text.
        pub after: Option<String>,
        pub prev_hash: String,
        pub hash: String,
    }
}

impl From<&AuditEvent> for AuditRecord {
    fn from(e: &AuditEvent) -> AuditRecord {
        AuditRecord {
            seq: e.seq,
            at: Time::at(e.at),
            actor: e.actor.clone(),
            action: e.action.code().to_owned(),
            entity: e.entity.clone(),
            entity_id: e.entity_id.clone(),
            patient_id: e.patient_id,
            before: e.before.clone(),
            after: e.after.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

response! {
    /// Audit events, newest first.
    pub struct AuditLog {
        pub events: Vec<AuditRecord>,
    }
}

response! {
    /// A reference interval for one sex and age band.
    pub struct Interval {
        /// "M", "F" or "*" for both.
        pub sex: String,
        /// Youngest age it applies to, ISO 8601 duration from birth ("P18Y"), inclusive.
        pub age_min: Option<String>,
        /// Age from which it no longer applies, exclusive.
        pub age_max: Option<String>,
        /// Decimal as text; null for a one-sided interval.
        pub low: Option<String>,
        pub high: Option<String>,
    }
}

impl From<&ReferenceInterval> for Interval {
    fn from(r: &ReferenceInterval) -> Interval {
        Interval {
            sex: r.sex.clone(),
            age_min: r.age_min.clone(),
            age_max: r.age_max.clone(),
            low: r.low.map(|d| d.to_string()),
            high: r.high.map(|d| d.to_string()),
        }
    }
}

response! {
    /// How a calculated test is derived.
    pub struct Calculation {
        /// Test codes (and age_years, sex) it reads.
        pub inputs: Vec<String>,
        pub formula: String,
        pub coefficients: BTreeMap<String, f64>,
        pub valid_when: Vec<String>,
        pub invalid_comment: Option<String>,
    }
}

impl From<&CalculationRule> for Calculation {
    fn from(c: &CalculationRule) -> Calculation {
        Calculation {
            inputs: c.inputs.clone(),
            formula: c.formula.clone(),
            coefficients: c.coefficients.clone(),
            valid_when: c.valid_when.clone(),
            invalid_comment: c.invalid_comment.clone(),
        }
    }
}

response! {
    /// A test as the lab defines it; the same shape is sent back to save a new version.
    /// Decimal limits are text, so no precision is lost.
    pub struct Definition {
        pub code: String,
        pub name: String,
        pub loinc: String,
        pub discipline: String,
        /// CLIA complexity: who may perform the test depends on it.
        pub complexity: String = [COMPLEXITIES[0], COMPLEXITIES[1], COMPLEXITIES[2]],
        pub specimen: String,
        pub container: String,
        /// UCUM; empty for coded results.
        pub unit: String,
        pub result_type: String = [RESULT_TYPES[0], RESULT_TYPES[1], RESULT_TYPES[2], RESULT_TYPES[3]],
        pub allowed_values: Vec<String>,
        pub normal_values: Vec<String>,
        pub decimals: Option<u32>,
        pub reference: Vec<Interval>,
        pub critical_low: Option<String>,
        pub critical_high: Option<String>,
        /// Critical limits for particular ages (a newborn's, a child's), each an interval
        /// whose low and high are the critical low and high; where one applies it replaces
        /// critical_low and critical_high. Send it back unchanged to keep it.
        pub critical_by_age: Vec<Interval>,
        pub amr_low: Option<String>,
        pub amr_high: Option<String>,
        pub tea_percent: Option<String>,
        pub tea_absolute: Option<String>,
        pub delta_abs: Option<String>,
        pub delta_percent: Option<String>,
        pub delta_window_hours: Option<u32>,
        pub calculation: Option<Calculation>,
        pub orderable: bool,
    }
}

impl From<&TestDefinition> for Definition {
    fn from(t: &TestDefinition) -> Definition {
        let text = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
        Definition {
            code: t.code.clone(),
            name: t.name.clone(),
            loinc: t.loinc.clone(),
            discipline: t.discipline.clone(),
            complexity: t.complexity.code().to_owned(),
            specimen: t.specimen.clone(),
            container: t.container.clone(),
            unit: t.unit.clone(),
            result_type: match t.result_type {
                ResultType::Numeric => "numeric",
                ResultType::Coded => "coded",
                ResultType::Text => "text",
                ResultType::Organism => "organism",
            }
            .to_owned(),
            allowed_values: t.allowed_values.clone(),
            normal_values: t.normal_values.clone(),
            decimals: t.decimals,
            reference: t.reference.iter().map(Interval::from).collect(),
            critical_low: text(t.critical_low),
            critical_high: text(t.critical_high),
            critical_by_age: t.critical_by_age.iter().map(Interval::from).collect(),
            amr_low: text(t.amr_low),
            amr_high: text(t.amr_high),
            tea_percent: text(t.tea_percent),
            tea_absolute: text(t.tea_absolute),
            delta_abs: text(t.delta_abs),
            delta_percent: text(t.delta_percent),
            delta_window_hours: t.delta_window_hours,
            calculation: t.calculation.as_ref().map(Calculation::from),
            orderable: t.orderable,
        }
    }
}

response! {
    /// A test definition with its stored version (send it as expected_version to save).
    pub struct CatalogTest {
        /// Null for a definition that came with the catalog and was never saved.
        pub version: Option<i64>,
        pub definition: Definition,
    }
}

response! {
    /// A named group of tests ordered together.
    pub struct CatalogPanel {
        pub code: String,
        pub name: String,
        pub loinc: String,
        /// Measured member tests.
        pub members: Vec<String>,
        /// Calculated tests produced when their inputs are present.
        pub calculated: Vec<String>,
    }
}

impl From<&Panel> for CatalogPanel {
    fn from(p: &Panel) -> CatalogPanel {
        CatalogPanel {
            code: p.code.clone(),
            name: p.name.clone(),
            loinc: p.loinc.clone(),
            members: p.members.clone(),
            calculated: p.calculated.clone(),
        }
    }
}

response! {
    /// The test catalog.
    pub struct CatalogList {
        pub tests: Vec<CatalogTest>,
        pub panels: Vec<CatalogPanel>,
    }
}

response! {
    /// One synonym of a coded test's value: text an instrument or the bench writes, read as
    /// the value.
    pub struct CodedSynonym {
        /// As the lab typed it ("NEG", "1+"); compared trimmed, in any case.
        pub synonym: String,
        /// The catalog's coded value it stands for ("Negative").
        pub coded_value: String,
        pub changed_at: Time,
        pub changed_by: String,
    }
}

impl From<&cuvette_app::records::CodedSynonymRow> for CodedSynonym {
    fn from(r: &cuvette_app::records::CodedSynonymRow) -> CodedSynonym {
        CodedSynonym {
            synonym: r.written.clone(),
            coded_value: r.coded_value.clone(),
            changed_at: Time::at(r.changed_at),
            changed_by: r.changed_by.clone(),
        }
    }
}

response! {
    /// The synonyms in force for a test. Text that is neither one of the test's values nor a
    /// synonym is stored as sent, flagged INV and never released.
    pub struct CodedSynonymList {
        pub test_code: String,
        pub synonyms: Vec<CodedSynonym>,
    }
}

response! {
    /// The whole catalog as one TOML file in the shape of the bundled catalog files.
    pub struct CatalogExport {
        pub toml: String,
    }
}

response! {
    /// One field or limit before and after ("" for none).
    pub struct FieldChange {
        pub field: String,
        pub before: String,
        pub after: String,
    }
}

response! {
    /// A reference interval added, removed or changed, by its partition (sex and ages).
    pub struct IntervalChange {
        /// added, removed or changed.
        pub change: String,
        pub partition: String,
        /// Empty when added.
        pub before: String,
        /// Empty when removed.
        pub after: String,
    }
}

response! {
    /// What changed between two versions of a test.
    pub struct DefinitionDiff {
        pub fields: Vec<FieldChange>,
        pub limits: Vec<FieldChange>,
        pub intervals: Vec<IntervalChange>,
    }
}

impl From<&cuvette_domain::definition_diff::DefinitionDiff> for DefinitionDiff {
    fn from(d: &cuvette_domain::definition_diff::DefinitionDiff) -> DefinitionDiff {
        use cuvette_domain::definition_diff::IntervalChange as C;
        let changes = |list: &[cuvette_domain::definition_diff::Change]| {
            list.iter()
                .map(|c| FieldChange {
                    field: c.field.to_owned(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                })
                .collect()
        };
        let interval = |change: &str, partition: &str, before: &str, after: &str| IntervalChange {
            change: change.to_owned(),
            partition: partition.to_owned(),
            before: before.to_owned(),
            after: after.to_owned(),
        };
        DefinitionDiff {
            fields: changes(&d.fields),
            limits: changes(&d.limits),
            intervals: d
                .intervals
                .iter()
                .map(|c| match c {
                    C::Added { partition, interval: i } => interval("added", partition, "", i),
                    C::Removed { partition, interval: i } => interval("removed", partition, i, ""),
                    C::Changed { partition, before, after } => {
                        interval("changed", partition, before, after)
                    }
                })
                .collect(),
        }
    }
}

response! {
    /// Two versions of a test, who saved each, when and why, and what changed.
    pub struct VersionDiff {
        pub code: String,
        pub from: i64,
        pub to: i64,
        pub from_saved_by: String,
        pub to_saved_by: String,
        pub to_saved_at: Time,
        pub to_reason: String,
        pub diff: DefinitionDiff,
    }
}

response! {
    /// A test an import adds or changes.
    pub struct ImportedTest {
        pub code: String,
        pub name: String,
        /// The version replaced; null for a new test.
        pub replaces: Option<i64>,
        /// The version stored; null in a preview.
        pub version: Option<i64>,
        pub diff: DefinitionDiff,
    }
}

response! {
    /// What a catalog import changed (applied) or would change (a preview).
    pub struct CatalogImported {
        pub applied: bool,
        pub tests: Vec<ImportedTest>,
        pub panels: Vec<String>,
        /// Tests in the file identical to their current version.
        pub unchanged: i64,
    }
}

impl From<&cuvette_app::catalog::CatalogImport> for CatalogImported {
    fn from(i: &cuvette_app::catalog::CatalogImport) -> CatalogImported {
        CatalogImported {
            applied: i.applied,
            tests: i
                .tests
                .iter()
                .map(|t| ImportedTest {
                    code: t.code.clone(),
                    name: t.name.clone(),
                    replaces: t.replaces,
                    version: t.version,
                    diff: DefinitionDiff::from(&t.diff),
                })
                .collect(),
            panels: i.panels.clone(),
            unchanged: i64::try_from(i.unchanged).unwrap_or(i64::MAX),
        }
    }
}

response! {
    /// A saved definition version.
    pub struct DefinitionSaved {
        pub code: String,
        pub version: i64,
    }
}

response! {
    /// One invalid input.
    pub struct InvalidField {
        /// The field's name, as sent ("results[0].value", "patient.mrn").
        pub field: String,
        /// What is wrong and how to fix it.
        pub message: String,
    }
}

impl From<&FieldError> for InvalidField {
    fn from(f: &FieldError) -> InvalidField {
        InvalidField { field: f.field.clone(), message: f.message.clone() }
    }
}

response! {
    /// What went wrong.
    pub struct ErrorDetail {
        /// The HTTP status code, repeated.
        pub status: i64,
        /// Why, and what to do.
        pub message: String,
        /// The invalid fields (422); empty otherwise.
        pub fields: Vec<InvalidField>,
    }
}

response! {
    /// Every refusal under /api has this shape.
    pub struct ErrorBody {
        pub error: ErrorDetail,
    }
}

const PROTOCOLS: [&str; 2] = ["hl7", "astm"];
const UNMAPPED_RESULTS: [&str; 2] = ["hold", "store_mappable"];
const MAP_AS: [&str; 3] = ["result", "ignore", "flag"];
const DIRECTIONS: [&str; 2] = ["in", "out"];
const OUTCOMES: [&str; 7] =
    ["accepted", "quarantined", "partial", "query", "aborted", "sent", "failed"];
const QUARANTINE: [&str; 3] = ["open", "replayed", "dismissed"];

response! {
    /// One mapping of an instrument's code.
    pub struct CodeMapping {
        /// The code the instrument sends (HL7 OBX-3, ASTM R-3).
        pub instrument_code: String,
        /// A result of a catalog test, an instrument flag (its raised flags send the
        /// specimen's results to review), or ignored (skipped, never quarantined).
        pub map_as: String = [MAP_AS[0], MAP_AS[1], MAP_AS[2]],
        /// The catalog test its results are stored under; null unless mapped as a result.
        pub test_code: Option<String>,
        /// The unit its results arrive in (UCUM); null unless mapped as a result.
        pub unit: Option<String>,
        /// The conversion to the catalog's unit, with its factor and source; null when the
        /// results arrive in the catalog's unit.
        pub conversion: Option<String>,
        /// Why its results cannot be taken (a mapping saved before conversions were
        /// required: they are quarantined until the code is mapped again); null when they can.
        pub problem: Option<String>,
    }
}

impl CodeMapping {
    /// A stored mapping, with what the catalog makes of its unit.
    pub fn new(catalog: &cuvette_domain::Catalog, c: &TestCodeRow) -> CodeMapping {
        let (conversion, problem) = crate::html::interfaces::conversion_of(catalog, c);
        let result = c.disposition == CodeDisposition::Result;
        CodeMapping {
            instrument_code: c.instrument_code.clone(),
            map_as: c.disposition.code().to_owned(),
            test_code: result.then(|| c.test_code.clone()),
            unit: result.then(|| c.unit.clone()),
            conversion,
            problem,
        }
    }
}

impl From<&MappedCode> for CodeMapping {
    fn from(m: &MappedCode) -> CodeMapping {
        let result = m.disposition == CodeDisposition::Result;
        CodeMapping {
            instrument_code: m.instrument_code.clone(),
            map_as: m.disposition.code().to_owned(),
            test_code: result.then(|| m.test_code.clone()),
            unit: result.then(|| m.unit.clone()),
            conversion: m.conversion.clone(),
            problem: None,
        }
    }
}

response! {
    /// An instrument or other system Cuvette takes messages from, with its code map.
    pub struct Instrument {
        pub id: i64,
        pub name: String,
        pub protocol: String = [PROTOCOLS[0], PROTOCOLS[1]],
        /// What it sends as its name: HL7 MSH-3, ASTM H-5.
        pub sender: String,
        /// A disabled instrument's messages are refused.
        pub active: bool,
        /// Sample ids of its control runs (`QC-*`); empty when none are configured.
        pub qc_pattern: String,
        /// ASTM: the O-3 component holding the accession number (from 1); null takes the first
        /// that is not empty.
        pub specimen_id_component: Option<i64>,
        /// ASTM: the character set it writes; null reads UTF-8.
        pub charset: Option<String> = ["utf-8", "windows-1252", "ascii", "utf-8-lossy"],
        /// What becomes of a message some of whose results cannot be taken: hold the whole
        /// message in the quarantine, or store the others and quarantine those.
        pub unmapped_results: String = [UNMAPPED_RESULTS[0], UNMAPPED_RESULTS[1]],
        /// Its code map, by instrument code.
        pub codes: Vec<CodeMapping>,
    }
}

impl Instrument {
    /// An instrument and its code map.
    pub fn new(
        catalog: &cuvette_domain::Catalog,
        i: &InstrumentRow,
        codes: &[TestCodeRow],
    ) -> Instrument {
        Instrument {
            id: i.id,
            name: i.name.clone(),
            protocol: i.protocol.code().to_owned(),
            sender: i.sender.clone(),
            active: i.active,
            qc_pattern: i.qc_pattern.clone(),
            specimen_id_component: i.specimen_id_component,
            charset: i.charset.clone(),
            unmapped_results: i.unmapped_results.code().to_owned(),
            codes: codes.iter().map(|c| CodeMapping::new(catalog, c)).collect(),
        }
    }
}

response! {
    /// Every instrument, by name.
    pub struct InstrumentList {
        pub instruments: Vec<Instrument>,
    }
}

response! {
    /// An instrument's code map.
    pub struct CodeMap {
        pub instrument_id: i64,
        pub codes: Vec<CodeMapping>,
    }
}

response! {
    /// An instrument's code map as a CSV file (RFC 4180, CRLF): the columns instrument_code,
    /// map_as, test_code, unit. A text a spreadsheet would run as a formula starts with a
    /// single quote, which an import takes off again.
    pub struct CodeMapFile {
        pub instrument_id: i64,
        /// A name to save it under.
        pub filename: String,
        /// The file.
        pub csv: String,
    }
}

response! {
    /// A code map file taken: every mapping in it, as saved — or, on a dry run, as it would be.
    pub struct CodeMapImported {
        pub instrument_id: i64,
        /// True when nothing was saved: the file was only checked.
        pub dry_run: bool,
        pub codes: Vec<CodeMapping>,
    }
}

response! {
    /// One message in the log, in or out.
    pub struct LoggedMessage {
        pub id: i64,
        pub received_at: Time,
        pub direction: String = [DIRECTIONS[0], DIRECTIONS[1]],
        pub protocol: String = [PROTOCOLS[0], PROTOCOLS[1]],
        /// The listener or destination ("mllp:2575"), or "replay by <user>".
        pub channel: String,
        /// The remote address.
        pub peer: String,
        /// HL7 MSH-3, ASTM H-5.
        pub sender: String,
        /// HL7 MSH-10; for ASTM a hash of the content.
        pub control_id: Option<String>,
        pub message_type: String,
        pub outcome: String = [OUTCOMES[0], OUTCOMES[1], OUTCOMES[2], OUTCOMES[3], OUTCOMES[4], OUTCOMES[5], OUTCOMES[6]],
        /// What became of it, in words: the reason when it was quarantined, with its place.
        pub detail: String,
        pub accession: Option<String>,
        /// Results stored from it.
        pub results: i64,
        /// Null for a message never quarantined.
        pub quarantine: Option<String> = [QUARANTINE[0], QUARANTINE[1], QUARANTINE[2]],
        /// The quarantined message this one replays.
        pub replay_of: Option<i64>,
        /// Microseconds from arrival to the answer.
        pub processed_us: i64,
    }
}

impl From<&MessageRow> for LoggedMessage {
    fn from(m: &MessageRow) -> LoggedMessage {
        LoggedMessage {
            id: m.id,
            received_at: Time::at(m.received_at),
            direction: m.direction.code().to_owned(),
            protocol: m.protocol.code().to_owned(),
            channel: m.channel.clone(),
            peer: m.peer.clone(),
            sender: m.sender.clone(),
            control_id: m.control_id.clone(),
            message_type: m.message_type.clone(),
            outcome: m.outcome.code().to_owned(),
            detail: m.detail.clone(),
            accession: m.accession.clone(),
            results: m.results,
            quarantine: m.quarantine.map(|q| q.code().to_owned()),
            replay_of: m.replay_of,
            processed_us: m.processed_us,
        }
    }
}

response! {
    /// A page of the message log, newest first.
    pub struct MessageLog {
        pub messages: Vec<LoggedMessage>,
        /// Pass as `before` for the next page; null on the last.
        pub next_before: Option<i64>,
    }
}

response! {
    /// One problem an HL7 acknowledgement named (an ERR segment).
    pub struct AckProblem {
        /// ERR-2, where in the message ("OBX^1^6"); empty for the message as a whole.
        pub location: String,
        /// ERR-3.1, the HL7 table 0357 code ("103").
        pub code: String,
        /// ERR-3.2, the code's name ("Table value not found").
        pub code_name: String,
        /// ERR-4: E error, W warning, I information.
        pub severity: String,
        /// ERR-8, the reason in the lab's words.
        pub message: String,
    }
}

impl From<&AckError> for AckProblem {
    fn from(e: &AckError) -> AckProblem {
        AckProblem {
            location: e.location.clone(),
            code: e.code.clone(),
            code_name: e.code_name.clone(),
            severity: e.severity.clone(),
            message: e.message.clone(),
        }
    }
}

response! {
    /// A logged message with what came in (or went out) and the acknowledgement.
    pub struct MessageDetail {
        pub message: LoggedMessage,
        /// The bytes as received, as text (a byte that is not UTF-8 shows as U+FFFD).
        pub raw: String,
        /// The acknowledgement sent (inbound) or received (outbound), as text; null when none.
        pub ack: Option<String>,
        /// HL7 MSA-1 of that acknowledgement (AA, AE, AR, or CA, CE, CR); null for ASTM.
        pub ack_code: Option<String>,
        /// Each problem the acknowledgement named, with its HL7 code and place.
        pub ack_errors: Vec<AckProblem>,
        /// The sequence numbers of the OBX segments or R records kept in the quarantine from a
        /// partly stored message.
        pub held: Vec<i64>,
    }
}

impl From<&MessageRow> for MessageDetail {
    fn from(m: &MessageRow) -> MessageDetail {
        let acknowledged = cuvette_app::interop::acknowledged(m);
        MessageDetail {
            message: LoggedMessage::from(m),
            raw: String::from_utf8_lossy(&m.raw).into_owned(),
            ack: m.ack.as_deref().map(|a| String::from_utf8_lossy(a).into_owned()),
            ack_code: acknowledged.as_ref().map(|a| a.code.clone()),
            ack_errors: acknowledged
                .iter()
                .flat_map(|a| a.errors.iter().map(AckProblem::from))
                .collect(),
            held: m.held.iter().map(|&h| h as i64).collect(),
        }
    }
}

response! {
    /// A quarantined message replayed: the original, and the replay's own log entry.
    pub struct Replayed {
        /// The quarantined message, now `replayed` when the replay was taken.
        pub original: LoggedMessage,
        /// The replay: accepted, or quarantined again with the reason.
        pub replay: LoggedMessage,
    }
}

// ---- people ----

impl Date {
    fn of(d: jiff::civil::Date) -> Date {
        Date(d.to_string())
    }
}

response! {
    /// A degree or programme completed.
    pub struct EducationOut {
        pub level: String = ["certificate", "associate", "bachelor", "master", "doctorate"],
        pub field: String,
        pub institution: String,
        /// `naacls`, `caahep`, `abhes`, `institutional`, or null.
        pub accreditation: Option<String>,
        pub completed_on: Date,
    }
}

response! {
    /// A certification held.
    pub struct CertificationOut {
        /// Body and credential (`ascp_mls`).
        pub credential: String,
        /// As printed (`MLS(ASCP)`).
        pub label: String,
        pub number: String,
        pub issued_on: Date,
        pub expires_on: Option<Date>,
    }
}

response! {
    /// A state licence.
    pub struct LicenceOut {
        pub state: String,
        pub number: String,
        pub expires_on: Date,
    }
}

response! {
    /// A staff record.
    pub struct StaffRecordOut {
        pub version: i64,
        pub education: Vec<EducationOut>,
        pub certifications: Vec<CertificationOut>,
        pub licences: Vec<LicenceOut>,
        pub hire_date: Date,
        pub experience_since: Date,
        pub disciplines: Vec<String>,
        pub updated_at: Time,
        pub updated_by: String,
    }
}

response! {
    /// An authorisation to test in a discipline.
    pub struct AuthorisationOut {
        pub id: i64,
        pub discipline: String,
        /// The director or technical supervisor who authorised it.
        pub authorised_by: String,
        pub authorised_on: Date,
    }
}

response! {
    /// Where the person stands on a test system today.
    pub struct CompetencyStanding {
        /// "K on Chem-1", "hematology by the manual method".
        pub test_system: String,
        pub standing: String = [STANDINGS[0], STANDINGS[1], STANDINGS[2]],
        /// Current: the last day of the next assessment; overdue: the day it was due;
        /// failed: the day of the failed assessment.
        pub date: Date,
    }
}

response! {
    /// One element of an assessment.
    pub struct ElementOut {
        pub element: String,
        pub evidence: String,
        pub assessor: String,
        pub assessed_on: Date,
    }
}

response! {
    /// A competency assessment.
    pub struct AssessmentOut {
        pub id: i64,
        pub test_system: String,
        pub outcome: String = [ASSESSMENT_OUTCOMES[0], ASSESSMENT_OUTCOMES[1]],
        pub assessed_on: Date,
        pub elements: Vec<ElementOut>,
        pub recorded_by: String,
    }
}

response! {
    /// A person's staff page: record, authorisations and competency.
    pub struct Staff {
        pub username: String,
        pub display_name: String,
        pub role: String,
        /// Null until a supervisor records it.
        pub record: Option<StaffRecordOut>,
        pub authorisations: Vec<AuthorisationOut>,
        pub competency: Vec<CompetencyStanding>,
        pub assessments: Vec<AssessmentOut>,
        /// Today in the lab's calendar, the date the standings are computed for.
        pub today: Date,
    }
}

impl From<&cuvette_app::StaffView> for Staff {
    fn from(v: &cuvette_app::StaffView) -> Staff {
        use cuvette_domain::staff::Standing;
        let record = v.record.as_ref().map(|r| StaffRecordOut {
            version: r.version,
            education: r
                .record
                .education
                .iter()
                .map(|e| EducationOut {
                    level: e.level.code().into(),
                    field: e.field.code().into(),
                    institution: e.institution.clone(),
                    accreditation: e.accreditation.map(|a| a.code().into()),
                    completed_on: Date::of(e.completed_on),
                })
                .collect(),
            certifications: r
                .record
                .certifications
                .iter()
                .map(|c| CertificationOut {
                    credential: c.credential.code().into(),
                    label: c.credential.to_string(),
                    number: c.number.clone(),
                    issued_on: Date::of(c.issued_on),
                    expires_on: c.expires_on.map(Date::of),
                })
                .collect(),
            licences: r
                .record
                .licences
                .iter()
                .map(|l| LicenceOut {
                    state: l.state.clone(),
                    number: l.number.clone(),
                    expires_on: Date::of(l.expires_on),
                })
                .collect(),
            hire_date: Date::of(r.record.hire_date),
            experience_since: Date::of(r.record.experience_since),
            disciplines: r.record.disciplines.clone(),
            updated_at: Time::at(r.updated_at),
            updated_by: r.updated_by.clone(),
        });
        Staff {
            username: v.user.username.clone(),
            display_name: v.user.display_name.clone(),
            role: v.user.role.code().into(),
            record,
            authorisations: v
                .authorisations
                .iter()
                .map(|a| AuthorisationOut {
                    id: a.id,
                    discipline: a.authorisation.discipline.clone(),
                    authorised_by: a.authorisation.authorised_by.clone(),
                    authorised_on: Date::of(a.authorisation.authorised_on),
                })
                .collect(),
            competency: v
                .standings
                .iter()
                .map(|(system, standing)| {
                    let (code, date) = match standing {
                        Standing::Current { due } => (STANDINGS[0], *due),
                        Standing::Overdue { since } => (STANDINGS[1], *since),
                        Standing::Failed { on } => (STANDINGS[2], *on),
                    };
                    CompetencyStanding {
                        test_system: system.to_string(),
                        standing: code.into(),
                        date: Date::of(date),
                    }
                })
                .collect(),
            assessments: v
                .assessments
                .iter()
                .map(|a| AssessmentOut {
                    id: a.id,
                    test_system: a.assessment.system.to_string(),
                    outcome: a.assessment.outcome.code().into(),
                    assessed_on: Date::of(a.assessment.assessed_on()),
                    elements: a
                        .assessment
                        .elements
                        .iter()
                        .zip(cuvette_domain::staff::Element::ALL)
                        .map(|(e, element)| ElementOut {
                            element: element.to_string(),
                            evidence: e.evidence.clone(),
                            assessor: e.assessor.clone(),
                            assessed_on: Date::of(e.assessed_on),
                        })
                        .collect(),
                    recorded_by: a.recorded_by.clone(),
                })
                .collect(),
            today: Date::of(v.today),
        }
    }
}

response! {
    /// A saved staff record.
    pub struct StaffRecordSaved {
        pub username: String,
        pub version: i64,
    }
}

response! {
    /// A recorded authorisation or assessment.
    pub struct Recorded {
        pub id: i64,
    }
}

response! {
    /// The lab's qualification settings.
    pub struct QualificationPolicy {
        /// Whether result entry and verification check each person's qualifications.
        pub enforce: bool,
        /// A valid state licence is required from this complexity up; null for never.
        pub licence_required_from: Option<String> = [COMPLEXITIES[0], COMPLEXITIES[1], COMPLEXITIES[2]],
        /// A valid certification is required from this complexity up; null for never.
        pub certification_required_from: Option<String> = [COMPLEXITIES[0], COMPLEXITIES[1], COMPLEXITIES[2]],
    }
}

impl From<cuvette_domain::staff::QualificationPolicy> for QualificationPolicy {
    fn from(p: cuvette_domain::staff::QualificationPolicy) -> QualificationPolicy {
        QualificationPolicy {
            enforce: p.enforce,
            licence_required_from: p.licence_required_from.map(|c| c.code().into()),
            certification_required_from: p.certification_required_from.map(|c| c.code().into()),
        }
    }
}

const COSIGNATURE_STATES: [&str; 3] = ["pending", "signed", "replaced"];

response! {
    /// One test a student performed, without patient identifiers.
    pub struct LogbookEntryOut {
        pub performed_on: Date,
        pub test_code: String,
        pub test_name: String,
        pub discipline: String,
        /// Pending: waits for co-signature; signed: co-signed and so released; replaced: a
        /// newer value (or the test's cancellation) came first.
        pub cosignature: String = [COSIGNATURE_STATES[0], COSIGNATURE_STATES[1], COSIGNATURE_STATES[2]],
        pub cosigned_by: Option<String>,
        pub cosigned_on: Option<Date>,
    }
}

response! {
    /// Tests of one code performed and co-signed in a rotation.
    pub struct LogbookCount {
        pub test_code: String,
        pub test_name: String,
        pub count: i64,
    }
}

response! {
    /// A rotation with the tests performed in it; the rotation fields are null for the tests
    /// performed outside every scheduled rotation.
    pub struct LogbookRotation {
        /// The rotation's id, for the sign-off.
        pub id: Option<i64>,
        pub program: Option<String>,
        pub discipline: Option<String>,
        pub starts_on: Option<Date>,
        pub ends_on: Option<Date>,
        /// The supervising technologist's user ID.
        pub supervisor: Option<String>,
        pub signed_off_by: Option<String>,
        pub signed_off_on: Option<Date>,
        /// Results still waiting for co-signature.
        pub pending: i64,
        pub per_test: Vec<LogbookCount>,
        pub entries: Vec<LogbookEntryOut>,
    }
}

response! {
    /// A student's rotation logbook.
    pub struct Logbook {
        pub username: String,
        pub display_name: String,
        pub rotations: Vec<LogbookRotation>,
        /// Today in the lab's calendar.
        pub today: Date,
    }
}

impl From<&cuvette_app::students::Logbook> for Logbook {
    fn from(b: &cuvette_app::students::Logbook) -> Logbook {
        use cuvette_domain::rotation::Cosignature;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Logbook {
            username: b.user.username.clone(),
            display_name: b.user.display_name.clone(),
            rotations: b
                .sections
                .iter()
                .map(|s| {
                    let r = s.rotation.as_ref();
                    let signed = r.and_then(|r| r.signed_off.as_ref());
                    LogbookRotation {
                        id: b.row_of(s).map(|row| row.id),
                        program: r.map(|r| r.program.clone()),
                        discipline: r.map(|r| r.discipline.clone()),
                        starts_on: r.map(|r| Date::of(r.starts_on)),
                        ends_on: r.map(|r| Date::of(r.ends_on)),
                        supervisor: r.map(|r| r.supervisor.clone()),
                        signed_off_by: signed.map(|s| s.by.clone()),
                        signed_off_on: signed.map(|s| Date::of(s.on)),
                        pending: count(s.pending()),
                        per_test: s
                            .signed_per_test()
                            .into_iter()
                            .map(|(test_code, test_name, n)| LogbookCount {
                                test_code,
                                test_name,
                                count: count(n),
                            })
                            .collect(),
                        entries: s
                            .entries
                            .iter()
                            .map(|e| {
                                let (state, by, on) = match &e.cosignature {
                                    Cosignature::Pending => (COSIGNATURE_STATES[0], None, None),
                                    Cosignature::Signed { by, on } => (
                                        COSIGNATURE_STATES[1],
                                        Some(by.clone()),
                                        Some(Date::of(*on)),
                                    ),
                                    Cosignature::Replaced => (COSIGNATURE_STATES[2], None, None),
                                };
                                LogbookEntryOut {
                                    performed_on: Date::of(e.performed_on),
                                    test_code: e.test.clone(),
                                    test_name: e.test_name.clone(),
                                    discipline: e.discipline.clone(),
                                    cosignature: state.into(),
                                    cosigned_by: by,
                                    cosigned_on: on,
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
            today: Date::of(b.today),
        }
    }
}

response! {
    /// The rotation logbook as a CSV file.
    pub struct LogbookFile {
        pub username: String,
        /// A name to save it under.
        pub filename: String,
        /// RFC 4180, CRLF line ends, one row per test performed; text fields that would run as
        /// a spreadsheet formula start with a single quote.
        pub csv: String,
    }
}

response! {
    /// A student's result waiting for a co-signature.
    pub struct PendingCosignature {
        /// The student who entered it.
        pub student: String,
        /// The supervising technologist of the rotation it was entered in.
        pub supervisor: Option<String>,
        /// Whether that supervisor is the one asking.
        pub yours: bool,
        pub entry: WorkEntry,
    }
}

response! {
    /// Students' results waiting for a co-signature, the asker's own students first.
    pub struct Cosignatures {
        pub items: Vec<PendingCosignature>,
    }
}

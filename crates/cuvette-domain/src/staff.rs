//! People: a staff member's education, certifications and licences, the director's
//! authorisations, competency assessments, and the rules that decide from them whether a
//! person may perform a test today (CLIA 42 CFR 493 Subpart M).
//!
//! Everything is evaluated against a `today` the caller passes (the lab's calendar date from
//! the injected clock), so a licence lapses and a competency falls due at the moment the date
//! passes, with no job that has to run first.
//!
//! The records are shaped for what comes later without changing them: students' rotations and
//! co-signatures hang on the role and the authorisations, continuing education on the
//! certifications, the career ladder on education, certifications and `experience_since`.

use std::fmt;

use jiff::Span;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::role::Role;

/// CLIA test complexity (42 CFR 493.5): the categorisation of a test system, which sets who
/// may perform it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// Waived tests (§493.15): no personnel requirements beyond the lab's own.
    Waived,
    /// Moderate complexity (§493.1423 testing personnel).
    Moderate,
    /// High complexity (§493.1489 testing personnel). A test whose complexity was never
    /// stated is taken as high: the strictest requirement, never the loosest.
    #[default]
    High,
}

impl Complexity {
    /// Every complexity, lowest first.
    pub const ALL: [Complexity; 3] = [Complexity::Waived, Complexity::Moderate, Complexity::High];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Complexity::Waived => "waived",
            Complexity::Moderate => "moderate",
            Complexity::High => "high",
        }
    }

    /// Parses a stored or typed code.
    pub fn parse(code: &str) -> Option<Complexity> {
        Complexity::ALL.into_iter().find(|c| c.code() == code.trim())
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Complexity::Waived => "waived",
            Complexity::Moderate => "moderate complexity",
            Complexity::High => "high complexity",
        })
    }
}

/// The highest degree or programme a person completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EducationLevel {
    /// A certificate programme (high-school graduate plus training: phlebotomy, MLT
    /// certificate, military training).
    Certificate,
    /// Associate degree.
    Associate,
    /// Bachelor's degree.
    Bachelor,
    /// Master's degree.
    Master,
    /// Doctoral degree (PhD, MD, DO).
    Doctorate,
}

impl EducationLevel {
    /// Every level, lowest first.
    pub const ALL: [EducationLevel; 5] = [
        EducationLevel::Certificate,
        EducationLevel::Associate,
        EducationLevel::Bachelor,
        EducationLevel::Master,
        EducationLevel::Doctorate,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            EducationLevel::Certificate => "certificate",
            EducationLevel::Associate => "associate",
            EducationLevel::Bachelor => "bachelor",
            EducationLevel::Master => "master",
            EducationLevel::Doctorate => "doctorate",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<EducationLevel> {
        EducationLevel::ALL.into_iter().find(|l| l.code() == code.trim())
    }
}

impl fmt::Display for EducationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EducationLevel::Certificate => "certificate",
            EducationLevel::Associate => "associate degree",
            EducationLevel::Bachelor => "bachelor's degree",
            EducationLevel::Master => "master's degree",
            EducationLevel::Doctorate => "doctorate",
        })
    }
}

/// The field a degree is in: what §493.1489 and §493.1449 ask is whether it is a chemical,
/// biological, clinical or medical laboratory science (or medicine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldOfStudy {
    /// Medical (clinical) laboratory science / medical technology.
    MedicalLaboratoryScience,
    /// Medical laboratory technology (the associate-degree MLT programme).
    MedicalLaboratoryTechnology,
    /// Chemistry or biochemistry.
    Chemistry,
    /// Biology, microbiology and the other biological sciences.
    Biology,
    /// Medicine (MD, DO).
    Medicine,
    /// Phlebotomy or another allied-health programme.
    AlliedHealth,
    /// Anything else (nursing, business, …): not a laboratory science.
    Other,
}

impl FieldOfStudy {
    /// Every field, in the order forms list them.
    pub const ALL: [FieldOfStudy; 7] = [
        FieldOfStudy::MedicalLaboratoryScience,
        FieldOfStudy::MedicalLaboratoryTechnology,
        FieldOfStudy::Chemistry,
        FieldOfStudy::Biology,
        FieldOfStudy::Medicine,
        FieldOfStudy::AlliedHealth,
        FieldOfStudy::Other,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            FieldOfStudy::MedicalLaboratoryScience => "medical_laboratory_science",
            FieldOfStudy::MedicalLaboratoryTechnology => "medical_laboratory_technology",
            FieldOfStudy::Chemistry => "chemistry",
            FieldOfStudy::Biology => "biology",
            FieldOfStudy::Medicine => "medicine",
            FieldOfStudy::AlliedHealth => "allied_health",
            FieldOfStudy::Other => "other",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<FieldOfStudy> {
        FieldOfStudy::ALL.into_iter().find(|f| f.code() == code.trim())
    }

    /// Whether the field counts as a laboratory science for high-complexity testing and
    /// supervision (§493.1489(b)(2)–(3), §493.1449).
    pub fn is_laboratory_science(self) -> bool {
        match self {
            FieldOfStudy::MedicalLaboratoryScience
            | FieldOfStudy::MedicalLaboratoryTechnology
            | FieldOfStudy::Chemistry
            | FieldOfStudy::Biology
            | FieldOfStudy::Medicine => true,
            FieldOfStudy::AlliedHealth | FieldOfStudy::Other => false,
        }
    }
}

impl fmt::Display for FieldOfStudy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldOfStudy::MedicalLaboratoryScience => "medical laboratory science",
            FieldOfStudy::MedicalLaboratoryTechnology => "medical laboratory technology",
            FieldOfStudy::Chemistry => "chemistry",
            FieldOfStudy::Biology => "biology",
            FieldOfStudy::Medicine => "medicine",
            FieldOfStudy::AlliedHealth => "allied health",
            FieldOfStudy::Other => "other (not a laboratory science)",
        })
    }
}

/// Who accredited the programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accreditation {
    /// National Accrediting Agency for Clinical Laboratory Sciences.
    Naacls,
    /// Commission on Accreditation of Allied Health Education Programs.
    Caahep,
    /// Accrediting Bureau of Health Education Schools.
    Abhes,
    /// The institution's regional or national accreditation only.
    Institutional,
}

impl Accreditation {
    /// Every accreditation, in the order forms list them.
    pub const ALL: [Accreditation; 4] = [
        Accreditation::Naacls,
        Accreditation::Caahep,
        Accreditation::Abhes,
        Accreditation::Institutional,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Accreditation::Naacls => "naacls",
            Accreditation::Caahep => "caahep",
            Accreditation::Abhes => "abhes",
            Accreditation::Institutional => "institutional",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<Accreditation> {
        Accreditation::ALL.into_iter().find(|a| a.code() == code.trim())
    }
}

impl fmt::Display for Accreditation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accreditation::Naacls => "NAACLS",
            Accreditation::Caahep => "CAAHEP",
            Accreditation::Abhes => "ABHES",
            Accreditation::Institutional => "institutional only",
        })
    }
}

/// A certification: the body and its credential, a closed list so that a credential nobody
/// issues cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// ASCP Board of Certification: Medical Laboratory Scientist.
    AscpMls,
    /// ASCP BOC: Medical Laboratory Technician.
    AscpMlt,
    /// ASCP BOC: Specialist in Blood Banking.
    AscpSbb,
    /// ASCP BOC: Specialist in Chemistry.
    AscpSc,
    /// ASCP BOC: Specialist in Hematology.
    AscpSh,
    /// ASCP BOC: Specialist in Microbiology.
    AscpSm,
    /// ASCP BOC: Phlebotomy Technician.
    AscpPbt,
    /// American Medical Technologists: Medical Technologist.
    AmtMt,
    /// AMT: Medical Laboratory Technician.
    AmtMlt,
    /// National Healthcareer Association: Certified Phlebotomy Technician.
    NhaCpt,
}

impl Credential {
    /// Every credential, in the order forms list them.
    pub const ALL: [Credential; 10] = [
        Credential::AscpMls,
        Credential::AscpMlt,
        Credential::AscpSbb,
        Credential::AscpSc,
        Credential::AscpSh,
        Credential::AscpSm,
        Credential::AscpPbt,
        Credential::AmtMt,
        Credential::AmtMlt,
        Credential::NhaCpt,
    ];

    /// The stored code (`ascp_mls`): the body, then the credential.
    pub fn code(self) -> &'static str {
        match self {
            Credential::AscpMls => "ascp_mls",
            Credential::AscpMlt => "ascp_mlt",
            Credential::AscpSbb => "ascp_sbb",
            Credential::AscpSc => "ascp_sc",
            Credential::AscpSh => "ascp_sh",
            Credential::AscpSm => "ascp_sm",
            Credential::AscpPbt => "ascp_pbt",
            Credential::AmtMt => "amt_mt",
            Credential::AmtMlt => "amt_mlt",
            Credential::NhaCpt => "nha_cpt",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<Credential> {
        let code = code.trim().to_ascii_lowercase();
        Credential::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::AscpMls => "MLS(ASCP)",
            Credential::AscpMlt => "MLT(ASCP)",
            Credential::AscpSbb => "SBB(ASCP)",
            Credential::AscpSc => "SC(ASCP)",
            Credential::AscpSh => "SH(ASCP)",
            Credential::AscpSm => "SM(ASCP)",
            Credential::AscpPbt => "PBT(ASCP)",
            Credential::AmtMt => "MT(AMT)",
            Credential::AmtMlt => "MLT(AMT)",
            Credential::NhaCpt => "CPT(NHA)",
        })
    }
}

/// A degree or programme completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Education {
    /// The level.
    pub level: EducationLevel,
    /// Its field.
    pub field: FieldOfStudy,
    /// The school.
    pub institution: String,
    /// The programme's accreditation, when it has one.
    pub accreditation: Option<Accreditation>,
    /// When it was completed.
    pub completed_on: Date,
}

/// A certification held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    /// Body and credential.
    pub credential: Credential,
    /// The certificate number.
    pub number: String,
    /// Issue date.
    pub issued_on: Date,
    /// Last day it is valid (ASCP certifications issued since 2004 run three years; some
    /// older ones never expire).
    pub expires_on: Option<Date>,
}

/// A state licence (California, New York, Florida and the other licensure states).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    /// The two-letter state code ("CA").
    pub state: String,
    /// The licence number.
    pub number: String,
    /// Last day it is valid.
    pub expires_on: Date,
}

/// A staff member's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecord {
    /// Degrees and programmes completed.
    pub education: Vec<Education>,
    /// Certifications held.
    pub certifications: Vec<Certification>,
    /// State licences.
    pub licences: Vec<Licence>,
    /// Hired by this lab on.
    pub hire_date: Date,
    /// Laboratory experience counts from this date (earlier labs included): the years CLIA
    /// asks of consultants and supervisors.
    pub experience_since: Date,
    /// Disciplines (benches) the person is assigned to, as the catalog names them.
    pub disciplines: Vec<String>,
}

/// The most a record holds of each list: a limit on everything.
pub const RECORD_ENTRIES_MAX: usize = 20;

/// Text fields of a record are at most this long.
pub const TEXT_CHARS_MAX: usize = 200;

/// A record as typed on the form or sent to the API: text, so that a refusal can give back
/// exactly what was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecordInput {
    /// Degrees and programmes.
    #[serde(default)]
    pub education: Vec<EducationInput>,
    /// Certifications.
    #[serde(default)]
    pub certifications: Vec<CertificationInput>,
    /// Licences.
    #[serde(default)]
    pub licences: Vec<LicenceInput>,
    /// Hire date, `YYYY-MM-DD`.
    #[serde(default)]
    pub hire_date: String,
    /// Experience since, `YYYY-MM-DD`; the hire date when empty.
    #[serde(default)]
    pub experience_since: String,
    /// Disciplines, as the catalog names them.
    #[serde(default)]
    pub disciplines: Vec<String>,
}

/// A degree as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EducationInput {
    /// Level code.
    #[serde(default)]
    pub level: String,
    /// Field code.
    #[serde(default)]
    pub field: String,
    /// School.
    #[serde(default)]
    pub institution: String,
    /// Accreditation code, or empty.
    #[serde(default)]
    pub accreditation: String,
    /// Completion date.
    #[serde(default)]
    pub completed_on: String,
}

/// A certification as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificationInput {
    /// Credential code (`ascp_mls`).
    #[serde(default)]
    pub credential: String,
    /// Certificate number.
    #[serde(default)]
    pub number: String,
    /// Issue date.
    #[serde(default)]
    pub issued_on: String,
    /// Expiry date, or empty.
    #[serde(default)]
    pub expires_on: String,
}

/// A licence as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceInput {
    /// State code.
    #[serde(default)]
    pub state: String,
    /// Licence number.
    #[serde(default)]
    pub number: String,
    /// Expiry date.
    #[serde(default)]
    pub expires_on: String,
}

/// One refused field of a record: the field's name as the form and the API name it
/// (`certifications[0].expires_on`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRefusal {
    /// The field.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The states and territories that issue laboratory personnel licences or may: every US
/// postal code, so a typo is caught without the list having to follow each state's law.
const US_STATES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
];

impl StaffRecordInput {
    /// The input a stored record reads back as (the form pre-filled for editing).
    pub fn from_record(r: &StaffRecord) -> StaffRecordInput {
        StaffRecordInput {
            education: r
                .education
                .iter()
                .map(|e| EducationInput {
                    level: e.level.code().into(),
                    field: e.field.code().into(),
                    institution: e.institution.clone(),
                    accreditation: e.accreditation.map(|a| a.code().into()).unwrap_or_default(),
                    completed_on: e.completed_on.to_string(),
                })
                .collect(),
            certifications: r
                .certifications
                .iter()
                .map(|c| CertificationInput {
                    credential: c.credential.code().into(),
                    number: c.number.clone(),
                    issued_on: c.issued_on.to_string(),
                    expires_on: c.expires_on.map(|d| d.to_string()).unwrap_or_default(),
                })
                .collect(),
            licences: r
                .licences
                .iter()
                .map(|l| LicenceInput {
                    state: l.state.clone(),
                    number: l.number.clone(),
                    expires_on: l.expires_on.to_string(),
                })
                .collect(),
            hire_date: r.hire_date.to_string(),
            experience_since: r.experience_since.to_string(),
            disciplines: r.disciplines.clone(),
        }
    }

    /// Parses the typed record, refusing every bad field at once: dates that are not dates,
    /// an issue or completion date after `today`, an expiry before the issue, a credential no
    /// body issues, a discipline the lab does not have. Empty rows are dropped.
    pub fn parse(
        &self,
        today: Date,
        disciplines: &[&str],
    ) -> Result<StaffRecord, Vec<FieldRefusal>> {
        let mut errors = Vec::new();
        let mut refuse = |field: String, message: String| {
            errors.push(FieldRefusal { field, message });
        };
        let too_many = |what: &str, n: usize| n > RECORD_ENTRIES_MAX && !what.is_empty();
        for (what, n) in [
            ("education", self.education.len()),
            ("certifications", self.certifications.len()),
            ("licences", self.licences.len()),
            ("disciplines", self.disciplines.len()),
        ] {
            if too_many(what, n) {
                refuse(what.into(), format!("at most {RECORD_ENTRIES_MAX} entries"));
            }
        }
        let mut education = Vec::new();
        for (i, e) in self.education.iter().enumerate() {
            if [&e.level, &e.field, &e.institution, &e.accreditation, &e.completed_on]
                .iter()
                .all(|s| s.trim().is_empty())
            {
                continue;
            }
            let at = |f: &str| format!("education[{i}].{f}");
            let level = EducationLevel::parse(&e.level);
            if level.is_none() {
                refuse(at("level"), choose("an education level", &e.level, &EDUCATION_CODES));
            }
            let field = FieldOfStudy::parse(&e.field);
            if field.is_none() {
                refuse(at("field"), choose("a field of study", &e.field, &FIELD_CODES));
            }
            let accreditation = if e.accreditation.trim().is_empty() {
                Some(None)
            } else {
                let a = Accreditation::parse(&e.accreditation);
                if a.is_none() {
                    refuse(
                        at("accreditation"),
                        choose("an accreditation", &e.accreditation, &ACCREDITATION_CODES),
                    );
                }
                a.map(Some)
            };
            let institution = text(&e.institution, &at("institution"), "the school", &mut refuse);
            let completed = past_date(&e.completed_on, today, &at("completed_on"), &mut refuse);
            if let (Some(level), Some(field), Some(accreditation), Some(institution), Some(done)) =
                (level, field, accreditation, institution, completed)
            {
                education.push(Education {
                    level,
                    field,
                    institution,
                    accreditation,
                    completed_on: done,
                });
            }
        }
        let mut certifications = Vec::new();
        for (i, c) in self.certifications.iter().enumerate() {
            if [&c.credential, &c.number, &c.issued_on, &c.expires_on]
                .iter()
                .all(|s| s.trim().is_empty())
            {
                continue;
            }
            let at = |f: &str| format!("certifications[{i}].{f}");
            let credential = Credential::parse(&c.credential);
            if credential.is_none() {
                refuse(
                    at("credential"),
                    format!(
                        "{:?} is not a certification body and credential Cuvette knows: choose one of {}",
                        c.credential.trim(),
                        CREDENTIAL_CODES.join(", ")
                    ),
                );
            }
            let number = text(&c.number, &at("number"), "the certificate number", &mut refuse);
            let issued = past_date(&c.issued_on, today, &at("issued_on"), &mut refuse);
            let expires = if c.expires_on.trim().is_empty() {
                Some(None)
            } else {
                date(&c.expires_on, &at("expires_on"), &mut refuse).map(Some)
            };
            if let (Some(issued), Some(Some(expires))) = (issued, expires)
                && expires < issued
            {
                refuse(
                    at("expires_on"),
                    format!(
                        "the expiry {expires} is before the issue date {issued}: check both dates on the certificate"
                    ),
                );
                continue;
            }
            if let (Some(credential), Some(number), Some(issued_on), Some(expires_on)) =
                (credential, number, issued, expires)
            {
                certifications.push(Certification { credential, number, issued_on, expires_on });
            }
        }
        let mut licences = Vec::new();
        for (i, l) in self.licences.iter().enumerate() {
            if [&l.state, &l.number, &l.expires_on].iter().all(|s| s.trim().is_empty()) {
                continue;
            }
            let at = |f: &str| format!("licences[{i}].{f}");
            let state = l.state.trim().to_ascii_uppercase();
            let state_ok = US_STATES.contains(&state.as_str());
            if !state_ok {
                refuse(
                    at("state"),
                    format!(
                        "{:?} is not a US state: give its two-letter postal code (CA, NY, FL …)",
                        l.state.trim()
                    ),
                );
            }
            let number = text(&l.number, &at("number"), "the licence number", &mut refuse);
            let expires = date(&l.expires_on, &at("expires_on"), &mut refuse);
            if let (true, Some(number), Some(expires_on)) = (state_ok, number, expires) {
                licences.push(Licence { state, number, expires_on });
            }
        }
        let hire = date(&self.hire_date, "hire_date", &mut refuse);
        let experience = if self.experience_since.trim().is_empty() {
            hire
        } else {
            past_date(&self.experience_since, today, "experience_since", &mut refuse)
        };
        let mut assigned = Vec::new();
        for (i, d) in self.disciplines.iter().enumerate() {
            let d = d.trim();
            if d.is_empty() || assigned.iter().any(|a: &String| a == d) {
                continue;
            }
            if disciplines.contains(&d) {
                assigned.push(d.to_owned());
            } else {
                refuse(
                    format!("disciplines[{i}]"),
                    format!(
                        "{d:?} is not a discipline of the catalog: choose one of {}",
                        disciplines.join(", ")
                    ),
                );
            }
        }
        match (errors.is_empty(), hire, experience) {
            (true, Some(hire_date), Some(experience_since)) => Ok(StaffRecord {
                education,
                certifications,
                licences,
                hire_date,
                experience_since,
                disciplines: assigned,
            }),
            _ => Err(errors),
        }
    }
}

const EDUCATION_CODES: [&str; 5] = ["certificate", "associate", "bachelor", "master", "doctorate"];
const FIELD_CODES: [&str; 7] = [
    "medical_laboratory_science",
    "medical_laboratory_technology",
    "chemistry",
    "biology",
    "medicine",
    "allied_health",
    "other",
];
const ACCREDITATION_CODES: [&str; 4] = ["naacls", "caahep", "abhes", "institutional"];
const CREDENTIAL_CODES: [&str; 10] = [
    "ascp_mls", "ascp_mlt", "ascp_sbb", "ascp_sc", "ascp_sh", "ascp_sm", "ascp_pbt", "amt_mt",
    "amt_mlt", "nha_cpt",
];

fn choose(what: &str, typed: &str, codes: &[&str]) -> String {
    if typed.trim().is_empty() {
        format!("choose {what}: {}", codes.join(", "))
    } else {
        format!("{:?} is not {what}: choose one of {}", typed.trim(), codes.join(", "))
    }
}

fn text(
    typed: &str,
    field: &str,
    what: &str,
    refuse: &mut impl FnMut(String, String),
) -> Option<String> {
    let t = typed.trim();
    if t.is_empty() {
        refuse(field.into(), format!("give {what}"));
        None
    } else if t.chars().count() > TEXT_CHARS_MAX || t.chars().any(char::is_control) {
        refuse(
            field.into(),
            format!("{what} is at most {TEXT_CHARS_MAX} characters, without control characters"),
        );
        None
    } else {
        Some(t.to_owned())
    }
}

fn date(typed: &str, field: &str, refuse: &mut impl FnMut(String, String)) -> Option<Date> {
    match typed.trim().parse::<Date>() {
        Ok(d) => Some(d),
        Err(_) if typed.trim().is_empty() => {
            refuse(field.into(), "give the date as YYYY-MM-DD".into());
            None
        }
        Err(_) => {
            refuse(
                field.into(),
                format!("{:?} is not a date: write it as YYYY-MM-DD", typed.trim()),
            );
            None
        }
    }
}

/// A date that has happened: an issue or completion date cannot be after today.
fn past_date(
    typed: &str,
    today: Date,
    field: &str,
    refuse: &mut impl FnMut(String, String),
) -> Option<Date> {
    let d = date(typed, field, refuse)?;
    if d > today {
        refuse(
            field.into(),
            format!("{d} is in the future (today is {today}): give the date on the document"),
        );
        return None;
    }
    Some(d)
}

/// The director's (or a technical supervisor's) written authorisation of a person to test in
/// a discipline: the "documented training" of §493.1423(b)(4) and the delegation of
/// §493.1445(e)(13)/§493.1407(e)(13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorisation {
    /// The discipline, as the catalog names it.
    pub discipline: String,
    /// Username of the director or technical supervisor who authorised it.
    pub authorised_by: String,
    /// The date of the authorisation.
    pub authorised_on: Date,
}

/// Whether `role` may authorise testing personnel and assess their competency: the
/// director (pathologist) and the technical supervisor / consultant (supervisor).
pub fn may_authorise(role: Role) -> bool {
    match role {
        Role::Pathologist | Role::Supervisor => true,
        Role::Phlebotomist
        | Role::LabAssistant
        | Role::Technician
        | Role::Technologist
        | Role::Student => false,
    }
}

/// What a test is performed on: an instrument (by its name) or a manual method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Method {
    /// An instrument, by the name it is registered under ("Chem-1").
    Instrument(String),
    /// A manual method (a smear read at the microscope, a tube typing).
    Manual,
}

/// What a competency assessment covers: one test, or every test of a discipline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "code")]
pub enum Scope {
    /// One test, by its catalog code.
    Test(String),
    /// Every test of a discipline.
    Discipline(String),
}

/// A test system (§493.2): a test or discipline on an instrument or by a manual method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TestSystem {
    /// What it covers.
    pub scope: Scope,
    /// On what.
    pub method: Method,
}

impl TestSystem {
    /// Whether this system covers `test` (of `discipline`) performed by `method`; a `None`
    /// method (a result typed at the bench) is covered by any method of the scope.
    pub fn covers(&self, test: &str, discipline: &str, method: Option<&Method>) -> bool {
        let scope = match &self.scope {
            Scope::Test(code) => code == test,
            Scope::Discipline(d) => d == discipline,
        };
        scope && method.is_none_or(|m| *m == self.method)
    }
}

impl fmt::Display for TestSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::Test(code) => f.write_str(code)?,
            Scope::Discipline(d) => f.write_str(d)?,
        }
        match &self.method {
            Method::Instrument(name) => write!(f, " on {name}"),
            Method::Manual => f.write_str(" by the manual method"),
        }
    }
}

/// The six elements of a competency assessment (§493.1413(b)(8), §493.1451(b)(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Element {
    /// (1) Direct observation of routine patient test performance, including patient
    /// preparation, specimen handling, processing and testing.
    DirectObservation,
    /// (2) Monitoring the recording and reporting of test results.
    RecordingAndReporting,
    /// (3) Review of intermediate results or worksheets, QC records, PT results and
    /// preventive maintenance records.
    RecordReview,
    /// (4) Direct observation of instrument maintenance and function checks.
    MaintenanceObservation,
    /// (5) Test performance on previously analysed specimens, internal blind samples or
    /// external PT samples.
    BlindSamples,
    /// (6) Problem-solving skills.
    ProblemSolving,
}

impl Element {
    /// The six, in the regulation's order.
    pub const ALL: [Element; 6] = [
        Element::DirectObservation,
        Element::RecordingAndReporting,
        Element::RecordReview,
        Element::MaintenanceObservation,
        Element::BlindSamples,
        Element::ProblemSolving,
    ];
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Element::DirectObservation => "1. direct observation of routine testing",
            Element::RecordingAndReporting => "2. monitoring recording and reporting of results",
            Element::RecordReview => "3. review of worksheets, QC, PT and maintenance records",
            Element::MaintenanceObservation => {
                "4. direct observation of maintenance and function checks"
            }
            Element::BlindSamples => "5. previously analysed specimens, blind or PT samples",
            Element::ProblemSolving => "6. problem solving",
        })
    }
}

/// One element as assessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementEvidence {
    /// What was observed or reviewed (the evidence an inspector reads).
    pub evidence: String,
    /// Username of the assessor.
    pub assessor: String,
    /// When.
    pub assessed_on: Date,
}

/// How an assessment ended. Ordered so that of two assessments on one day the failure counts
/// last: the stricter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Competent: the privilege stands until the next assessment falls due.
    Pass,
    /// Not competent: the privilege is suspended until a passing reassessment.
    Fail,
}

impl Outcome {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<Outcome> {
        [Outcome::Pass, Outcome::Fail].into_iter().find(|o| o.code() == code.trim())
    }
}

/// A competency assessment of one person on one test system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The test system.
    pub system: TestSystem,
    /// The six elements, in the regulation's order.
    pub elements: [ElementEvidence; 6],
    /// Pass or fail.
    pub outcome: Outcome,
}

impl Assessment {
    /// The assessment's date: its last element's.
    pub fn assessed_on(&self) -> Date {
        self.elements.iter().map(|e| e.assessed_on).max().unwrap_or(self.elements[0].assessed_on)
    }
}

/// Where a person stands on one test system today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Competent; the next assessment is due by this date.
    Current {
        /// The last day the next assessment may be done.
        due: Date,
    },
    /// The next assessment was due on this date and was not done.
    Overdue {
        /// The date it was due.
        since: Date,
    },
    /// The last assessment failed on this date.
    Failed {
        /// The date of the failed assessment.
        on: Date,
    },
}

/// Where a person stands on a test system from its assessments (any order): CLIA asks an
/// assessment before the first patient result, semiannually in the first year and annually
/// after (§493.1451(b)(8)–(9)). The first passing assessment starts the first year; the
/// next is due six months after it, the one after that six months later but by the year's
/// end, then each twelve months after the last. `None` when no
/// assessment passed yet and none failed.
pub fn standing(assessments: &[&Assessment], today: Date) -> Option<Standing> {
    let mut dated: Vec<(Date, Outcome)> =
        assessments.iter().map(|a| (a.assessed_on(), a.outcome)).collect();
    dated.sort();
    let &(last_on, last_outcome) = dated.last()?;
    if last_outcome == Outcome::Fail {
        return Some(Standing::Failed { on: last_on });
    }
    let first_pass = dated.iter().find(|(_, o)| *o == Outcome::Pass).map(|(d, _)| *d)?;
    let months = |d: Date, n: i64| d.checked_add(Span::new().months(n)).unwrap_or(Date::MAX);
    // The first year asks two more after the first: each within six months of the one
    // before, the second by the year's end at the latest. Then one every twelve months.
    let first_year_ends = months(first_pass, 12);
    let in_first_year = dated
        .iter()
        .filter(|(d, o)| *o == Outcome::Pass && *d > first_pass && *d < first_year_ends)
        .count();
    let due = match in_first_year {
        _ if last_on >= first_year_ends => months(last_on, 12),
        0 => months(first_pass, 6),
        1 => months(last_on, 6).min(first_year_ends),
        _ => months(last_on, 12),
    };
    Some(if today > due { Standing::Overdue { since: due } } else { Standing::Current { due } })
}

/// The lab's qualification settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QualificationPolicy {
    /// Whether result entry and verification check the person's qualifications. Off in a
    /// lab that has not recorded its staff yet (every lab upgraded from before staff records
    /// existed): turning it on without records would stop the bench.
    pub enforce: bool,
    /// A valid state licence is required for tests of this complexity and above (licensure
    /// states require one for non-waived testing).
    pub licence_required_from: Option<Complexity>,
    /// A valid certification (any credential) is required for tests of this complexity and
    /// above (a lab's hiring policy, or a CAP/payer requirement).
    pub certification_required_from: Option<Complexity>,
}

/// The facts about a test a qualification decision needs.
#[derive(Debug, Clone, Copy)]
pub struct TestFacts<'a> {
    /// Catalog code.
    pub code: &'a str,
    /// Discipline.
    pub discipline: &'a str,
    /// CLIA complexity.
    pub complexity: Complexity,
    /// The instrument the result came from, or `None` for a result typed at the bench.
    pub method: Option<&'a Method>,
}

/// What a person's qualifications are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// The staff record, if any.
    pub record: Option<&'a StaffRecord>,
    /// The person's authorisations.
    pub authorisations: &'a [Authorisation],
    /// The person's competency assessments, every system.
    pub assessments: &'a [Assessment],
}

/// Why a person may not perform (enter or verify) a test today. Each says what would
/// restore the privilege.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QualificationRefusal {
    /// No staff record while the lab enforces qualifications.
    #[error(
        "you have no staff record: a supervisor must record your education and authorisations before you test patient specimens"
    )]
    NoStaffRecord,
    /// The education does not meet the test's complexity.
    #[error("{test} is {complexity}: it needs {needs} (CLIA {clause}); your record shows {has}")]
    Education {
        /// The test.
        test: String,
        /// Its complexity.
        complexity: Complexity,
        /// What is needed.
        needs: &'static str,
        /// The clause.
        clause: &'static str,
        /// What the record shows.
        has: String,
    },
    /// Not authorised for the test's discipline.
    #[error(
        "you are not authorised for {discipline}: the director or a technical supervisor must authorise you for it"
    )]
    NotAuthorised {
        /// The discipline.
        discipline: String,
    },
    /// The lab requires a licence for this complexity and none is valid.
    #[error("{test} is {complexity} and the lab requires a state licence for it: {detail}")]
    Licence {
        /// The test.
        test: String,
        /// Its complexity.
        complexity: Complexity,
        /// "your CA licence expired on 2026-12-01" or "no licence is on your record".
        detail: String,
    },
    /// The lab requires a certification for this complexity and none is valid.
    #[error("{test} is {complexity} and the lab requires a certification for it: {detail}")]
    Certification {
        /// The test.
        test: String,
        /// Its complexity.
        complexity: Complexity,
        /// What is missing or expired.
        detail: String,
    },
    /// No competency assessment covers the test on this method.
    #[error("no competency assessment for {test}{on}: a qualified assessor must assess you first")]
    CompetencyMissing {
        /// The test.
        test: String,
        /// " on Chem-1", or empty for a result typed at the bench.
        on: String,
    },
    /// The next assessment was not done in time.
    #[error("competency for {system} overdue since {since}: be reassessed before testing")]
    CompetencyOverdue {
        /// The test system.
        system: TestSystem,
        /// The due date.
        since: Date,
    },
    /// A student outside the rotation of the test's discipline.
    #[error(
        "you are not on a {discipline} rotation today ({detail}): a student enters results only during a rotation in the discipline, under its supervising technologist"
    )]
    NotOnRotation {
        /// The discipline.
        discipline: String,
        /// "your chemistry rotation ended on 2026-11-27".
        detail: String,
    },
    /// The last assessment failed.
    #[error("competency for {system} failed on {on}: be retrained and reassessed before testing")]
    CompetencyFailed {
        /// The test system.
        system: TestSystem,
        /// The failed assessment's date.
        on: Date,
    },
}

/// Whether a person may perform `test` on `today` under `policy`: education for the
/// complexity (§493.1423, §493.1489), the discipline authorised, required licences and
/// certifications valid, and competency on the test system current. With enforcement off
/// everyone may.
pub fn may_perform(
    policy: &QualificationPolicy,
    person: Person<'_>,
    test: TestFacts<'_>,
    today: Date,
) -> Result<(), QualificationRefusal> {
    if !policy.enforce {
        return Ok(());
    }
    let record = person.record.ok_or(QualificationRefusal::NoStaffRecord)?;
    education_meets(record, test.code, test.complexity)?;
    if !person.authorisations.iter().any(|a| a.discipline == test.discipline) {
        return Err(QualificationRefusal::NotAuthorised { discipline: test.discipline.into() });
    }
    if policy.licence_required_from.is_some_and(|c| test.complexity >= c)
        && !record.licences.iter().any(|l| l.expires_on >= today)
    {
        let detail = match record.licences.iter().max_by_key(|l| l.expires_on) {
            Some(l) => format!("your {} licence expired on {}", l.state, l.expires_on),
            None => "no licence is on your record".into(),
        };
        return Err(QualificationRefusal::Licence {
            test: test.code.into(),
            complexity: test.complexity,
            detail,
        });
    }
    if policy.certification_required_from.is_some_and(|c| test.complexity >= c)
        && !record.certifications.iter().any(|c| c.expires_on.is_none_or(|e| e >= today))
    {
        let detail = match record
            .certifications
            .iter()
            .filter_map(|c| c.expires_on.map(|e| (e, c)))
            .max_by_key(|(e, _)| *e)
        {
            Some((e, c)) => format!("your {} expired on {e}", c.credential),
            None => "no certification is on your record".into(),
        };
        return Err(QualificationRefusal::Certification {
            test: test.code.into(),
            complexity: test.complexity,
            detail,
        });
    }
    // CLIA's competency assessment applies to non-waived testing (§493.1413, §493.1451).
    if test.complexity == Complexity::Waived {
        return Ok(());
    }
    competency_current(person.assessments, test, today)
}

/// Whether anyone of `people` may perform `test` on `today`: what autoverification asks
/// before it releases an instrument's result with no person at the bench to answer for it.
pub fn anyone_may_perform(
    policy: &QualificationPolicy,
    people: &[Person<'_>],
    test: TestFacts<'_>,
    today: Date,
) -> bool {
    !policy.enforce || people.iter().any(|p| may_perform(policy, *p, test, today).is_ok())
}

fn competency_current(
    assessments: &[Assessment],
    test: TestFacts<'_>,
    today: Date,
) -> Result<(), QualificationRefusal> {
    let mut systems: Vec<&TestSystem> = assessments
        .iter()
        .map(|a| &a.system)
        .filter(|s| s.covers(test.code, test.discipline, test.method))
        .collect();
    systems.sort();
    systems.dedup();
    let mut refusal = None;
    for system in systems {
        let of_system: Vec<&Assessment> =
            assessments.iter().filter(|a| &a.system == system).collect();
        match standing(&of_system, today) {
            Some(Standing::Current { .. }) => return Ok(()),
            Some(Standing::Overdue { since }) => {
                refusal =
                    Some(QualificationRefusal::CompetencyOverdue { system: system.clone(), since })
            }
            Some(Standing::Failed { on }) => {
                refusal =
                    Some(QualificationRefusal::CompetencyFailed { system: system.clone(), on })
            }
            None => {}
        }
    }
    Err(refusal.unwrap_or_else(|| QualificationRefusal::CompetencyMissing {
        test: test.code.into(),
        on: match test.method {
            Some(Method::Instrument(name)) => format!(" on {name}"),
            Some(Method::Manual) => " by the manual method".into(),
            None => String::new(),
        },
    }))
}

fn education_meets(
    record: &StaffRecord,
    test: &str,
    complexity: Complexity,
) -> Result<(), QualificationRefusal> {
    let has = || match record.education.iter().max_by_key(|e| e.level) {
        Some(e) => format!("{} in {}", e.level, e.field),
        None => "no education".into(),
    };
    match complexity {
        Complexity::Waived => Ok(()),
        // §493.1423(b)(4): a high-school graduate or equivalent with documented training; a
        // certificate programme is at least that, and the authorisation is the training.
        Complexity::Moderate if !record.education.is_empty() => Ok(()),
        Complexity::Moderate => Err(QualificationRefusal::Education {
            test: test.into(),
            complexity,
            needs: "a high-school diploma or equivalent with documented training",
            clause: "§493.1423",
            has: has(),
        }),
        // §493.1489(b)(2)–(3): an associate degree or higher in a laboratory science or
        // medical laboratory technology.
        Complexity::High
            if record.education.iter().any(|e| {
                e.level >= EducationLevel::Associate && e.field.is_laboratory_science()
            }) =>
        {
            Ok(())
        }
        Complexity::High => Err(QualificationRefusal::Education {
            test: test.into(),
            complexity,
            needs: "an associate degree or higher in a laboratory science or medical laboratory technology",
            clause: "§493.1489",
            has: has(),
        }),
    }
}

/// Why a person may not assess competency for a test system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssessorRefusal {
    /// Only the director and technical supervisors / consultants assess.
    #[error(
        "{who} is a {role}: competency is assessed by the director or a technical supervisor or consultant"
    )]
    Role {
        /// Username.
        who: String,
        /// Role.
        role: Role,
    },
    /// No staff record to show the assessor's qualifications.
    #[error("{who} has no staff record showing the qualifications of an assessor")]
    NoRecord {
        /// Username.
        who: String,
    },
    /// Education and experience fall short of a technical consultant / supervisor.
    #[error("{who} does not qualify as {title} (CLIA {clause}): needs {needs}")]
    Qualification {
        /// Username.
        who: String,
        /// "technical consultant" or "technical supervisor".
        title: &'static str,
        /// The clause.
        clause: &'static str,
        /// What is needed.
        needs: &'static str,
    },
}

/// Whether a person may assess competency on tests of `complexity`: a technical consultant
/// for moderate complexity (§493.1411: a doctorate or master's and 1 year, a bachelor's and
/// 2 years, an associate degree and 4 years), a technical supervisor for high complexity
/// (§493.1449: a doctorate and 1 year, a master's and 2 years, a bachelor's and 4 years),
/// each in a laboratory science or medicine, experience counted from `experience_since`.
pub fn may_assess(
    who: &str,
    role: Role,
    record: Option<&StaffRecord>,
    complexity: Complexity,
    today: Date,
) -> Result<(), AssessorRefusal> {
    if !may_authorise(role) {
        return Err(AssessorRefusal::Role { who: who.into(), role });
    }
    let record = record.ok_or_else(|| AssessorRefusal::NoRecord { who: who.into() })?;
    let years = record.experience_since.until(today).ok().and_then(|span| {
        span.total((jiff::Unit::Year, jiff::civil::DateTime::from(record.experience_since))).ok()
    });
    let years = years.unwrap_or(0.0);
    let (title, clause, needs, minimum): (_, _, _, fn(EducationLevel) -> Option<f64>) =
        match complexity {
            Complexity::Waived | Complexity::Moderate => (
                "technical consultant",
                "§493.1411",
                "a doctorate or master's + 1 year, a bachelor's + 2 years or an associate degree + 4 years of laboratory experience, in a laboratory science",
                |l| match l {
                    EducationLevel::Doctorate | EducationLevel::Master => Some(1.0),
                    EducationLevel::Bachelor => Some(2.0),
                    EducationLevel::Associate => Some(4.0),
                    EducationLevel::Certificate => None,
                },
            ),
            Complexity::High => (
                "technical supervisor",
                "§493.1449",
                "a doctorate + 1 year, a master's + 2 years or a bachelor's + 4 years of laboratory experience, in a laboratory science or medicine",
                |l| match l {
                    EducationLevel::Doctorate => Some(1.0),
                    EducationLevel::Master => Some(2.0),
                    EducationLevel::Bachelor => Some(4.0),
                    EducationLevel::Associate | EducationLevel::Certificate => None,
                },
            ),
        };
    let qualifies = record
        .education
        .iter()
        .filter(|e| e.field.is_laboratory_science())
        .any(|e| minimum(e.level).is_some_and(|y| years >= y));
    if qualifies {
        Ok(())
    } else {
        Err(AssessorRefusal::Qualification { who: who.into(), title, clause, needs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn education(level: EducationLevel, field: FieldOfStudy) -> Education {
        Education {
            level,
            field,
            institution: "State University".into(),
            accreditation: Some(Accreditation::Naacls),
            completed_on: date(2015, 5, 15),
        }
    }

    fn record(level: EducationLevel, field: FieldOfStudy) -> StaffRecord {
        StaffRecord {
            education: vec![education(level, field)],
            certifications: vec![],
            licences: vec![],
            hire_date: date(2016, 1, 4),
            experience_since: date(2016, 1, 4),
            disciplines: vec!["chemistry".into()],
        }
    }

    fn chem1() -> TestSystem {
        TestSystem { scope: Scope::Test("K".into()), method: Method::Instrument("Chem-1".into()) }
    }

    fn assessment(on: Date, outcome: Outcome) -> Assessment {
        let e = ElementEvidence {
            evidence: "observed".into(),
            assessor: "sup".into(),
            assessed_on: on,
        };
        Assessment {
            system: chem1(),
            elements: [e.clone(), e.clone(), e.clone(), e.clone(), e.clone(), e],
            outcome,
        }
    }

    fn authorised() -> Vec<Authorisation> {
        vec![Authorisation {
            discipline: "chemistry".into(),
            authorised_by: "director".into(),
            authorised_on: date(2026, 1, 5),
        }]
    }

    const ON: QualificationPolicy = QualificationPolicy {
        enforce: true,
        licence_required_from: None,
        certification_required_from: None,
    };

    fn k(complexity: Complexity, method: Option<&Method>) -> TestFacts<'_> {
        TestFacts { code: "K", discipline: "chemistry", complexity, method }
    }

    fn check(
        policy: QualificationPolicy,
        record: &StaffRecord,
        assessments: &[Assessment],
        complexity: Complexity,
        today: Date,
    ) -> Result<(), QualificationRefusal> {
        let chem1 = Method::Instrument("Chem-1".into());
        may_perform(
            &policy,
            Person { record: Some(record), authorisations: &authorised(), assessments },
            k(complexity, Some(&chem1)),
            today,
        )
    }

    #[test]
    fn competency_is_due_at_six_and_twelve_months_then_yearly() {
        let first = assessment(date(2026, 1, 10), Outcome::Pass);
        let check = |done: &[&Assessment], today, expected| {
            assert_eq!(standing(done, today), expected, "{today}");
        };
        check(&[&first], date(2026, 7, 10), Some(Standing::Current { due: date(2026, 7, 10) }));
        check(&[&first], date(2026, 7, 11), Some(Standing::Overdue { since: date(2026, 7, 10) }));
        let six = assessment(date(2026, 7, 1), Outcome::Pass);
        check(
            &[&first, &six],
            date(2026, 12, 1),
            Some(Standing::Current { due: date(2027, 1, 1) }),
        );
        let twelve = assessment(date(2026, 12, 20), Outcome::Pass);
        check(
            &[&six, &twelve, &first],
            date(2027, 6, 1),
            Some(Standing::Current { due: date(2027, 12, 20) }),
        );
        check(
            &[&six, &twelve, &first],
            date(2027, 12, 21),
            Some(Standing::Overdue { since: date(2027, 12, 20) }),
        );
        let annual = assessment(date(2027, 12, 1), Outcome::Pass);
        check(
            &[&six, &twelve, &first, &annual],
            date(2028, 6, 1),
            Some(Standing::Current { due: date(2028, 12, 1) }),
        );
        // A six-month assessment done late still leaves the twelve-month one due at the
        // year's end.
        let late = assessment(date(2026, 7, 20), Outcome::Pass);
        check(
            &[&first, &late],
            date(2026, 12, 1),
            Some(Standing::Current { due: date(2027, 1, 10) }),
        );
        check(&[], date(2027, 6, 1), None);
    }

    #[test]
    fn a_failed_assessment_suspends_until_a_passing_one() {
        let pass = assessment(date(2026, 1, 10), Outcome::Pass);
        let fail = assessment(date(2026, 3, 1), Outcome::Fail);
        assert_eq!(
            standing(&[&pass, &fail], date(2026, 3, 2)),
            Some(Standing::Failed { on: date(2026, 3, 1) })
        );
        let again = assessment(date(2026, 3, 20), Outcome::Pass);
        assert_eq!(
            standing(&[&pass, &fail, &again], date(2026, 3, 21)),
            Some(Standing::Current { due: date(2026, 9, 20) })
        );
    }

    #[test]
    fn education_must_meet_the_complexity() {
        let mlt_certificate =
            record(EducationLevel::Certificate, FieldOfStudy::MedicalLaboratoryTechnology);
        let done = [assessment(date(2026, 6, 1), Outcome::Pass)];
        let today = date(2026, 6, 2);
        assert_eq!(check(ON, &mlt_certificate, &done, Complexity::Moderate, today), Ok(()));
        assert!(matches!(
            check(ON, &mlt_certificate, &done, Complexity::High, today),
            Err(QualificationRefusal::Education { clause: "§493.1489", .. })
        ));
        let associate_mlt =
            record(EducationLevel::Associate, FieldOfStudy::MedicalLaboratoryTechnology);
        assert_eq!(check(ON, &associate_mlt, &done, Complexity::High, today), Ok(()));
        let bachelor_business = record(EducationLevel::Bachelor, FieldOfStudy::Other);
        assert!(check(ON, &bachelor_business, &done, Complexity::High, today).is_err());
    }

    #[test]
    fn an_unauthorised_discipline_is_refused() {
        let r = record(EducationLevel::Bachelor, FieldOfStudy::MedicalLaboratoryScience);
        let refused = may_perform(
            &ON,
            Person { record: Some(&r), authorisations: &[], assessments: &[] },
            k(Complexity::Waived, None),
            date(2026, 6, 2),
        );
        assert_eq!(
            refused,
            Err(QualificationRefusal::NotAuthorised { discipline: "chemistry".into() })
        );
    }

    #[test]
    fn a_required_licence_suspends_from_the_day_after_it_expires() {
        let mut r = record(EducationLevel::Bachelor, FieldOfStudy::MedicalLaboratoryScience);
        r.licences.push(Licence {
            state: "CA".into(),
            number: "MTA 1".into(),
            expires_on: date(2026, 12, 8),
        });
        let done = [assessment(date(2026, 11, 1), Outcome::Pass)];
        let policy =
            QualificationPolicy { licence_required_from: Some(Complexity::Moderate), ..ON };
        assert_eq!(check(policy, &r, &done, Complexity::Moderate, date(2026, 12, 8)), Ok(()));
        assert_eq!(
            check(policy, &r, &done, Complexity::Moderate, date(2026, 12, 9))
                .unwrap_err()
                .to_string(),
            "K is moderate complexity and the lab requires a state licence for it: your CA licence expired on 2026-12-08"
        );
        // Waived testing does not depend on the licence.
        assert_eq!(check(policy, &r, &done, Complexity::Waived, date(2026, 12, 9)), Ok(()));
    }

    #[test]
    fn overdue_competency_names_the_test_system_and_the_date() {
        let r = record(EducationLevel::Bachelor, FieldOfStudy::MedicalLaboratoryScience);
        let done = [
            assessment(date(2024, 10, 2), Outcome::Pass),
            assessment(date(2025, 4, 2), Outcome::Pass),
            assessment(date(2025, 10, 2), Outcome::Pass),
        ];
        assert_eq!(
            check(ON, &r, &done, Complexity::Moderate, date(2026, 10, 3)).unwrap_err().to_string(),
            "competency for K on Chem-1 overdue since 2026-10-02: be reassessed before testing"
        );
        // Another instrument is another test system.
        let chem2 = Method::Instrument("Chem-2".into());
        let refused = may_perform(
            &ON,
            Person { record: Some(&r), authorisations: &authorised(), assessments: &done },
            k(Complexity::Moderate, Some(&chem2)),
            date(2025, 11, 1),
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "no competency assessment for K on Chem-2: a qualified assessor must assess you first"
        );
    }

    #[test]
    fn with_enforcement_off_everyone_may() {
        let policy = QualificationPolicy::default();
        let refused = may_perform(
            &policy,
            Person { record: None, authorisations: &[], assessments: &[] },
            k(Complexity::High, None),
            date(2026, 6, 2),
        );
        assert_eq!(refused, Ok(()));
    }

    #[test]
    fn assessors_must_qualify_as_consultant_or_supervisor() {
        let today = date(2026, 6, 1);
        let mut r = record(EducationLevel::Bachelor, FieldOfStudy::MedicalLaboratoryScience);
        r.experience_since = date(2023, 1, 1);
        assert_eq!(
            may_assess("sup", Role::Supervisor, Some(&r), Complexity::Moderate, today),
            Ok(())
        );
        assert!(matches!(
            may_assess("sup", Role::Supervisor, Some(&r), Complexity::High, today),
            Err(AssessorRefusal::Qualification { title: "technical supervisor", .. })
        ));
        r.experience_since = date(2022, 5, 1);
        assert_eq!(may_assess("sup", Role::Supervisor, Some(&r), Complexity::High, today), Ok(()));
        assert!(matches!(
            may_assess("tech", Role::Technologist, Some(&r), Complexity::Moderate, today),
            Err(AssessorRefusal::Role { .. })
        ));
    }

    #[test]
    fn bad_input_is_refused_on_its_field() {
        let today = date(2026, 12, 6);
        let input = StaffRecordInput {
            certifications: vec![
                CertificationInput {
                    credential: "XYZ_MLS".into(),
                    number: "1".into(),
                    issued_on: "2020-01-01".into(),
                    expires_on: String::new(),
                },
                CertificationInput {
                    credential: "ascp_mls".into(),
                    number: "2".into(),
                    issued_on: "2027-01-01".into(),
                    expires_on: "2030-01-01".into(),
                },
                CertificationInput {
                    credential: "amt_mt".into(),
                    number: "3".into(),
                    issued_on: "2024-01-01".into(),
                    expires_on: "2023-01-01".into(),
                },
            ],
            hire_date: "2020-01-01".into(),
            ..Default::default()
        };
        let fields: Vec<String> =
            input.parse(today, &["chemistry"]).unwrap_err().into_iter().map(|r| r.field).collect();
        assert_eq!(
            fields,
            [
                "certifications[0].credential",
                "certifications[1].issued_on",
                "certifications[2].expires_on"
            ]
        );
    }

    #[test]
    fn a_record_reads_back_as_what_was_typed() {
        let mut r = record(EducationLevel::Bachelor, FieldOfStudy::MedicalLaboratoryScience);
        r.certifications.push(Certification {
            credential: Credential::AscpMls,
            number: "123".into(),
            issued_on: date(2016, 6, 1),
            expires_on: Some(date(2028, 6, 1)),
        });
        r.licences.push(Licence {
            state: "CA".into(),
            number: "MTA 9".into(),
            expires_on: date(2027, 1, 1),
        });
        assert_eq!(
            StaffRecordInput::from_record(&r).parse(date(2026, 12, 6), &["chemistry"]),
            Ok(r)
        );
    }

    #[test]
    fn codes_round_trip() {
        for c in Credential::ALL {
            assert_eq!(Credential::parse(c.code()), Some(c));
            assert!(CREDENTIAL_CODES.contains(&c.code()));
        }
        for l in EducationLevel::ALL {
            assert_eq!(EducationLevel::parse(l.code()), Some(l));
        }
        for f in FieldOfStudy::ALL {
            assert_eq!(FieldOfStudy::parse(f.code()), Some(f));
        }
        for c in Complexity::ALL {
            assert_eq!(Complexity::parse(c.code()), Some(c));
        }
    }
}

//! Students on clinical rotation: the programme, the schedule of rotations per discipline,
//! the supervising technologist, the rule that a student enters results only in the
//! discipline of a rotation that runs today, and the rotation logbook the programme receives.
//!
//! A student works under supervision (CLIA §493.1489(b)(6) recognises training in an
//! accredited programme; the lab stays responsible for every result): everything a student
//! enters waits for a co-signature by someone who may perform the test, and only that
//! co-signature releases it. A student's own qualifications are therefore not the gate;
//! the rotation is, and the co-signer passes the full gate of [`crate::staff::may_perform`].

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::Role;
use crate::staff::{FieldRefusal, QualificationRefusal, TEXT_CHARS_MAX, may_authorise};

/// The longest a rotation may run: a clinical year.
pub const ROTATION_DAYS_MAX: i32 = 366;

/// One block of a student's rotation schedule: a discipline, its dates and who supervises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The student's programme ("State University MLS program").
    pub program: String,
    /// The discipline, as the catalog names it.
    pub discipline: String,
    /// First day.
    pub starts_on: Date,
    /// Last day.
    pub ends_on: Date,
    /// The supervising technologist's username.
    pub supervisor: String,
    /// The supervisor's sign-off of the rotation's logbook, once given.
    pub signed_off: Option<SignOff>,
}

/// A supervisor's signature on a rotation's logbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOff {
    /// Who signed (username).
    pub by: String,
    /// When.
    pub on: Date,
}

impl Rotation {
    /// Whether the rotation runs on `day`.
    pub fn runs_on(&self, day: Date) -> bool {
        self.starts_on <= day && day <= self.ends_on
    }

    /// Whether a test of `discipline` performed on `day` belongs to this rotation.
    pub fn covers(&self, discipline: &str, day: Date) -> bool {
        self.discipline == discipline && self.runs_on(day)
    }
}

/// A rotation as typed on the form or sent to the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationInput {
    /// The programme.
    #[serde(default)]
    pub program: String,
    /// The discipline.
    #[serde(default)]
    pub discipline: String,
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    pub starts_on: String,
    /// Last day, `YYYY-MM-DD`.
    #[serde(default)]
    pub ends_on: String,
    /// The supervising technologist's username.
    #[serde(default)]
    pub supervisor: String,
}

impl RotationInput {
    /// The rotation, or every refused field at once. Whether the supervisor is a person who
    /// may supervise is the caller's to check (it reads the users).
    pub fn parse(&self, disciplines: &[&str]) -> Result<Rotation, Vec<FieldRefusal>> {
        let mut refusals = Vec::new();
        let mut refuse = |field: &str, message: String| {
            refusals.push(FieldRefusal { field: field.into(), message });
        };
        let program = self.program.trim();
        if program.is_empty() || program.chars().count() > TEXT_CHARS_MAX {
            refuse(
                "program",
                format!("name the student's programme (up to {TEXT_CHARS_MAX} characters)"),
            );
        }
        let discipline = self.discipline.trim();
        if !disciplines.contains(&discipline) {
            refuse(
                "discipline",
                format!(
                    "{discipline:?} is not a discipline of the catalog: choose one of {}",
                    disciplines.join(", ")
                ),
            );
        }
        let mut date = |field: &str, typed: &str| match typed.trim().parse::<Date>() {
            Ok(d) => Some(d),
            Err(_) => {
                refuse(field, format!("{:?} is not a date: write it as YYYY-MM-DD", typed.trim()));
                None
            }
        };
        let starts_on = date("starts_on", &self.starts_on);
        let ends_on = date("ends_on", &self.ends_on);
        if let (Some(s), Some(e)) = (starts_on, ends_on) {
            if e < s {
                refuse(
                    "ends_on",
                    format!("the rotation ends on {e}, before it starts on {s}: check both dates"),
                );
            } else if s.until(e).map_or(true, |span| span.get_days() >= ROTATION_DAYS_MAX) {
                refuse(
                    "ends_on",
                    format!(
                        "a rotation runs at most {ROTATION_DAYS_MAX} days: schedule each discipline's block on its own"
                    ),
                );
            }
        }
        let supervisor = self.supervisor.trim().to_ascii_lowercase();
        if supervisor.is_empty() {
            refuse("supervisor", "name the supervising technologist (their user ID)".into());
        }
        match (starts_on, ends_on, refusals.is_empty()) {
            (Some(starts_on), Some(ends_on), true) => Ok(Rotation {
                program: program.to_owned(),
                discipline: discipline.to_owned(),
                starts_on,
                ends_on,
                supervisor,
                signed_off: None,
            }),
            _ => Err(refusals),
        }
    }
}

/// Whether `role` may supervise a student and co-sign for them: a technologist or above
/// (the role table lets technicians co-sign routine results too, but the supervisor named
/// on a programme's schedule is a technologist, §493.1489 testing personnel with the
/// bachelor's-level training the programme teaches).
pub fn may_supervise(role: Role) -> bool {
    matches!(role, Role::Technologist | Role::Supervisor | Role::Pathologist)
}

/// Whether a student may enter a result of `discipline` on `today`: only in the discipline
/// of a rotation that runs today.
pub fn may_enter_as_student(
    rotations: &[Rotation],
    discipline: &str,
    today: Date,
) -> Result<(), QualificationRefusal> {
    if rotations.iter().any(|r| r.covers(discipline, today)) {
        return Ok(());
    }
    let of_discipline = rotations.iter().filter(|r| r.discipline == discipline);
    let detail = if let Some(next) =
        of_discipline.clone().filter(|r| r.starts_on > today).min_by_key(|r| r.starts_on)
    {
        format!("your {discipline} rotation starts on {}", next.starts_on)
    } else if let Some(last) = of_discipline.max_by_key(|r| r.ends_on) {
        format!("your {discipline} rotation ended on {}", last.ends_on)
    } else {
        format!("no {discipline} rotation is on your schedule")
    };
    Err(QualificationRefusal::NotOnRotation { discipline: discipline.into(), detail })
}

/// Where one result a student entered stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Cosignature {
    /// Waiting for a co-signature; not released.
    Pending,
    /// Co-signed (and so released) by `by` on `on`.
    Signed {
        /// Who co-signed.
        by: String,
        /// When.
        on: Date,
    },
    /// Replaced by a newer value (a repeat, an instrument's result), or its test cancelled, before
    /// anyone co-signed it: it counts as practice, not as a test performed.
    Replaced,
}

impl fmt::Display for Cosignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cosignature::Pending => f.write_str("awaiting co-signature"),
            Cosignature::Signed { by, on } => write!(f, "co-signed by {by} on {on}"),
            Cosignature::Replaced => f.write_str("replaced or cancelled before co-signature"),
        }
    }
}

/// One test a student performed: no patient identifiers, so the logbook can go to the
/// programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogbookEntry {
    /// The day it was entered.
    pub performed_on: Date,
    /// Test code.
    pub test: String,
    /// Test name.
    pub test_name: String,
    /// Discipline.
    pub discipline: String,
    /// Its co-signature.
    pub cosignature: Cosignature,
}

/// A rotation with the tests performed during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogbookSection {
    /// The rotation, or `None` for tests performed outside any rotation on the schedule
    /// (entered while the lab did not enforce qualifications).
    pub rotation: Option<Rotation>,
    /// The tests, oldest first.
    pub entries: Vec<LogbookEntry>,
}

impl LogbookSection {
    /// Tests performed per test code, co-signed ones only: (code, name, count), by code.
    pub fn signed_per_test(&self) -> Vec<(String, String, usize)> {
        let mut counts: Vec<(String, String, usize)> = Vec::new();
        for e in self.entries.iter().filter(|e| matches!(e.cosignature, Cosignature::Signed { .. }))
        {
            match counts.iter_mut().find(|(c, _, _)| *c == e.test) {
                Some(row) => row.2 += 1,
                None => counts.push((e.test.clone(), e.test_name.clone(), 1)),
            }
        }
        counts.sort();
        counts
    }

    /// Results still waiting for co-signature.
    pub fn pending(&self) -> usize {
        self.entries.iter().filter(|e| e.cosignature == Cosignature::Pending).count()
    }
}

/// The logbook: one section per rotation in schedule order, each with the tests performed in
/// its discipline during its dates, then a section of any performed outside every rotation.
pub fn logbook(rotations: &[Rotation], entries: &[LogbookEntry]) -> Vec<LogbookSection> {
    let mut rotations: Vec<&Rotation> = rotations.iter().collect();
    rotations.sort_by_key(|r| (r.starts_on, r.discipline.clone()));
    let mut sections: Vec<LogbookSection> = rotations
        .iter()
        .map(|r| LogbookSection { rotation: Some((*r).clone()), entries: vec![] })
        .collect();
    let mut outside = Vec::new();
    for e in entries {
        match rotations.iter().position(|r| r.covers(&e.discipline, e.performed_on)) {
            Some(i) => sections[i].entries.push(e.clone()),
            None => outside.push(e.clone()),
        }
    }
    for s in &mut sections {
        s.entries.sort_by_key(|e| e.performed_on);
    }
    if !outside.is_empty() {
        outside.sort_by_key(|e| e.performed_on);
        sections.push(LogbookSection { rotation: None, entries: outside });
    }
    sections
}

/// Why a rotation could not be signed off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignOffRefusal {
    /// Only the supervising technologist named on the rotation, the director or a
    /// technical supervisor signs.
    #[error(
        "only {supervisor} (the rotation's supervising technologist), the director or a technical supervisor signs this rotation off"
    )]
    NotTheSupervisor {
        /// The named supervisor.
        supervisor: String,
    },
    /// Already signed.
    #[error("this rotation was signed off by {by} on {on}")]
    AlreadySigned {
        /// Who signed.
        by: String,
        /// When.
        on: Date,
    },
    /// Not begun.
    #[error("this rotation starts on {0}: sign it off once the student has worked it")]
    NotStarted(Date),
    /// Results still wait for co-signature.
    #[error(
        "{0} result(s) the student entered in this rotation still wait for co-signature: co-sign them on the review queue first"
    )]
    Pending(usize),
}

/// Whether `signer` (with `role`) may sign off `section`'s rotation on `today`.
pub fn may_sign_off(
    section: &LogbookSection,
    signer: &str,
    role: Role,
    today: Date,
) -> Result<(), SignOffRefusal> {
    let Some(rotation) = &section.rotation else {
        return Err(SignOffRefusal::NotTheSupervisor { supervisor: String::new() });
    };
    if let Some(s) = &rotation.signed_off {
        return Err(SignOffRefusal::AlreadySigned { by: s.by.clone(), on: s.on });
    }
    if rotation.supervisor != signer && !may_authorise(role) {
        return Err(SignOffRefusal::NotTheSupervisor { supervisor: rotation.supervisor.clone() });
    }
    if today < rotation.starts_on {
        return Err(SignOffRefusal::NotStarted(rotation.starts_on));
    }
    match section.pending() {
        0 => Ok(()),
        n => Err(SignOffRefusal::Pending(n)),
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn chemistry() -> Rotation {
        Rotation {
            program: "State University MLS program".into(),
            discipline: "chemistry".into(),
            starts_on: date(2026, 11, 2),
            ends_on: date(2026, 11, 27),
            supervisor: "mls".into(),
            signed_off: None,
        }
    }

    fn entry(day: Date, cosignature: Cosignature) -> LogbookEntry {
        LogbookEntry {
            performed_on: day,
            test: "K".into(),
            test_name: "Potassium".into(),
            discipline: "chemistry".into(),
            cosignature,
        }
    }

    #[test]
    fn a_student_enters_only_in_the_discipline_of_a_rotation_running_today() {
        let r = [chemistry()];
        assert_eq!(may_enter_as_student(&r, "chemistry", date(2026, 11, 2)), Ok(()));
        assert_eq!(may_enter_as_student(&r, "chemistry", date(2026, 11, 27)), Ok(()));
        let after = may_enter_as_student(&r, "chemistry", date(2026, 11, 28)).unwrap_err();
        assert!(after.to_string().contains("your chemistry rotation ended on 2026-11-27"));
        let before = may_enter_as_student(&r, "chemistry", date(2026, 11, 1)).unwrap_err();
        assert!(before.to_string().contains("starts on 2026-11-02"));
        let other = may_enter_as_student(&r, "hematology", date(2026, 11, 10)).unwrap_err();
        assert!(other.to_string().contains("no hematology rotation is on your schedule"));
    }

    #[test]
    fn a_rotation_that_ends_before_it_starts_or_runs_over_a_year_is_refused_on_its_field() {
        let typed = RotationInput {
            program: "State University MLS program".into(),
            discipline: "chemistry".into(),
            starts_on: "2026-11-27".into(),
            ends_on: "2026-11-02".into(),
            supervisor: "mls".into(),
        };
        let refused = typed.parse(&["chemistry"]).unwrap_err();
        assert_eq!(refused[0].field, "ends_on");
        let long = RotationInput { ends_on: "2028-01-01".into(), ..typed.clone() };
        assert!(long.parse(&["chemistry"]).unwrap_err()[0].message.contains("at most 366 days"));
        let unknown =
            RotationInput { discipline: "alchemy".into(), ends_on: "2026-12-01".into(), ..typed };
        assert_eq!(unknown.parse(&["chemistry"]).unwrap_err()[0].field, "discipline");
    }

    #[test]
    fn the_logbook_files_each_test_under_the_rotation_it_was_performed_in() {
        let signed = Cosignature::Signed { by: "mls".into(), on: date(2026, 11, 3) };
        let entries = [
            entry(date(2026, 11, 3), signed.clone()),
            entry(date(2026, 11, 4), Cosignature::Replaced),
            entry(date(2026, 12, 1), signed),
        ];
        let book = logbook(&[chemistry()], &entries);
        assert_eq!(book.len(), 2, "the rotation, then what fell outside it");
        assert_eq!(book[0].entries.len(), 2);
        assert_eq!(book[0].signed_per_test(), [("K".into(), "Potassium".into(), 1)]);
        assert!(book[1].rotation.is_none());
    }

    #[test]
    fn a_rotation_is_signed_off_by_its_supervisor_once_nothing_waits_for_co_signature() {
        let pending =
            logbook(&[chemistry()], &[entry(date(2026, 11, 3), Cosignature::Pending)]).remove(0);
        let today = date(2026, 11, 27);
        assert_eq!(
            may_sign_off(&pending, "mls", Role::Technologist, today),
            Err(SignOffRefusal::Pending(1))
        );
        let done = logbook(&[chemistry()], &[]).remove(0);
        assert_eq!(may_sign_off(&done, "mls", Role::Technologist, today), Ok(()));
        assert!(matches!(
            may_sign_off(&done, "other", Role::Technologist, today),
            Err(SignOffRefusal::NotTheSupervisor { .. })
        ));
        assert_eq!(may_sign_off(&done, "ts", Role::Supervisor, today), Ok(()));
        assert_eq!(
            may_sign_off(&done, "mls", Role::Technologist, date(2026, 11, 1)),
            Err(SignOffRefusal::NotStarted(date(2026, 11, 2)))
        );
    }
}

//! People: staff records, authorisations, competency assessments, the lab's qualification
//! settings, and the gate that result entry and verification pass through
//! (`cuvette_domain::staff` decides; this gathers the facts and writes the changes).
//!
//! Who sees what: everyone reads their own record; those who manage users read and edit
//! every record; only the director and technical supervisors (`staff::may_authorise`)
//! authorise and assess.

use cuvette_domain::audit::AuditAction;
use cuvette_domain::staff::{
    self, Assessment, Authorisation, Complexity, ElementEvidence, Method, Outcome, Person,
    QualificationPolicy, QualificationRefusal, Scope, StaffRecordInput, Standing, TestFacts,
    TestSystem,
};
use cuvette_domain::{Action, TestDefinition};
use cuvette_store::{AssessmentRow, AuthorisationRow, NewAuditEvent, StaffRecordRow, Tx, UserRow};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::{Actor, AppError, AppResult, FieldError, Lab, audit};

/// A person's staff page: the record, authorisations, assessments and where they stand on
/// each test system today.
#[derive(Debug, Clone)]
pub struct StaffView {
    /// The user.
    pub user: UserRow,
    /// The record, when one was saved.
    pub record: Option<StaffRecordRow>,
    /// Authorisations, oldest first.
    pub authorisations: Vec<AuthorisationRow>,
    /// Competency assessments, oldest first.
    pub assessments: Vec<AssessmentRow>,
    /// Each test system assessed, with its standing today.
    pub standings: Vec<(TestSystem, Standing)>,
    /// Today, in the lab's calendar.
    pub today: Date,
}

/// An authorisation as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthoriseInput {
    /// The discipline, as the catalog names it.
    #[serde(default)]
    pub discipline: String,
    /// The date on the signed authorisation, `YYYY-MM-DD`; today when empty.
    #[serde(default)]
    pub authorised_on: String,
}

/// One element of a competency assessment as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementInput {
    /// What was observed or reviewed.
    #[serde(default)]
    pub evidence: String,
    /// The assessor's username.
    #[serde(default)]
    pub assessor: String,
    /// When, `YYYY-MM-DD`.
    #[serde(default)]
    pub assessed_on: String,
}

/// A competency assessment as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentInput {
    /// A test code, for an assessment of one test.
    #[serde(default)]
    pub test: String,
    /// A discipline, for an assessment of every test of it (when `test` is empty).
    #[serde(default)]
    pub discipline: String,
    /// The instrument's name, or empty for a manual method.
    #[serde(default)]
    pub instrument: String,
    /// `pass` or `fail`.
    #[serde(default)]
    pub outcome: String,
    /// The six elements, in the regulation's order.
    #[serde(default)]
    pub elements: Vec<ElementInput>,
}

/// The lab's qualification settings as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInput {
    /// Whether qualifications are enforced.
    #[serde(default)]
    pub enforce: bool,
    /// `waived`, `moderate`, `high` or empty (no licence required).
    #[serde(default)]
    pub licence_required_from: String,
    /// The same for certifications.
    #[serde(default)]
    pub certification_required_from: String,
}

/// The facts the gate checks a person's actions against, read once per use case.
pub(crate) struct Gate {
    policy: QualificationPolicy,
    record: Option<StaffRecordRow>,
    authorisations: Vec<Authorisation>,
    assessments: Vec<Assessment>,
    today: Date,
    instruments: Vec<(i64, String)>,
    /// A student's rotations; a student is gated by them, not by qualifications of their own.
    student: Option<Vec<cuvette_domain::rotation::Rotation>>,
}

impl Gate {
    /// Whether the person may enter or verify `def`, measured on `instrument_id` (or typed at
    /// the bench).
    pub(crate) fn check(
        &self,
        def: &TestDefinition,
        instrument_id: Option<i64>,
    ) -> Result<(), QualificationRefusal> {
        // A student enters during a rotation in the test's discipline; their entries wait for
        // a co-signer, who passes the full gate below.
        if let Some(rotations) = &self.student {
            return cuvette_domain::rotation::may_enter_as_student(
                rotations,
                &def.discipline,
                self.today,
            );
        }
        let method = instrument_id.map(|id| {
            match self.instruments.iter().find(|(i, _)| *i == id) {
                Some((_, name)) => Method::Instrument(name.clone()),
                // An instrument that is no longer registered is no test system anyone is
                // assessed on: named by its id, it matches no assessment.
                None => Method::Instrument(format!("instrument {id}")),
            }
        });
        staff::may_perform(
            &self.policy,
            Person {
                record: self.record.as_ref().map(|r| &r.record),
                authorisations: &self.authorisations,
                assessments: &self.assessments,
            },
            TestFacts {
                code: &def.code,
                discipline: &def.discipline,
                complexity: def.complexity,
                method: method.as_ref(),
            },
            self.today,
        )
    }
}

impl Lab {
    /// The lab's qualification settings (those who manage users).
    pub async fn qualification_policy(&self, actor: &Actor) -> AppResult<QualificationPolicy> {
        self.require(actor, Action::ManageUsers)?;
        Ok(self.store.qualification_policy().await?)
    }

    /// Changes the lab's qualification settings (those who manage users).
    pub async fn set_qualification_policy(
        &self,
        actor: &Actor,
        input: &PolicyInput,
    ) -> AppResult<QualificationPolicy> {
        self.require(actor, Action::ManageUsers)?;
        let complexity = |field: &str, typed: &str| -> AppResult<Option<Complexity>> {
            if typed.trim().is_empty() {
                return Ok(None);
            }
            Complexity::parse(typed).map(Some).ok_or_else(|| {
                AppError::invalid(
                    field,
                    format!(
                        "{:?} is not a complexity: choose waived, moderate, high or none",
                        typed.trim()
                    ),
                )
            })
        };
        let policy = QualificationPolicy {
            enforce: input.enforce,
            licence_required_from: complexity(
                "licence_required_from",
                &input.licence_required_from,
            )?,
            certification_required_from: complexity(
                "certification_required_from",
                &input.certification_required_from,
            )?,
        };
        let before = self.store.qualification_policy().await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.save_qualification_policy(&policy, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffPolicy,
            entity: "qualification_policy",
            entity_id: "lab".into(),
            patient_id: None,
            before: audit::state(&before),
            after: audit::state(&policy),
        })
        .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// A person's staff page: their own, or anyone's for those who manage users.
    pub async fn staff(&self, actor: &Actor, username: &str) -> AppResult<StaffView> {
        if actor.name != username {
            self.require(actor, Action::ManageUsers)?;
        }
        let user = self.staff_user(username).await?;
        let record = self.store.staff_record(user.id).await?;
        let authorisations = self.store.authorisations(user.id).await?;
        let assessments = self.store.assessments(user.id).await?;
        let today = self.today();
        let mut systems: Vec<&TestSystem> =
            assessments.iter().map(|a| &a.assessment.system).collect();
        systems.sort();
        systems.dedup();
        let standings = systems
            .into_iter()
            .filter_map(|system| {
                let of: Vec<&Assessment> = assessments
                    .iter()
                    .map(|a| &a.assessment)
                    .filter(|a| &a.system == system)
                    .collect();
                staff::standing(&of, today).map(|s| (system.clone(), s))
            })
            .collect();
        Ok(StaffView { user, record, authorisations, assessments, standings, today })
    }

    /// Saves a person's staff record (supervisors), refusing every bad field at once and
    /// storing nothing then; `expected_version` is the version the editor opened (0 for none).
    pub async fn save_staff_record(
        &self,
        actor: &Actor,
        username: &str,
        input: &StaffRecordInput,
        expected_version: i64,
    ) -> AppResult<i64> {
        self.require(actor, Action::ManageUsers)?;
        let user = self.staff_user(username).await?;
        not_oneself(actor, &user, "edit your own staff record")?;
        let catalog = self.catalog();
        let disciplines = disciplines(&catalog.catalog);
        let disciplines: Vec<&str> = disciplines.iter().map(String::as_str).collect();
        let record = input.parse(self.today(), &disciplines).map_err(|refusals| {
            AppError::Invalid(
                refusals
                    .into_iter()
                    .map(|r| FieldError { field: r.field, message: r.message })
                    .collect(),
            )
        })?;
        let before = self.store.staff_record(user.id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let version =
            tx.save_staff_record(user.id, &record, expected_version, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffRecordSave,
            entity: "staff_record",
            entity_id: format!("{}@{version}", user.username),
            patient_id: None,
            before: before.and_then(|b| audit::state(&b.record)),
            after: audit::state(&record),
        })
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Authorises a person for a discipline: the director or a technical supervisor, who is
    /// recorded as the one who authorised it.
    pub async fn authorise(
        &self,
        actor: &Actor,
        username: &str,
        input: &AuthoriseInput,
    ) -> AppResult<i64> {
        if !staff::may_authorise(actor.role) {
            return Err(AppError::Forbidden(format!(
                "your role ({}) may not authorise testing personnel: the director or a technical supervisor does",
                actor.role
            )));
        }
        let user = self.staff_user(username).await?;
        not_oneself(actor, &user, "authorise yourself")?;
        let discipline = input.discipline.trim();
        let catalog = self.catalog();
        let known = disciplines(&catalog.catalog);
        let mut errors = Vec::new();
        if !known.iter().any(|d| d == discipline) {
            errors.push(FieldError {
                field: "discipline".into(),
                message: format!(
                    "{discipline:?} is not a discipline of the catalog: choose one of {}",
                    known.join(", ")
                ),
            });
        }
        let today = self.today();
        let authorised_on = match input.authorised_on.trim() {
            "" => Some(today),
            typed => {
                match typed.parse::<Date>() {
                    Ok(d) if d > today => {
                        errors.push(FieldError {
                        field: "authorised_on".into(),
                        message: format!("{d} is in the future (today is {today}): give the date it was signed"),
                    });
                        None
                    }
                    Ok(d) => Some(d),
                    Err(_) => {
                        errors.push(FieldError {
                            field: "authorised_on".into(),
                            message: format!("{typed:?} is not a date: write it as YYYY-MM-DD"),
                        });
                        None
                    }
                }
            }
        };
        let Some(authorised_on) = authorised_on.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let authorisation = Authorisation {
            discipline: discipline.to_owned(),
            authorised_by: actor.name.clone(),
            authorised_on,
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_authorisation(user.id, &authorisation, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffAuthorise,
            entity: "staff_authorisation",
            entity_id: format!("{}/{}", user.username, authorisation.discipline),
            patient_id: None,
            before: None,
            after: audit::state(&audit::Authorised {
                username: &user.username,
                authorisation: &authorisation,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records a competency assessment. Each element's assessor must qualify for the test
    /// system's complexity (technical consultant for moderate, technical supervisor for high);
    /// the one recording it must be the director or a technical supervisor.
    pub async fn record_competency(
        &self,
        actor: &Actor,
        username: &str,
        input: &AssessmentInput,
    ) -> AppResult<i64> {
        if !staff::may_authorise(actor.role) {
            return Err(AppError::Forbidden(format!(
                "your role ({}) may not record competency assessments: the director or a technical supervisor does",
                actor.role
            )));
        }
        let user = self.staff_user(username).await?;
        not_oneself(actor, &user, "record your own competency assessment")?;
        let catalog = self.catalog();
        let today = self.today();
        let mut errors = Vec::new();
        let mut refuse = |field: &str, message: String| {
            errors.push(FieldError { field: field.into(), message });
        };
        // What the system covers, and its complexity: the test's, or the highest of the
        // discipline's tests (an assessor for the discipline must qualify for all of it).
        let (scope, complexity) = if !input.test.trim().is_empty() {
            let code = input.test.trim();
            match catalog.catalog.test(code) {
                Some(def) => (Some(Scope::Test(def.code.clone())), def.complexity),
                None => {
                    refuse("test", format!("{code:?} is not a test of the catalog"));
                    (None, Complexity::High)
                }
            }
        } else {
            let d = input.discipline.trim();
            let complexity =
                catalog.catalog.tests().filter(|t| t.discipline == d).map(|t| t.complexity).max();
            match complexity {
                Some(c) => (Some(Scope::Discipline(d.to_owned())), c),
                None => {
                    refuse(
                        "test",
                        "give a test code, or a discipline of the catalog for all its tests".into(),
                    );
                    (None, Complexity::High)
                }
            }
        };
        let method = match input.instrument.trim() {
            "" => Some(Method::Manual),
            name => {
                let instruments = self.store.instruments().await?;
                match instruments.iter().find(|i| i.name == name) {
                    Some(i) => Some(Method::Instrument(i.name.clone())),
                    None => {
                        let names: Vec<&str> =
                            instruments.iter().map(|i| i.name.as_str()).collect();
                        refuse(
                            "instrument",
                            format!(
                                "{name:?} is not a registered instrument: choose one of {}, or leave it empty for a manual method",
                                names.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
        };
        let outcome = Outcome::parse(&input.outcome);
        if outcome.is_none() {
            refuse("outcome", "choose pass or fail".into());
        }
        if input.elements.len() != 6 {
            refuse(
                "elements",
                format!("give all six elements of the assessment ({} given)", input.elements.len()),
            );
        }
        let mut elements = Vec::new();
        for (i, (e, element)) in input.elements.iter().zip(staff::Element::ALL).enumerate() {
            let at = |f: &str| format!("elements[{i}].{f}");
            let evidence = e.evidence.trim();
            if evidence.is_empty() || evidence.chars().count() > 2000 {
                refuse(
                    &at("evidence"),
                    format!("describe the evidence for {element} (up to 2,000 characters)"),
                );
            }
            let assessed_on = match e.assessed_on.trim().parse::<Date>() {
                Ok(d) if d > today => {
                    refuse(
                        &at("assessed_on"),
                        format!(
                            "{d} is in the future (today is {today}): give the date it was assessed"
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(_) => {
                    refuse(
                        &at("assessed_on"),
                        format!("{:?} is not a date: write it as YYYY-MM-DD", e.assessed_on.trim()),
                    );
                    None
                }
            };
            let assessor = e.assessor.trim().to_ascii_lowercase();
            let assessor_ok = match self.store.user_by_username(&assessor).await? {
                None => {
                    refuse(&at("assessor"), format!("{assessor:?} is not a user of this lab"));
                    false
                }
                Some(_) if assessor == user.username => {
                    refuse(&at("assessor"), "no one assesses their own competency".into());
                    false
                }
                Some(a) => {
                    let record = self.store.staff_record(a.id).await?;
                    let on = assessed_on.unwrap_or(today);
                    match staff::may_assess(
                        &a.username,
                        a.role,
                        record.as_ref().map(|r| &r.record),
                        complexity,
                        on,
                    ) {
                        Ok(()) => true,
                        Err(refusal) => {
                            refuse(&at("assessor"), refusal.to_string());
                            false
                        }
                    }
                }
            };
            if let (Some(assessed_on), true, false) =
                (assessed_on, assessor_ok, evidence.is_empty())
            {
                elements.push(ElementEvidence {
                    evidence: evidence.to_owned(),
                    assessor,
                    assessed_on,
                });
            }
        }
        let elements: Option<[ElementEvidence; 6]> = elements.try_into().ok();
        let (Some(scope), Some(method), Some(outcome), Some(elements), true) =
            (scope, method, outcome, elements, errors.is_empty())
        else {
            return Err(AppError::Invalid(errors));
        };
        let assessment = Assessment { system: TestSystem { scope, method }, elements, outcome };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_assessment(user.id, &assessment, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffCompetency,
            entity: "competency_assessment",
            entity_id: format!("{}/{}", user.username, assessment.system),
            patient_id: None,
            before: None,
            after: audit::state(&audit::Assessed {
                username: &user.username,
                assessment: &assessment,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The facts the qualification gate needs for `actor`, or `None` when the lab does not
    /// enforce qualifications or the actor is Cuvette itself (calculations, seeding).
    pub(crate) async fn gate(&self, actor: &Actor) -> AppResult<Option<Gate>> {
        let policy = self.store.qualification_policy().await?;
        if !policy.enforce || actor == &Actor::system() {
            return Ok(None);
        }
        // An API key is not a person: no record, so nothing it sends is entered or released
        // under it while qualifications are enforced.
        let user = self.store.user_by_username(&actor.name).await?;
        let (record, authorisations, assessments) = match &user {
            Some(user) => (
                self.store.staff_record(user.id).await?,
                self.store.authorisations(user.id).await?,
                self.store.assessments(user.id).await?,
            ),
            None => (None, vec![], vec![]),
        };
        let student = match &user {
            Some(user) if user.role == cuvette_domain::Role::Student => {
                Some(self.store.rotations(user.id).await?.into_iter().map(|r| r.rotation).collect())
            }
            _ => None,
        };
        let instruments =
            self.store.instruments().await?.into_iter().map(|i| (i.id, i.name)).collect();
        Ok(Some(Gate {
            policy,
            record,
            authorisations: authorisations.into_iter().map(|a| a.authorisation).collect(),
            assessments: assessments.into_iter().map(|a| a.assessment).collect(),
            today: self.today(),
            instruments,
            student,
        }))
    }

    /// Autoverification under the gates: with qualifications enforced, an instrument's result
    /// that autoverification would release is held for a person unless someone on staff may,
    /// today, perform its test on that instrument — an active person privileged to verify
    /// (never a student), educated for the test's complexity, authorised for its discipline,
    /// with the licence and certification the lab requires valid and competency current on
    /// that test system. The autoverifier releases under the director's approval of the rules
    /// (CLSI AUTO15), but the test system is still operated under CLIA Subpart M: when no one
    /// qualified answers for it, nothing leaves the lab unseen. Each hold is audited with the
    /// write.
    pub(crate) async fn hold_without_competent_staff(
        &self,
        instrument_id: i64,
        writes: &mut [crate::results::ResultWrite],
    ) -> AppResult<()> {
        if !writes.iter().any(|w| w.auto_release) {
            return Ok(());
        }
        let policy = self.store.qualification_policy().await?;
        if !policy.enforce {
            return Ok(());
        }
        let name = self
            .store
            .instruments()
            .await?
            .into_iter()
            .find(|i| i.id == instrument_id)
            .map_or_else(|| format!("instrument {instrument_id}"), |i| i.name);
        let method = Method::Instrument(name.clone());
        let privileges = self.privileges();
        let users: Vec<UserRow> = self
            .store
            .users()
            .await?
            .into_iter()
            .filter(|u| {
                u.active
                    && u.role != cuvette_domain::Role::Student
                    && privileges.may(u.role, Action::VerifyRoutine)
            })
            .collect();
        let records = self.store.staff_records().await?;
        let authorisations = self.store.all_authorisations().await?;
        let assessments = self.store.all_assessments().await?;
        let facts: Vec<(Option<&StaffRecordRow>, Vec<Authorisation>, Vec<Assessment>)> = users
            .iter()
            .map(|u| {
                (
                    records.iter().find(|r| r.user_id == u.id),
                    authorisations
                        .iter()
                        .filter(|a| a.user_id == u.id)
                        .map(|a| a.authorisation.clone())
                        .collect(),
                    assessments
                        .iter()
                        .filter(|a| a.user_id == u.id)
                        .map(|a| a.assessment.clone())
                        .collect(),
                )
            })
            .collect();
        let people: Vec<Person<'_>> = facts
            .iter()
            .map(|(record, authorisations, assessments)| Person {
                record: record.map(|r| &r.record),
                authorisations,
                assessments,
            })
            .collect();
        let today = self.today();
        let catalog = self.catalog();
        for w in writes.iter_mut().filter(|w| w.auto_release) {
            let Some(def) = catalog.catalog.test(&w.item.test.test_code) else { continue };
            let test = TestFacts {
                code: &def.code,
                discipline: &def.discipline,
                complexity: def.complexity,
                method: Some(&method),
            };
            if staff::anyone_may_perform(&policy, &people, test, today) {
                continue;
            }
            let reason = format!(
                "no one on staff may perform {} on {name} today (qualified, authorised and competency-current): a qualified person verifies it",
                def.code
            );
            w.auto_release = false;
            w.evaluation.reasons.push(format!("passed autoverification, not released: {reason}"));
            w.gate_refusal = Some(reason);
        }
        Ok(())
    }

    /// Audits a refusal by the gate, in the use case's transaction (or its own).
    pub(crate) async fn audit_refusal(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        action: Action,
        entity_id: String,
        patient_id: Option<i64>,
        reason: &QualificationRefusal,
    ) -> AppResult<()> {
        tx.audit(NewAuditEvent {
            at: self.now_at(),
            actor: &actor.name,
            action: AuditAction::StaffPrivilegeRefused,
            entity: "result",
            entity_id,
            patient_id,
            before: None,
            after: audit::state(&audit::QualificationRefused {
                action: action.code(),
                reason: reason.to_string(),
            }),
        })
        .await?;
        Ok(())
    }

    async fn staff_user(&self, username: &str) -> AppResult<UserRow> {
        self.store
            .user_by_username(username.trim())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user {username:?}")))
    }
}

/// No one vouches for themselves: a record, an authorisation or an assessment of a person is
/// made by someone else, so that it means what an inspector reads into it.
fn not_oneself(actor: &Actor, user: &UserRow, what: &str) -> AppResult<()> {
    if actor.name == user.username {
        Err(AppError::Forbidden(format!(
            "you cannot {what}: ask the director or another supervisor"
        )))
    } else {
        Ok(())
    }
}

/// The catalog's disciplines, sorted.
pub(crate) fn disciplines(catalog: &cuvette_domain::Catalog) -> Vec<String> {
    let mut all: Vec<String> =
        catalog.tests().map(|t| t.discipline.clone()).filter(|d| !d.is_empty()).collect();
    all.sort();
    all.dedup();
    all
}

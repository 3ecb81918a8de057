//! Students on clinical rotation: the rotation schedule (those who manage users), the
//! results waiting for a co-signature (those who may verify; a student's supervising
//! technologist sees theirs first), the rotation logbook (the student, their supervisor and
//! those who manage users) and its sign-off by the supervising technologist.
//!
//! A student's entry is never released but by a co-signature: `release` refuses students
//! (`role::may_release`), autoverification never sees a typed result, and the co-signer passes
//! the qualification gate for the test like any verifier.

use cuvette_domain::audit::AuditAction;
use cuvette_domain::rotation::{
    self, Cosignature, LogbookEntry, LogbookSection, Rotation, RotationInput, SignOff,
};
use cuvette_domain::workflow::TestStatus;
use cuvette_domain::{Action, Role};
use cuvette_store::{NewAuditEvent, RotationRow, UserRow, WorkItem, WorklistFilter};
use jiff::civil::Date;

use crate::{Actor, AppError, AppResult, FieldError, Lab, audit};

/// The most results the co-signature list shows at once.
pub const PENDING_COSIGNATURES_MAX: i64 = 500;

/// A student's logbook.
#[derive(Debug, Clone)]
pub struct Logbook {
    /// The student.
    pub user: UserRow,
    /// The rotations as stored (ids for the sign-off), in schedule order.
    pub rotations: Vec<RotationRow>,
    /// One section per rotation, then any tests performed outside every rotation.
    pub sections: Vec<LogbookSection>,
    /// Today, in the lab's calendar.
    pub today: Date,
}

impl Logbook {
    /// The stored row of a section's rotation.
    pub fn row_of(&self, section: &LogbookSection) -> Option<&RotationRow> {
        let r = section.rotation.as_ref()?;
        self.rotations.iter().find(|row| &row.rotation == r)
    }
}

/// A student's result waiting for a co-signature.
#[derive(Debug, Clone)]
pub struct PendingCosignature {
    /// The test, its specimen, patient and the student's result.
    pub item: WorkItem,
    /// The student's supervising technologist for the rotation the result was entered in.
    pub supervisor: Option<String>,
    /// Whether that is the one asking.
    pub yours: bool,
}

impl Lab {
    /// Schedules a block of a student's rotation (those who manage users): every bad field
    /// refused at once, nothing stored then.
    pub async fn schedule_rotation(
        &self,
        actor: &Actor,
        username: &str,
        input: &RotationInput,
    ) -> AppResult<i64> {
        self.require(actor, Action::ManageUsers)?;
        let user = self.student(username).await?;
        let catalog = self.catalog();
        let known = crate::staff::disciplines(&catalog.catalog);
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut errors: Vec<FieldError> = Vec::new();
        let parsed = input.parse(&known).map_err(|refusals| {
            refusals
                .into_iter()
                .map(|r| FieldError { field: r.field, message: r.message })
                .collect::<Vec<_>>()
        });
        let supervisor = input.supervisor.trim().to_ascii_lowercase();
        if !supervisor.is_empty() {
            match self.store.user_by_username(&supervisor).await? {
                None => errors.push(FieldError {
                    field: "supervisor".into(),
                    message: format!("{supervisor:?} is not a user of this lab"),
                }),
                Some(s) if !rotation::may_supervise(s.role) || !s.active => {
                    errors.push(FieldError {
                        field: "supervisor".into(),
                        message: format!(
                            "{} is a {}: a student is supervised by an active technologist, supervisor or the director",
                            s.username, s.role
                        ),
                    })
                }
                Some(_) => {}
            }
        }
        let rotation = match parsed {
            Ok(r) if errors.is_empty() => r,
            Ok(_) => return Err(AppError::Invalid(errors)),
            Err(mut refused) => {
                refused.retain(|f: &FieldError| !errors.iter().any(|e| e.field == f.field));
                refused.extend(errors);
                return Err(AppError::Invalid(refused));
            }
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_rotation(user.id, &rotation, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffRotation,
            entity: "student_rotation",
            entity_id: format!("{}/{}/{}", user.username, rotation.discipline, rotation.starts_on),
            patient_id: None,
            before: None,
            after: audit::state(&audit::RotationScheduled {
                username: &user.username,
                rotation: &rotation,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A student's rotation logbook: the tests performed per rotation with their
    /// co-signatures, no patient identifiers. The student reads their own; their supervising
    /// technologists and those who manage users read anyone's.
    pub async fn logbook(&self, actor: &Actor, username: &str) -> AppResult<Logbook> {
        let user = self.student(username).await?;
        let rotations = self.store.rotations(user.id).await?;
        let supervises = rotations.iter().any(|r| r.rotation.supervisor == actor.name);
        if actor.name != user.username && !supervises {
            self.require(actor, Action::ManageUsers).map_err(|_| {
                AppError::Forbidden(
                    "a logbook is read by the student, their supervising technologist and those who manage users".into(),
                )
            })?;
        }
        let catalog = self.catalog();
        let zone = self.config.time_zone.clone();
        let day = |t: cuvette_domain::time::Timestamp| {
            t.to_jiff().map(|t| t.to_zoned_datetime(zone.clone()).date()).unwrap_or_default()
        };
        let entries: Vec<LogbookEntry> = self
            .store
            .results_entered_by(&user.username)
            .await?
            .into_iter()
            // A calculated result (anion gap, eGFR) is written with the entry it follows from,
            // under the same person, but nobody performed it.
            .filter(|r| !catalog.catalog.test(&r.test_code).is_some_and(|d| d.is_calculated()))
            .map(|r| LogbookEntry {
                performed_on: day(r.entered_at),
                test_name: catalog
                    .catalog
                    .test(&r.test_code)
                    .map_or_else(|| r.test_code.clone(), |d| d.name.clone()),
                test: r.test_code,
                discipline: r.discipline,
                cosignature: match (r.released_by, r.released_at) {
                    (Some(by), Some(at)) => Cosignature::Signed { by, on: day(at) },
                    _ if r.version < r.latest_version || r.test_status == TestStatus::Cancelled => {
                        Cosignature::Replaced
                    }
                    _ => Cosignature::Pending,
                },
            })
            .collect();
        let plain: Vec<Rotation> = rotations.iter().map(|r| r.rotation.clone()).collect();
        let sections = rotation::logbook(&plain, &entries);
        Ok(Logbook { user, rotations, sections, today: self.today() })
    }

    /// Signs off a rotation's logbook: its supervising technologist (or the director or a
    /// technical supervisor), once every result of it is co-signed.
    pub async fn sign_off_rotation(
        &self,
        actor: &Actor,
        username: &str,
        rotation_id: i64,
    ) -> AppResult<()> {
        let book = self.logbook(actor, username).await?;
        let row = book.rotations.iter().find(|r| r.id == rotation_id).ok_or_else(|| {
            AppError::NotFound(format!("{username} has no rotation {rotation_id}"))
        })?;
        let section = book
            .sections
            .iter()
            .find(|s| s.rotation.as_ref() == Some(&row.rotation))
            .expect("every rotation has its section");
        rotation::may_sign_off(section, &actor.name, actor.role, book.today).map_err(
            |refusal| match refusal {
                rotation::SignOffRefusal::NotTheSupervisor { .. } => {
                    AppError::Forbidden(refusal.to_string())
                }
                _ => AppError::Refused(refusal.to_string()),
            },
        )?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let sign_off = SignOff { by: actor.name.clone(), on: book.today };
        if !tx.sign_off_rotation(row.id, &sign_off, now).await? {
            return Err(AppError::Conflict("someone signed this rotation off first".into()));
        }
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::StaffRotationSignOff,
            entity: "student_rotation",
            entity_id: format!(
                "{}/{}/{}",
                book.user.username, row.rotation.discipline, row.rotation.starts_on
            ),
            patient_id: None,
            before: None,
            after: audit::state(&audit::RotationSignedOff {
                username: &book.user.username,
                discipline: &row.rotation.discipline,
                starts_on: row.rotation.starts_on,
                ends_on: row.rotation.ends_on,
                tests_cosigned: section.signed_per_test().iter().map(|(_, _, n)| n).sum(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Students' results waiting for a co-signature, for those who may verify: the ones of
    /// the asker's own students first, then oldest first. Audited as a list view.
    pub async fn pending_cosignatures(&self, actor: &Actor) -> AppResult<Vec<PendingCosignature>> {
        self.require(actor, Action::VerifyRoutine).map_err(|_| {
            AppError::Forbidden(format!(
                "your role ({}) does not co-sign: a technician or technologist does",
                actor.role
            ))
        })?;
        let items: Vec<WorkItem> = self
            .store
            .work_items(&WorklistFilter {
                awaiting_verification: true,
                limit: 10_000,
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|i| i.result.as_ref().is_some_and(|r| r.entered_by_role == Role::Student))
            .collect();
        let rotations = if items.is_empty() { vec![] } else { self.store.all_rotations().await? };
        let zone = self.config.time_zone.clone();
        let mut users = std::collections::HashMap::new();
        let mut pending = Vec::new();
        for item in items {
            let result = item.result.as_ref().expect("filtered on it");
            let student = match users.get(&result.entered_by) {
                Some(id) => *id,
                None => {
                    let id = self.store.user_by_username(&result.entered_by).await?.map(|u| u.id);
                    users.insert(result.entered_by.clone(), id);
                    id
                }
            };
            let on = result.entered_at.to_jiff().map(|t| t.to_zoned_datetime(zone.clone()).date());
            let supervisor = rotations
                .iter()
                .find(|r| {
                    Some(r.user_id) == student
                        && on.is_some_and(|d| r.rotation.covers(&item.test.discipline, d))
                })
                .map(|r| r.rotation.supervisor.clone());
            let yours = supervisor.as_deref() == Some(actor.name.as_str());
            pending.push(PendingCosignature { item, supervisor, yours });
        }
        pending.sort_by_key(|p| {
            (!p.yours, p.item.result.as_ref().map(|r| r.entered_at.as_micros()).unwrap_or(0))
        });
        pending.truncate(usize::try_from(PENDING_COSIGNATURES_MAX).unwrap_or(500));
        let shown: Vec<WorkItem> = pending.iter().map(|p| p.item.clone()).collect();
        self.audit_list_view(actor, "cosignatures", "students", &shown).await?;
        Ok(pending)
    }

    /// The rotations of a student (for the gate and the staff page).
    pub(crate) async fn student(&self, username: &str) -> AppResult<UserRow> {
        let user = self
            .store
            .user_by_username(username.trim())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user {username:?}")))?;
        if user.role != Role::Student {
            return Err(AppError::Refused(format!(
                "{} is a {}, not a student: rotations and logbooks are for students on clinical rotation",
                user.username, user.role
            )));
        }
        Ok(user)
    }
}

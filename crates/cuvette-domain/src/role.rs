//! Who may do what: the lab's roles, the actions they are privileged for, and the release
//! rules (CLIA 42 CFR 493 Subpart M: testing personnel, supervision of trainees).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evaluation::Review;

/// A role a user signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Medical assistant / phlebotomist: registers patients, orders, collects and labels.
    Phlebotomist,
    /// Lab assistant: receives, rejects and processes specimens.
    LabAssistant,
    /// Medical laboratory technician (MLT): enters results, runs QC, releases normal results.
    Technician,
    /// Medical technologist / laboratory scientist (MLS): verifies abnormal and critical
    /// results, corrects, co-signs students.
    Technologist,
    /// Supervisor: everything a technologist does, plus the catalog and users.
    Supervisor,
    /// Pathologist / laboratory director: everything, and sign-off.
    Pathologist,
    /// Student on clinical rotation: enters results that a technician or technologist co-signs.
    Student,
}

/// Every role, in the order the UI lists them.
pub const ROLES: [Role; 7] = [
    Role::Phlebotomist,
    Role::LabAssistant,
    Role::Technician,
    Role::Technologist,
    Role::Supervisor,
    Role::Pathologist,
    Role::Student,
];

/// Something a user does that the system checks a privilege for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Find patients and see their demographics.
    SearchPatients,
    /// Register a patient.
    RegisterPatient,
    /// Place an order.
    PlaceOrder,
    /// Record collection and print labels.
    CollectSpecimen,
    /// Receive a specimen in the lab.
    ReceiveSpecimen,
    /// Reject a specimen and request recollection.
    RejectSpecimen,
    /// See worklists and results.
    ViewResults,
    /// Enter or edit a result that is not yet released.
    EnterResult,
    /// Release results within the reference interval.
    VerifyRoutine,
    /// Release abnormal and critical results.
    VerifyAbnormal,
    /// Document a critical-value call.
    DocumentCriticalCall,
    /// Correct a released result.
    CorrectResult,
    /// Edit test definitions.
    EditCatalog,
    /// Add users and change roles.
    ManageUsers,
    /// Read the audit log.
    ViewAudit,
    /// Run quality control: enter control results.
    RunQc,
    /// Document a corrective action after a QC failure, which lifts a lockout once QC passes.
    CorrectQc,
    /// Set up control materials, targets, Westgard rules and moving averages.
    ManageQc,
    /// Switch autoverification on and change its rules (director sign-off, CLSI AUTO15).
    ApproveAutoverification,
}

/// Every action, in the order the privilege table lists them.
pub const ACTIONS: [Action; 19] = [
    Action::SearchPatients,
    Action::RegisterPatient,
    Action::PlaceOrder,
    Action::CollectSpecimen,
    Action::ReceiveSpecimen,
    Action::RejectSpecimen,
    Action::ViewResults,
    Action::EnterResult,
    Action::VerifyRoutine,
    Action::VerifyAbnormal,
    Action::DocumentCriticalCall,
    Action::CorrectResult,
    Action::EditCatalog,
    Action::ManageUsers,
    Action::ViewAudit,
    Action::RunQc,
    Action::CorrectQc,
    Action::ManageQc,
    Action::ApproveAutoverification,
];

impl Role {
    /// Whether this role is privileged for `action` in the table Cuvette seeds a new lab with.
    /// A lab edits its own table ([`Privileges`]); decisions use that, not this.
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Pathologist => true,
            Role::Supervisor => true,
            Role::Phlebotomist => {
                matches!(action, SearchPatients | RegisterPatient | PlaceOrder | CollectSpecimen)
            }
            Role::LabAssistant => {
                matches!(
                    action,
                    SearchPatients
                        | CollectSpecimen
                        | ReceiveSpecimen
                        | RejectSpecimen
                        | ViewResults
                )
            }
            Role::Technician => matches!(
                action,
                SearchPatients
                    | ReceiveSpecimen
                    | RejectSpecimen
                    | ViewResults
                    | EnterResult
                    | VerifyRoutine
                    | DocumentCriticalCall
                    | RunQc
            ),
            Role::Technologist => {
                !matches!(action, EditCatalog | ManageUsers | ViewAudit | ApproveAutoverification)
            }
            Role::Student => matches!(action, SearchPatients | ViewResults | EnterResult),
        }
    }

    /// Every role, in the order the UI lists them.
    pub const ALL: [Role; 7] = ROLES;

    /// The stored code ("lab_assistant").
    pub fn code(self) -> &'static str {
        match self {
            Role::Phlebotomist => "phlebotomist",
            Role::LabAssistant => "lab_assistant",
            Role::Technician => "technician",
            Role::Technologist => "technologist",
            Role::Supervisor => "supervisor",
            Role::Pathologist => "pathologist",
            Role::Student => "student",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<Role> {
        ROLES.into_iter().find(|r| r.code() == code.trim())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Phlebotomist => "Medical assistant / phlebotomist",
            Role::LabAssistant => "Lab assistant",
            Role::Technician => "Technician (MLT)",
            Role::Technologist => "Technologist (MLS)",
            Role::Supervisor => "Supervisor",
            Role::Pathologist => "Pathologist / director",
            Role::Student => "Student",
        })
    }
}

impl Action {
    /// The stored code ("verify_abnormal").
    pub fn code(self) -> &'static str {
        match self {
            Action::SearchPatients => "search_patients",
            Action::RegisterPatient => "register_patient",
            Action::PlaceOrder => "place_order",
            Action::CollectSpecimen => "collect_specimen",
            Action::ReceiveSpecimen => "receive_specimen",
            Action::RejectSpecimen => "reject_specimen",
            Action::ViewResults => "view_results",
            Action::EnterResult => "enter_result",
            Action::VerifyRoutine => "verify_routine",
            Action::VerifyAbnormal => "verify_abnormal",
            Action::DocumentCriticalCall => "document_critical_call",
            Action::CorrectResult => "correct_result",
            Action::EditCatalog => "edit_catalog",
            Action::ManageUsers => "manage_users",
            Action::ViewAudit => "view_audit",
            Action::RunQc => "run_qc",
            Action::CorrectQc => "correct_qc",
            Action::ManageQc => "manage_qc",
            Action::ApproveAutoverification => "approve_autoverification",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<Action> {
        ACTIONS.into_iter().find(|a| a.code() == code)
    }
}

/// A lab's privilege table: which role may do which action. Seeded from [`Role::may`],
/// edited by those who manage users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    granted: std::collections::BTreeSet<(Role, Action)>,
}

/// Why an edit of the privilege table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeRefusal {
    /// The pathologist / director answers for the lab (CLIA) and keeps every privilege, so the
    /// lab can never lock itself out.
    #[error("the pathologist / director keeps every privilege")]
    DirectorKeepsEverything,
    /// A student's results are always co-signed: a student may not verify.
    #[error("a student's results must be co-signed: students cannot be given verification")]
    StudentsDoNotVerify,
}

impl Default for Privileges {
    fn default() -> Privileges {
        Privileges::seeded()
    }
}

impl Privileges {
    /// The table a new lab starts with.
    pub fn seeded() -> Privileges {
        let granted = ROLES
            .iter()
            .flat_map(|r| ACTIONS.iter().filter(|a| r.may(**a)).map(|a| (*r, *a)))
            .collect();
        Privileges { granted }
    }

    /// A table from stored pairs; the director's row is always complete.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Role, Action)>) -> Privileges {
        let mut granted: std::collections::BTreeSet<(Role, Action)> = pairs.into_iter().collect();
        granted.extend(ACTIONS.iter().map(|a| (Role::Pathologist, *a)));
        Privileges { granted }
    }

    /// Whether `role` may do `action` in this lab.
    pub fn may(&self, role: Role, action: Action) -> bool {
        self.granted.contains(&(role, action))
    }

    /// Grants or withdraws one privilege.
    pub fn set(
        &mut self,
        role: Role,
        action: Action,
        allowed: bool,
    ) -> Result<(), PrivilegeRefusal> {
        if role == Role::Pathologist && !allowed {
            return Err(PrivilegeRefusal::DirectorKeepsEverything);
        }
        if role == Role::Student
            && allowed
            && matches!(action, Action::VerifyRoutine | Action::VerifyAbnormal)
        {
            return Err(PrivilegeRefusal::StudentsDoNotVerify);
        }
        if allowed {
            self.granted.insert((role, action));
        } else {
            self.granted.remove(&(role, action));
        }
        Ok(())
    }

    /// Every granted pair.
    pub fn pairs(&self) -> impl Iterator<Item = (Role, Action)> + '_ {
        self.granted.iter().copied()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::SearchPatients => "search patients",
            Action::RegisterPatient => "register patients",
            Action::PlaceOrder => "place orders",
            Action::CollectSpecimen => "collect specimens",
            Action::ReceiveSpecimen => "receive specimens",
            Action::RejectSpecimen => "reject specimens",
            Action::ViewResults => "view results",
            Action::EnterResult => "enter results",
            Action::VerifyRoutine => "verify results within the reference interval",
            Action::VerifyAbnormal => "verify abnormal and critical results",
            Action::DocumentCriticalCall => "document critical calls",
            Action::CorrectResult => "correct released results",
            Action::EditCatalog => "edit the test catalog",
            Action::ManageUsers => "manage users",
            Action::ViewAudit => "view the audit log",
            Action::RunQc => "run quality control",
            Action::CorrectQc => "document QC corrective actions",
            Action::ManageQc => "set up QC materials, targets and rules",
            Action::ApproveAutoverification => "approve autoverification rules",
        })
    }
}

/// The facts about a result that decide who may release it.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseCheck {
    /// What the evaluation asked for.
    pub review: Review,
    /// Whether a critical flag is set.
    pub critical: bool,
    /// Whether the call to the provider has been documented (with read-back).
    pub critical_call_documented: bool,
    /// Whether the current value was entered by a student.
    pub entered_by_student: bool,
    /// Whether the value is not a valid value for its test (text in a numeric test, a code
    /// not in the test's list): flagged INV when it was judged.
    pub invalid_value: bool,
}

/// Why a release was refused; each says what would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseRefusal {
    /// The value is not a valid result for the test; nobody may release it.
    #[error(
        "this value is not a valid result for the test: correct it on the bench (or reject the specimen)"
    )]
    InvalidValue,
    /// The role may not release results at all.
    #[error("a {0} cannot verify results")]
    NotPrivileged(Role),
    /// The result is abnormal or critical and the role only releases routine results.
    #[error("this result is abnormal or critical: a technologist must verify it")]
    NeedsTechnologist,
    /// A student's result must be co-signed by someone else.
    #[error("a student entered this result: a technician or technologist must co-sign it")]
    NeedsCosign,
    /// A critical result without a documented call.
    #[error(
        "document the call to the provider (who, by whom, when, read-back) before releasing this critical result"
    )]
    CriticalCallMissing,
}

/// Decides whether `role` may release a result under the lab's privileges — the
/// verification rules in one place.
pub fn may_release(
    privileges: &Privileges,
    role: Role,
    check: ReleaseCheck,
) -> Result<(), ReleaseRefusal> {
    // Before any privilege: no role, however senior, releases a value the test cannot have.
    if check.invalid_value {
        return Err(ReleaseRefusal::InvalidValue);
    }
    if !privileges.may(role, Action::VerifyRoutine) || role == Role::Student {
        return Err(if check.entered_by_student && role == Role::Student {
            ReleaseRefusal::NeedsCosign
        } else {
            ReleaseRefusal::NotPrivileged(role)
        });
    }
    if (check.review == Review::Technologist || check.critical)
        && !privileges.may(role, Action::VerifyAbnormal)
    {
        return Err(ReleaseRefusal::NeedsTechnologist);
    }
    if check.critical && !check.critical_call_documented {
        return Err(ReleaseRefusal::CriticalCallMissing);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(review: Review, critical: bool, called: bool, student: bool) -> ReleaseCheck {
        ReleaseCheck {
            review,
            critical,
            critical_call_documented: called,
            entered_by_student: student,
            invalid_value: false,
        }
    }

    #[test]
    fn nobody_releases_a_value_that_is_not_valid_for_its_test() {
        let invalid = ReleaseCheck {
            invalid_value: true,
            ..check(Review::Technologist, false, false, false)
        };
        for role in [Role::Technician, Role::Technologist, Role::Supervisor, Role::Pathologist] {
            assert_eq!(
                may_release(&Privileges::seeded(), role, invalid),
                Err(ReleaseRefusal::InvalidValue),
                "{role}"
            );
        }
    }

    #[test]
    fn a_technician_releases_normal_results_only() {
        assert_eq!(
            may_release(
                &Privileges::seeded(),
                Role::Technician,
                check(Review::Routine, false, false, false)
            ),
            Ok(())
        );
        assert_eq!(
            may_release(
                &Privileges::seeded(),
                Role::Technician,
                check(Review::Technologist, false, false, false)
            ),
            Err(ReleaseRefusal::NeedsTechnologist)
        );
    }

    #[test]
    fn a_technologist_releases_abnormal_results() {
        assert_eq!(
            may_release(
                &Privileges::seeded(),
                Role::Technologist,
                check(Review::Technologist, false, false, false)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_critical_result_waits_for_the_documented_call() {
        let critical = check(Review::Technologist, true, false, false);
        assert_eq!(
            may_release(&Privileges::seeded(), Role::Technologist, critical),
            Err(ReleaseRefusal::CriticalCallMissing)
        );
        assert_eq!(
            may_release(&Privileges::seeded(), Role::Pathologist, critical),
            Err(ReleaseRefusal::CriticalCallMissing)
        );
        assert_eq!(
            may_release(
                &Privileges::seeded(),
                Role::Technologist,
                check(Review::Technologist, true, true, false)
            ),
            Ok(())
        );
        assert_eq!(
            may_release(
                &Privileges::seeded(),
                Role::Technician,
                check(Review::Technologist, true, true, false)
            ),
            Err(ReleaseRefusal::NeedsTechnologist)
        );
    }

    #[test]
    fn a_students_result_needs_a_cosignature() {
        let students = check(Review::Routine, false, false, true);
        assert_eq!(
            may_release(&Privileges::seeded(), Role::Student, students),
            Err(ReleaseRefusal::NeedsCosign)
        );
        assert_eq!(may_release(&Privileges::seeded(), Role::Technician, students), Ok(()));
    }

    #[test]
    fn roles_without_verification_privilege_are_refused() {
        for role in [Role::Phlebotomist, Role::LabAssistant] {
            assert_eq!(
                may_release(
                    &Privileges::seeded(),
                    role,
                    check(Review::Routine, false, false, false)
                ),
                Err(ReleaseRefusal::NotPrivileged(role))
            );
        }
    }

    #[test]
    fn a_lab_may_let_technicians_verify_abnormal_results() {
        let abnormal = check(Review::Technologist, false, false, false);
        let mut lab = Privileges::seeded();
        assert_eq!(
            may_release(&lab, Role::Technician, abnormal),
            Err(ReleaseRefusal::NeedsTechnologist)
        );
        lab.set(Role::Technician, Action::VerifyAbnormal, true).unwrap();
        assert_eq!(may_release(&lab, Role::Technician, abnormal), Ok(()));
    }

    #[test]
    fn the_director_keeps_every_privilege_and_students_never_verify() {
        let mut lab = Privileges::seeded();
        assert_eq!(
            lab.set(Role::Pathologist, Action::ManageUsers, false),
            Err(PrivilegeRefusal::DirectorKeepsEverything)
        );
        assert_eq!(
            lab.set(Role::Student, Action::VerifyRoutine, true),
            Err(PrivilegeRefusal::StudentsDoNotVerify)
        );
        let stored = Privileges::from_pairs(vec![(Role::Technician, Action::EnterResult)]);
        assert!(stored.may(Role::Pathologist, Action::ViewAudit));
        assert!(!stored.may(Role::Technician, Action::VerifyRoutine));
    }

    #[test]
    fn action_codes_round_trip() {
        for action in ACTIONS {
            assert_eq!(Action::parse(action.code()), Some(action));
        }
    }

    #[test]
    fn role_codes_round_trip() {
        for role in ROLES {
            assert_eq!(Role::parse(role.code()), Some(role));
        }
    }
}

//! What another system may read through the FHIR API: SMART App Launch scopes
//! (`system/Observation.read`, `patient/*.read`, …) held by an API key.
//!
//! A key's role still decides what it may do in the lab; its scopes narrow the FHIR API to the
//! resource types it names. A key without scopes reads nothing through FHIR, so the keys made
//! before scopes existed gain no new access.
//!
//! SMART App Launch 2.x, "Scopes and Launch Context": `<context>/<resource>.<permissions>`,
//! context `patient`, `user` or `system`, resource a FHIR type or `*`, permissions `read`,
//! `write`, `*` (v1) or the v2 letters `cruds`. `patient/` scopes need a patient in context:
//! a key has no launch, so the patient is the one a search names (`patient=`), and a search
//! naming none is refused.

use std::fmt;

/// The longest scope list a key may hold (characters, as stored).
pub const SCOPES_LEN_MAX: usize = 1000;

/// The FHIR resource types Cuvette serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A patient (the lab's registration).
    Patient,
    /// An ordered test.
    ServiceRequest,
    /// A specimen (tube).
    Specimen,
    /// A released result.
    Observation,
    /// The released results of one specimen.
    DiagnosticReport,
}

impl ResourceType {
    /// Every type, in the order the capability statement lists them.
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Patient,
        ResourceType::ServiceRequest,
        ResourceType::Specimen,
        ResourceType::Observation,
        ResourceType::DiagnosticReport,
    ];

    /// The type's name in FHIR.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Patient => "Patient",
            ResourceType::ServiceRequest => "ServiceRequest",
            ResourceType::Specimen => "Specimen",
            ResourceType::Observation => "Observation",
            ResourceType::DiagnosticReport => "DiagnosticReport",
        }
    }

    /// The type with this exact name (FHIR names are case-sensitive).
    pub fn parse(name: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whose data a scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// One patient's at a time.
    Patient,
    /// What the user may see.
    User,
    /// Any patient's (a back-end system).
    System,
}

/// One granted scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// Whose data.
    pub context: Context,
    /// Which type; `None` for `*`.
    pub resource: Option<ResourceType>,
    /// Whether it grants reading (`read`, `*`, or v2 letters with `r` or `s`).
    pub read: bool,
    /// Whether it grants writing (`write`, `*`, or v2 letters with `c` or `u`).
    pub write: bool,
}

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Not `context/resource.permissions`.
    #[error("{0:?} is not a scope: write it as system/Observation.read or patient/*.read")]
    Malformed(String),
    /// The context is not patient, user or system.
    #[error("{0:?}: a scope begins with patient/, user/ or system/")]
    Context(String),
    /// A resource type Cuvette does not serve.
    #[error(
        "{0:?}: Cuvette serves Patient, ServiceRequest, Specimen, Observation and DiagnosticReport (or * for all)"
    )]
    Resource(String),
    /// Permissions other than read, write, * or the v2 letters.
    #[error("{0:?}: the permission is read, write, * or letters of cruds")]
    Permission(String),
    /// The whole list is too long.
    #[error("the scopes are {0} characters long; the limit is {SCOPES_LEN_MAX}")]
    TooLong(usize),
}

impl Scope {
    /// Reads one scope such as `system/Observation.read` or `patient/*.rs`.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let malformed = || ScopeError::Malformed(text.to_owned());
        let (context, rest) = text.split_once('/').ok_or_else(malformed)?;
        let (resource, permissions) = rest.split_once('.').ok_or_else(malformed)?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Err(ScopeError::Context(text.to_owned())),
        };
        let resource = match resource {
            "*" => None,
            name => Some(
                ResourceType::parse(name).ok_or_else(|| ScopeError::Resource(text.to_owned()))?,
            ),
        };
        let (read, write) = match permissions {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            letters if is_v2_permissions(letters) => {
                (letters.contains(['r', 's']), letters.contains(['c', 'u', 'd']))
            }
            _ => return Err(ScopeError::Permission(text.to_owned())),
        };
        Ok(Scope { context, resource, read, write })
    }

    /// Whether this scope lets its holder read `resource` in `context`.
    fn reads(&self, resource: ResourceType) -> bool {
        self.read && self.resource.is_none_or(|r| r == resource)
    }
}

/// SMART v2 permissions: a non-empty subsequence of `cruds`, in that order.
fn is_v2_permissions(letters: &str) -> bool {
    let mut order = "cruds".chars();
    !letters.is_empty() && letters.chars().all(|c| order.any(|o| o == c))
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        };
        let resource = self.resource.map_or("*", ResourceType::name);
        let permission = match (self.read, self.write) {
            (true, true) => "*",
            (false, true) => "write",
            _ => "read",
        };
        write!(f, "{context}/{resource}.{permission}")
    }
}

/// The scopes of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

/// What a key's scopes allow for one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadGrant {
    /// Any patient's resources of this type.
    AnyPatient,
    /// Only one patient's at a time: a search must name the patient.
    OnePatient,
    /// Nothing of this type.
    Refused,
}

impl Scopes {
    /// Reads a space-separated list (as OAuth writes scopes and as stored).
    pub fn parse(text: &str) -> Result<Scopes, ScopeError> {
        if text.len() > SCOPES_LEN_MAX {
            return Err(ScopeError::TooLong(text.len()));
        }
        text.split_whitespace().map(Scope::parse).collect::<Result<Vec<_>, _>>().map(Scopes)
    }

    /// The scopes given, in order.
    pub fn from_list(list: Vec<Scope>) -> Scopes {
        Scopes(list)
    }

    /// Whether no scope is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// What these scopes allow when reading `resource`: a system or user scope reaches any
    /// patient (the key's role still limits what it sees), a patient scope one patient.
    pub fn read_grant(&self, resource: ResourceType) -> ReadGrant {
        let granting = || self.0.iter().filter(move |s| s.reads(resource));
        if granting().any(|s| s.context != Context::Patient) {
            ReadGrant::AnyPatient
        } else if granting().next().is_some() {
            ReadGrant::OnePatient
        } else {
            ReadGrant::Refused
        }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &str, resource: ResourceType) -> ReadGrant {
        Scopes::parse(scopes).unwrap().read_grant(resource)
    }

    #[test]
    fn a_system_wildcard_reads_every_type_for_any_patient() {
        for t in ResourceType::ALL {
            assert_eq!(grant("system/*.read", t), ReadGrant::AnyPatient);
        }
    }

    #[test]
    fn a_scope_for_observations_reads_nothing_else() {
        assert_eq!(
            grant("system/Observation.read", ResourceType::Observation),
            ReadGrant::AnyPatient
        );
        assert_eq!(grant("system/Observation.read", ResourceType::Patient), ReadGrant::Refused);
    }

    #[test]
    fn a_patient_scope_reads_one_patient_at_a_time() {
        assert_eq!(
            grant("patient/Observation.read", ResourceType::Observation),
            ReadGrant::OnePatient
        );
        assert_eq!(
            grant("patient/*.read system/Observation.rs", ResourceType::Observation),
            ReadGrant::AnyPatient
        );
    }

    #[test]
    fn write_only_scopes_grant_no_reading() {
        assert_eq!(grant("system/*.write", ResourceType::Observation), ReadGrant::Refused);
        assert_eq!(grant("system/*.c", ResourceType::Observation), ReadGrant::Refused);
        assert_eq!(grant("", ResourceType::Observation), ReadGrant::Refused);
    }

    #[test]
    fn malformed_scopes_are_refused_by_what_is_wrong() {
        assert!(matches!(Scope::parse("Observation.read"), Err(ScopeError::Malformed(_))));
        assert!(matches!(Scope::parse("admin/*.read"), Err(ScopeError::Context(_))));
        assert!(matches!(Scope::parse("system/Encounter.read"), Err(ScopeError::Resource(_))));
        assert!(matches!(Scope::parse("system/observation.read"), Err(ScopeError::Resource(_))));
        assert!(matches!(Scope::parse("system/*.sr"), Err(ScopeError::Permission(_))));
        assert!(matches!(Scope::parse("system/*.readwrite"), Err(ScopeError::Permission(_))));
    }

    #[test]
    fn scopes_are_written_back_as_read() {
        let s = Scopes::parse("system/*.read  patient/Observation.rs system/Patient.*").unwrap();
        assert_eq!(s.to_string(), "system/*.read patient/Observation.read system/Patient.*");
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
    }
}

//! What every HTML page shares: the frame (navigation, who is signed in, CSRF token, error
//! summary) and the small formatting helpers templates use.

use askama::Template;
use cuvette_app::records::WorkItem;
use cuvette_app::{FieldError, Lab};
use cuvette_domain::{Action, Role};

use crate::auth::Bench;

/// What a URL path segment or query value may carry unencoded: RFC 3986's unreserved
/// characters (letters, digits, `-`, `.`, `_`, `~`). Everything else is percent-encoded.
pub(crate) const UNRESERVED_ONLY: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One navigation entry.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Link.
    pub href: &'static str,
    /// Text.
    pub label: &'static str,
    /// Access key.
    pub key: &'static str,
    /// Whether this is the current section.
    pub current: bool,
}

/// The signed-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct UserChip {
    /// Name.
    pub display_name: String,
    /// Role, in words.
    pub role: String,
    /// Whether to show the student badge.
    pub student: bool,
}

/// The frame of a page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Title (also the `<title>`, prefixed "Error:" when there are errors).
    pub title: String,
    /// Who is signed in.
    pub user: Option<UserChip>,
    /// Navigation for the role.
    pub nav: Vec<NavItem>,
    /// CSRF token for forms.
    pub csrf: String,
    /// Errors for the summary.
    pub errors: Vec<FieldError>,
    /// A one-line confirmation ("Received 26-0000012-3").
    pub notice: Option<String>,
    /// Class on `<body>` (e.g. the label print page).
    pub body_class: &'static str,
    /// The critical-call banner drawn by the server (empty when nothing waits); `None` for a
    /// role that sees no results.
    pub critical_banner: Option<String>,
}

impl Page {
    /// The frame for a signed-in user, with `current` marking the section.
    pub fn new(bench: &Bench, title: impl Into<String>, current: &str) -> Page {
        Page {
            title: title.into(),
            user: Some(UserChip {
                display_name: bench.actor.display_name.clone(),
                role: bench.actor.role.to_string(),
                student: bench.actor.role == Role::Student,
            }),
            nav: nav_for(bench, current),
            csrf: bench.csrf.clone(),
            critical_banner: bench.critical_banner.clone(),
            ..Page::default()
        }
    }

    /// Adds errors for the summary.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Page {
        self.errors = errors;
        self
    }

    /// Adds a confirmation line.
    pub fn with_notice(mut self, notice: Option<String>) -> Page {
        self.notice = notice;
        self
    }

    /// The message for one field, if it has an error.
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
    }
}

fn nav_for(bench: &Bench, current: &str) -> Vec<NavItem> {
    let all: [(&str, &str, &str, Action); 13] = [
        ("/patients", "Patients", "p", Action::SearchPatients),
        ("/orders", "Orders", "o", Action::SearchPatients),
        ("/collect", "Collect", "c", Action::CollectSpecimen),
        ("/receive", "Receive", "r", Action::ReceiveSpecimen),
        ("/worklist", "Worklist", "w", Action::ViewResults),
        ("/review", "Review", "v", Action::ViewResults),
        ("/critical", "Critical calls", "k", Action::ViewResults),
        ("/qc", "QC", "q", Action::ViewResults),
        ("/autoverify", "Autoverification", "y", Action::ViewResults),
        ("/interfaces", "Interfaces", "i", Action::EnterResult),
        ("/catalog", "Catalog", "t", Action::EditCatalog),
        ("/users", "Users", "u", Action::ManageUsers),
        ("/audit", "Audit", "a", Action::ViewAudit),
    ];
    all.into_iter()
        .filter(|(_, _, _, action)| bench.may(*action))
        .map(|(href, label, key, _)| NavItem {
            href,
            label,
            key,
            current: href.trim_start_matches('/') == current,
        })
        .collect()
}

/// Where a role lands after signing in: its own bench, no dashboard in between.
pub fn home_for(role: Role) -> &'static str {
    match role {
        Role::Phlebotomist => "/collect",
        Role::LabAssistant => "/receive",
        Role::Technician | Role::Student => "/worklist",
        Role::Technologist | Role::Pathologist => "/review",
        Role::Supervisor => "/review",
    }
}

/// A flag code as the bench shows it: label and CSS class.
pub struct FlagChip {
    /// Text ("CRIT H", "L", ">AMR").
    pub label: &'static str,
    /// CSS class.
    pub class: &'static str,
    /// Glyph shown with the text.
    pub glyph: &'static str,
}

/// How an instrument sent a result Cuvette converted to the catalog's unit ("sent as 5.2
/// mmol/L") or read through a synonym ("sent as NEG"), shown beside the value; empty for a
/// result stored as it arrived.
pub fn sent_as(r: &cuvette_app::records::ResultRow) -> String {
    match (&r.sent_value, &r.sent_unit) {
        (Some(value), Some(unit)) => format!("sent as {value} {unit}"),
        (Some(value), None) => format!("sent as {value}"),
        _ => String::new(),
    }
}

/// The chips for a result's flags.
pub fn flag_chips(flags: &cuvette_domain::Flags) -> Vec<FlagChip> {
    use cuvette_domain::Flag;
    let mut chips: Vec<FlagChip> = flags
        .iter()
        .copied()
        .filter(|f| {
            // "CRIT H" already says H.
            !(matches!(f, Flag::High) && flags.contains(&Flag::CriticalHigh)
                || matches!(f, Flag::Low) && flags.contains(&Flag::CriticalLow))
        })
        .map(|f| FlagChip {
            label: f.label(),
            class: match f {
                Flag::CriticalHigh | Flag::CriticalLow => "crit",
                Flag::BelowRange | Flag::AboveRange | Flag::Invalid => "inv",
                Flag::High | Flag::Low | Flag::Abnormal => "abn",
            },
            glyph: match f {
                Flag::CriticalHigh => "▲▲",
                Flag::CriticalLow => "▼▼",
                Flag::High => "▲",
                Flag::Low => "▼",
                Flag::Abnormal => "!",
                Flag::BelowRange | Flag::AboveRange | Flag::Invalid => "⊘",
            },
        })
        .collect();
    chips.dedup_by_key(|c| c.label);
    chips
}

/// Formats stored times for templates.
pub fn when(lab: &Lab, at: Option<cuvette_domain::time::Timestamp>) -> String {
    at.map(|at| lab.format_time(at)).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "worklist_rows.html")]
struct WorklistRows<'a> {
    rows: &'a [WorklistRow],
}

/// A worklist row, ready to draw.
pub struct WorklistRow {
    /// STAT?
    pub stat: bool,
    /// Accession.
    pub accession: String,
    /// "FAMILY, Given".
    pub patient: String,
    /// Date of birth, sex and MRN, as a list shows them beside the name.
    pub ids: String,
    /// Test code.
    pub test: String,
    /// Status code.
    pub status: String,
    /// Status in words.
    pub status_label: String,
    /// Received at.
    pub received: String,
    /// Latest value, when entered.
    pub value: String,
    /// Flags of the latest value.
    pub flags: Vec<FlagChip>,
}

/// Prepares worklist rows.
pub fn worklist_rows(lab: &Lab, items: &[WorkItem]) -> Vec<WorklistRow> {
    items
        .iter()
        .map(|i| WorklistRow {
            stat: i.order.priority == cuvette_domain::workflow::Priority::Stat,
            accession: i.specimen.accession.clone(),
            patient: format!("{}, {}", i.patient.family_name.to_uppercase(), i.patient.given_name),
            ids: crate::html::list_ids(&i.patient.birth_date, &i.patient.sex, &i.patient.mrn),
            test: i.test.test_code.clone(),
            status: i.test.status.code().to_owned(),
            status_label: i.test.status.to_string(),
            received: when(lab, i.specimen.received_at),
            value: i.result.as_ref().map(|r| r.report_text.clone()).unwrap_or_default(),
            flags: i.result.as_ref().map(|r| flag_chips(&r.flags)).unwrap_or_default(),
        })
        .collect()
}

/// Renders the rows of a bench worklist (the worklist page's body; also what the benchmark
/// measures).
pub fn render_worklist_for_bench(lab: &Lab, items: &[WorkItem]) -> String {
    let rows = worklist_rows(lab, items);
    WorklistRows { rows: &rows }.render().unwrap_or_default()
}

/// Escapes text for SVG and XML written by hand (element content and double- or single-quoted
/// attribute values alike).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

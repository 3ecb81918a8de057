//! Finding things from one field: a scanned or typed accession (or the placer's specimen id a
//! ward-labelled tube carries) opens the specimen, an MRN opens the patient, anything else is
//! a name search; and the order search by patient, provider, period, status, priority and
//! test. Both are audited as views: who looked for what.

use cuvette_domain::audit::AuditAction;
use cuvette_domain::patient::Mrn;
use cuvette_domain::workflow::{Priority, TestStatus};
use cuvette_domain::{Accession, Action};
use cuvette_store::{OrderSearchFilter, WorkItem};
use jiff::civil::Date;

use crate::{Actor, AppError, AppResult, FieldError, Lab};

/// The longest text the search field takes.
pub const SEARCH_LEN_MAX: usize = 200;
/// Rows on one page of the order search.
pub const ORDER_PAGE_LEN: i64 = 50;
/// How many days the order search covers when no dates are given.
pub const ORDER_SEARCH_DAYS: i64 = 30;

/// What the search field found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Found {
    /// A specimen, by its accession number.
    Specimen {
        /// The accession number as printed.
        accession: String,
    },
    /// A patient, by MRN.
    Patient {
        /// The patient's id.
        patient_id: i64,
    },
    /// Neither: the text is searched as a name.
    Names {
        /// The text, for the patient search.
        query: String,
    },
}

/// The order search as typed in its form or sent to the API: every field text, empty for
/// "any". Read by [`OrderSearchForm::read`], which says what to fix per field.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct OrderSearchForm {
    /// The patient's MRN.
    pub mrn: String,
    /// The ordering provider, as written on the order.
    pub provider: String,
    /// First day ordered (`2026-11-24` or `24-Nov-2026`); empty for 30 days before the last.
    pub from: String,
    /// Last day ordered; empty for today.
    pub to: String,
    /// A test status code (`ordered`, `received`, `final`, …).
    pub status: String,
    /// `stat` or `routine`.
    pub priority: String,
    /// A test code from the catalog.
    pub test: String,
    /// The page, from 1.
    pub page: String,
}

/// The order search, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSearch {
    /// The patient's MRN, when one is asked for (checked to exist when searched).
    pub mrn: Option<Mrn>,
    /// The provider.
    pub provider: Option<String>,
    /// First day, in the lab's zone.
    pub from: Date,
    /// Last day, in the lab's zone (included).
    pub to: Date,
    /// The status.
    pub status: Option<TestStatus>,
    /// The priority.
    pub priority: Option<Priority>,
    /// The test code.
    pub test: Option<String>,
    /// The page, from 1.
    pub page: i64,
}

/// One page of the order search: ordered tests with their order, specimen, patient and
/// latest result, newest order first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderSearchPage {
    /// The rows.
    pub items: Vec<WorkItem>,
    /// The page shown, from 1.
    pub page: i64,
    /// Whether a next page exists.
    pub more: bool,
}

fn parse_day(text: &str) -> Option<Date> {
    let text = text.trim();
    text.parse::<Date>().ok().or_else(|| Date::strptime("%d-%b-%Y", text).ok())
}

impl OrderSearchForm {
    /// Reads the form against the lab's catalog and today's date, or says what to fix for
    /// each field.
    pub fn read(&self, lab: &Lab) -> Result<OrderSearch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut refuse = |field: &str, message: String| {
            errors.push(FieldError { field: field.into(), message });
        };
        let today = lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date();
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mrn = match text(&self.mrn) {
            None => None,
            Some(m) => match Mrn::parse(&m) {
                Ok(m) => Some(m),
                Err(e) => {
                    refuse("mrn", format!("Enter the patient's MRN as on the wristband: {e}"));
                    None
                }
            },
        };
        let provider = text(&self.provider);
        if provider.as_ref().is_some_and(|p| p.chars().count() > SEARCH_LEN_MAX) {
            refuse("provider", format!("Enter at most {SEARCH_LEN_MAX} characters"));
        }
        let day = |field: &str, what: &str, t: &str, refuse: &mut dyn FnMut(&str, String)| {
            match text(t) {
                None => Some(None),
                Some(t) => match parse_day(&t) {
                    Some(d) => Some(Some(d)),
                    None => {
                        refuse(field, format!("Enter the {what} as a date, for example {today}"));
                        None
                    }
                },
            }
        };
        let to = day("to", "last day", &self.to, &mut refuse).map(|d| d.unwrap_or(today));
        let from = day("from", "first day", &self.from, &mut refuse).map(|d| {
            d.unwrap_or_else(|| {
                to.unwrap_or(today).saturating_sub(jiff::Span::new().days(ORDER_SEARCH_DAYS))
            })
        });
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            refuse("from", format!("The first day ({f}) must be on or before the last day ({t})"));
        }
        let status = match text(&self.status) {
            None => None,
            Some(s) => match TestStatus::parse(&s) {
                Some(s) => Some(s),
                None => {
                    let all: Vec<&str> = TestStatus::ALL.iter().map(|s| s.code()).collect();
                    refuse(
                        "status",
                        format!("\"{s}\" is not a status: choose one of {}", all.join(", ")),
                    );
                    None
                }
            },
        };
        let priority = match text(&self.priority) {
            None => None,
            Some(p) => match Priority::parse(&p) {
                Some(p) => Some(p),
                None => {
                    refuse(
                        "priority",
                        format!("\"{p}\" is not a priority: choose stat or routine"),
                    );
                    None
                }
            },
        };
        let test = match text(&self.test) {
            None => None,
            Some(t) => {
                let code = t.to_ascii_uppercase();
                if lab.catalog().catalog.test(&code).is_some() {
                    Some(code)
                } else {
                    refuse(
                        "test",
                        format!(
                            "No test has the code \"{t}\": enter a code from the catalog, for example K"
                        ),
                    );
                    None
                }
            }
        };
        let page = match text(&self.page) {
            None => 1,
            Some(p) => match p.parse::<i64>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    refuse("page", "The page is a number from 1".to_owned());
                    1
                }
            },
        };
        match (errors.is_empty(), from, to) {
            (true, Some(from), Some(to)) => {
                Ok(OrderSearch { mrn, provider, from, to, status, priority, test, page })
            }
            _ => Err(errors),
        }
    }
}

impl Lab {
    /// What a scanned or typed text names: a specimen by accession or by the placer's
    /// specimen id on its tube, else a patient by MRN, else a name to search. Audited with
    /// what it found.
    pub async fn find(&self, actor: &Actor, text: &str) -> AppResult<Found> {
        self.require(actor, Action::SearchPatients)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(AppError::invalid(
                "q",
                "Scan or type an accession number, an MRN or a patient's name",
            ));
        }
        if text.chars().count() > SEARCH_LEN_MAX {
            return Err(AppError::invalid(
                "q",
                format!("Enter at most {SEARCH_LEN_MAX} characters"),
            ));
        }
        let accession = Accession::parse(text).ok();
        let found = if let Some(acc) = accession
            && let Some(s) = self.store.specimen_by_accession(&acc.to_string()).await?
        {
            let patient = self.store.patient_of_specimen(s.id).await?;
            Some((Found::Specimen { accession: s.accession }, Some(patient.id)))
        } else {
            // The placer's specimen id is the EHR's barcode on a tube the ward labelled.
            let mut placed = self.store.specimens_by_placer_id(text).await?;
            match placed.len() {
                0 => None,
                1 => {
                    let s = placed.remove(0);
                    let patient = self.store.patient_of_specimen(s.id).await?;
                    Some((Found::Specimen { accession: s.accession }, Some(patient.id)))
                }
                n => {
                    return Err(AppError::invalid(
                        "q",
                        format!(
                            "{n} specimens carry the label \"{text}\": scan the accession number instead"
                        ),
                    ));
                }
            }
        };
        let found = match found {
            Some(f) => Some(f),
            None => match Mrn::parse(text) {
                Ok(mrn) => self
                    .store
                    .patient_by_mrn(mrn.as_str())
                    .await?
                    .map(|p| (Found::Patient { patient_id: p.id }, Some(p.id))),
                Err(_) => None,
            },
        };
        let (found, patient_id) = match found {
            Some(f) => f,
            // A valid accession number that is not on file is a wrong label or a typo, not a name.
            None if accession.is_some() => {
                return Err(AppError::NotFound(format!(
                    "No specimen has accession number {text}: check the label, or scan it again"
                )));
            }
            None => (Found::Names { query: text.to_owned() }, None),
        };
        let what = match &found {
            Found::Specimen { accession } => format!("{text} → specimen {accession}"),
            Found::Patient { .. } => format!("{text} → patient"),
            Found::Names { .. } => format!("{text} → name search"),
        };
        self.audit_as(&actor.name, AuditAction::Search, "lookup", &what, patient_id).await?;
        Ok(found)
    }

    /// One page of orders matching the search, newest first, each filter read through its
    /// index. Audited as a view of the results listed.
    pub async fn search_orders(
        &self,
        actor: &Actor,
        search: &OrderSearch,
    ) -> AppResult<OrderSearchPage> {
        self.require(actor, Action::SearchPatients)?;
        let filter = self.order_filter(search).await?;
        let mut items = self.store.search_orders(&filter).await?;
        let more = items.len() as i64 > ORDER_PAGE_LEN;
        items.truncate(ORDER_PAGE_LEN as usize);
        if !self.privileges().may(actor.role, Action::ViewResults) {
            // Those who collect and label see what was ordered, not the results.
            for i in &mut items {
                i.result = None;
            }
        }
        let patient_id = match search.mrn {
            Some(_) => items.first().map(|i| i.patient.id),
            None => None,
        };
        self.audit_as(&actor.name, AuditAction::Search, "orders", &describe(search), patient_id)
            .await?;
        Ok(OrderSearchPage { items, page: search.page, more })
    }

    async fn order_filter(&self, search: &OrderSearch) -> AppResult<OrderSearchFilter> {
        let zone = self.config.time_zone.clone();
        let start = |d: Date| -> AppResult<cuvette_domain::time::Timestamp> {
            d.to_zoned_datetime(zone.clone())
                .map(|z| z.timestamp().into())
                .map_err(|_| AppError::invalid("from", "That period is out of range"))
        };
        let end = search
            .to
            .checked_add(jiff::Span::new().days(1))
            .map_err(|_| AppError::invalid("to", "That period is out of range"))?;
        let patient_id = match &search.mrn {
            None => None,
            Some(mrn) => Some(
                self.store
                    .patient_by_mrn(mrn.as_str())
                    .await?
                    .ok_or_else(|| {
                        AppError::invalid(
                            "mrn",
                            format!("No patient has MRN {mrn}: check the wristband"),
                        )
                    })?
                    .id,
            ),
        };
        Ok(OrderSearchFilter {
            from: start(search.from)?,
            to: start(end)?,
            patient_id,
            provider: search.provider.clone(),
            status: search.status,
            priority: search.priority,
            test_code: search.test.clone(),
            offset: (search.page - 1) * ORDER_PAGE_LEN,
            // One more than a page, to know whether there is a next.
            limit: ORDER_PAGE_LEN + 1,
        })
    }
}

/// The search as the audit log records it.
fn describe(s: &OrderSearch) -> String {
    let mut parts = vec![format!("{} to {}", s.from, s.to)];
    if let Some(m) = &s.mrn {
        parts.push(format!("MRN {m}"));
    }
    if let Some(p) = &s.provider {
        parts.push(format!("provider {p}"));
    }
    if let Some(st) = s.status {
        parts.push(format!("status {}", st.code()));
    }
    if let Some(p) = s.priority {
        parts.push(format!("priority {}", p.code()));
    }
    if let Some(t) = &s.test {
        parts.push(format!("test {t}"));
    }
    parts.push(format!("page {}", s.page));
    parts.join(", ")
}

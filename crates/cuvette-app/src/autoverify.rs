//! Autoverification at the lab: the rule set of each test (approved by the director, CLSI
//! AUTO15), a decision with its trace stored with every instrument result, the automatic
//! release of those that pass, a dry run over the lab's own history before a rule set is
//! switched on, and a switch that suspends it all at once.
//!
//! Only instrument results are autoverified: a value typed at the bench is already in front of
//! a person. A decision never releases a result the QC lockout holds, and the release itself
//! goes through the same checks as a person's (row version, lockout, privileges).

use std::collections::{BTreeMap, HashMap};

use cuvette_domain::audit::AuditAction;
use cuvette_domain::autoverify::{
    AutoverifyRules, Candidate, DryRunReport, QcState, RulesError, SerumIndices, autoverify,
    dry_run,
};
use cuvette_domain::delta::{DELTA_WINDOW_HOURS_MAX, DeltaLimits, PriorResult};
use cuvette_domain::evaluation::evaluate;
use cuvette_domain::number::{NumberRules, parse_entry};
use cuvette_domain::role::{ReleaseCheck, may_release};
use cuvette_domain::time::Timestamp;
use cuvette_domain::workflow::SpecimenCondition;
use cuvette_domain::{Action, Flag, ReportedValue, Role};
use cuvette_store::{MovingAverageRow, NewAuditEvent};
use rust_decimal::Decimal;

use crate::audit;
use crate::results::ResultWrite;
use crate::{Actor, AppError, AppResult, FieldError, Lab};

/// Mapping targets for serum indices: an instrument code mapped to one of these is stored on
/// the specimen as its hemolysis, icterus or lipemia index, not as a result.
pub const SERUM_INDEX_CODES: [(&str, &str); 3] =
    [("SI_H", "hemolysis index"), ("SI_I", "icterus index"), ("SI_L", "lipemia index")];

/// A rule set as typed on a form: text for every number, so a refused save shows exactly
/// what was sent. [`RuleSetForm::rules`] reads it, naming each field that does not read.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct RuleSetForm {
    /// Autoverification switched on for the test.
    pub enabled: bool,
    /// Hold without acceptable QC.
    pub require_qc: bool,
    /// Hold results the instrument flagged.
    pub block_instrument_flags: bool,
    /// The highest hemolysis index released (empty: no limit).
    pub hemolysis_max: String,
    /// The highest icterus index released (empty: no limit).
    pub icterus_max: String,
    /// The highest lipemia index released (empty: no limit).
    pub lipemia_max: String,
    /// Hold results outside the measurement range.
    pub check_measurement_range: bool,
    /// Hold critical results.
    pub hold_critical: bool,
    /// The absolute delta limit (empty: none).
    pub delta_absolute: String,
    /// The percent delta limit (empty: none).
    pub delta_percent: String,
    /// The delta limit per day (empty: none).
    pub delta_rate: String,
    /// How far back, in hours, a previous result counts for the delta check.
    pub delta_window: String,
    /// Hold only when every delta limit is exceeded.
    pub delta_require_all: bool,
    /// The lowest value released (empty: none).
    pub autoverify_low: String,
    /// The highest value released (empty: none).
    pub autoverify_high: String,
    /// Hold results outside the reference interval.
    pub hold_outside_reference: bool,
    /// Specimen condition codes that hold a result.
    pub hold_codes: Vec<String>,
}

impl RuleSetForm {
    /// The rules as typed, or what to fix in each field, in the lab's words.
    pub fn rules(&self) -> Result<AutoverifyRules, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let hemolysis_max = index_limit("hemolysis_max", "hemolysis", &self.hemolysis_max, e);
        let icterus_max = index_limit("icterus_max", "icterus", &self.icterus_max, e);
        let lipemia_max = index_limit("lipemia_max", "lipemia", &self.lipemia_max, e);
        let absolute = limit("delta_absolute", "absolute delta limit", &self.delta_absolute, e);
        let percent = limit("delta_percent", "percent delta limit", &self.delta_percent, e);
        let rate = limit("delta_rate", "delta limit per day", &self.delta_rate, e);
        let autoverify_low = number("autoverify_low", "low limit", &self.autoverify_low, e);
        let autoverify_high = number("autoverify_high", "high limit", &self.autoverify_high, e);
        // No limit at all means no delta check; the window only matters with a limit.
        let any_delta = [&self.delta_absolute, &self.delta_percent, &self.delta_rate]
            .iter()
            .any(|t| !t.trim().is_empty());
        let window = if any_delta { delta_window(&self.delta_window, e) } else { None };
        if let (Some(low), Some(high)) = (autoverify_low, autoverify_high)
            && low > high
        {
            e.push(FieldError {
                field: "autoverify_low".into(),
                message: format!("The low limit ({low}) must not be above the high limit ({high})"),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let rules = AutoverifyRules {
            enabled: self.enabled,
            require_qc: self.require_qc,
            block_instrument_flags: self.block_instrument_flags,
            hemolysis_max,
            icterus_max,
            lipemia_max,
            check_measurement_range: self.check_measurement_range,
            hold_critical: self.hold_critical,
            delta: window.map(|window_hours| DeltaLimits {
                absolute,
                percent,
                rate_per_day: rate,
                window_hours,
                require_all: self.delta_require_all,
            }),
            autoverify_low,
            autoverify_high,
            hold_outside_reference: self.hold_outside_reference,
            hold_comment_codes: self.hold_codes.iter().map(|c| c.trim().to_owned()).collect(),
        };
        // What the field checks above cannot see (hold codes, limits on how many).
        rules.validate().map_err(|e| vec![rules_error(&e)])?;
        Ok(rules)
    }
}

/// The field a rule set's refusal belongs to, and its words.
fn rules_error(e: &RulesError) -> FieldError {
    let field = match e {
        RulesError::InvertedRange { .. } => "autoverify_low",
        RulesError::EmptyDelta | RulesError::DeltaWindow { .. } => "delta_window",
        RulesError::TooManyHoldCodes { .. } | RulesError::BadHoldCode { .. } => "hold_codes",
        _ => "rules",
    };
    FieldError { field: field.into(), message: capitalised(&e.to_string()) }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn push(errors: &mut Vec<FieldError>, field: &str, message: String) {
    errors.push(FieldError { field: field.into(), message });
}

/// A serum-index limit: a whole number of index units, or empty for none.
fn index_limit(field: &str, what: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => {
            push(
                errors,
                field,
                format!(
                    "Enter the {what} index limit as a whole number, for example 50, or leave it \
                     empty for no limit"
                ),
            );
            None
        }
    }
}

/// A decimal, or empty for none.
fn number(field: &str, what: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match parse_entry(text, NumberRules::Plain) {
        Ok(n) => Some(n.value),
        Err(e) => {
            push(errors, field, format!("The autoverification {what}: {e}, or leave it empty"));
            None
        }
    }
}

/// A delta limit: a decimal that is not negative, or empty for none.
fn limit(field: &str, what: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match parse_entry(text, NumberRules::Plain).map(|n| n.value) {
        Ok(v) if v.is_sign_negative() && !v.is_zero() => {
            push(
                errors,
                field,
                format!("The {what} is a size of change: enter it without a minus sign"),
            );
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            push(errors, field, format!("The {what}: {e}, or leave it empty"));
            None
        }
    }
}

fn delta_window(text: &str, errors: &mut Vec<FieldError>) -> Option<u32> {
    match text.trim().parse::<u32>() {
        Ok(h) if (1..=DELTA_WINDOW_HOURS_MAX).contains(&h) => Some(h),
        _ => {
            push(
                errors,
                "delta_window",
                format!(
                    "Enter the delta window as whole hours from 1 to {DELTA_WINDOW_HOURS_MAX}, for \
                     example 48 (needed because a delta limit is set)"
                ),
            );
            None
        }
    }
}

/// The rules and averages in force, read once and replaced when staff change them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleCache {
    /// Autoverification rules by test code (stored ones only).
    pub autoverify: HashMap<String, AutoverifyRules>,
    /// Patient moving-average rules.
    pub moving_averages: Vec<MovingAverageRow>,
}

/// A test's rule set as the set-up screen shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSetView {
    /// Catalog test.
    pub test_code: String,
    /// Its name.
    pub test_name: String,
    /// The rules (the defaults when none are stored).
    pub rules: AutoverifyRules,
    /// Whether they are stored (a default set is never enabled).
    pub stored: bool,
    /// Fingerprint of the rules.
    pub fingerprint: String,
    /// Who last changed them, and when.
    pub updated: Option<(String, Timestamp)>,
}

/// A dry run's report with examples of what would be held.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    /// The counts.
    pub report: DryRunReport,
    /// Up to 50 held results: accession, value, why.
    pub held_examples: Vec<(String, String, String)>,
}

impl Lab {
    pub(crate) fn rule_cache(&self) -> std::sync::Arc<RuleCache> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the autoverification rules and moving averages.
    pub(crate) async fn reload_rules(&self) -> AppResult<()> {
        let mut cache = RuleCache::default();
        for row in self.store.autoverify_rule_sets().await? {
            match serde_json::from_str::<AutoverifyRules>(&row.rules) {
                Ok(rules) => {
                    cache.autoverify.insert(row.test_code, rules);
                }
                Err(e) => {
                    tracing::error!(test = %row.test_code, error = %e, "stored autoverification rules do not parse; the test is not autoverified")
                }
            }
        }
        cache.moving_averages = self.store.moving_average_rules(None).await?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(cache);
        Ok(())
    }

    pub(crate) async fn moving_average_rules_cached(
        &self,
        instrument_id: i64,
    ) -> AppResult<Vec<MovingAverageRow>> {
        Ok(self
            .rule_cache()
            .moving_averages
            .iter()
            .filter(|r| r.instrument_id == instrument_id)
            .cloned()
            .collect())
    }

    /// Every measured test's rule set, stored or default.
    pub async fn autoverify_rule_sets(&self, actor: &Actor) -> AppResult<Vec<RuleSetView>> {
        self.require(actor, Action::ViewResults)?;
        let stored = self.store.autoverify_rule_sets().await?;
        let catalog = self.catalog();
        let mut out = Vec::new();
        for def in catalog.catalog.tests().filter(|d| !d.is_calculated()) {
            let row = stored.iter().find(|r| r.test_code == def.code);
            let rules = row
                .and_then(|r| serde_json::from_str(&r.rules).ok())
                .unwrap_or_else(|| AutoverifyRules::default_for(def));
            out.push(RuleSetView {
                test_code: def.code.clone(),
                test_name: def.name.clone(),
                fingerprint: rules.fingerprint(),
                stored: row.is_some(),
                updated: row.map(|r| (r.updated_by.clone(), r.updated_at)),
                rules,
            });
        }
        Ok(out)
    }

    /// One test's rule set.
    pub async fn autoverify_rule_set(
        &self,
        actor: &Actor,
        test_code: &str,
    ) -> AppResult<RuleSetView> {
        self.autoverify_rule_sets(actor)
            .await?
            .into_iter()
            .find(|r| r.test_code == test_code)
            .ok_or_else(|| AppError::NotFound(format!("{test_code} is not a measured test")))
    }

    /// Saves a test's rule set from the form as typed: a field that does not read refuses
    /// the whole set, naming the field, and nothing is stored.
    pub async fn save_autoverify_form(
        &self,
        actor: &Actor,
        test_code: &str,
        form: &RuleSetForm,
    ) -> AppResult<String> {
        self.require(actor, Action::ApproveAutoverification)?;
        let rules = form.rules().map_err(AppError::Invalid)?;
        self.save_autoverify_rules(actor, test_code, &rules).await
    }

    /// Stores a test's rule set (director's or supervisor's approval).
    pub async fn save_autoverify_rules(
        &self,
        actor: &Actor,
        test_code: &str,
        rules: &AutoverifyRules,
    ) -> AppResult<String> {
        self.require(actor, Action::ApproveAutoverification)?;
        if self.catalog().catalog.test(test_code).is_none_or(|d| d.is_calculated()) {
            return Err(AppError::NotFound(format!("{test_code} is not a measured test")));
        }
        rules.validate().map_err(|e| AppError::Invalid(vec![rules_error(&e)]))?;
        let before =
            self.store.autoverify_rule_sets().await?.into_iter().find(|r| r.test_code == test_code);
        let json = serde_json::to_string(rules).map_err(|e| AppError::Refused(e.to_string()))?;
        let fingerprint = rules.fingerprint();
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_autoverify_rules(test_code, &json, &fingerprint, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: if rules.enabled {
                AuditAction::AutoverifyApprove
            } else {
                AuditAction::AutoverifySave
            },
            entity: "autoverify_rule_set",
            entity_id: test_code.to_owned(),
            patient_id: None,
            before: before.and_then(|b| serde_json::from_str(&b.rules).ok()),
            after: audit::state(rules),
        })
        .await?;
        tx.commit().await?;
        self.reload_rules().await?;
        Ok(fingerprint)
    }

    /// Switches autoverification off for every test at once (rules kept); returns how many
    /// tests were switched off.
    pub async fn suspend_autoverification(&self, actor: &Actor) -> AppResult<usize> {
        self.require(actor, Action::ApproveAutoverification)?;
        let now = self.now_at();
        let mut n = 0;
        let mut tx = self.store.begin().await?;
        for row in self.store.autoverify_rule_sets().await? {
            let Ok(mut rules) = serde_json::from_str::<AutoverifyRules>(&row.rules) else {
                continue;
            };
            if !rules.enabled {
                continue;
            }
            rules.enabled = false;
            let json =
                serde_json::to_string(&rules).map_err(|e| AppError::Refused(e.to_string()))?;
            tx.set_autoverify_rules(&row.test_code, &json, &rules.fingerprint(), &actor.name, now)
                .await?;
            n += 1;
        }
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::AutoverifySuspend,
            entity: "autoverify_rule_set",
            entity_id: "*".into(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::AutoverifySuspended { tests_suspended: n }),
        })
        .await?;
        tx.commit().await?;
        self.reload_rules().await?;
        Ok(n)
    }

    /// Decides each instrument result whose test has an enabled rule set, storing the decision
    /// with the result. Costs nothing for tests without one.
    pub(crate) async fn decide_autoverification(
        &self,
        instrument_id: i64,
        writes: &mut [ResultWrite],
        indices: &HashMap<i64, SerumIndices>,
    ) -> AppResult<()> {
        let cache = self.rule_cache();
        if !writes
            .iter()
            .any(|w| cache.autoverify.get(&w.item.test.test_code).is_some_and(|r| r.enabled))
        {
            return Ok(());
        }
        let now = self.now_at();
        let standings: HashMap<String, QcState> = self
            .qc_standings(Some(instrument_id))
            .await?
            .into_iter()
            .map(|s| (s.facts.test_code.clone(), s.state(now)))
            .collect();
        // The patient's previous results, one read per specimen.
        let mut priors: HashMap<(i64, String), PriorResult> = HashMap::new();
        let mut specimens: BTreeMap<i64, (i64, Timestamp, Vec<String>)> = BTreeMap::new();
        for w in writes.iter() {
            let entry = specimens.entry(w.item.specimen.id).or_insert((
                w.item.patient.id,
                w.item.specimen.collected_at.unwrap_or(now),
                Vec::new(),
            ));
            entry.2.push(w.item.test.test_code.clone());
        }
        for (specimen_id, (patient_id, collected_at, codes)) in specimens {
            for p in self
                .store
                .prior_results(
                    patient_id,
                    &codes,
                    specimen_id,
                    collected_at,
                    Timestamp::from_micros(i64::MAX),
                )
                .await?
            {
                let (Ok(value), Some(at)) = (Decimal::try_from(p.value), p.at.to_jiff()) else {
                    continue;
                };
                priors.insert((specimen_id, p.test_code), PriorResult { value, at });
            }
        }
        let catalog = self.catalog();
        for w in writes.iter_mut() {
            // What the instrument reported as preliminary, a correction or a withdrawal goes
            // to a person: an autoverified release is final.
            if w.reported_as.is_some() {
                continue;
            }
            let Some(rules) = cache.autoverify.get(&w.item.test.test_code).filter(|r| r.enabled)
            else {
                continue;
            };
            let Some(def) = catalog.catalog.test(&w.item.test.test_code) else { continue };
            let qc = standings.get(&def.code).cloned().unwrap_or(QcState::NoQc);
            let at = w
                .item
                .specimen
                .collected_at
                .unwrap_or(now)
                .to_jiff()
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let specimen_indices =
                indices.get(&w.item.specimen.id).copied().unwrap_or(SerumIndices {
                    hemolysis: w.item.specimen.hemolysis_index.and_then(|i| u32::try_from(i).ok()),
                    icterus: w.item.specimen.icterus_index.and_then(|i| u32::try_from(i).ok()),
                    lipemia: w.item.specimen.lipemia_index.and_then(|i| u32::try_from(i).ok()),
                });
            let comments = specimen_comment_codes(&w.item.specimen);
            let decision = autoverify(
                rules,
                &Candidate {
                    test: def,
                    value: &w.value,
                    evaluation: &w.evaluation,
                    instrument_flags: &w.instrument_flags,
                    qc: &qc,
                    indices: specimen_indices,
                    prior: priors.get(&(w.item.specimen.id, def.code.clone())),
                    at,
                    specimen_comments: &comments,
                },
            );
            // The autoverifier releases as a technologist would: the lab's privilege table
            // decides whether that includes abnormal results.
            let privileged = may_release(
                &self.privileges(),
                Role::Technologist,
                ReleaseCheck {
                    review: w.evaluation.review,
                    critical: w.evaluation.is_critical(),
                    critical_call_documented: false,
                    entered_by_student: false,
                    invalid_value: w.evaluation.flags.contains(&Flag::Invalid),
                },
            );
            w.auto_release = decision.release && privileged.is_ok();
            if !decision.release {
                w.evaluation.reasons.push(decision.summary());
            } else if let Err(refusal) = privileged {
                w.evaluation
                    .reasons
                    .push(format!("passed autoverification, not released: {refusal}"));
            }
            w.autoverify = serde_json::to_string(&decision).ok();
        }
        self.hold_without_competent_staff(instrument_id, writes).await
    }

    /// Evaluates a rule set over the lab's stored instrument results of a test entered in
    /// `[from, to)`, as if it had been switched on: what would have been released and held.
    /// QC is judged as it stood when each result was entered, replayed from the QC record.
    pub async fn autoverify_dry_run(
        &self,
        actor: &Actor,
        test_code: &str,
        rules: &AutoverifyRules,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<DryRun> {
        self.require(actor, Action::ViewResults)?;
        let catalog = self.catalog();
        let def = catalog
            .catalog
            .test(test_code)
            .ok_or_else(|| AppError::NotFound(format!("{test_code} is not in the catalog")))?;
        let history = self.store.results_of_test(test_code, from, to, 5000).await?;
        // QC is judged as it stood when each result was entered: the record of runs and
        // corrective actions of each instrument, replayed up to that moment.
        let mut qc_records: HashMap<i64, (String, Vec<cuvette_store::QcRunRow>, Vec<Timestamp>)> =
            HashMap::new();
        for instrument in history.iter().filter_map(|h| h.result.as_ref()?.instrument_id) {
            if let std::collections::hash_map::Entry::Vacant(e) = qc_records.entry(instrument) {
                let runs = self.store.qc_runs(instrument, test_code, 100_000).await?;
                let actions = self
                    .store
                    .corrective_actions(instrument, test_code)
                    .await?
                    .into_iter()
                    .map(|a| a.at)
                    .collect();
                let name = self.store.instrument(instrument).await?.name;
                e.insert((name, runs, actions));
            }
        }
        let qc_then = |instrument: i64, at: Timestamp| -> QcState {
            let Some((name, runs, actions)) = qc_records.get(&instrument) else {
                return QcState::NoQc;
            };
            crate::qc::QcStanding::at((instrument, name), test_code, runs, actions, at).state(at)
        };
        struct Row {
            accession: String,
            value: ReportedValue,
            evaluation: cuvette_domain::Evaluation,
            flags: Vec<String>,
            qc: QcState,
            indices: SerumIndices,
            prior: Option<PriorResult>,
            at: jiff::Timestamp,
            comments: Vec<String>,
        }
        let mut rows = Vec::new();
        for h in &history {
            let Some(result) = &h.result else { continue };
            let Ok(value) = ReportedValue::parse(&result.value_text) else { continue };
            let ctx = crate::results::patient_context(self, &h.patient, h.specimen.collected_at);
            let evaluation = evaluate(def, &value, ctx);
            let collected = h.specimen.collected_at.unwrap_or(result.entered_at);
            let prior = self
                .store
                .prior_results(
                    h.patient.id,
                    &[test_code.to_owned()],
                    h.specimen.id,
                    collected,
                    result.entered_at,
                )
                .await?
                .into_iter()
                .next()
                .and_then(|p| {
                    Some(PriorResult {
                        value: Decimal::try_from(p.value).ok()?,
                        at: p.at.to_jiff()?,
                    })
                });
            rows.push(Row {
                accession: h.specimen.accession.clone(),
                value,
                evaluation,
                flags: result.instrument_flags.clone(),
                qc: result.instrument_id.map_or(QcState::NoQc, |i| qc_then(i, result.entered_at)),
                indices: SerumIndices {
                    hemolysis: h.specimen.hemolysis_index.and_then(|i| u32::try_from(i).ok()),
                    icterus: h.specimen.icterus_index.and_then(|i| u32::try_from(i).ok()),
                    lipemia: h.specimen.lipemia_index.and_then(|i| u32::try_from(i).ok()),
                },
                prior,
                at: collected.to_jiff().unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                comments: specimen_comment_codes(&h.specimen),
            });
        }
        fn candidate<'a>(def: &'a cuvette_domain::TestDefinition, r: &'a Row) -> Candidate<'a> {
            Candidate {
                test: def,
                value: &r.value,
                evaluation: &r.evaluation,
                instrument_flags: &r.flags,
                qc: &r.qc,
                indices: r.indices,
                prior: r.prior.as_ref(),
                at: r.at,
                specimen_comments: &r.comments,
            }
        }
        let report = dry_run(rules, rows.iter().map(|r| candidate(def, r)));
        let enabled = AutoverifyRules { enabled: true, ..rules.clone() };
        let held_examples = rows
            .iter()
            .filter_map(|r| {
                let d = autoverify(&enabled, &candidate(def, r));
                (!d.release).then(|| (r.accession.clone(), r.value.text.clone(), d.held_reasons()))
            })
            .take(50)
            .collect();
        Ok(DryRun { report, held_examples })
    }
}

/// The condition codes recorded on a specimen (HEM, LIP, ICT, CLOT, QNS …), which a rule set
/// may hold on.
fn specimen_comment_codes(specimen: &cuvette_store::SpecimenRow) -> Vec<String> {
    specimen.conditions.iter().map(|c| c.code().to_owned()).collect()
}

impl Lab {
    /// Records the condition of a received specimen (codes of [`SpecimenCondition`]), which
    /// autoverification rule sets may hold on.
    pub async fn set_specimen_conditions(
        &self,
        actor: &Actor,
        accession: &str,
        codes: &[String],
    ) -> AppResult<()> {
        self.require(actor, Action::ReceiveSpecimen)?;
        let accession = cuvette_domain::Accession::parse(accession)
            .map_err(|e| AppError::invalid("accession", e.to_string()))?
            .to_string();
        let specimen = self.store.specimen_by_accession(&accession).await?.ok_or_else(|| {
            AppError::NotFound(format!("no specimen has accession number {accession}"))
        })?;
        let mut chosen: Vec<SpecimenCondition> = Vec::new();
        for code in codes {
            let Some(known) = SpecimenCondition::parse(code) else {
                return Err(AppError::invalid(
                    "conditions",
                    format!("{code:?} is not a specimen condition code"),
                ));
            };
            if !chosen.contains(&known) {
                chosen.push(known);
            }
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_specimen_conditions(specimen.id, &chosen).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::SpecimenCondition,
            entity: "specimen",
            entity_id: accession,
            patient_id: None,
            before: audit::state(&audit::Conditions { conditions: &specimen.conditions }),
            after: audit::state(&audit::Conditions { conditions: &chosen }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

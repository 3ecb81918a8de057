//! Quality control at the bench: control materials and targets, QC runs judged by the
//! Westgard multirules the moment they arrive, the lockout a rejection raises, corrective
//! actions, Levey-Jennings data with monthly statistics and sigma metrics, and patient moving
//! averages that can raise the same lockout.
//!
//! A lockout is a fact derived from the record, never a flag someone can forget to clear: a
//! test on an instrument is locked from its latest rejected run until a corrective action is
//! documented after it *and* a QC run after that action is acceptable. While locked, the
//! patient results of that test on that instrument since the last good QC before the
//! rejection are neither autoverified nor released.

use std::collections::BTreeMap;

use cuvette_domain::Action;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::autoverify::QcState;
use cuvette_domain::number::{NumberRules, parse_entry};
use cuvette_domain::qc::{
    ControlResult, ControlRule, ControlStatistics, CorrectiveAction, MovingAverageRule, QcStatus,
    RUNS_TO_ESTABLISH_TARGET, RecordedViolation, RuleSet, RunSource, SigmaRecommendation,
    TargetSource, Violation, WestgardRule, evaluate_run, moving_average, recommend, sigma_metric,
    statistics, z_score,
};
use cuvette_domain::time::Timestamp;
use cuvette_store::{
    CorrectiveActionRow, MaterialRow, MovingAverageRow, NewAuditEvent, NewMaterial, NewQcRun,
    PatientResultRow, QcFacts, QcPoint, QcRunRow, TargetRow,
};
use jiff::SignedDuration;

use crate::audit;
use crate::{Actor, AppError, AppResult, Lab};

/// How long an acceptable QC run covers patient results: without QC in this window,
/// autoverification holds (CLIA: at least two levels every day of testing).
pub const QC_INTERVAL_HOURS: i64 = 24;

/// How long QC facts read from the database are trusted, in seconds, for what other processes
/// record.
pub const QC_FACTS_FRESH_SECONDS: i64 = 5;

/// QC facts kept in memory: when they were read, and what.
pub(crate) type QcFactsCache = std::sync::Mutex<Option<(Timestamp, std::sync::Arc<Vec<QcFacts>>)>>;

/// The longest a corrective action's note may be.
const NOTE_LEN_MAX: usize = 2000;

/// A material to add, as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MaterialForm {
    /// Product name.
    pub product: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Lot number.
    pub lot: String,
    /// Level, 1 to 3.
    pub level: String,
    /// Expiry date, ISO (YYYY-MM-DD).
    pub expires_on: String,
    /// The vial's barcode.
    pub sample_id: String,
}

/// A moving-average rule as typed: every field as text, read by
/// [`MovingAverageForm::rule`] so the form and any other caller refuse the same input with the
/// same words.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct MovingAverageForm {
    /// The instrument's id.
    pub instrument_id: String,
    /// A numeric, measured test of the catalog.
    pub test_code: String,
    /// How many patient results each average covers.
    pub window_size: String,
    /// Results below this are left out of the average (empty: none).
    pub truncate_low: String,
    /// Results above this are left out of the average (empty: none).
    pub truncate_high: String,
    /// The target average.
    pub target: String,
    /// The lower control limit.
    pub lower_limit: String,
    /// The upper control limit.
    pub upper_limit: String,
}

impl MovingAverageForm {
    /// Reads the form into a rule for a test of `catalog`, or says what is wrong with each
    /// field, in the lab's words. The limits' order and the window's range are checked when
    /// the rule is set ([`Lab::set_moving_average`]).
    pub fn rule(
        &self,
        catalog: &cuvette_domain::Catalog,
    ) -> Result<MovingAverageRow, Vec<crate::FieldError>> {
        let mut errors = Vec::new();
        let error = |field: &str, message: &str| crate::FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        let instrument_id = self.instrument_id.trim().parse::<i64>().ok();
        if instrument_id.is_none() {
            errors.push(error("instrument_id", "choose the instrument"));
        }
        let test_code = self.test_code.trim();
        let numeric = catalog.test(test_code).is_some_and(|t| {
            !t.is_calculated() && t.result_type == cuvette_domain::catalog::ResultType::Numeric
        });
        if !numeric {
            errors.push(error("test_code", "choose a numeric test from the catalog"));
        }
        let window_size = self.window_size.trim().parse::<i64>().ok();
        if window_size.is_none() {
            errors.push(error("window_size", "give the number of results to average, 5 to 500"));
        }
        // A number, or empty for none; `Err` when typed but not a number (said in `errors`).
        let optional =
            |field: &str, text: &str, errors: &mut Vec<crate::FieldError>| match parse_entry(
                text,
                NumberRules::Plain,
            ) {
                Ok(n) => Ok(Some(n.to_f64())),
                Err(cuvette_domain::number::NumberError::Empty) => Ok(None),
                Err(e) => {
                    errors.push(crate::FieldError { field: field.into(), message: e.to_string() });
                    Err(())
                }
            };
        let required = |field: &str, text: &str, what: &str, errors: &mut Vec<_>| {
            let value = optional(field, text, errors);
            if let Ok(None) = value {
                errors.push(crate::FieldError {
                    field: field.into(),
                    message: format!("give {what}"),
                });
            }
            value
        };
        let truncate_low = optional("truncate_low", &self.truncate_low, &mut errors);
        let truncate_high = optional("truncate_high", &self.truncate_high, &mut errors);
        let target = required("target", &self.target, "the target average", &mut errors);
        let lower_limit =
            required("lower_limit", &self.lower_limit, "the lower control limit", &mut errors);
        let upper_limit =
            required("upper_limit", &self.upper_limit, "the upper control limit", &mut errors);
        if let (Ok(Some(low)), Ok(Some(high))) = (truncate_low, truncate_high)
            && low >= high
        {
            errors.push(crate::FieldError {
                field: "truncate_high".into(),
                message: "the upper truncation limit must be above the lower".into(),
            });
        }
        match (instrument_id, window_size, target, lower_limit, upper_limit) {
            (
                Some(instrument_id),
                Some(window_size),
                Ok(Some(target)),
                Ok(Some(lower_limit)),
                Ok(Some(upper_limit)),
            ) if errors.is_empty() => Ok(MovingAverageRow {
                instrument_id,
                test_code: test_code.to_owned(),
                window_size,
                truncate_low: truncate_low.ok().flatten(),
                truncate_high: truncate_high.ok().flatten(),
                target,
                lower_limit,
                upper_limit,
            }),
            _ => Err(errors),
        }
    }
}

/// The lockout and QC state of one test on one instrument.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QcStanding {
    /// The facts it is derived from.
    pub facts: QcFacts,
    /// Whether patient results are held.
    pub locked: bool,
    /// In words: what the bench must do next.
    pub reason: String,
}

impl QcStanding {
    /// Derives the standing from the record at `now`.
    pub fn from_facts(facts: QcFacts, now: Timestamp) -> QcStanding {
        if let Some(rejected) = facts.last_rejected {
            let acted = facts.last_action.filter(|a| *a > rejected);
            let passed_after = acted.and_then(|a| facts.last_good.filter(|g| *g > a));
            if passed_after.is_none() {
                let reason = if acted.is_none() {
                    format!(
                        "QC rejected for {} on {}: document a corrective action, then run QC",
                        facts.test_code, facts.instrument_name
                    )
                } else {
                    format!(
                        "corrective action documented for {} on {}: run QC; results stay held until it is acceptable",
                        facts.test_code, facts.instrument_name
                    )
                };
                return QcStanding { facts, locked: true, reason };
            }
        }
        let reason = match (facts.last_good, &facts.last_run) {
            (None, _) => "no acceptable QC yet".to_owned(),
            (Some(good), _) if now.since(good) > SignedDuration::from_hours(QC_INTERVAL_HOURS) => {
                format!("no acceptable QC in the last {QC_INTERVAL_HOURS} h: run QC")
            }
            (_, Some((_, QcStatus::Warning))) => {
                "accepted with a 1-2s warning: look at the chart".to_owned()
            }
            (Some(_), None | Some((_, QcStatus::Accepted | QcStatus::Rejected))) => {
                "QC acceptable".to_owned()
            }
        };
        QcStanding { facts, locked: false, reason }
    }

    /// The standing as it was at `at`, replayed from a test's runs on an instrument and the
    /// times of its corrective actions (for judging history as it was).
    pub fn at(
        (instrument_id, instrument_name): (i64, &str),
        test_code: &str,
        runs: &[QcRunRow],
        actions: &[Timestamp],
        at: Timestamp,
    ) -> QcStanding {
        let before: Vec<&QcRunRow> = runs.iter().filter(|r| r.at <= at).collect();
        let max = |pick: &dyn Fn(&&QcRunRow) -> bool| {
            before.iter().filter(|r| pick(r)).map(|r| r.at).max()
        };
        let last_rejected = max(&|r| !r.status.is_acceptable());
        let latest = before.iter().max_by_key(|r| (r.at, r.id));
        let facts = QcFacts {
            instrument_id,
            instrument_name: instrument_name.to_owned(),
            test_code: test_code.to_owned(),
            last_rejected,
            last_good: max(&|r| r.status.is_acceptable()),
            last_action: actions.iter().copied().filter(|a| *a <= at).max(),
            last_run: latest.map(|r| (r.at, r.status)),
            good_before_reject: last_rejected
                .and_then(|rejected| max(&|r| r.status.is_acceptable() && r.at < rejected)),
        };
        QcStanding::from_facts(facts, at)
    }

    /// What autoverification makes of it.
    pub fn state(&self, now: Timestamp) -> QcState {
        if self.locked {
            return QcState::Rejected { reason: self.reason.clone() };
        }
        match self.facts.last_good {
            Some(good) if now.since(good) <= SignedDuration::from_hours(QC_INTERVAL_HOURS) => {
                match &self.facts.last_run {
                    Some((_, QcStatus::Warning)) => QcState::Warning { rule: "1-2s".into() },
                    Some((_, QcStatus::Accepted | QcStatus::Rejected)) | None => {
                        QcState::Acceptable
                    }
                }
            }
            _ => QcState::NoQc,
        }
    }

    /// Whether a patient result entered at `entered_at` is held by this lockout: entered
    /// after the last good QC before the rejection.
    pub fn holds(&self, entered_at: Timestamp) -> bool {
        self.locked && self.facts.good_before_reject.is_none_or(|good| entered_at > good)
    }
}

/// A QC run checked against its targets, with what judging it needs.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRun {
    instrument_id: i64,
    test_code: String,
    current: Vec<(TargetRow, f64)>,
    rules: RuleSet,
    history: Vec<ControlResult>,
}

impl PreparedRun {
    /// Control results in the run.
    pub(crate) fn len(&self) -> usize {
        self.current.len()
    }
}

/// Whether a sample id matches an instrument's QC pattern (`*` any run of characters, `?`
/// one character, everything else itself; case-sensitive, as barcodes are).
pub fn matches_qc_pattern(pattern: &str, sample_id: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), sample_id.chars().collect());
    !p.is_empty() && go(&p, &s)
}

/// One run's verdict, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QcRunOutcome {
    /// The run.
    pub run_id: i64,
    /// Accepted, warning or rejected.
    pub status: QcStatus,
    /// What was violated.
    pub violations: Vec<Violation>,
}

/// A line of the QC overview: one test on one instrument with its levels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QcLine {
    /// Instrument.
    pub instrument_id: i64,
    /// Its name.
    pub instrument_name: String,
    /// Catalog test.
    pub test_code: String,
    /// The levels' targets.
    pub targets: Vec<TargetRow>,
    /// Lockout and QC state.
    pub standing: Option<QcStanding>,
}

/// Statistics of one calendar month in the lab's zone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonthStatistics {
    /// "2026-11".
    pub month: String,
    /// n, mean, SD, CV, bias.
    pub stats: ControlStatistics,
}

/// Everything a Levey-Jennings page shows for one target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeveyJenningsData {
    /// The target (material level on a test and instrument).
    pub target: TargetRow,
    /// Every result of that level in the period, all lots, in order.
    pub points: Vec<QcPoint>,
    /// Where the lot changes: (time, "lot 4471").
    pub lot_changes: Vec<(Timestamp, String)>,
    /// This target's statistics per month.
    pub months: Vec<MonthStatistics>,
    /// This target's statistics over the period.
    pub period: Option<ControlStatistics>,
    /// Allowable total error, percent.
    pub tea_percent: Option<f64>,
    /// Sigma metric over the period.
    pub sigma: Option<f64>,
    /// What Westgard Sigma Rules recommend for that sigma.
    pub recommendation: Option<SigmaRecommendation>,
    /// The rules configured for the test.
    pub rules: RuleSet,
    /// Results on this target so far, toward the lab's own target.
    pub runs_on_target: usize,
    /// The lab's own mean and SD from its first runs, once there are enough.
    pub lab_target: Option<(f64, f64)>,
}

/// The lockout screen of one test on one instrument.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockoutView {
    /// Its standing.
    pub standing: QcStanding,
    /// Patient results since the last good QC before the rejection: re-run where needed.
    pub suspect_results: Vec<PatientResultRow>,
    /// Corrective actions, newest first.
    pub actions: Vec<CorrectiveActionRow>,
    /// Latest runs, newest first.
    pub runs: Vec<QcRunRow>,
}

/// One point of a moving-average chart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AveragePoint {
    /// When the newest result in the window was entered.
    pub at: Timestamp,
    /// The average.
    pub average: f64,
    /// Beyond the control limits.
    pub out_of_control: bool,
}

fn parse_level(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok().filter(|l| (1..=3).contains(l))
}

impl Lab {
    /// Adds a control material lot at one level (QC set-up).
    pub async fn add_material(&self, actor: &Actor, form: &MaterialForm) -> AppResult<i64> {
        self.require(actor, Action::ManageQc)?;
        let mut errors = Vec::new();
        for (field, value) in [
            ("product", &form.product),
            ("manufacturer", &form.manufacturer),
            ("lot", &form.lot),
            ("sample_id", &form.sample_id),
        ] {
            if value.trim().is_empty() {
                errors.push(crate::FieldError { field: field.into(), message: "required".into() });
            } else if value.len() > 120 {
                errors.push(crate::FieldError {
                    field: field.into(),
                    message: "at most 120 characters".into(),
                });
            }
        }
        let level = parse_level(&form.level);
        if level.is_none() {
            errors.push(crate::FieldError {
                field: "level".into(),
                message: "the level is 1, 2 or 3".into(),
            });
        }
        if form.expires_on.trim().parse::<jiff::civil::Date>().is_err() {
            errors.push(crate::FieldError {
                field: "expires_on".into(),
                message: "give the expiry date as YYYY-MM-DD".into(),
            });
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_material(
                &NewMaterial {
                    product: form.product.trim(),
                    manufacturer: form.manufacturer.trim(),
                    lot: form.lot.trim(),
                    level: level.unwrap_or(1),
                    expires_on: form.expires_on.trim(),
                    sample_id: form.sample_id.trim(),
                },
                now,
            )
            .await
            .map_err(|e| match e {
                cuvette_store::StoreError::Conflict(m) => AppError::invalid("sample_id", m),
                e => e.into(),
            })?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcMaterialAdd,
            entity: "qc_material",
            entity_id: id.to_string(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::MaterialAdded {
                product: form.product.trim(),
                lot: form.lot.trim(),
                level,
                expires_on: form.expires_on.trim(),
                sample_id: form.sample_id.trim(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Sets the target mean and SD of a material for a test on an instrument, as the
    /// manufacturer's insert gives them.
    pub async fn set_target(
        &self,
        actor: &Actor,
        material_id: i64,
        instrument_id: i64,
        test_code: &str,
        mean: &str,
        sd: &str,
    ) -> AppResult<i64> {
        self.require(actor, Action::ManageQc)?;
        let catalog = self.catalog();
        let mut errors = Vec::new();
        if catalog.catalog.test(test_code).is_none_or(|d| d.is_calculated()) {
            errors.push(crate::FieldError {
                field: "test_code".into(),
                message: format!("{test_code:?} is not a measured test in the catalog"),
            });
        }
        let mean_value = match parse_entry(mean, NumberRules::Plain) {
            Ok(n) => Some(n.to_f64()),
            Err(e) => {
                errors.push(crate::FieldError { field: "mean".into(), message: e.to_string() });
                None
            }
        };
        let sd_value = match parse_entry(sd, NumberRules::Plain) {
            Ok(n) if n.value.is_sign_positive() && !n.value.is_zero() => Some(n.to_f64()),
            Ok(_) => {
                errors.push(crate::FieldError {
                    field: "sd".into(),
                    message: "give the SD as a number above 0".into(),
                });
                None
            }
            Err(e) => {
                errors.push(crate::FieldError { field: "sd".into(), message: e.to_string() });
                None
            }
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        self.store.instrument(instrument_id).await.map_err(|_| {
            AppError::invalid("instrument_id", "no such instrument: add it under Interfaces")
        })?;
        if !self.store.materials().await?.iter().any(|m| m.id == material_id) {
            return Err(AppError::invalid("material_id", "no such control material: add it first"));
        }
        let (mean, sd) = (mean_value.unwrap_or_default(), sd_value.unwrap_or(1.0));
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx
            .upsert_target(
                material_id,
                instrument_id,
                test_code,
                mean,
                sd,
                TargetSource::Manufacturer,
                &actor.name,
                now,
            )
            .await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcTargetSet,
            entity: "qc_target",
            entity_id: id.to_string(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::TargetSet {
                material_id,
                instrument_id,
                test: test_code,
                mean,
                sd,
                source: "manufacturer",
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Switches a target to the lab's own mean and SD, from its first
    /// [`RUNS_TO_ESTABLISH_TARGET`] results (the visible switch-over from the insert's values).
    pub async fn adopt_lab_target(&self, actor: &Actor, target_id: i64) -> AppResult<(f64, f64)> {
        self.require(actor, Action::ManageQc)?;
        let target = self.store.target(target_id).await?;
        let values = self.target_values(&target).await?;
        let Some((mean, sd)) = cuvette_domain::qc::establish_target(&values) else {
            return Err(AppError::Refused(format!(
                "{} of {RUNS_TO_ESTABLISH_TARGET} results on this lot so far: keep the manufacturer's target until there are {RUNS_TO_ESTABLISH_TARGET}",
                values.len()
            )));
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.upsert_target(
            target.material.id,
            target.instrument_id,
            &target.test_code,
            mean,
            sd,
            TargetSource::Lab,
            &actor.name,
            now,
        )
        .await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcTargetAdoptLab,
            entity: "qc_target",
            entity_id: target_id.to_string(),
            patient_id: None,
            before: audit::state(&audit::Target {
                mean: target.mean,
                sd: target.sd,
                source: target.source,
            }),
            after: audit::state(&audit::TargetAdopted {
                mean,
                sd,
                source: "lab",
                runs: RUNS_TO_ESTABLISH_TARGET,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok((mean, sd))
    }

    async fn target_values(&self, target: &TargetRow) -> AppResult<Vec<f64>> {
        Ok(self
            .store
            .qc_points_of_level(
                target.instrument_id,
                &target.test_code,
                target.material.level,
                Timestamp::EPOCH,
                Timestamp::from_micros(i64::MAX),
            )
            .await?
            .into_iter()
            .filter(|p| p.target_id == target.id)
            .map(|p| p.value)
            .collect())
    }

    /// Sets the Westgard rules a test's QC is judged by ("1-2s,1-3s,2-2s,R-4s,4-1s,10x").
    pub async fn set_westgard_rules(
        &self,
        actor: &Actor,
        test_code: &str,
        rules: &str,
    ) -> AppResult<RuleSet> {
        self.require(actor, Action::ManageQc)?;
        let parsed =
            RuleSet::parse(rules).map_err(|e| AppError::invalid("rules", e.to_string()))?;
        let before = self.store.qc_rules(test_code).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_qc_rules(test_code, &parsed, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcRulesSet,
            entity: "qc_rules",
            entity_id: test_code.to_owned(),
            patient_id: None,
            before: before.and_then(|b| audit::state(&audit::QcRules { rules: b.to_string() })),
            after: audit::state(&audit::QcRules { rules: parsed.to_string() }),
        })
        .await?;
        tx.commit().await?;
        Ok(parsed)
    }

    /// The rules a test's QC is judged by: the lab's, or the classic multirule (the
    /// three-level set when the test has three levels on the instrument).
    pub async fn westgard_rules(&self, test_code: &str, levels: usize) -> AppResult<RuleSet> {
        if let Some(rules) = self.store.qc_rules(test_code).await? {
            return Ok(rules);
        }
        Ok(if levels >= 3 { RuleSet::three_level() } else { RuleSet::classic() })
    }

    /// Records a QC run typed at the bench: one value per target (level).
    pub async fn record_qc(
        &self,
        actor: &Actor,
        instrument_id: i64,
        test_code: &str,
        values: &[(i64, String)],
    ) -> AppResult<QcRunOutcome> {
        self.require(actor, Action::RunQc)?;
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for (target_id, text) in values {
            if text.trim().is_empty() {
                continue; // a level not run this time
            }
            match parse_entry(text, NumberRules::Plain) {
                Ok(n) => parsed.push((*target_id, n.to_f64())),
                Err(e) => errors.push(crate::FieldError {
                    field: format!("value_{target_id}"),
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        if parsed.is_empty() {
            return Err(AppError::invalid("values", "enter at least one control value"));
        }
        self.judge_and_record_qc(actor, instrument_id, test_code, &parsed, RunSource::Manual).await
    }

    /// Judges a QC run against the rules and the history since the last corrective action,
    /// and records it with its verdict.
    pub(crate) async fn judge_and_record_qc(
        &self,
        actor: &Actor,
        instrument_id: i64,
        test_code: &str,
        values: &[(i64, f64)],
        source: RunSource,
    ) -> AppResult<QcRunOutcome> {
        let run = self.prepare_qc(instrument_id, test_code, values).await?;
        let mut tx = self.store.begin().await?;
        let outcome = self.write_qc(&mut tx, actor, &run, source).await?;
        tx.commit().await?;
        self.forget_qc_facts();
        Ok(outcome)
    }

    /// Checks a run's values against their targets and reads what judging it needs: the
    /// rules and the history since the last corrective action.
    pub(crate) async fn prepare_qc(
        &self,
        instrument_id: i64,
        test_code: &str,
        values: &[(i64, f64)],
    ) -> AppResult<PreparedRun> {
        let targets = self.store.targets(Some(instrument_id), Some(test_code)).await?;
        let today = self.today();
        let mut current = Vec::new();
        for (target_id, value) in values {
            let Some(target) = targets.iter().find(|t| t.id == *target_id) else {
                return Err(AppError::invalid(
                    "values",
                    format!("target {target_id} is not set for {test_code} on this instrument"),
                ));
            };
            if target.sd <= 0.0 {
                return Err(AppError::Refused(format!(
                    "level {} has no target SD: set the target first",
                    target.material.level
                )));
            }
            if target.material.expires_on.parse::<jiff::civil::Date>().is_ok_and(|d| d < today) {
                return Err(AppError::Refused(format!(
                    "control lot {} (level {}) expired on {}: open a new lot",
                    target.material.lot, target.material.level, target.material.expires_on
                )));
            }
            current.push((target.clone(), *value));
        }
        let levels =
            targets.iter().map(|t| t.material.level).collect::<std::collections::BTreeSet<_>>();
        let rules = self.westgard_rules(test_code, levels.len()).await?;
        let since = self
            .store
            .corrective_actions(instrument_id, test_code)
            .await?
            .first()
            .map_or(Timestamp::EPOCH, |a| a.at);
        let history: Vec<ControlResult> = self
            .store
            .qc_points(instrument_id, test_code, since)
            .await?
            .iter()
            .filter(|p| p.z.is_finite())
            .map(|p| ControlResult { id: p.id, run: p.run_id, level: p.level as u8, z: p.z })
            .collect();
        Ok(PreparedRun { instrument_id, test_code: test_code.to_owned(), current, rules, history })
    }

    /// Stores a prepared run and its results inside `tx`, then judges it (so the verdict
    /// names the results' real ids and the run's number) and records the verdict.
    pub(crate) async fn write_qc(
        &self,
        tx: &mut cuvette_store::Tx,
        actor: &Actor,
        run_in: &PreparedRun,
        source: RunSource,
    ) -> AppResult<QcRunOutcome> {
        let (instrument_id, test_code) = (run_in.instrument_id, run_in.test_code.as_str());
        let now = self.now_at();
        let run_id = tx
            .insert_qc_run(&NewQcRun {
                instrument_id,
                test_code,
                at: now,
                status: QcStatus::Accepted,
                violations: &[],
                entered_by: &actor.name,
                source,
            })
            .await?;
        let mut run = Vec::with_capacity(run_in.current.len());
        for (target, value) in &run_in.current {
            let z = z_score(*value, target.mean, target.sd);
            let id = tx
                .insert_qc_result(run_id, target.id, *value, target.mean, target.sd, z, &[])
                .await?;
            run.push(ControlResult { id, run: run_id, level: target.material.level as u8, z });
        }
        let verdict = evaluate_run(&run_in.history, &run, &run_in.rules);
        let status = verdict.status;
        let rules_by_result: Vec<(i64, Vec<WestgardRule>)> = run
            .iter()
            .map(|r| {
                let hit: Vec<WestgardRule> = verdict
                    .violations
                    .iter()
                    .filter(|v| v.results.contains(&r.id))
                    .map(|v| v.rule)
                    .collect();
                (r.id, hit)
            })
            .filter(|(_, rules)| !rules.is_empty())
            .collect();
        let violations = verdict.violations;
        let recorded: Vec<RecordedViolation> = violations.iter().map(Into::into).collect();
        tx.judge_qc_run(run_id, status, &recorded, &rules_by_result).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: if status == QcStatus::Rejected {
                AuditAction::QcRunReject
            } else {
                AuditAction::QcRun
            },
            entity: "qc_run",
            entity_id: format!("{test_code}/{instrument_id}/{run_id}"),
            patient_id: None,
            before: None,
            after: audit::state(&audit::QcRunJudged {
                status: status.code(),
                values: run_in
                    .current
                    .iter()
                    .map(|(t, v)| audit::ControlValue {
                        level: t.material.level,
                        lot: &t.material.lot,
                        value: *v,
                    })
                    .collect(),
                violations: violations.iter().map(|v| v.detail.as_str()).collect(),
                source: source.code(),
            }),
        })
        .await?;
        Ok(QcRunOutcome { run_id, status: verdict.status, violations })
    }

    /// Sets the sample ids an instrument's control runs carry (`QC-*`; empty: it sends none).
    pub async fn set_qc_pattern(
        &self,
        actor: &Actor,
        instrument_id: i64,
        pattern: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::ManageQc)?;
        let pattern = pattern.trim();
        if pattern.chars().count() > 60 || pattern.chars().any(char::is_whitespace) {
            return Err(AppError::invalid(
                "qc_pattern",
                "a pattern of up to 60 characters without spaces, with * for any run of characters (QC-*)",
            ));
        }
        if !pattern.is_empty() && pattern.chars().all(|c| c == '*' || c == '?') {
            return Err(AppError::invalid(
                "qc_pattern",
                "that pattern matches every sample: patient results would be taken for QC",
            ));
        }
        let instrument = self.store.instrument(instrument_id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_qc_pattern(instrument_id, pattern).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentQcPattern,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: audit::state(&audit::QcPattern { qc_pattern: &instrument.qc_pattern }),
            after: audit::state(&audit::QcPattern { qc_pattern: pattern }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Documents what a technologist did about a QC failure. QC must then pass before the
    /// lockout lifts; Westgard history restarts here.
    pub async fn document_corrective_action(
        &self,
        actor: &Actor,
        instrument_id: i64,
        test_code: &str,
        action: &str,
        note: &str,
    ) -> AppResult<i64> {
        self.require(actor, Action::CorrectQc)?;
        let mut errors = Vec::new();
        let chosen = CorrectiveAction::parse(action.trim());
        if chosen.is_none() {
            errors.push(crate::FieldError {
                field: "action".into(),
                message: "choose what was done".into(),
            });
        }
        if chosen.is_some_and(CorrectiveAction::needs_note) && note.trim().is_empty() {
            errors.push(crate::FieldError {
                field: "note".into(),
                message: "describe what was done".into(),
            });
        }
        if note.len() > NOTE_LEN_MAX {
            errors.push(crate::FieldError {
                field: "note".into(),
                message: format!("at most {NOTE_LEN_MAX} characters"),
            });
        }
        let Some(action) = chosen.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_corrective_action(
                instrument_id,
                test_code,
                action,
                note.trim(),
                &actor.name,
                now,
            )
            .await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcCorrectiveAction,
            entity: "qc_corrective_action",
            entity_id: format!("{test_code}/{instrument_id}/{id}"),
            patient_id: None,
            before: None,
            after: audit::state(&audit::CorrectiveActionTaken { action, note: note.trim() }),
        })
        .await?;
        tx.commit().await?;
        self.forget_qc_facts();
        Ok(id)
    }

    /// The standing of every test with QC on an instrument (or all), by test.
    ///
    /// Every instrument result asks, so the facts are kept in memory: forgotten the moment
    /// this process records a QC run or a corrective action, and re-read at least every
    /// [`QC_FACTS_FRESH_SECONDS`] for what other processes on the same database record.
    pub async fn qc_standings(&self, instrument_id: Option<i64>) -> AppResult<Vec<QcStanding>> {
        let now = self.now_at();
        let cached = self
            .qc_facts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| {
                now.since(*at) < SignedDuration::from_secs(QC_FACTS_FRESH_SECONDS) && *at <= now
            })
            .map(|(_, facts)| facts.clone());
        let facts = match cached {
            Some(facts) => facts,
            None => {
                let facts = std::sync::Arc::new(self.store.qc_facts(None).await?);
                *self.qc_facts.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((now, facts.clone()));
                facts
            }
        };
        Ok(facts
            .iter()
            .filter(|f| instrument_id.is_none_or(|i| f.instrument_id == i))
            .map(|f| QcStanding::from_facts(f.clone(), now))
            .collect())
    }

    /// Forgets the QC facts kept in memory (after recording QC).
    pub(crate) fn forget_qc_facts(&self) {
        *self.qc_facts.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The QC overview: each test on each instrument with its levels and standing.
    pub async fn qc_overview(&self, actor: &Actor) -> AppResult<Vec<QcLine>> {
        self.require(actor, Action::ViewResults)?;
        let targets = self.store.targets(None, None).await?;
        let standings = self.qc_standings(None).await?;
        let mut lines: Vec<QcLine> = Vec::new();
        for t in targets {
            match lines
                .iter_mut()
                .find(|l| l.instrument_id == t.instrument_id && l.test_code == t.test_code)
            {
                Some(line) => line.targets.push(t),
                None => lines.push(QcLine {
                    instrument_id: t.instrument_id,
                    instrument_name: t.instrument_name.clone(),
                    test_code: t.test_code.clone(),
                    standing: standings
                        .iter()
                        .find(|s| {
                            s.facts.instrument_id == t.instrument_id
                                && s.facts.test_code == t.test_code
                        })
                        .cloned(),
                    targets: vec![t],
                }),
            }
        }
        // Moving-average lockouts on tests without control targets still show.
        for s in standings {
            if !lines.iter().any(|l| {
                l.instrument_id == s.facts.instrument_id && l.test_code == s.facts.test_code
            }) {
                lines.push(QcLine {
                    instrument_id: s.facts.instrument_id,
                    instrument_name: s.facts.instrument_name.clone(),
                    test_code: s.facts.test_code.clone(),
                    targets: Vec::new(),
                    standing: Some(s),
                });
            }
        }
        lines.sort_by(|a, b| {
            (b.standing.as_ref().is_some_and(|s| s.locked), &a.test_code, &a.instrument_name).cmp(
                &(a.standing.as_ref().is_some_and(|s| s.locked), &b.test_code, &b.instrument_name),
            )
        });
        Ok(lines)
    }

    /// The lockout screen of a test on an instrument.
    pub async fn lockout(
        &self,
        actor: &Actor,
        instrument_id: i64,
        test_code: &str,
    ) -> AppResult<LockoutView> {
        self.require(actor, Action::ViewResults)?;
        let standing = self
            .qc_standings(Some(instrument_id))
            .await?
            .into_iter()
            .find(|s| s.facts.test_code == test_code)
            .ok_or_else(|| {
                AppError::NotFound(format!("no QC recorded for {test_code} on this instrument"))
            })?;
        let since = if standing.locked {
            standing.facts.good_before_reject.unwrap_or(Timestamp::EPOCH)
        } else {
            Timestamp::from_micros(i64::MAX)
        };
        let suspect_results = if standing.locked {
            self.store.patient_results_since(instrument_id, test_code, since, 500).await?
        } else {
            Vec::new()
        };
        Ok(LockoutView {
            actions: self.store.corrective_actions(instrument_id, test_code).await?,
            runs: self.store.qc_runs(instrument_id, test_code, 20).await?,
            standing,
            suspect_results,
        })
    }

    /// The Levey-Jennings data of a target over `[from, to)`.
    pub async fn levey_jennings(
        &self,
        actor: &Actor,
        target_id: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<LeveyJenningsData> {
        self.require(actor, Action::ViewResults)?;
        let target = self.store.target(target_id).await?;
        let points = self
            .store
            .qc_points_of_level(
                target.instrument_id,
                &target.test_code,
                target.material.level,
                from,
                to,
            )
            .await?;
        let mut lot_changes = Vec::new();
        for pair in points.windows(2) {
            if pair[0].lot != pair[1].lot {
                lot_changes.push((pair[1].at, format!("lot {}", pair[1].lot)));
            }
        }
        let zone = self.config.time_zone.clone();
        let mut by_month: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for p in points.iter().filter(|p| p.target_id == target.id) {
            let month =
                p.at.to_jiff()
                    .map(|t| t.to_zoned_datetime(zone.clone()).strftime("%Y-%m").to_string())
                    .unwrap_or_default();
            by_month.entry(month).or_default().push(p.value);
        }
        let months = by_month
            .iter()
            .filter_map(|(month, values)| {
                Some(MonthStatistics {
                    month: month.clone(),
                    stats: statistics(values, Some(target.mean))?,
                })
            })
            .collect();
        let all: Vec<f64> = by_month.values().flatten().copied().collect();
        let period = statistics(&all, Some(target.mean));
        let catalog = self.catalog();
        let definition = catalog.catalog.test(&target.test_code);
        let tea_percent = definition.and_then(|d| {
            use rust_decimal::prelude::ToPrimitive;
            d.tea_percent
                .and_then(|p| p.to_f64())
                .or_else(|| Some(d.tea_absolute?.to_f64()? / target.mean.abs() * 100.0))
        });
        let sigma = match (&period, tea_percent) {
            (Some(s), Some(tea)) if s.n >= 2 => {
                sigma_metric(tea, s.bias_percent.unwrap_or(0.0), s.cv_percent)
            }
            _ => None,
        };
        let levels = self
            .store
            .targets(Some(target.instrument_id), Some(&target.test_code))
            .await?
            .iter()
            .map(|t| t.material.level)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let recommendation = sigma.map(|s| recommend(s, levels as u8));
        let rules = self.westgard_rules(&target.test_code, levels).await?;
        let values = self.target_values(&target).await?;
        Ok(LeveyJenningsData {
            lab_target: cuvette_domain::qc::establish_target(&values),
            runs_on_target: values.len(),
            target,
            points,
            lot_changes,
            months,
            period,
            tea_percent,
            sigma,
            recommendation,
            rules,
        })
    }

    /// Sets (or replaces) the moving-average rule of a test on an instrument from the form
    /// as typed; a field that does not read refuses the whole rule, naming the field.
    pub async fn set_moving_average_as_typed(
        &self,
        actor: &Actor,
        form: &MovingAverageForm,
    ) -> AppResult<()> {
        self.require(actor, Action::ManageQc)?;
        let rule = form.rule(&self.catalog().catalog).map_err(AppError::Invalid)?;
        self.set_moving_average(actor, &rule).await
    }

    /// Sets (or replaces) the moving-average rule of a test on an instrument.
    pub async fn set_moving_average(
        &self,
        actor: &Actor,
        rule: &MovingAverageRow,
    ) -> AppResult<()> {
        self.require(actor, Action::ManageQc)?;
        let mut errors = Vec::new();
        if !(5..=500).contains(&rule.window_size) {
            errors.push(crate::FieldError {
                field: "window_size".into(),
                message: "average 5 to 500 results".into(),
            });
        }
        if !(rule.lower_limit < rule.target && rule.target < rule.upper_limit) {
            errors.push(crate::FieldError {
                field: "target".into(),
                message: "the target must lie between the lower and upper limits".into(),
            });
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_moving_average_rule(rule, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QcMovingAverageSet,
            entity: "moving_average_rule",
            entity_id: format!("{}/{}", rule.test_code, rule.instrument_id),
            patient_id: None,
            before: None,
            after: audit::state(rule),
        })
        .await?;
        tx.commit().await?;
        self.reload_rules().await?;
        Ok(())
    }

    /// The control materials on file, active or not: product, lot and level.
    pub async fn qc_materials(&self, actor: &Actor) -> AppResult<Vec<MaterialRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.materials().await?)
    }

    /// The targets in force, each with its material and instrument; narrowed to one
    /// instrument and one test when they are given.
    pub async fn qc_targets(
        &self,
        actor: &Actor,
        instrument_id: Option<i64>,
        test_code: Option<&str>,
    ) -> AppResult<Vec<TargetRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.targets(instrument_id, test_code).await?)
    }

    /// The moving-average rules set on every instrument.
    pub async fn moving_average_rules(&self, actor: &Actor) -> AppResult<Vec<MovingAverageRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.moving_average_rules(None).await?)
    }

    /// The moving average of patient results of a test on an instrument (newest `limit`
    /// results), oldest first, with the rule; `None` when no rule is set.
    pub async fn moving_average_series(
        &self,
        actor: &Actor,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> AppResult<Option<(MovingAverageRow, Vec<AveragePoint>)>> {
        self.require(actor, Action::ViewResults)?;
        let Some(rule) = self
            .store
            .moving_average_rules(Some(instrument_id))
            .await?
            .into_iter()
            .find(|r| r.test_code == test_code)
        else {
            return Ok(None);
        };
        let points = self.averages(&rule, limit).await?;
        Ok(Some((rule, points)))
    }

    async fn averages(&self, rule: &MovingAverageRow, limit: i64) -> AppResult<Vec<AveragePoint>> {
        let mut recent =
            self.store.recent_patient_values(rule.instrument_id, &rule.test_code, limit).await?;
        recent.reverse();
        let values: Vec<f64> = recent.iter().map(|r| r.2).collect();
        let domain_rule = MovingAverageRule {
            window: rule.window_size as usize,
            truncate_low: rule.truncate_low,
            truncate_high: rule.truncate_high,
            target: rule.target,
            lower_limit: rule.lower_limit,
            upper_limit: rule.upper_limit,
        };
        Ok(moving_average(&domain_rule, &values)
            .into_iter()
            .map(|p| AveragePoint {
                at: recent[p.index].1,
                average: p.average,
                out_of_control: p.out_of_control,
            })
            .collect())
    }

    /// After patient results from an instrument are stored: checks the moving averages of
    /// their tests, and records an out-of-control average as a rejected run (the lockout).
    pub(crate) async fn check_moving_averages(
        &self,
        instrument_id: i64,
        test_codes: &[String],
    ) -> AppResult<()> {
        let rules = self.moving_average_rules_cached(instrument_id).await?;
        for rule in rules.iter().filter(|r| test_codes.contains(&r.test_code)) {
            let points = self.averages(rule, rule.window_size).await?;
            let Some(last) = points.last() else { continue };
            if !last.out_of_control {
                continue;
            }
            let standing = self
                .qc_standings(Some(instrument_id))
                .await?
                .into_iter()
                .find(|s| s.facts.test_code == rule.test_code);
            if standing.is_some_and(|s| s.locked) {
                continue; // already held; one rejection is enough
            }
            let detail = format!(
                "patient moving average of {} over {} results is {:.2}, outside {}–{}",
                rule.test_code, rule.window_size, last.average, rule.lower_limit, rule.upper_limit
            );
            let now = self.now_at();
            let violations =
                [RecordedViolation { rule: ControlRule::MovingAverage, detail: detail.clone() }];
            let mut tx = self.store.begin().await?;
            let run_id = tx
                .insert_qc_run(&NewQcRun {
                    instrument_id,
                    test_code: &rule.test_code,
                    at: now,
                    status: QcStatus::Rejected,
                    violations: &violations,
                    entered_by: "system",
                    source: RunSource::PatientAverage,
                })
                .await?;
            tx.audit(NewAuditEvent {
                at: now,
                actor: "system",
                action: AuditAction::QcRunReject,
                entity: "qc_run",
                entity_id: format!("{}/{instrument_id}/{run_id}", rule.test_code),
                patient_id: None,
                before: None,
                after: audit::state(&audit::MovingAverageRejected {
                    status: "rejected",
                    source: "patient_average",
                    violations: [&detail],
                }),
            })
            .await?;
            tx.commit().await?;
            self.forget_qc_facts();
            tracing::warn!(test = %rule.test_code, instrument_id, "patient moving average out of control: results held");
        }
        Ok(())
    }

    /// Today in the lab's zone: licences lapse and competency falls due when it passes.
    pub(crate) fn today(&self) -> jiff::civil::Date {
        self.clock.now().to_zoned_datetime(self.config.time_zone.clone()).date()
    }
}

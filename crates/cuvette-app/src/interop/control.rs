//! Control (QC) samples from instruments. An instrument's control runs carry sample ids that
//! match the pattern configured for it under QC (say `QC-*`); their results are QC results,
//! judged by the Westgard rules the moment they arrive and recorded with the message log entry
//! in one transaction, never mistaken for a patient's.

use std::collections::BTreeMap;

use cuvette_domain::number::{NumberRules, parse_entry};
use cuvette_domain::value::Numeric;
use cuvette_store::MessageOutcome;

use crate::qc::{PreparedRun, matches_qc_pattern};
use crate::{AppError, AppResult, Lab};

use super::{
    Inbound, Ingested, MessageRecord, NO_VALUE_STATUSES, Refusal, instrument_actor, unit_of_result,
};

/// What a control message carries, checked: the instrument and one prepared run per test.
pub(super) struct ControlRuns {
    instrument: cuvette_store::InstrumentRow,
    runs: Vec<PreparedRun>,
    summary: Vec<String>,
}

impl Lab {
    /// `None` when the message is not from an instrument's control run; otherwise the runs to
    /// record, or why the message must be quarantined.
    pub(super) async fn plan_control_runs(
        &self,
        msg: &Inbound<'_>,
        (instrument, codes): &(cuvette_store::InstrumentRow, Vec<cuvette_store::TestCodeRow>),
    ) -> AppResult<Option<Result<ControlRuns, Refusal>>> {
        let Some(first) = msg.results.first() else { return Ok(None) };
        // A disabled instrument's messages are refused on the one path that says so.
        if !instrument.active {
            return Ok(None);
        }
        if !matches_qc_pattern(&instrument.qc_pattern, first.accession.trim()) {
            return Ok(None);
        }
        let refuse = |refusal: Refusal| Ok(Some(Err(refusal)));
        let targets = self.store.targets(Some(instrument.id), None).await?;
        let catalog = self.catalog();
        // test code → (target id, value) of each level in the message
        let mut by_test: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for r in &msg.results {
            let sample = r.accession.trim();
            if !matches_qc_pattern(&instrument.qc_pattern, sample) {
                return refuse(Refusal::MixedSamples {
                    at: r.location.clone(),
                    control: first.accession.trim().to_owned(),
                    sample: sample.to_owned(),
                });
            }
            if NO_VALUE_STATUSES.contains(&r.status.as_str()) {
                continue;
            }
            let Some(map) = codes.iter().find(|c| c.instrument_code == r.instrument_code) else {
                return refuse(Refusal::UnmappedCode {
                    at: r.location.clone(),
                    code: r.instrument_code.clone(),
                    instrument: instrument.name.clone(),
                });
            };
            // Targets are in the catalog's unit: a control value is converted as a patient's is.
            let def = catalog.catalog.test(&map.test_code);
            let conversion = match unit_of_result(instrument, map, &r.unit, def, &r.location) {
                Ok(c) => c,
                Err(refusal) => return refuse(refusal),
            };
            let Some(material) = self.store.material_by_sample_id(sample).await? else {
                return refuse(Refusal::UnknownControl {
                    at: r.location.clone(),
                    sample: sample.to_owned(),
                });
            };
            let Some(target) = targets
                .iter()
                .find(|t| t.material.id == material.id && t.test_code == map.test_code)
            else {
                return refuse(Refusal::NoTarget {
                    at: r.location.clone(),
                    test: map.test_code.clone(),
                    product: material.product.clone(),
                    level: material.level.to_string(),
                    lot: material.lot.clone(),
                    instrument: instrument.name.clone(),
                });
            };
            // The one reading of a number: a control value is a plain number, never censored.
            let number = parse_entry(&r.value, NumberRules::Plain).ok().map(|n| n.value);
            let value = match &conversion {
                None => number,
                Some(c) => number.and_then(|v| c.convert(v)),
            }
            .map(|v| Numeric { comparator: None, value: v }.to_f64());
            let Some(value) = value else {
                return refuse(Refusal::ControlNotNumber {
                    at: r.location.clone(),
                    test: map.test_code.clone(),
                    value: r.value.clone(),
                });
            };
            by_test.entry(map.test_code.clone()).or_default().push((target.id, value));
        }
        if by_test.is_empty() {
            return refuse(Refusal::NoControlValues);
        }
        let mut runs = Vec::new();
        let mut summary = Vec::new();
        for (test, values) in by_test {
            match self.prepare_qc(instrument.id, &test, &values).await {
                Ok(run) => runs.push(run),
                Err(AppError::Refused(reason) | AppError::Conflict(reason)) => {
                    return refuse(Refusal::QcRefused { test, reason });
                }
                Err(AppError::Invalid(errors)) => {
                    let reason =
                        errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; ");
                    return refuse(Refusal::QcRefused { test, reason });
                }
                Err(e) => return Err(e),
            }
            summary.push(test);
        }
        Ok(Some(Ok(ControlRuns { instrument: instrument.clone(), runs, summary })))
    }

    /// Records the control runs of a message with its log entry and acknowledgement, in one
    /// transaction.
    pub(super) async fn ingest_control_runs(
        &self,
        msg: &Inbound<'_>,
        plan: ControlRuns,
        ack: &(dyn Fn(&Ingested) -> Vec<u8> + Sync),
        started: cuvette_domain::time::Timestamp,
    ) -> AppResult<(Ingested, Vec<u8>)> {
        let results = plan.runs.iter().map(|r| r.len()).sum::<usize>();
        let outcome =
            Ingested::Accepted { message_id: 0, results, skipped: Vec::new(), held: Vec::new() };
        let ack_bytes = ack(&outcome);
        let actor = instrument_actor(&plan.instrument);
        let mut tx = self.store.begin().await?;
        let mut verdicts = Vec::new();
        for (run, test) in plan.runs.iter().zip(&plan.summary) {
            let o = self
                .write_qc(&mut tx, &actor, run, cuvette_domain::qc::RunSource::Instrument)
                .await?;
            let rules: Vec<&str> = o.violations.iter().map(|v| v.rule.code()).collect();
            verdicts.push(match o.status {
                cuvette_domain::qc::QcStatus::Accepted => format!("{test} accepted"),
                cuvette_domain::qc::QcStatus::Warning => {
                    format!("{test} warning ({})", rules.join(", "))
                }
                cuvette_domain::qc::QcStatus::Rejected => {
                    format!("{test} REJECTED ({})", rules.join(", "))
                }
            });
        }
        let record = MessageRecord::inbound(
            msg,
            MessageOutcome::Accepted,
            format!("QC run: {}", verdicts.join("; ")),
            ack_bytes.clone(),
            msg.results.first().map(|r| r.accession.trim().to_owned()),
            0,
            None,
            started,
        );
        let Some(message_id) = self.log_message(&mut tx, &record).await? else {
            drop(tx);
            return self.stored_answer(msg, ack).await?.ok_or_else(|| {
                AppError::Conflict("the message was received twice at once".into())
            });
        };
        tx.commit().await?;
        self.forget_qc_facts();
        Ok((outcome.with_message_id(message_id), ack_bytes))
    }
}

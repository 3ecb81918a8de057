//! Critical values at the bench: the list of results waiting for their call with the time
//! each has waited, escalation when no call with read-back is documented within the lab's
//! limit, and the compliance report the lab's policy is measured by (CLIA 493.1291(g), Joint
//! Commission NPSG.02.03.01, CAP GEN.41320–41340; DOMAIN.md §7).

use cuvette_domain::Action;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::time::Timestamp;
use cuvette_store::{CriticalRow, NewAuditEvent};
use jiff::SignedDuration;

use crate::audit;
use crate::{Actor, AppResult, Lab};

/// A critical result still waiting for its call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingCall {
    /// The result and what was tried.
    pub row: CriticalRow,
    /// Minutes since the value was entered.
    pub minutes_waiting: i64,
    /// Past the lab's limit.
    pub overdue: bool,
}

/// Timeliness of critical calls over a period.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComplianceReport {
    /// The lab's limit, minutes.
    pub limit_minutes: i64,
    /// Critical results in the period.
    pub total: usize,
    /// Called with read-back within the limit.
    pub within_limit: usize,
    /// Called with read-back, but late.
    pub late: usize,
    /// Not called yet.
    pub uncalled: usize,
    /// Escalated for want of a call.
    pub escalated: usize,
    /// Median minutes from result to call (called ones).
    pub median_minutes: Option<i64>,
    /// 90th percentile.
    pub p90_minutes: Option<i64>,
    /// Per test: (code, total, within limit).
    pub by_test: Vec<(String, usize, usize)>,
    /// Every critical result with its call.
    pub rows: Vec<CriticalRow>,
}

impl ComplianceReport {
    /// Percent called within the limit, of all critical results.
    pub fn percent_within(&self) -> f64 {
        if self.total == 0 { 100.0 } else { self.within_limit as f64 * 100.0 / self.total as f64 }
    }
}

/// How far back the pending list looks, in days: a week of results.
const PENDING_LOOKBACK_DAYS: i64 = 7;

impl Lab {
    /// Critical results without a documented call (read back), oldest first.
    pub async fn pending_critical_calls(&self, actor: &Actor) -> AppResult<Vec<PendingCall>> {
        self.require(actor, Action::ViewResults)?;
        self.pending_calls().await
    }

    async fn pending_calls(&self) -> AppResult<Vec<PendingCall>> {
        let now = self.now_at();
        let limit = self.config.critical_call_minutes;
        Ok(self
            .store
            .critical_results(
                now - SignedDuration::from_hours(PENDING_LOOKBACK_DAYS * 24),
                now + SignedDuration::from_micros(1),
                true,
            )
            .await?
            .into_iter()
            .map(|row| {
                let minutes_waiting = now.minutes_since(row.entered_at);
                PendingCall { overdue: minutes_waiting >= limit, minutes_waiting, row }
            })
            .collect())
    }

    /// Records an escalation for every critical result past the limit without a call (once
    /// each), so the supervisor's list and the compliance report show it. Returns how many
    /// were escalated now. Runs every minute in the server, and whenever the list is read.
    pub async fn escalate_overdue_calls(&self) -> AppResult<usize> {
        let overdue: Vec<PendingCall> = self
            .pending_calls()
            .await?
            .into_iter()
            .filter(|p| p.overdue && p.row.escalated_at.is_none())
            .collect();
        if overdue.is_empty() {
            return Ok(0);
        }
        let now = self.now_at();
        let mut n = 0;
        let mut tx = self.store.begin().await?;
        for p in &overdue {
            if tx
                .insert_escalation(p.row.ordered_test_id, p.row.version, p.minutes_waiting, now)
                .await?
            {
                n += 1;
                tx.audit(NewAuditEvent {
                    at: now,
                    actor: "system",
                    action: AuditAction::CriticalEscalate,
                    entity: "result",
                    entity_id: format!("{}/{}", p.row.accession, p.row.test_code),
                    patient_id: Some(p.row.patient_id),
                    before: None,
                    after: audit::state(&audit::CriticalEscalated {
                        version: p.row.version,
                        value: &p.row.report_text,
                        minutes_waiting: p.minutes_waiting,
                        attempts: p.row.attempts,
                        limit_minutes: self.config.critical_call_minutes,
                    }),
                })
                .await?;
                tracing::warn!(accession = %p.row.accession, test = %p.row.test_code, minutes = p.minutes_waiting, "critical result not called within the limit: escalated");
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// How timely critical calls were for results entered in `[from, to)`.
    pub async fn critical_compliance(
        &self,
        actor: &Actor,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<ComplianceReport> {
        self.require(actor, Action::ViewResults)?;
        let limit = self.config.critical_call_minutes;
        let rows = self.store.critical_results(from, to, false).await?;
        let mut minutes: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.called_at.map(|c| c.minutes_since(r.entered_at)))
            .collect();
        minutes.sort_unstable();
        // Nearest rank: the smallest value with at least p % of the calls at or below it.
        let percentile = |p: usize| -> Option<i64> {
            let rank = (minutes.len() * p).div_ceil(100).max(1);
            minutes.get(rank - 1).copied()
        };
        let within = |r: &CriticalRow| {
            r.called_at.is_some_and(|c| c.since(r.entered_at) <= SignedDuration::from_mins(limit))
        };
        let mut by_test: Vec<(String, usize, usize)> = Vec::new();
        for r in &rows {
            match by_test.iter_mut().find(|t| t.0 == r.test_code) {
                Some(t) => {
                    t.1 += 1;
                    t.2 += usize::from(within(r));
                }
                None => by_test.push((r.test_code.clone(), 1, usize::from(within(r)))),
            }
        }
        by_test.sort();
        Ok(ComplianceReport {
            limit_minutes: limit,
            total: rows.len(),
            within_limit: rows.iter().filter(|r| within(r)).count(),
            late: rows.iter().filter(|r| r.called_at.is_some() && !within(r)).count(),
            uncalled: rows.iter().filter(|r| r.called_at.is_none()).count(),
            escalated: rows.iter().filter(|r| r.escalated_at.is_some()).count(),
            median_minutes: percentile(50),
            p90_minutes: percentile(90),
            by_test,
            rows,
        })
    }
}

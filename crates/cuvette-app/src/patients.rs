//! Registering and finding patients.

use cuvette_domain::Action;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::patient::{Mrn, Sex, parse_birth_date};
use cuvette_store::{NewAuditEvent, NewPatient, PatientRow, Tx};

use crate::audit;
use crate::{Actor, AppError, AppResult, FieldError, Lab};

/// The longest name part accepted.
pub const NAME_LEN_MAX: usize = 100;

/// A registration form, as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RegisterPatient {
    /// Medical record number.
    #[serde(default)]
    pub mrn: String,
    /// Family name.
    #[serde(default, alias = "family", alias = "last_name")]
    pub family_name: String,
    /// Given name.
    #[serde(default, alias = "given", alias = "first_name")]
    pub given_name: String,
    /// Date of birth (ISO or 14-Jul-1945).
    #[serde(default, alias = "dob", alias = "birthDate", alias = "date_of_birth")]
    pub birth_date: String,
    /// F, M or U.
    #[serde(default, alias = "gender")]
    pub sex: String,
}

/// A search, as typed in the one search box: an MRN, `family,given`, optionally followed by
/// a date of birth.
#[derive(Debug, Clone, Default)]
pub struct PatientQuery {
    /// The text typed or scanned.
    pub text: String,
}

impl Lab {
    /// Registers a patient after checking every field; errors name each field.
    pub async fn register_patient(
        &self,
        actor: &Actor,
        form: &RegisterPatient,
    ) -> AppResult<PatientRow> {
        self.require(actor, Action::RegisterPatient)?;
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        let mut errors = Vec::new();
        let mut err =
            |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
        let mrn = Mrn::parse(&form.mrn).map_err(|m| err("mrn", m)).ok();
        let family = form.family_name.trim();
        if family.is_empty() {
            err("family_name", "enter the family name".into());
        } else if family.chars().count() > NAME_LEN_MAX {
            err("family_name", format!("the family name is at most {NAME_LEN_MAX} characters"));
        }
        let given = form.given_name.trim();
        if given.chars().count() > NAME_LEN_MAX {
            err("given_name", format!("the given name is at most {NAME_LEN_MAX} characters"));
        }
        let birth_date =
            parse_birth_date(&form.birth_date, today).map_err(|m| err("birth_date", m)).ok();
        let sex = Sex::parse(&form.sex);
        if sex.is_none() {
            err("sex", "choose female, male or not known".into());
        }
        let (Some(mrn), Some(birth_date), Some(sex), true) =
            (mrn, birth_date, sex, errors.is_empty())
        else {
            return Err(AppError::Invalid(errors));
        };
        let birth = birth_date.to_string();
        let new = NewPatient {
            mrn: mrn.as_str(),
            family_name: family,
            given_name: given,
            birth_date: &birth,
            sex: sex.code(),
        };
        let mut tx = self.store.begin().await?;
        let id = self.register_in(&mut tx, actor, &new).await.map_err(|e| match e {
            AppError::Conflict(m) => AppError::invalid("mrn", m),
            other => other,
        })?;
        let row = PatientRow {
            id,
            mrn: mrn.to_string(),
            family_name: family.to_owned(),
            given_name: given.to_owned(),
            birth_date: birth,
            sex: sex.code().to_owned(),
        };
        tx.commit().await?;
        Ok(row)
    }

    /// Registers a patient inside `tx` with its audit event — at the front desk or from an
    /// interface; the fields were checked by the caller.
    pub(crate) async fn register_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        new: &cuvette_store::NewPatient<'_>,
    ) -> AppResult<i64> {
        let now = self.now_at();
        let id = tx.insert_patient(new, &actor.name, now).await?;
        let row = cuvette_store::PatientRow {
            id,
            mrn: new.mrn.to_owned(),
            family_name: new.family_name.to_owned(),
            given_name: new.given_name.to_owned(),
            birth_date: new.birth_date.to_owned(),
            sex: new.sex.to_owned(),
        };
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::PatientRegister,
            entity: "patient",
            entity_id: id.to_string(),
            patient_id: Some(id),
            before: None,
            after: audit::state(&row),
        })
        .await?;
        Ok(id)
    }

    /// Finds patients by MRN, `family[,given] [date of birth]`, or a date of birth alone.
    pub async fn search_patients(
        &self,
        actor: &Actor,
        query: &PatientQuery,
    ) -> AppResult<Vec<PatientRow>> {
        self.require(actor, Action::SearchPatients)?;
        let text = query.text.trim();
        if text.is_empty() {
            return Ok(vec![]);
        }
        if text.chars().count() > 200 {
            return Err(AppError::invalid("q", "the search is at most 200 characters"));
        }
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        // A scanned or typed MRN matches exactly.
        if let Ok(mrn) = Mrn::parse(text)
            && let Some(p) = self.store.patient_by_mrn(mrn.as_str()).await?
        {
            return Ok(vec![p]);
        }
        // A trailing date is the date of birth.
        let (names, birth) = match text.rsplit_once(' ') {
            Some((rest, last)) if parse_birth_date(last, today).is_ok() => {
                (rest.trim(), parse_birth_date(last, today).ok())
            }
            _ => match parse_birth_date(text, today) {
                Ok(d) => ("", Some(d)),
                Err(_) => (text, None),
            },
        };
        let (family, given) = match names.split_once(',') {
            Some((f, g)) => (f.trim(), g.trim()),
            None => (names, ""),
        };
        let birth = birth.map(|d| d.to_string());
        let rows = self
            .store
            .search_patients(
                None,
                (!family.is_empty()).then_some(family),
                (!given.is_empty()).then_some(given),
                birth.as_deref(),
            )
            .await?;
        Ok(rows)
    }

    /// A patient's demographics.
    pub async fn patient(&self, actor: &Actor, id: i64) -> AppResult<PatientRow> {
        self.require(actor, Action::SearchPatients)?;
        Ok(self.store.patient(id).await?)
    }
}

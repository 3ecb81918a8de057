//! Instrument administration: the senders Cuvette takes messages from and their test-code
//! maps (with the unit each code arrives in).

use std::net::IpAddr;

use cuvette_domain::audit::AuditAction;
use cuvette_domain::peers::AllowedPeers;
use cuvette_domain::units::{self, Mapping};
use cuvette_domain::{Action, TestDefinition};
use cuvette_store::{
    CodeDisposition, InstrumentRow, NewAuditEvent, Protocol, TestCodeRow, UnmappedResults,
};

use crate::audit;
use crate::autoverify::SERUM_INDEX_CODES;
use crate::{Actor, AppError, AppResult, Lab};

/// The character sets an ASTM instrument may be configured with.
pub const ASTM_CHARSETS: [&str; 4] = ["utf-8", "windows-1252", "ascii", "utf-8-lossy"];

/// The most components an ASTM field is read for a specimen id.
pub const SPECIMEN_ID_COMPONENTS_MAX: usize = 10;

impl Lab {
    /// Adds an instrument (supervisor).
    pub async fn add_instrument(
        &self,
        actor: &Actor,
        name: &str,
        protocol: &str,
        sender: &str,
    ) -> AppResult<i64> {
        self.require(actor, Action::EditCatalog)?;
        let (name, sender) = (name.trim(), sender.trim());
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::invalid("name", "name the instrument (up to 100 characters)"));
        }
        let protocol = Protocol::parse(protocol)
            .ok_or_else(|| AppError::invalid("protocol", "choose HL7 or ASTM"))?;
        if sender.is_empty() || sender.chars().count() > 200 {
            return Err(AppError::invalid(
                "sender",
                "enter what the instrument sends as its name (HL7 MSH-3, ASTM H-5)",
            ));
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_instrument(name, protocol, sender, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentAdd,
            entity: "instrument",
            entity_id: name.to_owned(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::InstrumentAdded { name, protocol, sender }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Maps an instrument's test code to a catalog test (supervisor).
    pub async fn map_test_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        instrument_code: &str,
        test_code: &str,
        unit: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let instrument = self.store.instrument(instrument_id).await?;
        let test_code = test_code.trim().to_ascii_uppercase();
        let catalog = self.catalog();
        let index = SERUM_INDEX_CODES.iter().any(|(c, _)| *c == test_code);
        let def = catalog.catalog.test(&test_code);
        if def.is_none() && !index {
            return Err(AppError::invalid(
                "test_code",
                format!(
                    "{test_code:?} is not a test in the catalog (serum indices map to SI_H, SI_I or SI_L)"
                ),
            ));
        }
        if let Some(def) = def.filter(|d| d.is_calculated()) {
            return Err(AppError::invalid(
                "test_code",
                format!("{} is calculated; map the instrument's measured tests", def.name),
            ));
        }
        let code = instrument_code.trim();
        if code.is_empty() || code.chars().count() > 100 {
            return Err(AppError::invalid(
                "instrument_code",
                "enter the code the instrument sends (up to 100 characters)",
            ));
        }
        let unit = unit.trim();
        if unit.chars().count() > units::UNIT_LEN_MAX {
            return Err(AppError::invalid(
                "unit",
                format!("a unit is at most {} characters", units::UNIT_LEN_MAX),
            ));
        }
        // A result is stored in the catalog's unit: another unit needs a conversion.
        let (unit, conversion) = match def {
            None => (units::normalize(unit).to_owned(), None),
            Some(def) => match units::mapping(def, unit) {
                Mapping::Same if unit.is_empty() => (def.unit.clone(), None),
                Mapping::Same => (units::normalize(unit).to_owned(), None),
                Mapping::Convert(c) => (c.from.to_owned(), Some(c)),
                Mapping::Unconvertible => {
                    return Err(AppError::invalid("unit", unconvertible(def, unit)));
                }
            },
        };
        let row = TestCodeRow {
            instrument_id,
            instrument_code: code.to_owned(),
            test_code: test_code.clone(),
            unit: unit.clone(),
            disposition: CodeDisposition::Result,
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.map_test_code(&row).await?;
        let after = audit::state(&audit::CodeMapped {
            instrument_code: code,
            test_code: &test_code,
            unit: &unit,
            conversion: conversion.as_ref().map(|c| c.describe()),
        });
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentMapCode,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: None,
            after,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Maps an instrument's code to be ignored (supervisor): its results (a research
    /// parameter, an image reference) are skipped without a quarantine. Deliberate, so audited
    /// with what the code was mapped as before.
    pub async fn ignore_test_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        instrument_code: &str,
    ) -> AppResult<()> {
        self.dispose_test_code(actor, instrument_id, instrument_code, CodeDisposition::Ignore).await
    }

    /// Maps an instrument's code as an instrument flag (supervisor): a hematology analyzer's
    /// interpretive message (`Blasts?`, `Left_Shift?`, `NRBC?`), raised when it carries an
    /// abnormal flag, no value, or a value that is not a number. A raised flag is stored on
    /// the specimen's results in the same message, which then go to a technologist.
    pub async fn map_flag_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        instrument_code: &str,
    ) -> AppResult<()> {
        self.dispose_test_code(actor, instrument_id, instrument_code, CodeDisposition::Flag).await
    }

    async fn dispose_test_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        instrument_code: &str,
        disposition: CodeDisposition,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let code = instrument_code.trim();
        if code.is_empty() || code.chars().count() > 100 {
            return Err(AppError::invalid(
                "instrument_code",
                "enter the code the instrument sends (up to 100 characters)",
            ));
        }
        let instrument = self.store.instrument(instrument_id).await?;
        let before = self
            .store
            .test_codes(instrument_id)
            .await?
            .into_iter()
            .find(|c| c.instrument_code == code)
            .map(|c| match c.disposition {
                CodeDisposition::Result => c.test_code,
                other => other.code().to_owned(),
            });
        let row = TestCodeRow {
            instrument_id,
            instrument_code: code.to_owned(),
            test_code: String::new(),
            unit: String::new(),
            disposition,
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.map_test_code(&row).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: match disposition {
                CodeDisposition::Flag => AuditAction::InstrumentMapFlag,
                _ => AuditAction::InstrumentIgnoreCode,
            },
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::CodeDisposed {
                instrument_code: code,
                mapped_as: disposition.code(),
                before,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets what becomes of an instrument's message some of whose results cannot be taken
    /// (supervisor): `hold` keeps the whole message in the quarantine (the default);
    /// `store_mappable` stores the results that can be taken and keeps each other one in the
    /// quarantine with its reason, the acknowledgement (AE) naming each.
    pub async fn set_unmapped_results(
        &self,
        actor: &Actor,
        instrument_id: i64,
        setting: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let Some(setting) = UnmappedResults::parse(setting.trim()) else {
            return Err(AppError::invalid(
                "unmapped_results",
                "hold (the whole message waits in the quarantine) or store_mappable (the results that can be taken are stored, the others wait in the quarantine)",
            ));
        };
        let instrument = self.store.instrument(instrument_id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_unmapped_results(instrument_id, setting).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentUnmappedResults,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: audit::state(&audit::UnmappedResultsSetting {
                unmapped_results: instrument.unmapped_results.code(),
            }),
            after: audit::state(&audit::UnmappedResultsSetting {
                unmapped_results: setting.code(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Restricts an instrument to the addresses it sends from, typed separated by spaces or
    /// commas (supervisor); empty lifts the restriction. A message naming the instrument from
    /// any other address is then kept in the quarantine, and the listed addresses have
    /// connection slots of their own on the listeners that others cannot take.
    pub async fn set_allowed_peers(
        &self,
        actor: &Actor,
        instrument_id: i64,
        typed: &str,
    ) -> AppResult<AllowedPeers> {
        self.require(actor, Action::EditCatalog)?;
        let peers = AllowedPeers::parse(typed)
            .map_err(|e| AppError::invalid("allowed_peers", e.to_string()))?;
        let instrument = self.store.instrument(instrument_id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_allowed_peers(instrument_id, &peers).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentAllowedPeers,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: audit::state(&audit::AllowedPeersSetting::of(&instrument.allowed_peers)),
            after: audit::state(&audit::AllowedPeersSetting::of(&peers)),
        })
        .await?;
        tx.commit().await?;
        Ok(peers)
    }

    /// Every address some instrument is restricted to: the listeners keep connection slots
    /// for these.
    pub async fn listed_peer_addresses(&self) -> AppResult<std::collections::HashSet<IpAddr>> {
        let instruments = self.store.instruments().await?;
        Ok(instruments.iter().flat_map(|i| i.allowed_peers.addresses().iter().copied()).collect())
    }

    /// Says which component of ASTM O-3 holds an instrument's accession numbers (from 1), for
    /// analyzers that send rack and position beside it (`^^26-0000012-3`); `None` takes the
    /// first component that is not empty (supervisor).
    pub async fn set_specimen_id_component(
        &self,
        actor: &Actor,
        instrument_id: i64,
        component: Option<usize>,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        if component.is_some_and(|c| !(1..=SPECIMEN_ID_COMPONENTS_MAX).contains(&c)) {
            return Err(AppError::invalid(
                "specimen_id_component",
                format!(
                    "a component from 1 to {SPECIMEN_ID_COMPONENTS_MAX}, or none for the first that is not empty"
                ),
            ));
        }
        let instrument = self.store.instrument(instrument_id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_specimen_id_component(instrument_id, component.map(|c| c as i64)).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentSpecimenIdComponent,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: audit::state(&audit::SpecimenIdComponent {
                component: instrument.specimen_id_component,
            }),
            after: audit::state(&audit::SpecimenIdComponent {
                component: component.map(|c| c as i64),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the character set an ASTM instrument writes: `utf-8`, `windows-1252` or `ascii`
    /// (supervisor) — or `utf-8-lossy`, for an instrument that cannot be set right: each byte
    /// that is not UTF-8 is then replaced by `�`, and logged. Its messages are read in it, and a byte that is not text in it is refused
    /// with the record and field it is in.
    pub async fn set_instrument_charset(
        &self,
        actor: &Actor,
        instrument_id: i64,
        charset: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let charset = charset.trim().to_ascii_lowercase();
        if !ASTM_CHARSETS.contains(&charset.as_str()) {
            return Err(AppError::invalid(
                "charset",
                "utf-8, windows-1252 (Latin-1 and its extensions), ascii, or utf-8-lossy (bytes that are not UTF-8 replaced by �, each logged)",
            ));
        }
        let instrument = self.store.instrument(instrument_id).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_instrument_charset(instrument_id, Some(&charset)).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::InstrumentCharset,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: audit::state(&audit::Charset { charset: instrument.charset.as_deref() }),
            after: audit::state(&audit::Charset { charset: Some(&charset) }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every instrument with its test-code map.
    pub async fn instruments(
        &self,
        actor: &Actor,
    ) -> AppResult<Vec<(InstrumentRow, Vec<TestCodeRow>)>> {
        self.require(actor, Action::ViewResults)?;
        let mut out = Vec::new();
        for i in self.store.instruments().await? {
            let codes = self.store.test_codes(i.id).await?;
            out.push((i, codes));
        }
        Ok(out)
    }
}

/// Why a code cannot be mapped with `unit`, and what to map it with instead.
fn unconvertible(def: &TestDefinition, unit: &str) -> String {
    let unit = units::normalize(unit);
    if def.unit.is_empty() {
        return format!("{} is reported without a unit: leave the unit empty", def.name);
    }
    if def.result_type != cuvette_domain::catalog::ResultType::Numeric {
        return format!(
            "{} is reported as coded values in {}: map the code with {} or leave the unit empty",
            def.name, def.unit, def.unit
        );
    }
    let others = units::convertible_units(&def.code, &def.unit);
    let instead = if others.is_empty() {
        format!("map the code with {} and set the instrument to send {}", def.unit, def.unit)
    } else {
        format!(
            "map the code with {} (set the instrument to send it) or with a unit Cuvette converts for {}: {}",
            def.unit,
            def.code,
            others.join(", ")
        )
    };
    format!(
        "{} is reported in {} and Cuvette cannot convert {unit} to it: {instead}",
        def.name, def.unit
    )
}

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
        let name = checked_name(name).map_err(|e| AppError::Invalid(vec![e]))?;
        let protocol = checked_protocol(protocol).map_err(|e| AppError::Invalid(vec![e]))?;
        let sender = checked_sender(sender).map_err(|e| AppError::Invalid(vec![e]))?;
        if let Some(taken) = self.sender_taken(protocol, sender, None).await? {
            return Err(AppError::Invalid(vec![taken]));
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

    /// Why another instrument's sender is this one: the listeners find an instrument by its
    /// protocol and sender, so two with one sender would have each other's messages taken as
    /// their own.
    async fn sender_taken(
        &self,
        protocol: Protocol,
        sender: &str,
        except: Option<i64>,
    ) -> AppResult<Option<crate::FieldError>> {
        let other = self
            .store
            .instruments()
            .await?
            .into_iter()
            .find(|i| Some(i.id) != except && i.protocol == protocol && i.sender == sender);
        Ok(other.map(|other| crate::FieldError {
            field: "sender".into(),
            message: format!(
                "{} already sends as {sender:?} over {}: each instrument needs a sender of its own (HL7 MSH-3, ASTM H-5), or its messages would be taken as the other's",
                other.name,
                protocol.name()
            ),
        }))
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
        let entry = CodeEntry { instrument_code, map_as: "result", test_code, unit };
        self.map_code(actor, instrument_id, &entry).await.map(drop)
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
        let entry = CodeEntry { instrument_code, map_as: "ignore", test_code: "", unit: "" };
        self.map_code(actor, instrument_id, &entry).await.map(drop)
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
        let entry = CodeEntry { instrument_code, map_as: "flag", test_code: "", unit: "" };
        self.map_code(actor, instrument_id, &entry).await.map(drop)
    }

    /// Adds or replaces one mapping of an instrument's code (supervisor), as the code form and
    /// the API give it: a result of a catalog test in a unit (another unit than the catalog's
    /// only with a conversion Cuvette knows), an instrument flag, or ignored. Audited.
    pub async fn map_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        entry: &CodeEntry<'_>,
    ) -> AppResult<MappedCode> {
        self.require(actor, Action::EditCatalog)?;
        let instrument = self.store.instrument(instrument_id).await?;
        let planned = plan_code(self, instrument_id, entry).map_err(AppError::Invalid)?;
        let current = self.store.test_codes(instrument_id).await?;
        let mut tx = self.store.begin().await?;
        self.write_code(&mut tx, actor, &instrument, &current, &planned).await?;
        tx.commit().await?;
        Ok(planned.mapped())
    }

    /// Adds or replaces the mappings of an instrument's code map from a CSV file (supervisor):
    /// a header row naming the columns of [`CODE_MAP_COLUMNS`] in any order, then one mapping
    /// a row, each checked as the code form checks it. All or nothing: when any row is wrong,
    /// every wrong row is named (its spreadsheet row number, the header being row 1, its
    /// column and why) and nothing is stored. Codes not in the file keep their mapping.
    /// `dry_run` checks and answers what would be saved without saving it.
    pub async fn import_code_map(
        &self,
        actor: &Actor,
        instrument_id: i64,
        csv: &[u8],
        dry_run: bool,
    ) -> AppResult<Vec<MappedCode>> {
        self.require(actor, Action::EditCatalog)?;
        let instrument = self.store.instrument(instrument_id).await?;
        let planned = code_map_rows(self, instrument_id, csv).map_err(AppError::Invalid)?;
        if !dry_run {
            let current = self.store.test_codes(instrument_id).await?;
            let mut tx = self.store.begin().await?;
            for p in &planned {
                self.write_code(&mut tx, actor, &instrument, &current, p).await?;
            }
            tx.commit().await?;
        }
        Ok(planned.iter().map(PlannedCode::mapped).collect())
    }

    /// Writes one checked mapping with its audit event.
    async fn write_code(
        &self,
        tx: &mut cuvette_store::Tx,
        actor: &Actor,
        instrument: &InstrumentRow,
        current: &[TestCodeRow],
        planned: &PlannedCode,
    ) -> AppResult<()> {
        let row = &planned.row;
        tx.map_test_code(row).await?;
        let (action, after) = match row.disposition {
            CodeDisposition::Result => (
                AuditAction::InstrumentMapCode,
                audit::state(&audit::CodeMapped {
                    instrument_code: &row.instrument_code,
                    test_code: &row.test_code,
                    unit: &row.unit,
                    conversion: planned.conversion.clone(),
                }),
            ),
            disposition => {
                let before =
                    current.iter().find(|c| c.instrument_code == row.instrument_code).map(|c| {
                        match c.disposition {
                            CodeDisposition::Result => c.test_code.clone(),
                            other => other.code().to_owned(),
                        }
                    });
                let action = match disposition {
                    CodeDisposition::Flag => AuditAction::InstrumentMapFlag,
                    _ => AuditAction::InstrumentIgnoreCode,
                };
                let after = audit::state(&audit::CodeDisposed {
                    instrument_code: &row.instrument_code,
                    mapped_as: disposition.code(),
                    before,
                });
                (action, after)
            }
        };
        tx.audit(NewAuditEvent {
            at: self.now_at(),
            actor: &actor.name,
            action,
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: None,
            after,
        })
        .await?;
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
        let settings = InstrumentSettings { unmapped_results: Some(setting), ..Default::default() };
        self.configure_instrument(actor, instrument_id, &settings).await
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
        let settings =
            InstrumentSettings { specimen_id_component: Some(component), ..Default::default() };
        self.configure_instrument(actor, instrument_id, &settings).await
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
        let settings = InstrumentSettings { charset: Some(charset), ..Default::default() };
        self.configure_instrument(actor, instrument_id, &settings).await
    }

    /// Changes an instrument's settings (supervisor): each one given is checked first, then
    /// all are saved together, each audited with its value before and after; one refused
    /// setting saves none.
    pub async fn configure_instrument(
        &self,
        actor: &Actor,
        instrument_id: i64,
        settings: &InstrumentSettings<'_>,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let mut errors = Vec::new();
        let name = settings.name.and_then(|n| checked_name(n).map_err(|e| errors.push(e)).ok());
        let protocol =
            settings.protocol.and_then(|p| checked_protocol(p).map_err(|e| errors.push(e)).ok());
        let sender =
            settings.sender.and_then(|s| checked_sender(s).map_err(|e| errors.push(e)).ok());
        let unmapped = settings.unmapped_results.and_then(|setting| {
            let parsed = UnmappedResults::parse(setting.trim());
            if parsed.is_none() {
                errors.push(crate::FieldError {
                    field: "unmapped_results".into(),
                    message: "hold (the whole message waits in the quarantine) or store_mappable (the results that can be taken are stored, the others wait in the quarantine)".into(),
                });
            }
            parsed
        });
        if let Some(Some(c)) = settings.specimen_id_component
            && !(1..=SPECIMEN_ID_COMPONENTS_MAX).contains(&c)
        {
            errors.push(crate::FieldError {
                field: "specimen_id_component".into(),
                message: format!(
                    "a component from 1 to {SPECIMEN_ID_COMPONENTS_MAX}, or none for the first that is not empty"
                ),
            });
        }
        let charset = settings.charset.map(|c| c.trim().to_ascii_lowercase());
        if charset.as_deref().is_some_and(|c| !ASTM_CHARSETS.contains(&c)) {
            errors.push(crate::FieldError {
                field: "charset".into(),
                message: "utf-8, windows-1252 (Latin-1 and its extensions), ascii, or utf-8-lossy (bytes that are not UTF-8 replaced by �, each logged)".into(),
            });
        }
        let instrument = self.store.instrument(instrument_id).await?;
        // Renamed, or its sender or protocol changed: what the listeners find it by.
        let identity = (
            name.unwrap_or(&instrument.name),
            protocol.unwrap_or(instrument.protocol),
            sender.unwrap_or(&instrument.sender),
        );
        let renamed =
            identity != (instrument.name.as_str(), instrument.protocol, instrument.sender.as_str());
        if renamed
            && errors.iter().all(|e| e.field != "sender")
            && let Some(taken) =
                self.sender_taken(identity.1, identity.2, Some(instrument_id)).await?
        {
            errors.push(taken);
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_at();
        let event = |action, before, after| NewAuditEvent {
            at: now,
            actor: &actor.name,
            action,
            entity: "instrument",
            // By the name it has from now on; a rename's event records the one before.
            entity_id: identity.0.to_owned(),
            patient_id: None,
            before,
            after,
        };
        let mut tx = self.store.begin().await?;
        if renamed {
            let (name, protocol, sender) = identity;
            tx.set_instrument_identity(instrument_id, name, protocol, sender).await?;
            tx.audit(event(
                AuditAction::InstrumentEdit,
                audit::state(&audit::InstrumentAdded {
                    name: &instrument.name,
                    protocol: instrument.protocol,
                    sender: &instrument.sender,
                }),
                audit::state(&audit::InstrumentAdded { name, protocol, sender }),
            ))
            .await?;
        }
        if let Some(setting) = unmapped {
            tx.set_unmapped_results(instrument_id, setting).await?;
            tx.audit(event(
                AuditAction::InstrumentUnmappedResults,
                audit::state(&audit::UnmappedResultsSetting {
                    unmapped_results: instrument.unmapped_results.code(),
                }),
                audit::state(&audit::UnmappedResultsSetting { unmapped_results: setting.code() }),
            ))
            .await?;
        }
        if let Some(component) = settings.specimen_id_component {
            let component = component.map(|c| c as i64);
            tx.set_specimen_id_component(instrument_id, component).await?;
            tx.audit(event(
                AuditAction::InstrumentSpecimenIdComponent,
                audit::state(&audit::SpecimenIdComponent {
                    component: instrument.specimen_id_component,
                }),
                audit::state(&audit::SpecimenIdComponent { component }),
            ))
            .await?;
        }
        if let Some(charset) = &charset {
            tx.set_instrument_charset(instrument_id, Some(charset)).await?;
            tx.audit(event(
                AuditAction::InstrumentCharset,
                audit::state(&audit::Charset { charset: instrument.charset.as_deref() }),
                audit::state(&audit::Charset { charset: Some(charset) }),
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One instrument with its test-code map.
    pub async fn instrument(
        &self,
        actor: &Actor,
        id: i64,
    ) -> AppResult<(InstrumentRow, Vec<TestCodeRow>)> {
        self.require(actor, Action::ViewResults)?;
        let instrument = self.store.instrument(id).await?;
        let codes = self.store.test_codes(id).await?;
        Ok((instrument, codes))
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

/// An instrument's name, trimmed, or why it cannot be one.
fn checked_name(name: &str) -> Result<&str, crate::FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(crate::FieldError {
            field: "name".into(),
            message: "name the instrument (up to 100 characters)".into(),
        });
    }
    Ok(name)
}

fn checked_protocol(protocol: &str) -> Result<Protocol, crate::FieldError> {
    Protocol::parse(protocol).ok_or_else(|| crate::FieldError {
        field: "protocol".into(),
        message: "choose HL7 or ASTM".into(),
    })
}

/// What an instrument sends as its name, trimmed, or why it cannot be.
fn checked_sender(sender: &str) -> Result<&str, crate::FieldError> {
    let sender = sender.trim();
    if sender.is_empty() || sender.chars().count() > 200 {
        return Err(crate::FieldError {
            field: "sender".into(),
            message: "enter what the instrument sends as its name (HL7 MSH-3, ASTM H-5)".into(),
        });
    }
    Ok(sender)
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

/// Settings of an instrument to change; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstrumentSettings<'a> {
    /// Its name, as staff know it (unique).
    pub name: Option<&'a str>,
    /// `hl7` or `astm`.
    pub protocol: Option<&'a str>,
    /// What it sends as its name (HL7 MSH-3, ASTM H-5), no other instrument's.
    pub sender: Option<&'a str>,
    /// `hold` or `store_mappable`.
    pub unmapped_results: Option<&'a str>,
    /// The ASTM O-3 component holding the accession number (from 1), or `Some(None)` for the
    /// first that is not empty.
    pub specimen_id_component: Option<Option<usize>>,
    /// The character set of an ASTM instrument (one of [`ASTM_CHARSETS`]).
    pub charset: Option<&'a str>,
}

/// One mapping of an instrument's code as a person, a script or a file gives it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeEntry<'a> {
    /// The code the instrument sends (HL7 OBX-3, ASTM R-3).
    pub instrument_code: &'a str,
    /// `result` (or empty), `flag` or `ignore`.
    pub map_as: &'a str,
    /// The catalog test, for a result (serum indices: `SI_H`, `SI_I`, `SI_L`).
    pub test_code: &'a str,
    /// The unit the instrument sends; empty means the catalog's.
    pub unit: &'a str,
}

/// A mapping as saved (or, on a dry run, as it would be saved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedCode {
    /// The code the instrument sends.
    pub instrument_code: String,
    /// A result, a flag, or ignored.
    pub disposition: CodeDisposition,
    /// The catalog test; empty for a flag or an ignored code.
    pub test_code: String,
    /// The unit its results arrive in (UCUM); empty for a flag or an ignored code.
    pub unit: String,
    /// The conversion its results take, described ("mmol/L → mg/dL × 18.016 …"); `None` when
    /// they arrive in the catalog's unit.
    pub conversion: Option<String>,
}

/// The columns of a code map file, in the order an export writes them.
pub const CODE_MAP_COLUMNS: [&str; 4] = ["instrument_code", "map_as", "test_code", "unit"];

/// The most mappings one code map file may hold (an analyzer's menu is a few hundred codes).
pub const CODE_MAP_ROWS_MAX: usize = 5000;

/// A mapping checked and ready to write.
struct PlannedCode {
    row: TestCodeRow,
    conversion: Option<String>,
}

impl PlannedCode {
    fn mapped(&self) -> MappedCode {
        MappedCode {
            instrument_code: self.row.instrument_code.clone(),
            disposition: self.row.disposition,
            test_code: self.row.test_code.clone(),
            unit: self.row.unit.clone(),
            conversion: self.conversion.clone(),
        }
    }
}

/// Checks one mapping: the same words for the code form, the API and each row of a file.
fn plan_code(
    lab: &Lab,
    instrument_id: i64,
    entry: &CodeEntry<'_>,
) -> Result<PlannedCode, Vec<crate::FieldError>> {
    let invalid =
        |field: &str, message: String| vec![crate::FieldError { field: field.to_owned(), message }];
    let disposition = match entry.map_as.trim() {
        "" => CodeDisposition::Result,
        code => CodeDisposition::parse(code).ok_or_else(|| {
            invalid(
                "map_as",
                "map the code as a result of a catalog test, an instrument flag, or ignored".into(),
            )
        })?,
    };
    let code = entry.instrument_code.trim();
    let code_ok = !code.is_empty() && code.chars().count() <= 100;
    let code_refusal = || {
        invalid(
            "instrument_code",
            "enter the code the instrument sends (up to 100 characters)".into(),
        )
    };
    if disposition != CodeDisposition::Result {
        if !code_ok {
            return Err(code_refusal());
        }
        let row = TestCodeRow {
            instrument_id,
            instrument_code: code.to_owned(),
            test_code: String::new(),
            unit: String::new(),
            disposition,
        };
        return Ok(PlannedCode { row, conversion: None });
    }
    let test_code = entry.test_code.trim().to_ascii_uppercase();
    let catalog = lab.catalog();
    let index = SERUM_INDEX_CODES.iter().any(|(c, _)| *c == test_code);
    let def = catalog.catalog.test(&test_code);
    if def.is_none() && !index {
        return Err(invalid(
            "test_code",
            format!(
                "{test_code:?} is not a test in the catalog (serum indices map to SI_H, SI_I or SI_L)"
            ),
        ));
    }
    if let Some(def) = def.filter(|d| d.is_calculated()) {
        return Err(invalid(
            "test_code",
            format!("{} is calculated; map the instrument's measured tests", def.name),
        ));
    }
    if !code_ok {
        return Err(code_refusal());
    }
    let unit = entry.unit.trim();
    if unit.chars().count() > units::UNIT_LEN_MAX {
        return Err(invalid(
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
            Mapping::Convert(c) => (c.from.to_owned(), Some(c.describe())),
            Mapping::Unconvertible => return Err(invalid("unit", unconvertible(def, unit))),
        },
    };
    let row = TestCodeRow {
        instrument_id,
        instrument_code: code.to_owned(),
        test_code,
        unit,
        disposition: CodeDisposition::Result,
    };
    Ok(PlannedCode { row, conversion })
}

/// Reads and checks every row of a code map file; every problem is named, by spreadsheet row
/// (the header is row 1) and column.
fn code_map_rows(
    lab: &Lab,
    instrument_id: i64,
    csv: &[u8],
) -> Result<Vec<PlannedCode>, Vec<crate::FieldError>> {
    let refuse = |field: String, message: String| {
        vec![crate::FieldError { message: format!("{field}: {message}"), field }]
    };
    // A spreadsheet saving "CSV UTF-8" writes a byte order mark first.
    let csv = csv.strip_prefix("\u{feff}".as_bytes()).unwrap_or(csv);
    let mut reader = ::csv::ReaderBuilder::new().flexible(true).from_reader(csv);
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(refuse("row 1".into(), format!("the header cannot be read ({e})"))),
    };
    let mut at = [usize::MAX; 4];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        match CODE_MAP_COLUMNS.iter().position(|c| *c == name) {
            Some(c) if at[c] == usize::MAX => at[c] = i,
            Some(_) => {
                return Err(refuse(
                    format!("row 1, {name}"),
                    "the column is named twice: keep one".into(),
                ));
            }
            None => {
                return Err(refuse(
                    format!("row 1, column {}", i + 1),
                    format!(
                        "{name:?} is not a column of a code map: the columns are {}",
                        CODE_MAP_COLUMNS.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(missing) = CODE_MAP_COLUMNS.iter().zip(at).find(|(_, i)| *i == usize::MAX) {
        return Err(refuse(
            "row 1".into(),
            format!(
                "the header has no {} column: the columns are {}",
                missing.0,
                CODE_MAP_COLUMNS.join(", ")
            ),
        ));
    }
    let mut planned: Vec<(usize, PlannedCode)> = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.extend(refuse(format!("row {row}"), format!("it cannot be read ({e})")));
                continue;
            }
        };
        let cell = |c: usize| unguard(record.get(at[c]).unwrap_or(""));
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // a spreadsheet's blank line
        }
        if planned.len() + errors.len() >= CODE_MAP_ROWS_MAX {
            return Err(refuse(
                format!("row {row}"),
                format!("a code map file holds at most {CODE_MAP_ROWS_MAX} mappings: split it"),
            ));
        }
        let entry = CodeEntry {
            instrument_code: cell(0),
            map_as: cell(1),
            test_code: cell(2),
            unit: cell(3),
        };
        match plan_code(lab, instrument_id, &entry) {
            Ok(p) => {
                let code = &p.row.instrument_code;
                if let Some((first, _)) =
                    planned.iter().find(|(_, q)| q.row.instrument_code == *code)
                {
                    errors.extend(refuse(
                        format!("row {row}, instrument_code"),
                        format!("{code} is mapped on row {first} already: keep one of the two"),
                    ));
                } else {
                    planned.push((row, p));
                }
            }
            Err(field_errors) => errors.extend(
                field_errors
                    .into_iter()
                    .flat_map(|e| refuse(format!("row {row}, {}", e.field), e.message)),
            ),
        }
    }
    if errors.is_empty() && planned.is_empty() {
        return Err(refuse("row 2".into(), "the file holds no mappings below its header".into()));
    }
    if errors.is_empty() { Ok(planned.into_iter().map(|(_, p)| p).collect()) } else { Err(errors) }
}

/// A cell as the lab meant it: a code map export puts a single quote before a text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`), and it is taken off again here.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

//! Why an inbound message goes to the quarantine, as data.
//!
//! Every refusal is a [`Refusal`] carrying what it is about (the code, the specimen, the place
//! in the message). Its `Display` is the text staff read in the message log; what goes on the
//! wire is decided by one `match` on the variant ([`Refusal::hl7_error`]), never by reading
//! that text back.

use std::fmt;

use cuvette_domain::workflow::TestStatus;
use cuvette_hl7::{AckCode, ErrorCode, ErrorLocation};

/// A place in a message: a segment (HL7) or record (ASTM), which one, and a field.
///
/// It prints as the message log always wrote it: a result's place as `OBX 3` or `R 2`, a
/// place in an order message as an HL7 path (`PID-7`, `OBR(2)-4`, `ORC(1)`, `PID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    segment: String,
    sequence: usize,
    field: Option<usize>,
    style: Style,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `OBX 3`: the segment or record a result came from.
    Record,
    /// `PID-7`, `OBR(2)-4`: an HL7 path, the occurrence written only when it was counted.
    Path { counted: bool },
}

impl Place {
    /// The `sequence`-th (from 1) segment or record with ID `segment` that carried a result:
    /// `OBX 3`, `R 2`.
    pub fn record(segment: &str, sequence: usize) -> Place {
        Place { segment: segment.to_owned(), sequence, field: None, style: Style::Record }
    }

    /// A message's only (or first) segment with this ID: `PID`.
    pub fn segment(segment: &str) -> Place {
        Place {
            segment: segment.to_owned(),
            sequence: 1,
            field: None,
            style: Style::Path { counted: false },
        }
    }

    /// A field of a message's only (or first) segment with this ID: `PID-7`.
    pub fn field(segment: &str, field: usize) -> Place {
        Place { field: Some(field), ..Place::segment(segment) }
    }

    /// The `sequence`-th segment with ID `segment`, counted: `ORC(1)`.
    pub fn nth(segment: &str, sequence: usize) -> Place {
        Place {
            segment: segment.to_owned(),
            sequence,
            field: None,
            style: Style::Path { counted: true },
        }
    }

    /// A field of the `sequence`-th segment with ID `segment`: `OBR(2)-4`.
    pub fn nth_field(segment: &str, sequence: usize, field: usize) -> Place {
        Place { field: Some(field), ..Place::nth(segment, sequence) }
    }

    /// The segment or record ID.
    pub fn segment_id(&self) -> &str {
        &self.segment
    }

    /// Which segment of that ID (from 1).
    pub fn sequence(&self) -> usize {
        self.sequence
    }

    /// The field, when the place is one.
    pub fn field_number(&self) -> Option<usize> {
        self.field
    }

    /// ERR-2 for this place, with `field` when the place names none (a result's OBX, where
    /// the refusal knows which field is at fault).
    fn error_location(&self, field: Option<usize>) -> ErrorLocation {
        let location = ErrorLocation::new(&self.segment, self.sequence);
        match self.field.or(field) {
            Some(f) => location.field(f),
            None => location,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.style {
            Style::Record => write!(f, "{} {}", self.segment, self.sequence),
            Style::Path { counted } => {
                f.write_str(&self.segment)?;
                if counted {
                    write!(f, "({})", self.sequence)?;
                }
                match self.field {
                    Some(field) => write!(f, "-{field}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why an inbound message is kept in the quarantine instead of being taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    // --- The message as a whole
    /// The bytes are not a message of the protocol (`protocol` is `HL7` or `ASTM`).
    Unreadable { protocol: &'static str, error: String },
    /// An HL7 message of a version Cuvette does not read (MSH-12 other than 2.x).
    UnsupportedVersion { version: String },
    /// Bytes that are not text in the message's character set (HL7 MSH-18; none declared
    /// reads as UTF-8): the first such byte, where it is, and at which byte of the message.
    /// `protocol` is `HL7` or `ASTM`.
    InvalidEncoding { protocol: &'static str, at: Place, byte: u8, offset: usize, charset: String },
    /// MSH-18 names a character set Cuvette does not read.
    UnsupportedCharset { declared: String },
    /// An HL7 message of a type that carries no results (`ADT^A01`).
    NotResults { message_type: String },
    /// The sender is not an instrument on file.
    UnknownInstrument { sender: String },
    /// The instrument is on file but disabled.
    InstrumentDisabled { name: String },
    /// The instrument is restricted to addresses, and the message came from another.
    AddressNotAllowed { name: String, peer: String },
    /// A result message without results.
    NoResults,
    /// Every result says there is no value (pending, cannot be obtained): each as described.
    NoValue { skipped: Vec<String> },

    // --- One result of a result message
    /// The instrument's test code is not in its code map.
    UnmappedCode { at: Place, code: String, instrument: String },
    /// The result's unit is not the one its code is mapped with.
    UnitMismatch { at: Place, test: String, sent: String, instrument: String, mapped: String },
    /// The code is mapped with a unit although the catalog reports the test without one.
    UnitNotExpected { at: Place, test: String, instrument: String, mapped: String },
    /// The code is mapped with a unit Cuvette cannot convert to the catalog's.
    UnitNotConvertible {
        at: Place,
        test: String,
        instrument: String,
        mapped: String,
        catalog_unit: String,
    },
    /// The specimen id is not an accession number.
    BadSpecimenId { at: Place, sent: String, error: String },
    /// No specimen has this accession number.
    NoSpecimen { at: Place, accession: String },
    /// The specimen was rejected: its results belong on the recollection.
    RejectedSpecimen { at: Place, accession: String },
    /// The specimen has not been received in the lab.
    SpecimenNotReceived { at: Place, accession: String },
    /// A serum index that is not a whole number (`index` as the lab names it).
    SerumIndexNotWhole { at: Place, index: String, value: String },
    /// The message's patient is not the specimen's: each difference as described.
    WrongPatient { at: Place, accession: String, differences: Vec<String> },
    /// The test is not ordered on the specimen.
    NotOrdered { at: Place, test: String, accession: String },
    /// The test's result can no longer be entered by an instrument (released, cancelled).
    Locked { at: Place, test: String, accession: String, status: TestStatus },
    /// The code maps to a test that takes no measured value (a calculation).
    NotMeasured { at: Place, test: String },
    /// The value cannot be read as a result of the test.
    InvalidValue { at: Place, test: String, error: String },
    /// A file sent as encapsulated data (HL7 ED: a PDF, an image) whose data cannot be
    /// decoded in the encoding it names, or that names none Cuvette reads.
    EncapsulatedUnreadable { at: Place, test: String, error: cuvette_hl7::EdError },
    /// A file sent as encapsulated data larger than the lab takes
    /// (`--instrument-attachment-bytes-max`).
    AttachmentTooLarge { at: Place, test: String, media_type: String, bytes: usize, limit: usize },
    /// The value cannot be converted from the unit sent to the catalog's.
    NotConvertible { at: Place, test: String, value: String, from: String, to: String },
    /// A test reported twice for one specimen in one message.
    Twice { at: Place, test: String, accession: String },

    // --- Control runs
    /// A control sample and a patient sample in one message.
    MixedSamples { at: Place, control: String, sample: String },
    /// No control material has the sample id.
    UnknownControl { at: Place, sample: String },
    /// The control material has no target for the test on this instrument.
    NoTarget {
        at: Place,
        test: String,
        product: String,
        level: String,
        lot: String,
        instrument: String,
    },
    /// A control value that is not a number.
    ControlNotNumber { at: Place, test: String, value: String },
    /// A control message without values.
    NoControlValues,
    /// The QC run cannot be recorded (the lab's QC set-up refuses it), as QC explains.
    QcRefused { test: String, reason: String },

    // --- Orders from the EHR
    /// The sender is not an EHR on file.
    UnknownOrderer { sender: String },
    /// The EHR is on file but disabled.
    OrdererDisabled { name: String },
    /// A second PID: one patient per order message.
    SecondPatient { at: Place },
    /// An OBR before any ORC.
    OrphanObr { at: Place },
    /// No PID segment.
    NoPatient,
    /// PID-3 is empty.
    MrnMissing,
    /// PID-3 is not an MRN.
    BadMrn { mrn: String, error: String },
    /// PID-7 is empty.
    BirthDateMissing,
    /// PID-7 is not a possible date of birth, as explained.
    BadBirthDate { error: String },
    /// The MRN is on file with another date of birth.
    BirthDateDiffers { mrn: String, on_file: String, sent: String },
    /// A new patient without a family name.
    FamilyNameMissing { mrn: String },
    /// A name longer than the lab stores.
    NameTooLong { max: usize },
    /// PID-8 is not in HL7 table 0001.
    UnknownSex { sex: String },
    /// No ORC with an OBR.
    NoOrders,
    /// An order control other than NW (`name` from HL7 table 0119).
    OrderControl { at: Place, control: String, name: &'static str },
    /// An ORC without its OBR.
    NoObr { at: Place },
    /// OBR-4 is empty.
    TestCodeMissing { at: Place },
    /// OBR-4 names no orderable test or panel (`described`: its text and coding system).
    UnknownTestCode { at: Place, code: String, described: String },
    /// A LOINC that names several catalog entries.
    AmbiguousLoinc { at: Place, code: String, matches: Vec<String> },
    /// The order cannot be placed, and order entry named no field.
    NotPlaceable { at: Place },
    /// ORC-12 and OBR-16 are empty.
    ProviderMissing { at: Place },
    /// Order entry refused the tests asked for, as it explains.
    TestsRefused { at: Place, message: String },
    /// Order entry refused a field of the order, as it explains.
    OrderField { at: Place, field: String, message: String },
    /// An SPM before any OBR: in OML^O21 a specimen follows the OBR of its tests.
    OrphanSpm { at: Place },
    /// A second SPM under one OBR: Cuvette puts a test order on one specimen.
    SecondSpecimen { at: Place },
    /// SPM-2 is empty.
    SpecimenIdMissing { at: Place },
    /// SPM-2 is longer than the lab stores.
    SpecimenIdTooLong { at: Place, max: usize },
    /// SPM-4 is empty.
    SpecimenTypeMissing { at: Place, id: String },
    /// SPM-17 is not an HL7 date and time to the minute.
    BadCollectionTime { at: Place, sent: String },
    /// SPM-17 is after the message arrived.
    CollectedLater { at: Place, sent: String },
    /// Two SPMs with one id but another type or collection time (`first`: the earlier one).
    SpecimenDiffers { at: Place, id: String, first: Place },
    /// The specimen id is already on a specimen on file.
    SpecimenOnFile { at: Place, id: String, accession: String },
}

/// What an HL7 acknowledgement says about a refusal: MSA-1 and one ERR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Error {
    /// MSA-1: `AE` when the sender (or the lab) can fix the content, `AR` when Cuvette does
    /// not process messages like this one at all.
    pub ack: AckCode,
    /// ERR-3 (HL7 table 0357).
    pub code: ErrorCode,
    /// ERR-2, when the fault has a place.
    pub location: Option<ErrorLocation>,
}

impl Refusal {
    /// Where in the message the fault is, as the message log names it.
    pub fn place(&self) -> Option<&Place> {
        use Refusal::*;
        match self {
            UnmappedCode { at, .. }
            | UnitMismatch { at, .. }
            | UnitNotExpected { at, .. }
            | UnitNotConvertible { at, .. }
            | BadSpecimenId { at, .. }
            | NoSpecimen { at, .. }
            | RejectedSpecimen { at, .. }
            | SpecimenNotReceived { at, .. }
            | SerumIndexNotWhole { at, .. }
            | WrongPatient { at, .. }
            | NotOrdered { at, .. }
            | Locked { at, .. }
            | NotMeasured { at, .. }
            | InvalidValue { at, .. }
            | EncapsulatedUnreadable { at, .. }
            | AttachmentTooLarge { at, .. }
            | NotConvertible { at, .. }
            | Twice { at, .. }
            | MixedSamples { at, .. }
            | InvalidEncoding { at, .. }
            | UnknownControl { at, .. }
            | NoTarget { at, .. }
            | ControlNotNumber { at, .. }
            | SecondPatient { at }
            | OrphanObr { at }
            | OrderControl { at, .. }
            | NoObr { at }
            | TestCodeMissing { at }
            | UnknownTestCode { at, .. }
            | AmbiguousLoinc { at, .. }
            | NotPlaceable { at }
            | ProviderMissing { at }
            | TestsRefused { at, .. }
            | OrderField { at, .. }
            | OrphanSpm { at }
            | SecondSpecimen { at }
            | SpecimenIdMissing { at }
            | SpecimenIdTooLong { at, .. }
            | SpecimenTypeMissing { at, .. }
            | BadCollectionTime { at, .. }
            | CollectedLater { at, .. }
            | SpecimenDiffers { at, .. }
            | SpecimenOnFile { at, .. } => Some(at),
            Unreadable { .. }
            | UnsupportedCharset { .. }
            | UnsupportedVersion { .. }
            | NotResults { .. }
            | UnknownInstrument { .. }
            | InstrumentDisabled { .. }
            | AddressNotAllowed { .. }
            | NoResults
            | NoValue { .. }
            | NoControlValues
            | QcRefused { .. }
            | UnknownOrderer { .. }
            | OrdererDisabled { .. }
            | NoPatient
            | MrnMissing
            | BadMrn { .. }
            | BirthDateMissing
            | BadBirthDate { .. }
            | BirthDateDiffers { .. }
            | FamilyNameMissing { .. }
            | NameTooLong { .. }
            | UnknownSex { .. }
            | NoOrders => None,
        }
    }

    /// Whether the refusal is about one result alone (its code, unit, value or test), so that
    /// an instrument set to store the mappable results stores the others and keeps this one
    /// in the quarantine. A refusal about the specimen, the patient or the message holds the
    /// whole message whatever the setting: the other results share its cause.
    pub fn concerns_one_result(&self) -> bool {
        use Refusal::*;
        matches!(
            self,
            UnmappedCode { .. }
                | UnitMismatch { .. }
                | UnitNotExpected { .. }
                | UnitNotConvertible { .. }
                | SerumIndexNotWhole { .. }
                | NotOrdered { .. }
                | Locked { .. }
                | NotMeasured { .. }
                | InvalidValue { .. }
                | EncapsulatedUnreadable { .. }
                | AttachmentTooLarge { .. }
                | NotConvertible { .. }
        )
    }

    /// The place as the message log writes it (`OBX 3`, `PID-7`), empty when the message as
    /// a whole is at fault.
    pub fn location(&self) -> String {
        // Order messages name the field even where the refusal itself carries no place.
        match self.place() {
            Some(at) => at.to_string(),
            None => self.order_field().map(|p| p.to_string()).unwrap_or_default(),
        }
    }

    /// The field of an order message a refusal without a place of its own is about.
    fn order_field(&self) -> Option<Place> {
        use Refusal::*;
        Some(match self {
            UnknownOrderer { .. } | OrdererDisabled { .. } => Place::field("MSH", 3),
            NoPatient => Place::segment("PID"),
            MrnMissing | BadMrn { .. } => Place::field("PID", 3),
            BirthDateMissing | BadBirthDate { .. } | BirthDateDiffers { .. } => {
                Place::field("PID", 7)
            }
            FamilyNameMissing { .. } | NameTooLong { .. } => Place::field("PID", 5),
            UnknownSex { .. } => Place::field("PID", 8),
            NoOrders => Place::segment("ORC"),
            _ => return None,
        })
    }

    /// The message log's text: the place, then why (`OBX 3: no specimen has …`).
    pub fn detail(&self) -> String {
        match self.location() {
            at if at.is_empty() => self.to_string(),
            at => format!("{at}: {self}"),
        }
    }

    /// What the HL7 acknowledgement says: AE or AR, the table 0357 code, and ERR-2.
    ///
    /// AR only for a message Cuvette does not process at all (unreadable, or not a version or
    /// a type it takes: 203, 200); everything else is AE, content the sender or the lab can put right and send
    /// again. The codes: 100 a segment out of order, 101 a required field or segment missing,
    /// 102 a value of the wrong form, 103 a code not in the lab's tables (test codes, units,
    /// senders, order controls), 204 a specimen or control Cuvette does not know, 205 a test
    /// twice, 206 a result that can no longer be changed, 207 a conflict with what the lab
    /// holds or with its set-up.
    pub fn hl7_error(&self) -> Hl7Error {
        use ErrorCode::*;
        use Refusal::*;
        // The OBX field at fault, for a result's place: 3 the code, 5 the value, 6 the unit.
        let (ack, code, obx_field) = match self {
            Unreadable { .. } | NotResults { .. } => {
                (AckCode::ApplicationReject, UnsupportedMessageType, None)
            }
            UnsupportedVersion { .. } => (AckCode::ApplicationReject, UnsupportedVersionId, None),
            // Content the sender can put right (its encoding, or MSH-18), so AE.
            InvalidEncoding { .. } => (AckCode::ApplicationError, DataTypeError, None),
            UnsupportedCharset { .. } => (AckCode::ApplicationError, TableValueNotFound, None),
            UnknownInstrument { .. } | UnknownOrderer { .. } | OrdererDisabled { .. } => {
                (AckCode::ApplicationError, TableValueNotFound, None)
            }
            InstrumentDisabled { .. } | AddressNotAllowed { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, None)
            }
            NoResults | NoValue { .. } | NoControlValues => {
                (AckCode::ApplicationError, RequiredFieldMissing, None)
            }
            UnmappedCode { .. } => (AckCode::ApplicationError, TableValueNotFound, Some(3)),
            UnitMismatch { .. } => (AckCode::ApplicationError, TableValueNotFound, Some(6)),
            UnitNotExpected { .. } | UnitNotConvertible { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, Some(6))
            }
            BadSpecimenId { .. } | NoSpecimen { .. } | UnknownControl { .. } => {
                (AckCode::ApplicationError, UnknownKeyIdentifier, None)
            }
            NotOrdered { .. } => (AckCode::ApplicationError, UnknownKeyIdentifier, Some(3)),
            RejectedSpecimen { .. } | SpecimenNotReceived { .. } | WrongPatient { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, None)
            }
            Locked { .. } => (AckCode::ApplicationError, ApplicationRecordLocked, Some(3)),
            NotMeasured { .. } | NoTarget { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, Some(3))
            }
            SerumIndexNotWhole { .. }
            | InvalidValue { .. }
            | EncapsulatedUnreadable { .. }
            | AttachmentTooLarge { .. }
            | NotConvertible { .. }
            | ControlNotNumber { .. } => (AckCode::ApplicationError, DataTypeError, Some(5)),
            Twice { .. } => (AckCode::ApplicationError, DuplicateKeyIdentifier, Some(3)),
            MixedSamples { .. } | QcRefused { .. } | BirthDateDiffers { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, None)
            }
            SecondPatient { .. } | OrphanObr { .. } | OrphanSpm { .. } => {
                (AckCode::ApplicationError, SegmentSequenceError, None)
            }
            SpecimenIdMissing { .. } | SpecimenTypeMissing { .. } => {
                (AckCode::ApplicationError, RequiredFieldMissing, None)
            }
            SpecimenIdTooLong { .. } | BadCollectionTime { .. } | CollectedLater { .. } => {
                (AckCode::ApplicationError, DataTypeError, None)
            }
            SecondSpecimen { .. } | SpecimenDiffers { .. } | SpecimenOnFile { .. } => {
                (AckCode::ApplicationError, ApplicationInternalError, None)
            }
            NoPatient
            | MrnMissing
            | BirthDateMissing
            | FamilyNameMissing { .. }
            | NoOrders
            | NoObr { .. }
            | TestCodeMissing { .. }
            | ProviderMissing { .. } => (AckCode::ApplicationError, RequiredFieldMissing, None),
            OrderControl { control, .. } if control.is_empty() => {
                (AckCode::ApplicationError, RequiredFieldMissing, None)
            }
            OrderControl { .. }
            | UnknownTestCode { .. }
            | AmbiguousLoinc { .. }
            | TestsRefused { .. } => (AckCode::ApplicationError, TableValueNotFound, None),
            BadMrn { .. }
            | BadBirthDate { .. }
            | NameTooLong { .. }
            | UnknownSex { .. }
            | NotPlaceable { .. }
            | OrderField { .. } => (AckCode::ApplicationError, DataTypeError, None),
        };
        let location = match (self.place(), self) {
            (Some(at), _) => {
                let obx = obx_field.filter(|_| at.segment_id() == "OBX");
                Some(at.error_location(obx))
            }
            (
                None,
                UnknownInstrument { .. } | InstrumentDisabled { .. } | AddressNotAllowed { .. },
            ) => Some(ErrorLocation::new("MSH", 1).field(3)),
            (None, NotResults { .. }) => Some(ErrorLocation::new("MSH", 1).field(9)),
            (None, UnsupportedVersion { .. }) => Some(ErrorLocation::new("MSH", 1).field(12)),
            (None, UnsupportedCharset { .. }) => Some(ErrorLocation::new("MSH", 1).field(18)),
            (None, _) => self.order_field().map(|p| p.error_location(None)),
        };
        Hl7Error { ack, code, location }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal::*;
        match self {
            Unreadable { protocol, error } => write!(f, "not an {protocol} message: {error}"),
            NotResults { message_type } => write!(
                f,
                "{message_type} carries no results: send ORU^R01 (orders come as OML^O21 or ORM^O01)"
            ),
            InvalidEncoding { protocol: "ASTM", byte, offset, charset, .. } => write!(
                f,
                "byte 0x{byte:02X} (at byte {offset} of the message) is not {charset} text: set the instrument's character set under Interfaces to the one it writes (utf-8, windows-1252, ascii)"
            ),
            InvalidEncoding { byte, offset, charset, .. } => write!(
                f,
                "byte 0x{byte:02X} (at byte {offset} of the message) is not {charset} text: the sender must encode the message in {charset}, or declare the character set it uses in MSH-18 (UNICODE UTF-8, 8859/1, ASCII)"
            ),
            UnsupportedCharset { declared } => write!(
                f,
                "character set {declared:?} (MSH-18) is not read: send UNICODE UTF-8, 8859/1 or ASCII"
            ),
            UnsupportedVersion { version } => write!(
                f,
                "HL7 version {version:?} is not taken: Cuvette reads HL7 v2 (MSH-12 2.x)"
            ),
            UnknownInstrument { sender } => write!(
                f,
                "unknown instrument {sender:?}: add it under Interfaces with its test codes"
            ),
            InstrumentDisabled { name } => write!(f, "instrument {name} is disabled"),
            AddressNotAllowed { name, peer } => write!(
                f,
                "instrument {name} sends from its listed addresses only and this came from {peer}: if the instrument's address changed, add it under Interfaces and replay the message"
            ),
            NoResults => f.write_str("the message carries no results"),
            NoValue { skipped } => write!(f, "no result carries a value ({})", skipped.join("; ")),
            UnmappedCode { code, instrument, .. } => write!(
                f,
                "test code {code:?} from {instrument} is not mapped to a catalog test: map it under Interfaces"
            ),
            UnitMismatch { test, sent, instrument, mapped, .. } => write!(
                f,
                "{test} arrived in {sent} but {instrument} is mapped to send {mapped}: correct the instrument's unit or its mapping under Interfaces"
            ),
            UnitNotExpected { test, instrument, mapped, .. } => write!(
                f,
                "{test} is mapped on {instrument} to arrive in {mapped}, but the catalog reports it without a unit: map the code again under Interfaces"
            ),
            UnitNotConvertible { test, instrument, mapped, catalog_unit, .. } => write!(
                f,
                "{test} is mapped on {instrument} to arrive in {mapped}, which Cuvette cannot convert to the catalog's {catalog_unit}: map the code again under Interfaces"
            ),
            BadSpecimenId { sent, error, .. } => write!(f, "specimen id {sent:?}: {error}"),
            NoSpecimen { accession, .. } => {
                write!(f, "no specimen has accession number {accession}")
            }
            RejectedSpecimen { accession, .. } => write!(
                f,
                "specimen {accession} was rejected; results go on its recollection"
            ),
            SpecimenNotReceived { accession, .. } => {
                write!(f, "specimen {accession} has not been received in the lab")
            }
            SerumIndexNotWhole { index, value, .. } => {
                write!(f, "{index} {value:?} is not a whole number")
            }
            WrongPatient { accession, differences, .. } => write!(
                f,
                "the message's patient is not specimen {accession}'s patient ({}): check the specimen id on the tube and the patient on the instrument",
                differences.join("; ")
            ),
            NotOrdered { test, accession, .. } => {
                write!(f, "{test} is not ordered on specimen {accession}")
            }
            Locked { test, accession, status, .. } => write!(
                f,
                "{test} on {accession} is {status}: a change to a released result comes as a correction (OBX-11 or R-9 C), or a technologist corrects it on the bench"
            ),
            NotMeasured { test, .. } => write!(f, "{test} cannot take a measured value"),
            InvalidValue { test, error, .. } => write!(f, "{test}: {error}"),
            EncapsulatedUnreadable { test, error, .. } => write!(
                f,
                "{test}: the attached file cannot be read: {error}; the instrument must send it again"
            ),
            AttachmentTooLarge { test, media_type, bytes, limit, .. } => write!(
                f,
                "{test}: the attached file ({media_type}) is {bytes} bytes; the limit is {limit}: have the instrument send a smaller file, or raise --instrument-attachment-bytes-max and replay the message"
            ),
            NotConvertible { test, value, from, to, .. } => {
                write!(f, "{test} {value} {from} cannot be converted to {to}")
            }
            Twice { test, accession, .. } => write!(f, "{test} appears twice for {accession}"),
            MixedSamples { control, sample, .. } => write!(
                f,
                "the message mixes control sample {control:?} with patient sample {sample:?}: send them apart"
            ),
            UnknownControl { sample, .. } => write!(
                f,
                "no control material has the sample id {sample:?}: add the lot under QC"
            ),
            NoTarget { test, product, level, lot, instrument, .. } => write!(
                f,
                "{test} has no target for {product} level {level} (lot {lot}) on {instrument}: set it under QC"
            ),
            ControlNotNumber { test, value, .. } => {
                write!(f, "control value {value:?} for {test} is not a number")
            }
            NoControlValues => f.write_str("the control message carries no values"),
            QcRefused { test, reason } => write!(f, "{test}: {reason}"),
            UnknownOrderer { sender } => write!(
                f,
                "unknown sender {sender:?}: add the EHR under Interfaces (HL7, sender {sender:?}) before it sends orders"
            ),
            OrdererDisabled { name } => write!(f, "{name} is disabled"),
            SecondPatient { .. } => {
                f.write_str("a second patient in one order message: send one patient per message")
            }
            OrphanObr { .. } => {
                f.write_str("an OBR without the ORC that must come before it (ORC-1 NW)")
            }
            NoPatient => f.write_str("the order names no patient: the PID segment is missing"),
            MrnMissing => f.write_str(
                "the patient's MRN is missing (PID-3, first repetition, first component)",
            ),
            BadMrn { mrn, error } => write!(f, "MRN {mrn:?}: {error}"),
            BirthDateMissing => f.write_str(
                "the date of birth is missing (PID-7): Cuvette identifies patients by MRN and date of birth",
            ),
            BadBirthDate { error } => f.write_str(error),
            BirthDateDiffers { mrn, on_file, sent } => write!(
                f,
                "MRN {mrn} is on file with date of birth {on_file}, but the order says {sent}: check the patient's identity with the ward before ordering"
            ),
            FamilyNameMissing { mrn } => write!(
                f,
                "MRN {mrn} is not on file and the family name to register is missing (PID-5.1)"
            ),
            NameTooLong { max } => write!(f, "names are at most {max} characters"),
            UnknownSex { sex } => {
                write!(f, "sex {sex:?} is not F, M, O, U, A or N (HL7 table 0001)")
            }
            NoOrders => f.write_str("the message carries no order (ORC with OBR)"),
            OrderControl { control, name, .. } => write!(
                f,
                "order control {control:?} ({name}) is not taken: Cuvette accepts new orders (NW) only; cancel or change an order by calling the lab"
            ),
            NoObr { .. } => f.write_str("the order has no OBR naming the test (OBR-4)"),
            OrphanSpm { .. } => f.write_str(
                "an SPM before any OBR: in OML^O21 each specimen follows the OBR of the tests drawn into it",
            ),
            SecondSpecimen { .. } => f.write_str(
                "a second specimen for one test order: Cuvette puts each OBR on one specimen; order the test again (its own ORC and OBR) for the other specimen",
            ),
            SpecimenIdMissing { .. } => {
                f.write_str("the specimen id is missing (SPM-2, the placer's id)")
            }
            SpecimenIdTooLong { max, .. } => {
                write!(f, "the specimen id is longer than {max} characters")
            }
            SpecimenTypeMissing { id, .. } => {
                write!(f, "specimen {id} has no specimen type (SPM-4), which the lab must know")
            }
            BadCollectionTime { sent, .. } => write!(
                f,
                "collection time {sent:?} is not a date and time to the minute (YYYYMMDDHHMM, seconds and a +ZZZZ offset optional)"
            ),
            CollectedLater { sent, .. } => write!(
                f,
                "collection time {sent:?} is after the order arrived: check the clock of the sending system"
            ),
            SpecimenDiffers { id, first, .. } => write!(
                f,
                "specimen {id} is described differently in {first}: one specimen has one type and one collection time"
            ),
            SpecimenOnFile { id, accession, .. } => write!(
                f,
                "specimen {id} is already on file as accession {accession}: to add a test to it, call the lab"
            ),
            TestCodeMissing { .. } => f.write_str("the test or panel code is missing (OBR-4)"),
            UnknownTestCode { code, described, .. } => {
                let described =
                    if described.is_empty() { String::new() } else { format!(" ({described})") };
                write!(
                    f,
                    "test code {code:?}{described} is not in the catalog: no orderable test or panel has this LOINC or Cuvette code"
                )
            }
            AmbiguousLoinc { code, matches, .. } => write!(
                f,
                "LOINC {code} matches several catalog entries ({}): send the Cuvette code instead",
                matches.join(", ")
            ),
            NotPlaceable { .. } => f.write_str("the order cannot be placed"),
            ProviderMissing { .. } => f.write_str(
                "the ordering provider is missing (ORC-12 or OBR-16): an order needs the name of the person who ordered it",
            ),
            TestsRefused { message, .. } => write!(f, "tests: {message}"),
            OrderField { field, message, .. } => write!(f, "{field}: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_print_as_the_message_log_always_wrote_them() {
        assert_eq!(Place::record("OBX", 3).to_string(), "OBX 3");
        assert_eq!(Place::record("R", 2).to_string(), "R 2");
        assert_eq!(Place::segment("PID").to_string(), "PID");
        assert_eq!(Place::field("PID", 7).to_string(), "PID-7");
        assert_eq!(Place::nth("ORC", 1).to_string(), "ORC(1)");
        assert_eq!(Place::nth_field("OBR", 2, 4).to_string(), "OBR(2)-4");
    }

    #[test]
    fn a_results_err_2_names_the_obx_field_at_fault() {
        let at = Place::record("OBX", 5);
        let value = Refusal::InvalidValue { at: at.clone(), test: "K".into(), error: "x".into() };
        let e = value.hl7_error();
        assert_eq!((e.ack, e.code), (AckCode::ApplicationError, ErrorCode::DataTypeError));
        assert_eq!(e.location, Some(ErrorLocation::new("OBX", 5).field(5)));

        let unmapped =
            Refusal::UnmappedCode { at: at.clone(), code: "X".into(), instrument: "C".into() };
        let e = unmapped.hl7_error();
        assert_eq!(e.code, ErrorCode::TableValueNotFound);
        assert_eq!(e.location, Some(ErrorLocation::new("OBX", 5).field(3)));

        // An ASTM record has no OBX fields: the place alone.
        let astm = Refusal::NoSpecimen { at: Place::record("R", 2), accession: "A".into() };
        let e = astm.hl7_error();
        assert_eq!(e.code, ErrorCode::UnknownKeyIdentifier);
        assert_eq!(e.location, Some(ErrorLocation::new("R", 2)));
    }

    #[test]
    fn only_a_message_cuvette_does_not_process_is_rejected() {
        let unreadable = Refusal::Unreadable { protocol: "HL7", error: "no MSH".into() };
        assert_eq!(unreadable.hl7_error().ack, AckCode::ApplicationReject);
        let adt = Refusal::NotResults { message_type: "ADT^A01".into() };
        assert_eq!(adt.hl7_error().ack, AckCode::ApplicationReject);
        assert_eq!(adt.hl7_error().location, Some(ErrorLocation::new("MSH", 1).field(9)));
        for content in [
            Refusal::NoResults,
            Refusal::UnknownInstrument { sender: "X".into() },
            Refusal::MrnMissing,
            Refusal::SecondPatient { at: Place::nth("PID", 2) },
        ] {
            assert_eq!(content.hl7_error().ack, AckCode::ApplicationError, "{content}");
        }
    }

    #[test]
    fn an_order_message_names_the_field_even_for_a_refusal_about_the_patient() {
        let missing = Refusal::BirthDateMissing;
        assert_eq!(missing.location(), "PID-7");
        assert_eq!(missing.detail(), format!("PID-7: {missing}"));
        let e = missing.hl7_error();
        assert_eq!(e.code, ErrorCode::RequiredFieldMissing);
        assert_eq!(e.location, Some(ErrorLocation::new("PID", 1).field(7)));

        let orphan = Refusal::OrphanObr { at: Place::nth("OBR", 1) };
        assert_eq!(orphan.hl7_error().code, ErrorCode::SegmentSequenceError);
        let empty = Refusal::OrderControl {
            at: Place::nth_field("ORC", 1, 1),
            control: String::new(),
            name: "not a new order",
        };
        assert_eq!(empty.hl7_error().code, ErrorCode::RequiredFieldMissing);
        let cancel = Refusal::OrderControl {
            at: Place::nth_field("ORC", 1, 1),
            control: "CA".into(),
            name: "cancel order request",
        };
        assert_eq!(cancel.hl7_error().code, ErrorCode::TableValueNotFound);
    }
}

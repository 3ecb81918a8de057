//! Acknowledgments (HL7 v2.5.1 §2.9 processing rules, §2.14.5 ERR, §2.14.8 MSA).

use crate::build::{BuildError, FieldValue, MessageBuilder, SegmentBuilder};
use crate::message::{Message, Msh};
use crate::path::Path;

/// Builds the ACK answering a parsed message.
///
/// The reply (v2.5.1 `ACK` structure `MSH [{SFT}] MSA [{ERR}]`, §2.9.2):
///
/// - `MSH` with the original's delimiters; MSH-3/4 = the original MSH-5/6 (we answer as its
///   receiver), MSH-5/6 = the original MSH-3/4, MSH-7 = the caller's timestamp, MSH-9 =
///   `ACK^<original trigger>^ACK`, MSH-10 = the caller's new control ID, MSH-11 = the original
///   processing ID (`P` when it sent none; [`AckBuilder::processing_id`] overrides), MSH-12 =
///   the original version. Fields copied from the original are copied as sent.
/// - `MSA|<code>|<original MSH-10>[|<text>]`.
/// - One `ERR` per [`ErrSegment`]: ERR-2 location, ERR-3 table 0357 code, ERR-4 severity,
///   ERR-7 diagnostic, ERR-8 user message (the v2.5 layout; ERR-1 stays empty).
///
/// Nothing here reads a clock or invents an ID: both are the caller's.
///
/// ```
/// use cuvette_hl7::{AckBuilder, AckCode, ErrSegment, ErrorCode, ErrorLocation, Message, Severity};
///
/// let original = Message::parse(
///     b"MSH|^~\\&|LAB|HOSP|LIS|CUVETTE|20240501120000||ORU^R01^ORU_R01|M42|P|2.5.1\r",
/// )?;
/// let ack = AckBuilder::new(&original, AckCode::ApplicationError, "A1", "20240501120001")
///     .text("OBX-3 unknown")
///     .error(
///         ErrSegment::new(ErrorCode::TableValueNotFound, Severity::Error)
///             .location(ErrorLocation::new("OBX", 1).field(3)),
///     )
///     .build()
///     .unwrap();
/// assert_eq!(
///     ack,
///     b"MSH|^~\\&|LIS|CUVETTE|LAB|HOSP|20240501120001||ACK^R01^ACK|A1|P|2.5.1\r\
///       MSA|AE|M42|OBX-3 unknown\r\
///       ERR||OBX^1^3|103^Table value not found^HL70357|E\r"
/// );
/// # Ok::<(), cuvette_hl7::ParseError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AckBuilder<'m> {
    original: Msh<'m>,
    code: AckCode,
    control_id: Vec<u8>,
    timestamp: Vec<u8>,
    processing_id: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    text: Option<Vec<u8>>,
    errors: Vec<ErrSegment>,
}

impl<'m> AckBuilder<'m> {
    /// An acknowledgment of `original` with `code`, its own new `control_id` (MSH-10) and
    /// `timestamp` (MSH-7, e.g. `20240501120001+0200`).
    pub fn new(
        original: &Message<'m>,
        code: AckCode,
        control_id: impl AsRef<[u8]>,
        timestamp: impl AsRef<[u8]>,
    ) -> AckBuilder<'m> {
        AckBuilder {
            original: original.msh(),
            code,
            control_id: control_id.as_ref().to_vec(),
            timestamp: timestamp.as_ref().to_vec(),
            processing_id: None,
            version: None,
            text: None,
            errors: Vec::new(),
        }
    }

    /// MSA-3 text message (kept for receivers before v2.5; ERR carries the details).
    pub fn text(mut self, text: impl AsRef<[u8]>) -> AckBuilder<'m> {
        self.text = Some(text.as_ref().to_vec());
        self
    }

    /// Adds an ERR segment.
    pub fn error(mut self, error: ErrSegment) -> AckBuilder<'m> {
        self.errors.push(error);
        self
    }

    /// MSH-11 of the ACK, instead of the original's.
    pub fn processing_id(mut self, processing_id: impl AsRef<[u8]>) -> AckBuilder<'m> {
        self.processing_id = Some(processing_id.as_ref().to_vec());
        self
    }

    /// MSH-12 of the ACK, instead of the original's (a receiver that speaks one version, and
    /// whose ACK structure — MSA, ERR — is that version's, says so here).
    pub fn version(mut self, version: impl AsRef<[u8]>) -> AckBuilder<'m> {
        self.version = Some(version.as_ref().to_vec());
        self
    }

    /// Writes the ACK.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let original = &self.original;
        let processing_id = match &self.processing_id {
            Some(id) => FieldValue::text(id),
            None if original.processing_id().is_empty() => FieldValue::text("P"),
            None => original.processing_id().into(),
        };
        let trigger = original.message_type().trigger().decoded().into_owned();
        let msh = SegmentBuilder::new("MSH")
            .field(3, original.receiving_application())
            .field(4, original.receiving_facility())
            .field(5, original.sending_application())
            .field(6, original.sending_facility())
            .field(7, self.timestamp.as_slice())
            .field(9, FieldValue::components([&b"ACK"[..], trigger.as_slice(), &b"ACK"[..]]))
            .field(10, self.control_id.as_slice())
            .field(11, processing_id)
            .field(
                12,
                match &self.version {
                    Some(v) => FieldValue::text(v),
                    None => original.version().into(),
                },
            );
        // MSA-2 is required (v2.5.1 §2.15.8); a message without MSH-10 gets the explicit null,
        // so the acknowledgment stays valid and says "there was no control id".
        let acknowledged = if original.control_id().is_empty() {
            FieldValue::null()
        } else {
            original.control_id().into()
        };
        let mut msa = SegmentBuilder::new("MSA").field(1, self.code.code()).field(2, acknowledged);
        if let Some(text) = &self.text {
            msa.set(3, text.as_slice());
        }
        let separators = original.segment().field(1).separators();
        let mut message = MessageBuilder::with_separators(separators).segment(msh).segment(msa);
        for error in &self.errors {
            message.push(error.segment());
        }
        message.finish()
    }
}

/// MSA-1 acknowledgment code (HL7 table 0008).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: original mode, accepted and processed.
    ApplicationAccept,
    /// `AE`: original mode, an error in the content; resending it unchanged fails again.
    ApplicationError,
    /// `AR`: original mode, rejected for a reason unrelated to content (unsupported type,
    /// processing ID or version; system down); the sender may retry.
    ApplicationReject,
    /// `CA`: enhanced mode, commit accept (safely stored).
    CommitAccept,
    /// `CE`: enhanced mode, commit error.
    CommitError,
    /// `CR`: enhanced mode, commit reject.
    CommitReject,
}

impl AckCode {
    /// The code as sent in MSA-1.
    pub fn code(&self) -> &'static str {
        match self {
            AckCode::ApplicationAccept => "AA",
            AckCode::ApplicationError => "AE",
            AckCode::ApplicationReject => "AR",
            AckCode::CommitAccept => "CA",
            AckCode::CommitError => "CE",
            AckCode::CommitReject => "CR",
        }
    }

    /// Reads an MSA-1 value.
    pub fn from_code(code: &[u8]) -> Option<AckCode> {
        Some(match code {
            b"AA" => AckCode::ApplicationAccept,
            b"AE" => AckCode::ApplicationError,
            b"AR" => AckCode::ApplicationReject,
            b"CA" => AckCode::CommitAccept,
            b"CE" => AckCode::CommitError,
            b"CR" => AckCode::CommitReject,
            _ => return None,
        })
    }
}

/// When a message wants an acknowledgment (MSH-15, MSH-16; HL7 table 0155).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckCondition {
    /// `AL`: always.
    Always,
    /// `NE`: never.
    Never,
    /// `ER`: only when the message was refused or had errors.
    ErrorOnly,
    /// `SU`: only when it succeeded.
    SuccessOnly,
}

impl AckCondition {
    /// Reads an MSH-15 or MSH-16 value.
    pub fn from_code(code: &[u8]) -> Option<AckCondition> {
        Some(match code {
            b"AL" => AckCondition::Always,
            b"NE" => AckCondition::Never,
            b"ER" => AckCondition::ErrorOnly,
            b"SU" => AckCondition::SuccessOnly,
            _ => return None,
        })
    }

    /// Whether an acknowledgment of an outcome that `succeeded` (or not) is to be sent.
    pub fn wants(&self, succeeded: bool) -> bool {
        match self {
            AckCondition::Always => true,
            AckCondition::Never => false,
            AckCondition::ErrorOnly => !succeeded,
            AckCondition::SuccessOnly => succeeded,
        }
    }
}

/// The acknowledgment mode a message asks for (§2.9.2, §2.9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// MSH-15 and MSH-16 both empty: one application acknowledgment (AA, AE, AR).
    Original,
    /// Either is valued: an accept acknowledgment (CA, CE, CR) once the message is safely
    /// stored, then an application acknowledgment, each only under its condition. A field
    /// left empty or holding a value outside table 0155 counts as `AL`: a sender that asked
    /// for enhanced mode is not left without an answer by a typo.
    Enhanced {
        /// MSH-15: when to send the accept acknowledgment.
        accept: AckCondition,
        /// MSH-16: when to send the application acknowledgment.
        application: AckCondition,
    },
}

impl AckMode {
    /// The mode `msh` asks for.
    pub fn of(msh: &Msh<'_>) -> AckMode {
        let (accept, application) = (msh.accept_ack_type(), msh.application_ack_type());
        if accept.is_empty() && application.is_empty() {
            return AckMode::Original;
        }
        let condition = |field: crate::Field<'_>| {
            AckCondition::from_code(field.text().trim().as_bytes()).unwrap_or(AckCondition::Always)
        };
        AckMode::Enhanced { accept: condition(accept), application: condition(application) }
    }
}

/// ERR-3 HL7 error code (HL7 table 0357, v2.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `0` message accepted.
    MessageAccepted,
    /// `100` segment sequence error.
    SegmentSequenceError,
    /// `101` required field missing.
    RequiredFieldMissing,
    /// `102` data type error.
    DataTypeError,
    /// `103` table value not found.
    TableValueNotFound,
    /// `200` unsupported message type.
    UnsupportedMessageType,
    /// `201` unsupported event code.
    UnsupportedEventCode,
    /// `202` unsupported processing ID.
    UnsupportedProcessingId,
    /// `203` unsupported version ID.
    UnsupportedVersionId,
    /// `204` unknown key identifier.
    UnknownKeyIdentifier,
    /// `205` duplicate key identifier.
    DuplicateKeyIdentifier,
    /// `206` application record locked.
    ApplicationRecordLocked,
    /// `207` application internal error.
    ApplicationInternalError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.entry().0
    }

    /// The table's description.
    pub fn description(&self) -> &'static str {
        self.entry().1
    }

    fn entry(&self) -> (u16, &'static str) {
        match self {
            ErrorCode::MessageAccepted => (0, "Message accepted"),
            ErrorCode::SegmentSequenceError => (100, "Segment sequence error"),
            ErrorCode::RequiredFieldMissing => (101, "Required field missing"),
            ErrorCode::DataTypeError => (102, "Data type error"),
            ErrorCode::TableValueNotFound => (103, "Table value not found"),
            ErrorCode::UnsupportedMessageType => (200, "Unsupported message type"),
            ErrorCode::UnsupportedEventCode => (201, "Unsupported event code"),
            ErrorCode::UnsupportedProcessingId => (202, "Unsupported processing id"),
            ErrorCode::UnsupportedVersionId => (203, "Unsupported version id"),
            ErrorCode::UnknownKeyIdentifier => (204, "Unknown key identifier"),
            ErrorCode::DuplicateKeyIdentifier => (205, "Duplicate key identifier"),
            ErrorCode::ApplicationRecordLocked => (206, "Application record locked"),
            ErrorCode::ApplicationInternalError => (207, "Application internal error"),
        }
    }
}

/// ERR-4 severity (HL7 table 0516).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `E`: the message (or part of it) was not processed.
    Error,
    /// `W`: processed, with a warning.
    Warning,
    /// `I`: information only.
    Information,
}

impl Severity {
    /// The code as sent in ERR-4.
    pub fn code(&self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
        }
    }
}

/// ERR-2 error location (data type ERL): `SEG^sequence^field^repetition^component^subcomponent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLocation {
    segment: String,
    sequence: usize,
    field: Option<usize>,
    repetition: Option<usize>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

impl ErrorLocation {
    /// The `sequence`-th (from 1) segment with ID `segment`.
    pub fn new(segment: &str, sequence: usize) -> ErrorLocation {
        ErrorLocation {
            segment: segment.to_owned(),
            sequence,
            field: None,
            repetition: None,
            component: None,
            subcomponent: None,
        }
    }

    /// ERL-3 field position.
    pub fn field(mut self, n: usize) -> ErrorLocation {
        self.field = Some(n);
        self
    }

    /// ERL-4 field repetition.
    pub fn repetition(mut self, n: usize) -> ErrorLocation {
        self.repetition = Some(n);
        self
    }

    /// ERL-5 component number.
    pub fn component(mut self, n: usize) -> ErrorLocation {
        self.component = Some(n);
        self
    }

    /// ERL-6 subcomponent number.
    pub fn subcomponent(mut self, n: usize) -> ErrorLocation {
        self.subcomponent = Some(n);
        self
    }

    fn value(&self) -> FieldValue {
        let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
        FieldValue::components([
            self.segment.clone(),
            self.sequence.to_string(),
            number(self.field),
            number(self.repetition),
            number(self.component),
            number(self.subcomponent),
        ])
    }
}

impl From<&Path> for ErrorLocation {
    fn from(path: &Path) -> ErrorLocation {
        ErrorLocation {
            segment: String::from_utf8_lossy(path.segment_id()).into_owned(),
            sequence: path.occurrence(),
            field: Some(path.field()),
            repetition: path.repetition(),
            component: path.component(),
            subcomponent: path.subcomponent(),
        }
    }
}

/// One ERR segment of an acknowledgment (HL7 v2.5.1 §2.14.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrSegment {
    code: ErrorCode,
    severity: Severity,
    location: Option<ErrorLocation>,
    diagnostic: Option<String>,
    user_message: Option<String>,
}

impl ErrSegment {
    /// An error with its table 0357 code (ERR-3) and severity (ERR-4).
    pub fn new(code: ErrorCode, severity: Severity) -> ErrSegment {
        ErrSegment { code, severity, location: None, diagnostic: None, user_message: None }
    }

    /// ERR-2: where in the original message.
    pub fn location(mut self, location: ErrorLocation) -> ErrSegment {
        self.location = Some(location);
        self
    }

    /// ERR-7 diagnostic information, for the sender's support staff.
    pub fn diagnostic(mut self, text: impl Into<String>) -> ErrSegment {
        self.diagnostic = Some(text.into());
        self
    }

    /// ERR-8 user message, for the sender's users.
    pub fn user_message(mut self, text: impl Into<String>) -> ErrSegment {
        self.user_message = Some(text.into());
        self
    }

    /// The segment, for a reply that is not a bare ACK (ORL^O22 carries ERR after MSA too).
    pub fn segment(&self) -> SegmentBuilder {
        let mut err = SegmentBuilder::new("ERR")
            .field(
                3,
                FieldValue::components([
                    self.code.code().to_string().as_str(),
                    self.code.description(),
                    "HL70357",
                ]),
            )
            .field(4, self.severity.code());
        if let Some(location) = &self.location {
            err.set(2, location.value());
        }
        if let Some(text) = &self.diagnostic {
            err.set(7, text.as_str());
        }
        if let Some(text) = &self.user_message {
            err.set(8, text.as_str());
        }
        err
    }
}

//! Typed views of the records an LIS reads: each names the fields of one record type, in the
//! standard's numbering, and returns them unparsed ([`Field`], [`Component`]) so no byte is
//! lost and no vendor's convention is guessed at here.

use super::{Component, Delimiters, Field, Record, RecordType, Repeat};

/// A record seen as its type.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum View<'a> {
    /// `H`.
    Header(Header<'a>),
    /// `P`.
    Patient(Patient<'a>),
    /// `O`.
    Order(Order<'a>),
    /// `R`.
    Result(ResultRecord<'a>),
    /// `C`.
    Comment(Comment<'a>),
    /// `Q`.
    Query(Query<'a>),
    /// `L`.
    Terminator(Terminator<'a>),
    /// `S`: no typed view; read its fields from the record.
    Scientific(&'a Record),
    /// `M`: manufacturer-defined; read its fields from the record.
    Manufacturer(&'a Record),
}

impl<'a> View<'a> {
    pub(crate) fn of(record: &'a Record) -> View<'a> {
        match record.kind() {
            RecordType::Header => View::Header(Header::new(record)),
            RecordType::Patient => View::Patient(Patient(record)),
            RecordType::Order => View::Order(Order(record)),
            RecordType::Result => View::Result(ResultRecord(record)),
            RecordType::Comment => View::Comment(Comment(record)),
            RecordType::Query => View::Query(Query(record)),
            RecordType::Terminator => View::Terminator(Terminator::new(record)),
            RecordType::Scientific => View::Scientific(record),
            RecordType::Manufacturer => View::Manufacturer(record),
        }
    }
}

macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident = $n:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Field<'a> {
                self.0.field($n)
            }
        )*
    };
}

/// The message header record (LIS02-A2 §6).
#[derive(Debug, Clone, Copy)]
pub struct Header<'a>(&'a Record);

impl<'a> Header<'a> {
    pub(crate) fn new(record: &'a Record) -> Self {
        Header(record)
    }

    /// The record itself, for fields without an accessor.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    /// H-2, the delimiters the header declares.
    pub fn delimiters(&self) -> Delimiters {
        self.0.delimiters()
    }

    fields! {
        /// H-3, message control ID.
        message_control_id = 3;
        /// H-4, access password.
        password = 4;
        /// H-5, sender name or ID (`name^version^…`, LIS02-A2 §6.5).
        sender = 5;
        /// H-10, receiver ID.
        receiver = 10;
        /// H-11, comment or special instructions.
        comment = 11;
        /// H-12, processing ID: `P` production, `T` training, `D` debugging, `Q` quality
        /// control.
        processing_id = 12;
        /// H-13, version of the specification (`LIS2-A2`, `1394-97`).
        version = 13;
        /// H-14, date and time of the message (`YYYYMMDDHHMMSS`).
        timestamp = 14;
    }
}

/// A patient information record (LIS02-A2 §7).
#[derive(Debug, Clone, Copy)]
pub struct Patient<'a>(&'a Record);

impl<'a> Patient<'a> {
    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    fields! {
        /// P-2, sequence number.
        sequence = 2;
        /// P-3, practice-assigned patient ID.
        practice_patient_id = 3;
        /// P-4, laboratory-assigned patient ID.
        laboratory_patient_id = 4;
        /// P-5, patient ID No. 3.
        patient_id_3 = 5;
        /// P-6, name: `last^first^middle^suffix^title`.
        name = 6;
        /// P-7, mother's maiden name.
        mothers_maiden_name = 7;
        /// P-8, birth date.
        birth_date = 8;
        /// P-9, sex: `M`, `F` or `U`.
        sex = 9;
        /// P-14, attending physician(s).
        physician = 14;
        /// P-26, location.
        location = 26;
    }
}

/// A test order record (LIS02-A2 §8).
#[derive(Debug, Clone, Copy)]
pub struct Order<'a>(&'a Record);

impl<'a> Order<'a> {
    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    /// The specimen ID: the first component of O-3 (LIS02-A2 §8.4.3, where further components
    /// may name an isolate, well or cup).
    pub fn specimen_id(&self) -> Component<'a> {
        self.0.field(3).component(1)
    }

    /// O-5's tests: one universal test ID per repeat (`^^^A1\^^^A2`).
    pub fn test_ids(&self) -> impl Iterator<Item = UniversalTestId<'a>> + use<'a> {
        self.0.field(5).repeats().filter(|r| !r.is_empty()).map(UniversalTestId)
    }

    fields! {
        /// O-2, sequence number.
        sequence = 2;
        /// O-3, specimen ID with its components (LIS02-A2 §8.4.3).
        specimen_id_field = 3;
        /// O-4, instrument specimen ID.
        instrument_specimen_id = 4;
        /// O-5, universal test ID(s), as received.
        universal_test_id = 5;
        /// O-6, priority: `S` stat, `A` as soon as possible, `R` routine, `C` callback, `P`
        /// preoperative.
        priority = 6;
        /// O-7, requested (ordered) date and time.
        requested_at = 7;
        /// O-8, specimen collection date and time.
        collected_at = 8;
        /// O-12, action code: `C` cancel, `A` add, `N` new, `P` pending, `L` reserved, `X` in
        /// process, `Q` quality control (LIS02-A2 §8.4.12).
        action_code = 12;
        /// O-16, specimen descriptor: `type^source`.
        specimen_descriptor = 16;
        /// O-17, ordering physician.
        ordering_physician = 17;
        /// O-23, date and time results were reported.
        reported_at = 23;
        /// O-26, report type: `O` order, `C` correction, `P` preliminary, `F` final, `X`
        /// cannot be done, `I` pending in instrument, `Y` no order for the test, `Z` no record
        /// of the patient, `Q` response to a query (LIS02-A2 §8.4.26).
        report_type = 26;
    }
}

/// A result record (LIS02-A2 §9).
#[derive(Debug, Clone, Copy)]
pub struct ResultRecord<'a>(&'a Record);

impl<'a> ResultRecord<'a> {
    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    /// R-3's universal test ID (first repeat).
    pub fn test_id(&self) -> UniversalTestId<'a> {
        UniversalTestId(self.0.field(3).first())
    }

    /// The measurement as text: the first non-empty component of R-4, escapes resolved,
    /// lossily decoded. LIS02-A2 §9.4 allows components "of equal stature" in the value, and
    /// instruments use them: Cepheid sends a qualitative result in component 1 (`POS^`) and a
    /// quantity in component 2 (`^1009.64`). `None` when the value is empty.
    pub fn value_text(&self) -> Option<String> {
        self.0.field(4).components().find(|c| !c.is_empty()).map(|c| c.text())
    }

    /// R-7's abnormal flags, one per repeat, empty repeats skipped.
    pub fn abnormal_flags(&self) -> impl Iterator<Item = Repeat<'a>> + use<'a> {
        self.0.field(7).repeats().filter(|r| !r.is_empty())
    }

    fields! {
        /// R-2, sequence number.
        sequence = 2;
        /// R-3, universal test ID, as received.
        universal_test_id = 3;
        /// R-4, data or measurement value, as received (LIS02-A2 §9.4).
        value = 4;
        /// R-5, units.
        units = 5;
        /// R-6, reference ranges (`lo to hi`, `lo-hi`; LIS02-A2 §9.6).
        reference_range = 6;
        /// R-7, result abnormal flags: `L`, `H`, `LL`, `HH`, `<`, `>`, `N`, `A`, `U`, `D`, `B`,
        /// `W`.
        abnormal_flags_field = 7;
        /// R-8, nature of abnormality testing (LIS02-A2 §9.8).
        nature_of_abnormality = 8;
        /// R-9, result status: `C`, `P`, `F`, `X`, `I`, `S`, `M`, `R`, `N`, `Q`, `V`, `W`
        /// (LIS02-A2 §9.9).
        status = 9;
        /// R-11, operator identification: `performed^verified`.
        operator = 11;
        /// R-12, date and time the test started.
        started_at = 12;
        /// R-13, date and time the test was completed.
        completed_at = 13;
        /// R-14, instrument identification.
        instrument = 14;
    }
}

/// A comment record (LIS02-A2 §10), about the record before it.
#[derive(Debug, Clone, Copy)]
pub struct Comment<'a>(&'a Record);

impl<'a> Comment<'a> {
    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    fields! {
        /// C-2, sequence number.
        sequence = 2;
        /// C-3, comment source: `P` practice, `L` information system, `I` instrument.
        source = 3;
        /// C-4, comment text (components allowed).
        text = 4;
        /// C-5, comment type: `G` generic, `T` test name, `P` positive, `N` negative, `I`
        /// instrument flag.
        comment_type = 5;
    }
}

/// A request information record (LIS02-A2 §11): the instrument asks the LIS for orders.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a>(&'a Record);

impl<'a> Query<'a> {
    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    /// The specimen IDs asked about: component 2 of each repeat of Q-3 (LIS02-A2 §11.3:
    /// component 1 is the patient ID, component 2 the specimen ID; repeats list several
    /// specimens). Empty components are skipped.
    pub fn specimen_ids(&self) -> impl Iterator<Item = Component<'a>> + use<'a> {
        self.0.field(3).repeats().map(|r| r.component(2)).filter(|c| !c.is_empty())
    }

    fields! {
        /// Q-2, sequence number.
        sequence = 2;
        /// Q-3, starting range ID: `patientID^specimenID^…`, or `ALL`.
        starting_range = 3;
        /// Q-4, ending range ID.
        ending_range = 4;
        /// Q-5, universal test ID (`^^^ALL` for all tests).
        universal_test_id = 5;
        /// Q-6, nature of request time limits.
        nature_of_time_limits = 6;
        /// Q-7, beginning request results date and time.
        begin_at = 7;
        /// Q-8, ending request results date and time.
        end_at = 8;
        /// Q-13, request information status code: `O` orders and demographics only, `A`
        /// abort the last request, `D` demographics only, … (LIS02-A2 §11.13).
        status = 13;
    }
}

/// The message terminator record (LIS02-A2 §12).
#[derive(Debug, Clone, Copy)]
pub struct Terminator<'a>(&'a Record);

impl<'a> Terminator<'a> {
    pub(crate) fn new(record: &'a Record) -> Self {
        Terminator(record)
    }

    /// The record itself.
    pub fn record(&self) -> &'a Record {
        self.0
    }

    fields! {
        /// L-2, sequence number (`1`).
        sequence = 2;
        /// L-3, termination code: `N` normal, `T` sender aborted, `R` receiver requested
        /// abort, `E` unknown system error, `Q` error in last request, `I` no information
        /// available from last query, `F` last request processed. Empty when a sender sends a
        /// bare `L`.
        code = 3;
    }
}

/// A universal test ID (LIS02-A2 §5.6.1): `universal^name^type^manufacturer code^…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniversalTestId<'a>(Repeat<'a>);

impl<'a> UniversalTestId<'a> {
    /// The test ID as received.
    pub fn raw(&self) -> &'a [u8] {
        self.0.raw()
    }

    /// Component `n` (1-based). Components 5 and on are manufacturer-defined qualifiers; e.g.
    /// Cepheid puts the test name in 5, the assay version in 6, the analyte in 7 and the
    /// result kind (`Ct`, `EndPt`) in 8.
    pub fn component(&self, n: usize) -> Component<'a> {
        self.0.component(n)
    }

    /// Component 4, the manufacturer's test code.
    pub fn manufacturer_code(&self) -> Component<'a> {
        self.0.component(4)
    }

    /// The code a laboratory maps from: the manufacturer's code (component 4) when present,
    /// else the first non-empty component. Senders that skip the `^^^` prefix (Ortho VISION
    /// sends `ABO`) put their code in component 1.
    pub fn code(&self) -> Component<'a> {
        let manufacturer = self.manufacturer_code();
        if !manufacturer.is_empty() {
            return manufacturer;
        }
        self.0.components().find(|c| !c.is_empty()).unwrap_or(manufacturer)
    }
}

/// An order with the patient above it and the records below it (LIS02-A2 §5 hierarchy).
#[derive(Debug, Clone)]
pub struct OrderGroup<'a> {
    /// The nearest patient record before the order, if any.
    pub patient: Option<Patient<'a>>,
    /// The order.
    pub order: Order<'a>,
    /// Comments on the order itself.
    pub comments: Vec<Comment<'a>>,
    /// The order's results, each with its comments.
    pub results: Vec<ResultGroup<'a>>,
}

/// A result with the comment records that follow it.
#[derive(Debug, Clone)]
pub struct ResultGroup<'a> {
    /// The result.
    pub result: ResultRecord<'a>,
    /// Comments on it (e.g. an instrument's error text).
    pub comments: Vec<Comment<'a>>,
}

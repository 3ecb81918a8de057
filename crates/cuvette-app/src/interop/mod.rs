//! Interfaces: the one place where instrument and EHR messages meet the lab.
//!
//! Protocol codecs (HL7 v2, ASTM) turn bytes into [`Inbound`] messages carrying
//! [`ReceivedResult`]s; [`Lab::ingest`](crate::Lab::ingest) maps each to a specimen (by accession number) and a
//! catalog test (through the instrument's test-code map), judges it with the same rules as a
//! manual result, and commits results, message log entry and the acknowledgement in one
//! transaction. Only then does the listener send that acknowledgement. What cannot be mapped
//! is committed to the quarantine with the reason and answered with an error: never dropped.
//!
//! Units follow the code map: a code mapped in another unit than the catalog's carries a
//! conversion ([`cuvette_domain::units`]; a unit without one is refused when the code is
//! mapped), its results are converted before they are judged and keep the value and unit as
//! sent, and a result whose unit differs from its mapping's is quarantined.
//!
//! Orders from the EHR ([`OrderMessage`], decoded from OML^O21 and ORM^O01 by [`hl7`]) take the
//! same path through [`Lab::ingest_orders`](crate::Lab::ingest_orders): the patient found by MRN or registered, every
//! order placed with the placer's number, all committed with the log entry and the answer
//! carrying the accession numbers, or quarantined with the field at fault. Results go the
//! other way through [`outbound`]: an ORU^R01 queued in the outbox by the release itself.
//!
//! The module by concern:
//!
//! - `ingest`: results from instruments ([`Lab::ingest`](crate::Lab::ingest)), `control` runs among them, and
//!   the group commit that stores them (`commit`);
//! - `orders`: orders from the EHR ([`Lab::ingest_orders`](crate::Lab::ingest_orders));
//! - `instruments`: instruments and their test-code maps;
//! - `message_log`: the one record every message leaves, the quarantine, and replays;
//! - `refusal`: why a message is quarantined, and what the acknowledgement says about it;
//! - [`hl7`], [`astm`]: the protocols; [`outbound`]: results to the EHR and the outbox.

pub mod astm;
pub(crate) mod commit;
mod control;
pub mod hl7;
mod ingest;
mod instruments;
mod message_log;
mod orders;
pub mod outbound;
mod refusal;

pub use ingest::{Decoded, Encapsulated, INGEST_SLOW_US, ReceivedResult, Skipped};
pub use instruments::{
    CODE_MAP_COLUMNS, CODE_MAP_ROWS_MAX, CodeEntry, InstrumentSettings, MappedCode,
};
pub use message_log::{
    AckError, Acknowledged, Inbound, Ingested, LogQuery, MESSAGE_PAGE, MESSAGE_PAGE_MAX,
    acknowledged,
};
pub use orders::{
    OrderMessage, PLACER_SPECIMEN_ID_LEN_MAX, ReceivedOrder, ReceivedPatient, ReceivedSpecimen,
};
pub use refusal::{Hl7Error, Place, Refusal};

pub(crate) use ingest::{NO_VALUE_STATUSES, instrument_actor, unit_of_result};
pub(crate) use message_log::{Aborted, MessageRecord, Query, Took};

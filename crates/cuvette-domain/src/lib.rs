//! The laboratory as types and pure functions.
//!
//! This crate knows what a specimen, an accession number, a reference interval and a critical
//! value are, and decides what a result means and who may release it. It does no IO, has no
//! async, never reads the clock (every "now" is a parameter) and never touches SQL or HTTP:
//! everything here is a function of its arguments, so every rule is tested in isolation.
#![deny(missing_docs)]

pub mod accession;
pub mod audit;
pub mod autoverify;
pub mod calculation;
pub mod catalog;
pub mod definition_diff;
pub mod delta;
pub mod evaluation;
pub mod number;
pub mod partition;
pub mod password;
pub mod patient;
pub mod peers;
pub mod qc;
pub mod role;
pub mod rotation;
pub mod scope;
pub mod staff;
pub mod synonyms;
pub mod throttle;
pub mod time;
pub mod units;
pub mod value;
pub mod workflow;

pub use accession::Accession;
pub use catalog::{Catalog, TestDefinition};
pub use evaluation::{Evaluation, Flag, Flags, Review, evaluate};
pub use patient::{Mrn, Sex};
pub use role::{Action, Role};
pub use value::ReportedValue;

//! Cuvette's use cases, read as the laboratory's procedure manual: one rule per test, each
//! run against a fresh laboratory through `Lab` and nothing below it.
//!
//! Runs on SQLite by default; set `CUVETTE_TEST_DATABASE_URL=postgres://user@host:5432/db`
//! to run every test on its own new PostgreSQL database instead.

mod acknowledgements;
mod analyzer_records;
mod audit;
mod auth;
mod autoverification;
mod bad_input;
mod calculations;
mod catalog;
mod checkpoints;
mod corrupt;
mod critical;
mod encodings;
mod history;
mod hl7_orders;
mod interfaces;
mod partial_results;
mod privileges;
mod qc;
mod read_models;
mod search;
mod specimens;
mod statuses;
mod support;
mod synonyms;
mod units;
mod verification;
mod workflow;

//! HTTP tests: the server in-process on a fresh database per test, called as a browser or
//! a system would. Few and broad; the rules themselves are tested in the domain and app.

mod astm;
mod attachments;
mod audit;
mod autoverify_staff;
mod catalog;
mod children;
mod coded;
mod critical_banner;
mod faults;
mod fhir;
mod fixtures;
mod hostile;
mod interfaces_api;
mod long_names;
mod long_results;
mod mllp;
mod openapi;
mod outbox;
mod qc_forms;
mod readiness;
mod reports;
mod roles;
mod search;
mod sign_in;
mod slow_clients;
mod staff;
mod students;
mod support;
mod web;

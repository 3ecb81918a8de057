//! Integration tests: fixtures from the corpus, replayed sessions, and whole conversations
//! between an instrument and the LIS in virtual time.

mod conversations;
mod deferred;
mod fixtures;
mod properties;
mod scripted;
mod sessions;
mod support;

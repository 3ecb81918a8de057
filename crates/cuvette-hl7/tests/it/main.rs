//! The crate's one integration-test binary: the sample corpus, then the standard's rules
//! family by family, then properties.

mod ack;
mod build;
mod corpus;
mod escape;
mod mllp;
mod parse;
mod properties;
mod strict;

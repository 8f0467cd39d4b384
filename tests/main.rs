//! tally's integration tests: one binary (as ripgrep does), a module per concern.

mod audit;
mod boundaries;
mod common;
mod determinism;
mod disputes;
mod durability;
mod failures;
mod fuzz_corpus;
mod hostile;
mod oracle;
mod sample;
mod verify;

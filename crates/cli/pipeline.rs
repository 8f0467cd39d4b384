//! One epoch, end to end, in memory: ingest, settle, render. Shared by `run` (which
//! then writes) and `verify` (which compares).

use std::path::Path;

use tally_ingest::{IngestError, LoadedEpoch, Options};

pub struct Settled {
    pub loaded: LoadedEpoch,
    pub settlement: tally_core::Settlement,
    /// Every output file, name and bytes, sorted, manifest last.
    pub files: Vec<(String, Vec<u8>)>,
}

pub fn settle(
    epoch_dir: &Path,
    opts: &Options,
    emit_measurements: bool,
) -> Result<Settled, IngestError> {
    let loaded = tally_ingest::load(epoch_dir, opts)?;
    let settlement = loaded.settle();
    let run = tally_report::Run {
        epoch: &loaded.epoch,
        rules: &loaded.rules,
        rules_file: &loaded.rules_file,
        rules_text: &loaded.rules_text,
        settlement: &settlement,
        rejected: &loaded.rejected,
        counts: &loaded.counts,
        inputs: &loaded.inputs,
    };
    let files = tally_report::render_all(&run, env!("CARGO_PKG_VERSION"), emit_measurements);
    Ok(Settled {
        loaded,
        settlement,
        files,
    })
}

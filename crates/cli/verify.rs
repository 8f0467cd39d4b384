//! `tally verify OUT_DIR --input EPOCH_DIR` (SPEC 6): checks a published run against
//! its manifest and by re-running it. Inputs and rules are checked first, so a
//! difference is attributed to what caused it: the inputs, the rules, the engine, or
//! the published files themselves.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tally_ingest::Options;

use crate::pipeline;

/// A verification that could not start (unreadable manifest...).
#[derive(Debug)]
pub struct VerifyError(pub String);

/// The outcome: `problems` empty means everything matched.
pub struct Report {
    pub checked: Vec<String>,
    pub problems: Vec<String>,
}

fn sha256(bytes: &[u8]) -> String {
    tally_report::sha256_hex(bytes)
}

fn manifest_files(m: &Value, key: &str) -> Vec<(String, String, Option<u64>)> {
    m[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["file"].as_str().unwrap_or_default().to_string(),
                        f["sha256"].as_str().unwrap_or_default().to_string(),
                        f["rows"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first line where two texts differ: (1-based line, expected, found).
pub fn first_difference(expected: &[u8], found: &[u8]) -> Option<(usize, String, String)> {
    let a: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = found.split(|&b| b == b'\n').collect();
    let show = |l: Option<&&[u8]>| match l {
        Some(l) => tally_core::value::excerpt(&String::from_utf8_lossy(l), 300),
        None => "(no such line)".to_string(),
    };
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| (i + 1, show(a.get(i)), show(b.get(i))))
}

pub fn verify(out_dir: &Path, epoch_dir: &Path, rules_dir: &Path) -> Result<Report, VerifyError> {
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    let manifest_bytes = fs::read(out_dir.join("manifest.json")).map_err(|e| {
        VerifyError(format!(
            "{}: cannot read manifest.json: {e}",
            out_dir.display()
        ))
    })?;
    let m: Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| VerifyError(format!("manifest.json: not valid JSON: {e}")))?;

    // 1. The published files against the manifest's own hashes.
    let outputs = manifest_files(&m, "outputs");
    if outputs.is_empty() {
        return Err(VerifyError("manifest.json lists no outputs".into()));
    }
    for (file, hash, _) in &outputs {
        match fs::read(out_dir.join(file)) {
            Ok(b) if sha256(&b) == *hash => checked.push(format!("output {file}: matches the manifest")),
            Ok(_) => problems.push(format!("output {file}: its SHA-256 differs from the manifest: the published file was changed")),
            Err(_) => problems.push(format!("output {file}: missing from {}", out_dir.display())),
        }
    }
    let mut listed: Vec<&str> = outputs.iter().map(|o| o.0.as_str()).collect();
    listed.push("manifest.json");
    if let Ok(entries) = fs::read_dir(out_dir) {
        let mut extra: Vec<String> = entries
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| !listed.contains(&n.as_str()))
            .collect();
        extra.sort();
        for n in extra {
            problems.push(format!("output {n}: not listed in the manifest"));
        }
    }

    // 2. The inputs against the manifest.
    let inputs = manifest_files(&m, "inputs");
    for (file, hash, _) in &inputs {
        match fs::read(epoch_dir.join(file)) {
            Ok(b) if sha256(&b) == *hash => {
                checked.push(format!("input {file}: matches the manifest"))
            }
            Ok(_) => problems.push(format!(
                "input {file}: differs from the one the run read (SHA-256 {hash})"
            )),
            Err(_) => problems.push(format!(
                "input {file}: missing from {}",
                epoch_dir.display()
            )),
        }
    }
    for stem in tally_ingest::TABLES {
        for ext in ["csv", "parquet"] {
            let name = format!("{stem}.{ext}");
            if epoch_dir.join(&name).is_file() && !inputs.iter().any(|i| i.0 == name) {
                problems.push(format!(
                    "input {name}: present now, but the run did not read it"
                ));
            }
        }
    }

    // 3. The rules: the published copy in OUT_DIR, the manifest, and the published lock.
    let version = m["rules"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rules_hash = m["rules"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rules_path = out_dir.join("rules.toml");
    match fs::read(&rules_path) {
        Ok(b) if sha256(&b) == rules_hash => {
            checked.push(format!("rules {version}: rules.toml matches the manifest"))
        }
        Ok(_) => problems.push(format!(
            "rules {version}: rules.toml differs from the rules file the run used"
        )),
        Err(_) => problems.push("rules: rules.toml missing from the output".into()),
    }
    match tally_ingest::published_sha256(&version) {
        Some(h) if h == rules_hash => checked.push(format!("rules {version}: the published version")),
        Some(h) => problems.push(format!(
            "rules {version}: the run used a file with SHA-256 {rules_hash}, but the published {version} has {h}"
        )),
        None => checked.push(format!("rules {version}: not a published version; checked against rules.toml only")),
    }

    // 4. The engine.
    let engine = m["engine"]["version"].as_str().unwrap_or_default();
    let ours = env!("CARGO_PKG_VERSION");
    if engine != ours {
        problems.push(format!(
            "engine: the run was made by tally {engine}; this is tally {ours}"
        ));
    }

    // 5. Re-run with the rules the manifest names (the published text of a published
    // version, else the copy in OUT_DIR) under the file name the run gave them.
    let rules_name = m["rules"]["file"].as_str().unwrap_or("rules.toml");
    let published = tally_ingest::PUBLISHED_RULES
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, t)| t.as_bytes().to_vec());
    let Some(rules_text) = published.or_else(|| fs::read(&rules_path).ok()) else {
        problems.push("re-run: no rules to re-run with".into());
        return Ok(Report { checked, problems });
    };
    let scratch = tempfile::tempdir()
        .map_err(|e| VerifyError(format!("cannot make a temporary directory: {e}")))?;
    // The run recorded a real file name; reuse it unchanged, so that the re-run's
    // summary and manifest name the same file. A name no file can have is tampering
    // with the manifest, which the byte comparison reports.
    let usable = !rules_name.is_empty()
        && !rules_name.contains(['/', '\0'])
        && rules_name != "."
        && rules_name != "..";
    let rules_file: PathBuf = scratch
        .path()
        .join(if usable { rules_name } else { "rules.toml" });
    fs::write(&rules_file, rules_text)
        .map_err(|e| VerifyError(format!("cannot write a temporary file: {e}")))?;
    let opts = Options {
        rules_file: Some(rules_file),
        rules_dir: rules_dir.to_path_buf(),
        strict: false,
        progress: None,
        threads: 0,
    };
    let emit = outputs.iter().any(|o| o.0 == "measurements.csv");
    match pipeline::settle(epoch_dir, &opts, emit) {
        Err(e) => problems.push(format!("re-run failed: {e}")),
        Ok(settled) => {
            for (name, bytes) in &settled.files {
                let published = fs::read(out_dir.join(name)).unwrap_or_default();
                // rules.toml is the file the run was given, not a result of it.
                if name == "rules.toml" {
                    continue;
                }
                match first_difference(&published, bytes) {
                    None => checked.push(format!("re-run {name}: identical")),
                    Some((line, was, now)) => problems.push(format!(
                        "re-run {name}: differs first at line {line}\n    published: {was}\n    re-run:    {now}"
                    )),
                }
            }
        }
    }
    Ok(Report { checked, problems })
}

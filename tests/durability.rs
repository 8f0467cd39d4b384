//! Nothing lost, nothing half-written: a run into a full filesystem, a read-only one,
//! or under a parent that is a file fails with exit code 3, names what it could not
//! write, and leaves nothing behind (an existing output replaced with `--force`
//! survives intact); and what a killed run leaves beside OUT_DIR is removed by the
//! next run unless a live run still holds it. Kills at random moments:
//! `tests/chaos/kill.sh`.
//!
//! The filesystem tests mount a tiny tmpfs in a private mount namespace
//! (`unshare --mount`, as root). Where that is impossible they print
//! "skipped: cannot mount (reason)" and pass.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::common::*;

/// Writes past libtest's output capture, so a skip is seen without `--nocapture`.
fn skipped(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {}", reason.trim());
}

fn cannot_mount(test: &str, reason: &str) {
    skipped(test, &format!("cannot mount ({})", reason.trim()));
}

/// What a run in a tmpfs left: exit code, tally's stderr, the entries of the mount
/// point, and `out/`'s files with their contents if it exists.
struct Mounted {
    code: i32,
    stderr: String,
    left: Vec<String>,
    out: Vec<String>,
}

/// Mounts a tmpfs with `opts` on a fresh directory `$d` in a private mount
/// namespace, runs the shell `setup` there, then `tally run sample --out $d/out
/// EXTRA...`. `Err(reason)` if no tmpfs can be mounted here.
fn run_in_tmpfs(opts: &str, setup: &str, extra: &[&str]) -> Result<(String, Mounted), String> {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap().to_string();
    let probe = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs -o size=16k tally-probe \"$1\"",
        ])
        .args(["sh", &d])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !probe.status.success() {
        return Err(stderr(&probe));
    }
    let script = format!(
        "set -u; d=\"$1\"; shift
        mount -t tmpfs -o {opts} tally-test \"$d\" || exit 97
        {setup} || exit 98
        \"$@\"; echo \"exit=$?\"
        ls -A \"$d\"
        echo ---
        if [ -d \"$d/out\" ]; then for f in \"$d\"/out/*; do echo \"${{f##*/}}=$(cat \"$f\")\"; done; fi"
    );
    let epoch = epoch_dir("sample");
    let out = format!("{d}/out");
    let o = Command::new("unshare")
        .current_dir(ROOT)
        .args(["--mount", "sh", "-c", &script, "sh", &d, &bin(), "run"])
        .args([epoch.to_str().unwrap(), "--out", &out])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "the mount script failed ({:?}): {stdout}{}",
        o.status,
        stderr(&o)
    );
    let mut lines = stdout.lines();
    let code = lines
        .next()
        .and_then(|l| l.strip_prefix("exit="))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no exit code in {stdout:?}"));
    let left = lines
        .by_ref()
        .take_while(|l| *l != "---")
        .map(String::from)
        .collect();
    let out_files = lines.map(String::from).collect();
    let m = Mounted {
        code,
        stderr: stderr(&o),
        left,
        out: out_files,
    };
    Ok((d, m))
}

#[test]
fn full_disk_fails_naming_the_file_and_leaves_nothing() {
    let (d, m) = match run_in_tmpfs("size=16k", "true", &[]) {
        Ok(r) => r,
        Err(reason) => return cannot_mount("full_disk", &reason),
    };
    assert_eq!(m.code, 3, "{}", m.stderr);
    let named = format!("cannot write {d}/out/");
    assert!(
        m.stderr.contains(&named),
        "expected {named:?} in: {}",
        m.stderr
    );
    assert!(m.stderr.contains("No space left on device"), "{}", m.stderr);
    assert!(
        m.left.is_empty(),
        "left in the full filesystem: {:?}",
        m.left
    );
}

#[test]
fn full_disk_with_force_keeps_the_old_output() {
    let setup = "mkdir \"$d/out\" && echo old > \"$d/out/old.txt\"";
    let (d, m) = match run_in_tmpfs("size=16k", setup, &["--force"]) {
        Ok(r) => r,
        Err(reason) => return cannot_mount("full_disk_with_force", &reason),
    };
    assert_eq!(m.code, 3, "{}", m.stderr);
    assert!(
        m.stderr.contains(&format!("cannot write {d}/out/")),
        "{}",
        m.stderr
    );
    assert_eq!(m.left, ["out"], "{}", m.stderr);
    assert_eq!(m.out, ["old.txt=old"]);
}

#[test]
fn read_only_filesystem_fails_and_leaves_nothing() {
    let (d, m) = match run_in_tmpfs("ro,size=16k", "true", &[]) {
        Ok(r) => r,
        Err(reason) => return cannot_mount("read_only", &reason),
    };
    assert_eq!(m.code, 3, "{}", m.stderr);
    let named = format!("cannot write {d}/out: Read-only file system");
    assert!(
        m.stderr.contains(&named),
        "expected {named:?} in: {}",
        m.stderr
    );
    assert!(m.left.is_empty(), "{:?}", m.left);
}

#[test]
fn read_only_filesystem_with_force_keeps_the_old_output() {
    let setup = "mkdir \"$d/out\" && echo old > \"$d/out/old.txt\" && mount -o remount,ro \"$d\"";
    let (d, m) = match run_in_tmpfs("size=16k", setup, &["--force"]) {
        Ok(r) => r,
        Err(reason) => return cannot_mount("read_only_with_force", &reason),
    };
    assert_eq!(m.code, 3, "{}", m.stderr);
    assert!(
        m.stderr
            .contains(&format!("cannot write {d}/out: Read-only file system")),
        "{}",
        m.stderr
    );
    assert_eq!(m.left, ["out"]);
    assert_eq!(m.out, ["old.txt=old"]);
}

#[test]
fn parent_that_is_a_file_fails_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, "not a directory").unwrap();
    let out = file.join("out");
    let o = tally(
        &[
            "run",
            epoch_dir("boundaries").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let named = format!("cannot write {}: Not a directory", out.display());
    assert!(err.contains(&named), "expected {named:?} in: {err}");
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["file"]);
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
}

/// A staging directory whose run was killed (unlocked) is removed by the next run;
/// one a live run holds (locked, here by `flock(1)`) is left alone.
#[test]
fn next_run_removes_stale_staging_but_not_a_live_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dead = d.join(".out.tally-tmp-dead01");
    let live = d.join(".out.tally-tmp-live01");
    let other = d.join(".other.tally-tmp-dead02");
    for dir in [&dead, &live, &other] {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join("allocations.csv"), "half").unwrap();
    }
    let holder = Command::new("sh")
        .args([
            "-c",
            "exec 9<\"$1\" && flock -x 9 && echo locked && read _",
            "sh",
            live.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut holder = match holder {
        Ok(h) => h,
        Err(e) => return skipped("stale_staging", &format!("cannot run sh ({e})")),
    };
    let mut ready = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    if ready.trim() != "locked" {
        let _ = holder.kill();
        let _ = holder.wait();
        return skipped("stale_staging", "cannot hold a lock with flock(1)");
    }
    let out = run_ok(&epoch_dir("boundaries"), d, "out", &[], &[]);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(
        !dead.exists(),
        "the stale staging directory must be removed"
    );
    assert!(
        live.join("allocations.csv").exists(),
        "a live one must stay"
    );
    assert!(other.exists(), "another output's staging is not ours");
    assert!(out.join("manifest.json").exists());
    // Its run gone, the next run removes it too.
    run_ok(&epoch_dir("boundaries"), d, "out", &["--force"], &[]);
    let mut left: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".other.tally-tmp-dead02", "out"]);
}

/// `--force` over an existing output leaves exactly the new output.
#[test]
fn force_replaces_and_leaves_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(&epoch_dir("boundaries"), tmp.path(), "out", &[], &[]);
    let first = files(&out);
    run_ok(&epoch_dir("disputes"), tmp.path(), "out", &["--force"], &[]);
    assert_ne!(files(&out), first);
    run_ok(
        &epoch_dir("boundaries"),
        tmp.path(),
        "out",
        &["--force"],
        &[],
    );
    assert_eq!(files(&out), first);
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out"]);
}

//! Writing tally's outputs: the CSV reports, `summary.json` and `manifest.json`.
//!
//! Architecture invariant: this is the only crate that writes files. Rendering is
//! pure (`render`); writing (`write_atomically`) is all or nothing: files are built
//! in a temporary directory beside the output directory, fsynced, and renamed into
//! place, so a failed or killed run leaves no output directory. What a killed run
//! leaves beside it (its staging directory) is removed by the next run: see
//! [`Staging`].

pub mod cells;
pub mod render;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use cells::{escape_cell, unescape_cell, CsvOut};
pub use render::Run;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("output directory {0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every output file of a run, in memory, with the manifest last. File names sorted.
pub fn render_all(
    run: &Run,
    engine_version: &'static str,
    emit_measurements: bool,
) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("allocations.csv".to_string(), render::allocations(run)),
        ("devices.csv".to_string(), render::devices(run)),
        ("exclusions.csv".to_string(), render::exclusions(run)),
        ("rejected_rows.csv".to_string(), render::rejected_rows(run)),
        ("rules.toml".to_string(), run.rules_text.as_bytes().to_vec()),
        ("summary.json".to_string(), render::summary(run)),
    ];
    if emit_measurements {
        files.push(("measurements.csv".to_string(), render::measurements(run)));
    }
    files.sort();
    let hashes: Vec<(String, String)> = files
        .iter()
        .map(|(n, b)| (n.clone(), sha256_hex(b)))
        .collect();
    files.push((
        "manifest.json".to_string(),
        render::manifest(run, engine_version, &hashes),
    ));
    files
}

/// Refuses an existing `out` unless `force`: checked before a run starts, so an
/// operator learns it before waiting for the run. It first clears what killed runs
/// left beside `out` (see [`Staging`]); that may put back an `out` which a killed
/// `--force` run had moved aside, and which is then refused like any other.
pub fn check_target(out: &Path, force: bool) -> Result<(), ReportError> {
    let (parent, name) = split(out);
    remove_stale(&parent, &name, out);
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(ReportError::Exists(out.to_path_buf()));
    }
    Ok(())
}

/// Writes `files` into a new directory `out`, all or nothing. Every file is fsynced
/// before the directory is renamed into place.
pub fn write_atomically(
    out: &Path,
    force: bool,
    files: &[(String, Vec<u8>)],
) -> Result<(), ReportError> {
    check_target(out, force)?;
    let staging = Staging::new(out)?;
    for (file, bytes) in files {
        let path = staging.path().join(file);
        // Errors name the file's final place: the staging directory is gone by the
        // time anyone reads the message.
        let shown = out.join(file);
        let mut f = fs::File::create(&path).map_err(io(&shown))?;
        f.write_all(bytes).map_err(io(&shown))?;
        f.sync_all().map_err(io(&shown))?;
    }
    staging.publish(force)
}

/// A directory built beside its final place `out` and renamed into it whole, so that
/// `out` never exists half-written. Dropped unpublished, it is removed.
///
/// # What a killed run leaves, and who removes it
///
/// The directory is `.{name}.tally-tmp-XXXXXXXX` in `out`'s parent (`name` being
/// `out`'s file name), and its owner holds an exclusive `flock` on it from just after
/// creating it until it is published or removed. A process killed by SIGKILL cannot
/// remove it, but the kernel releases its lock. So an entry with that prefix whose
/// lock can be taken belongs to no live process: [`check_target`] and
/// [`Staging::new`] remove it. One still locked belongs to a concurrent run and is
/// left alone. Only entries named `.{name}.tally-tmp-` or `.{name}.tally-old-`
/// followed by letters, digits and `-` are ever touched (no other `out` name can
/// produce such a name: theirs carry a `.` after the prefix).
///
/// With `force`, the new directory and the old `out` are swapped by one
/// `renameat2(RENAME_EXCHANGE)`, so `out` never goes missing; the old contents land
/// at the staging name and are removed, and a run killed before removing them
/// leaves them as a stale staging directory like any other. Where the filesystem
/// cannot exchange (EINVAL, ENOSYS, EOPNOTSUPP), the old `out` is renamed aside to
/// `.{name}.tally-old-…` (locked too), the new one renamed into place, and the old
/// removed. A run killed between those two renames leaves no `out`: the next run
/// renames the unlocked `.tally-old-` entry back to `out` (only while `out` is
/// missing, and never over an existing one), so the last published output survives.
///
/// # Races
///
/// - Creation: the directory exists a moment before its owner locks it, so a
///   concurrent cleaner can lock it first. The owner takes the lock without
///   blocking and then checks that the path still names the inode it locked; if the
///   lock is taken, or the path is gone or names another inode, it abandons the name
///   (the cleaner removes it) and makes another. A cleaner keeps its lock until the
///   directory is gone, so an owner that locks after a cleaner always sees the path
///   gone.
/// - Removal by name: a cleaner locks a file descriptor but removes by path. After
///   locking it checks that the path still names the locked inode. Names are random
///   and made by an exclusive `mkdir`, and the only rename onto a staging name is a
///   `--force` exchange, which puts an old output there: garbage either way. So a
///   path cannot come to name a live directory between the check and the removal.
/// - Publishing: the owner renames while holding its lock. A cleaner that opened the
///   directory by its staging name just before cannot lock it until the owner is
///   done, and then finds the path gone or naming another inode, and leaves it.
/// - The old output in an exchange is locked (without blocking, best effort) before
///   the swap, so a cleaner leaves it to us once it sits at the staging name. If it
///   could not be locked (a symlink, unreadable, or held by a concurrent run that
///   just published it), a cleaner may remove it at the same time as we do: it is
///   garbage either way, and errors removing it are ignored.
/// - Two runs publishing the same `out`: without `force`, the rename uses
///   `RENAME_NOREPLACE`, so the later one fails as "already exists" instead of
///   replacing an empty directory someone made; with `force`, each exchange is
///   atomic, the last one wins, and each removes what it swapped out.
/// - A cleaner killed half-way leaves a half-removed entry, still unlocked: the next
///   run finishes it. A run killed while restoring a `.tally-old-` entry has either
///   renamed it or not.
/// - `flock` is advisory and only tally takes it here; the descriptor is
///   close-on-exec, so no child process inherits the lock. On filesystems where
///   `flock` fails, a run goes on without its lock, no entry can be claimed as
///   stale, and stale entries just stay (NFS emulates `flock` with POSIX locks,
///   which work across clients).
pub struct Staging {
    dir: PathBuf,
    /// `dir`, open and exclusively locked for as long as this value lives.
    lock: fs::File,
    out: PathBuf,
    parent: PathBuf,
    name: String,
    /// Whether `dir` still holds our unpublished files (removed on drop).
    pending: bool,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Staging, ReportError> {
        let (parent, name) = split(out);
        remove_stale(&parent, &name, out);
        // Each attempt is lost only to a cleaner that locked the new directory in
        // the instant between its creation and our lock.
        for _ in 0..64 {
            let dir = make_dir(&parent, &tmp_prefix(&name)).map_err(io(out))?;
            match lock_as(&dir) {
                Ok(Some(lock)) => {
                    return Ok(Staging {
                        dir,
                        lock,
                        out: out.to_path_buf(),
                        parent,
                        name,
                        pending: true,
                    })
                }
                Ok(None) => continue,
                Err(e) => {
                    let _ = fs::remove_dir(&dir);
                    return Err(io(out)(e));
                }
            }
        }
        Err(io(out)(io::Error::other(
            "could not lock a staging directory beside it",
        )))
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Syncs the directory and renames it to `out`; an existing `out` (only with
    /// `force`) is swapped out atomically and removed. The parent is synced after.
    pub fn publish(self, force: bool) -> Result<(), ReportError> {
        self.publish_with(force, true)
    }

    fn publish_with(mut self, force: bool, may_exchange: bool) -> Result<(), ReportError> {
        self.lock.sync_all().map_err(io(&self.out))?;
        let exists = match fs::symlink_metadata(&self.out) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io(&self.out)(e)),
        };
        if !exists {
            match rename_noreplace(&self.dir, &self.out) {
                Ok(()) => {
                    self.pending = false;
                    return sync_dir(&self.parent).map_err(io(&self.parent));
                }
                // Made by someone else since we looked.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && force => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(ReportError::Exists(self.out.clone()))
                }
                Err(e) => return Err(io(&self.out)(e)),
            }
        } else if !force {
            return Err(ReportError::Exists(self.out.clone()));
        }

        // So that cleaners leave the old output to us once it sits at a staging name.
        let old_lock = lock_existing(&self.out);
        if may_exchange {
            match exchange(&self.dir, &self.out) {
                Ok(true) => {
                    // `dir` now holds the old output.
                    self.pending = false;
                    let synced = sync_dir(&self.parent);
                    remove_any(&self.dir);
                    drop(old_lock);
                    return synced.map_err(io(&self.parent));
                }
                Ok(false) => {}
                Err(e) => return Err(io(&self.out)(e)),
            }
        }
        // The filesystem cannot exchange: move the old output aside first. Killed
        // between the two renames, the next run puts it back (see `remove_stale`).
        let aside = rename_aside(&self.out, &self.parent, &self.name).map_err(io(&self.out))?;
        if let Err(e) = rename_noreplace(&self.dir, &self.out) {
            let _ = rename_noreplace(&aside, &self.out);
            return Err(io(&self.out)(e));
        }
        self.pending = false;
        let synced = sync_dir(&self.parent);
        remove_any(&aside);
        drop(old_lock);
        synced.map_err(io(&self.parent))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Removed while still locked, so no cleaner races us for it.
        if self.pending {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `out`'s parent directory and file name.
fn split(out: &Path) -> (PathBuf, String) {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (parent, name)
}

fn tmp_prefix(name: &str) -> String {
    format!(".{name}.tally-tmp-")
}

fn old_prefix(name: &str) -> String {
    format!(".{name}.tally-old-")
}

/// Whether `entry` is `prefix` followed by a suffix of ours: `make_dir`'s random
/// letters and digits, or the `pid-n` of `rename_aside`.
fn is_ours(entry: &str, prefix: &str) -> bool {
    entry
        .strip_prefix(prefix)
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Makes a new directory `{prefix}XXXXXXXX` (random letters and digits) in
/// `parent`. Mode 0700 as tempfile made it before; the published directory keeps it.
fn make_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    for _ in 0..100 {
        // Fresh random SipHash keys each time: std's randomness without a dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let mut n = h.finish();
        let suffix: String = (0..8)
            .map(|_| {
                let c = ALNUM[(n % 62) as usize];
                n /= 62;
                c as char
            })
            .collect();
        let dir = parent.join(format!("{prefix}{suffix}"));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for a staging directory"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes whatever is at `path`, ignoring errors: it is garbage, and a cleaner may
/// be removing it too.
fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Renames `out` to a fresh `.{name}.tally-old-PID-N` beside it.
fn rename_aside(out: &Path, parent: &Path, name: &str) -> io::Result<PathBuf> {
    let prefix = old_prefix(name);
    let pid = std::process::id();
    for n in 0..1000u32 {
        let aside = parent.join(format!("{prefix}{pid}-{n}"));
        match rename_noreplace(out, &aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "no free name to move the old output aside",
    ))
}

/// Opens and locks the directory we just made at `dir`. `None`: a cleaner got there
/// first (the lock is taken, or `dir` is gone or another inode now).
fn lock_as(dir: &Path) -> io::Result<Option<fs::File>> {
    let f = match fs::File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A filesystem without flock: go on unlocked; cleaners there cannot lock
    // anything either, so they take nothing for stale.
    if matches!(try_lock(&f), Ok(false)) || !same_inode(&f, dir) {
        return Ok(None);
    }
    Ok(Some(f))
}

/// The existing `out`, opened and locked if that can be done at once; `None`
/// otherwise (a symlink, unreadable, or locked by a concurrent run).
fn lock_existing(out: &Path) -> Option<fs::File> {
    let f = open_nofollow(out).ok()?;
    matches!(try_lock(&f), Ok(true)).then_some(f)
}

/// What killed runs left beside `out`: each unlocked `.{name}.tally-tmp-…` entry is
/// removed; an unlocked `.{name}.tally-old-…` one is renamed back to `out` if `out`
/// is missing (a `--force` run without exchange was killed between its renames),
/// else removed. Best effort: what cannot be removed stays, and harms no run (names
/// are random).
fn remove_stale(parent: &Path, name: &str, out: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let (tmp, old) = (tmp_prefix(name), old_prefix(name));
    let mut stale: Vec<(bool, String)> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let is_old = is_ours(&n, &old);
            (is_old || is_ours(&n, &tmp)).then_some((!is_old, n))
        })
        .collect();
    // `.tally-old-` entries first (a restored `out` decides nothing else), then by
    // name: the same directory is cleaned the same way every time.
    stale.sort();
    for (is_tmp, n) in stale {
        let path = parent.join(&n);
        let Some(claim) = claim(&path) else {
            continue;
        };
        if !is_tmp
            && matches!(fs::symlink_metadata(out), Err(e) if e.kind() == io::ErrorKind::NotFound)
            && rename_noreplace(&path, out).is_ok()
        {
            let _ = sync_dir(parent);
        } else {
            remove_any(&path);
        }
        drop(claim);
    }
}

/// Locks the entry at `path` if no live process holds it, and checks that `path`
/// still names what was locked. `Some(lock)` (`None` inside for a symlink, which is
/// never a live staging directory: only an old output swapped out by an exchange).
fn claim(path: &Path) -> Option<Option<fs::File>> {
    let kind = fs::symlink_metadata(path).ok()?.file_type();
    if kind.is_symlink() {
        return Some(None);
    }
    if !kind.is_dir() && !kind.is_file() {
        return None;
    }
    let f = open_nofollow(path).ok()?;
    (matches!(try_lock(&f), Ok(true)) && same_inode(&f, path)).then_some(Some(f))
}

#[cfg(unix)]
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(fs::File::from(rustix::fs::open(
        path,
        flags,
        Mode::empty(),
    )?))
}

#[cfg(not(unix))]
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::File::open(path)
}

/// `flock(LOCK_EX | LOCK_NB)`: `false` if another open file holds it.
#[cfg(unix)]
fn try_lock(f: &fs::File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// No locks here: our own staging directory counts as locked, and nothing is ever
/// taken for stale (`claim` fails), so concurrent runs stay safe.
#[cfg(not(unix))]
fn try_lock(_: &fs::File) -> io::Result<bool> {
    Ok(true)
}

#[cfg(unix)]
fn same_inode(f: &fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &fs::File, _: &Path) -> bool {
    true
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_flags(from: &Path, to: &Path, flags: rustix::fs::RenameFlags) -> io::Result<bool> {
    use rustix::io::Errno;
    match rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Swaps `a` and `b` atomically; `false` if the filesystem cannot.
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return rename_flags(a, b, rustix::fs::RenameFlags::EXCHANGE);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists. Where the
/// filesystem has no `RENAME_NOREPLACE`, checks first (a race remains there: a plain
/// rename replaces an empty directory made in between).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if rename_flags(from, to, rustix::fs::RenameFlags::NOREPLACE)? {
        return Ok(());
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    fs::rename(from, to)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn files(names: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    /// Another open file description holding the entry's lock, as a live run would.
    fn hold(path: &Path) -> fs::File {
        let f = fs::File::open(path).unwrap();
        assert!(try_lock(&f).unwrap());
        f
    }

    #[test]
    fn publishes_and_leaves_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        write_atomically(&out, false, &files(&[("a.csv", "1\n"), ("b.json", "{}")])).unwrap();
        assert_eq!(entries(tmp.path()), ["out"]);
        assert_eq!(entries(&out), ["a.csv", "b.json"]);
        let again = write_atomically(&out, false, &files(&[("a.csv", "2\n")]));
        assert!(matches!(again, Err(ReportError::Exists(_))));
        assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"1\n");
        assert_eq!(entries(tmp.path()), ["out"]);
    }

    #[test]
    fn force_replaces_by_exchange_and_by_moving_aside() {
        for may_exchange in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            fs::create_dir(&out).unwrap();
            fs::write(out.join("old.csv"), "old").unwrap();
            let staging = Staging::new(&out).unwrap();
            fs::write(staging.path().join("new.csv"), "new").unwrap();
            staging.publish_with(true, may_exchange).unwrap();
            assert_eq!(entries(&out), ["new.csv"], "exchange: {may_exchange}");
            assert_eq!(entries(tmp.path()), ["out"], "exchange: {may_exchange}");
        }
    }

    #[test]
    fn force_replaces_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs::write(&out, "a file").unwrap();
        write_atomically(&out, true, &files(&[("a.csv", "1\n")])).unwrap();
        assert_eq!(entries(&out), ["a.csv"]);
        assert_eq!(entries(tmp.path()), ["out"]);
    }

    #[test]
    fn dropped_staging_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let staging = Staging::new(&tmp.path().join("out")).unwrap();
        fs::write(staging.path().join("half.csv"), "x").unwrap();
        drop(staging);
        assert!(entries(tmp.path()).is_empty());
    }

    #[test]
    fn stale_entries_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let out = d.join("out");
        for n in [
            ".out.tally-tmp-dead01",
            ".out.tally-tmp-live01",
            ".out.tally-old-4242-0",
            // Not ours: another output's, or not a name we make.
            ".out.tally-tmp-a.b",
            ".outx.tally-tmp-abc123",
            ".out.tally-tmpabc123",
            ".out.tally-tmp-",
            ".other.tally-tmp-abc123",
            "out.tally-tmp-abc123",
            "target",
        ] {
            fs::create_dir(d.join(n)).unwrap();
            fs::write(d.join(n).join("f.csv"), "x").unwrap();
        }
        fs::create_dir(&out).unwrap();
        // A symlink at a staging name is only ever an old output swapped out: its
        // link goes, what it points at stays.
        std::os::unix::fs::symlink(d.join("target"), d.join(".out.tally-tmp-link01")).unwrap();
        let live = hold(&d.join(".out.tally-tmp-live01"));
        check_target(&out, true).unwrap();
        assert_eq!(
            entries(d),
            [
                ".other.tally-tmp-abc123",
                ".out.tally-tmp-",
                ".out.tally-tmp-a.b",
                ".out.tally-tmp-live01",
                ".out.tally-tmpabc123",
                ".outx.tally-tmp-abc123",
                "out",
                "out.tally-tmp-abc123",
                "target",
            ]
        );
        assert_eq!(entries(&d.join("target")), ["f.csv"]);
        drop(live);
        Staging::new(&out).map(drop).unwrap();
        assert!(!d.join(".out.tally-tmp-live01").exists());
    }

    #[test]
    fn an_output_moved_aside_by_a_killed_run_is_put_back() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let out = d.join("out");
        let aside = d.join(".out.tally-old-4242-0");
        fs::create_dir(&aside).unwrap();
        fs::write(aside.join("old.csv"), "old").unwrap();
        // Still held by its (live) run: left alone.
        let live = hold(&aside);
        check_target(&out, false).unwrap();
        assert_eq!(entries(d), [".out.tally-old-4242-0"]);
        drop(live);
        // Its run died: the output comes back, and is refused without --force.
        assert!(matches!(
            check_target(&out, false),
            Err(ReportError::Exists(_))
        ));
        assert_eq!(entries(d), ["out"]);
        assert_eq!(entries(&out), ["old.csv"]);
        // With `out` present, a parked one is just garbage.
        fs::create_dir(&aside).unwrap();
        check_target(&out, true).unwrap();
        assert_eq!(entries(d), ["out"]);
    }

    #[test]
    fn a_staging_directory_taken_by_a_cleaner_is_abandoned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(".out.tally-tmp-race01");
        fs::create_dir(&dir).unwrap();
        let cleaner = hold(&dir);
        assert!(lock_as(&dir).unwrap().is_none());
        drop(cleaner);
        // Removed and made again under the same name: another inode.
        let f = fs::File::open(&dir).unwrap();
        fs::remove_dir(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        assert!(try_lock(&f).unwrap());
        assert!(!same_inode(&f, &dir));
        assert!(lock_as(&tmp.path().join("gone")).unwrap().is_none());
        assert!(lock_as(&dir).unwrap().is_some());
    }
}

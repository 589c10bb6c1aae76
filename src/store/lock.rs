//! Exclusive ownership of a data folder for the life of one process (issue 7, item 2).
//!
//! Two gateways on one embedded store would each keep their own in-memory balances and
//! overwrite each other's rows. [`DataDirLock::acquire`] takes an advisory exclusive lock
//! (`flock`) on `DATA_DIR/bankfep.lock` and writes the holder's pid into it. A second
//! process on the same folder fails at once with an error naming the folder and that pid.
//! The kernel releases the lock when the holder exits, however it exits (SIGKILL included),
//! so a stale file never blocks a restart. `serve` drops the lock only after its writer
//! thread has stopped (docs/operations.md "The data folder").
//!
//! The folder is created with mode 0700 and the lock file 0600: the store holds member
//! names, id numbers and the receipt secret (issue 7, item 9).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data folder.
pub const LOCK_FILE: &str = "bankfep.lock";

/// Why a data folder could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the folder.
    #[error(
        "data folder {dir} is in use by another bankfep process (pid {pid}); stop it first, or \
         give this instance its own --data-dir"
    )]
    Held {
        /// The data folder.
        dir: PathBuf,
        /// The holder's pid as written in the lock file (`unknown` if unreadable).
        pid: String,
    },
    /// The folder or its lock file could not be created or opened.
    #[error("data folder {path}: {source}")]
    Io {
        /// The folder or file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// An exclusive lock on a data folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` (mode 0700, parents included) if needed, then locks it exclusively
    /// without waiting. Errors: [`LockError::Held`] when another process holds it,
    /// [`LockError::Io`] naming the path when the folder or file cannot be created.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, source }
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.chars().take(20).collect()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()
        };
        write_pid(&mut file).map_err(io(&path))?;
        Ok(DataDirLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_lock_names_folder_and_pid_and_release_frees_it() {
        let base = std::env::temp_dir().join(format!("bankfep-lock-{}", std::process::id()));
        let dir = base.join("nested/data");
        let first = DataDirLock::acquire(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let fmode = std::fs::metadata(dir.join(LOCK_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(fmode, 0o600);
        // flock locks belong to the open file description: a second open in the same
        // process conflicts just as another process would.
        let err = DataDirLock::acquire(&dir).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        let again = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(again.dir(), dir.as_path());
        drop(again);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn unusable_folder_names_the_path() {
        let err = DataDirLock::acquire(Path::new("/proc/self/no/such/folder")).unwrap_err();
        assert!(
            err.to_string().contains("/proc/self/no/such/folder"),
            "{err}"
        );
    }
}

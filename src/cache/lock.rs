//! One process at a time per cache: an exclusive `flock` on `LOCK`, which the kernel releases
//! when its holder dies (kill -9), so a dead holder's lock is simply taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::CacheError;

/// How to behave when another process holds the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Wait for it, saying so once.
    Wait,
    /// Fail at once with [`CacheError::Busy`].
    NoWait,
}

/// The held cache lock; released on drop.
pub struct CacheLock {
    file: File,
}

/// Takes the lock on `root/LOCK`. `on_wait` is called once with the holder's description if
/// the lock is busy and `mode` is [`LockMode::Wait`]; `on_takeover` when the previous holder
/// died without releasing it.
pub fn acquire(
    root: &Path,
    mode: LockMode,
    on_wait: &dyn Fn(&str),
    on_takeover: &dyn Fn(&str),
) -> Result<CacheLock, CacheError> {
    let path = root.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CacheError::io(format!("opening {}", path.display()), e))?;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                match mode {
                    LockMode::NoWait => {
                        return Err(CacheError::Busy {
                            cache: root.to_owned(),
                            holder,
                        })
                    }
                    LockMode::Wait if !told => {
                        on_wait(&holder);
                        told = true;
                    }
                    LockMode::Wait => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(CacheError::io(format!("locking {}", path.display()), e));
            }
        }
    }
    let previous = read_holder(&mut file);
    if !previous.is_empty() {
        on_takeover(&previous);
    }
    let me = format!(
        "pid {} on {} since {} ({})",
        std::process::id(),
        gethostname::gethostname().to_string_lossy(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(me.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(|e| CacheError::io(format!("writing {}", path.display()), e))?;
    Ok(CacheLock { file })
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut text));
    text.trim().to_owned()
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // An empty file tells the next holder that we released it cleanly.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

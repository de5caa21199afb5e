//! `root PATH`: where the block's `file` and `auto` directives read relative paths from, as CoreDNS's
//! `root` plugin sets it (a missing directory is allowed, with a warning: it may appear later).

use std::path::PathBuf;

use crate::corefile::{ConfigError, Directive, directive_err, resolve};
use crate::plugin::setup::{Context, Setup};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    /// The directory a `root` line names, relative to `dir` when it is relative.
    pub fn path_of(d: &Directive, dir: &std::path::Path) -> Result<PathBuf, ConfigError> {
        match d.args.as_slice() {
            [path] => Ok(resolve(dir, path)),
            _ => Err(directive_err(
                d,
                "root",
                "Wrong argument count or unexpected line ending after 'root'",
            )),
        }
    }
}

/// A directory a directive names (`root`'s, `auto`'s): one that does not exist (yet) is a
/// warning, as CoreDNS has it, since it may appear later; one that cannot be read is an error.
pub fn may_be_missing(
    path: &std::path::Path,
    d: &Directive,
    name: &str,
    what: &str,
) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "{what} does not exist");
            Ok(())
        }
        Err(e) => Err(directive_err(
            d,
            name,
            format!("unable to access {what} '{}': {e}", path.display()),
        )),
    }
}

impl Setup for Root {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let path = Self::path_of(d, cx.dir)?;
        may_be_missing(&path, d, "root", "root path")?;
        Ok(Self { path })
    }

    /// Several lines: the last one counts, as in CoreDNS.
    fn merge(&mut self, later: Self) -> bool {
        *self = later;
        true
    }
}

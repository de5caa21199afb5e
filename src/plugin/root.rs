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

impl Setup for Root {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let path = Self::path_of(d, cx.dir)?;
        match std::fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "root path does not exist");
            }
            Err(e) => {
                return Err(directive_err(
                    d,
                    "root",
                    format!("unable to access root path '{}': {e}", path.display()),
                ));
            }
        }
        Ok(Self { path })
    }

    /// Several lines: the last one counts, as in CoreDNS.
    fn merge(&mut self, later: Self) -> bool {
        *self = later;
        true
    }
}

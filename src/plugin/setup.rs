//! How a directive becomes part of a server: read from its Corefile line
//! ([`Setup::parse`]), then built ([`Setup::build`]) into the block's chain, background tasks,
//! readiness flags and HTTP endpoints.
//!
//! Each directive's settings type implements [`Setup`] in its plugin's module; the registry in
//! [`super`] names the type beside the directive, and the rest (reading the block, the chain
//! order, `-plugins`, `coredns_plugin_enabled`) follows from that line.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hickory_proto::rr::LowerName;

use super::Plugin;
use super::autopath::Autopath;
use crate::corefile::{ConfigError, Directive, Listen, Pos, directive_err};
use crate::source::Background;
use crate::source::kube::ApiError;
use crate::source::manifests::ManifestError;

/// What a directive's parser knows of the block it is in.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The server block's zones (a plugin's zones when it names none).
    pub zones: &'a [LowerName],
    /// Where relative paths are read from: the Corefile's directory.
    pub dir: &'a Path,
    /// The block's `root` directory, where `file` reads relative paths from when it is set.
    pub root: Option<&'a Path>,
}

/// A directive's settings, as read from a server block.
pub trait Setup: Any + std::fmt::Debug + Send + Sync {
    /// Reads one occurrence of the directive, with CoreDNS's defaults and checks.
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError>
    where
        Self: Sized;

    /// A later occurrence in the same block (read with [`Self::parse`] first): `false`, the
    /// default, refuses it ("can only be used once per server block"); a directive that may
    /// repeat (`bind`) takes `later` in and answers `true`.
    fn merge(&mut self, later: Self) -> bool
    where
        Self: Sized,
    {
        let _ = later;
        false
    }

    /// Adds what the directive does to the server being built. Directives build in chain
    /// order, so a plugin pushed to [`Building::chain`] lands in its place. The default adds
    /// nothing: for settings that the server (`bind`, `timeouts`), the binary (`reload`) or
    /// another directive (`cache`, read by `forward`) finds by type.
    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let _ = b;
        Ok(())
    }
}

/// Why a directive could not be built (its sources failed to load).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("kubernetes: {0}")]
    Api(ApiError),
    /// A file a plugin reads at start (`loadbalance`'s weight file) does not read.
    #[error("{0}")]
    File(String),
    /// An upstream named by host name does not resolve (`forward`).
    #[error("{0}")]
    Resolve(String),
}

/// How the registry reads a directive into its slot of the block: `slot` holds the earlier
/// occurrence, if any.
pub type Read =
    fn(&Directive, &Context<'_>, &mut Option<Box<dyn Setup>>) -> Result<(), ConfigError>;

/// [`Read`] for the settings type `T`.
pub fn read<T: Setup>(
    d: &Directive,
    cx: &Context<'_>,
    slot: &mut Option<Box<dyn Setup>>,
) -> Result<(), ConfigError> {
    let new = T::parse(d, cx)?;
    let Some(earlier) = slot else {
        *slot = Some(Box::new(new));
        return Ok(());
    };
    let merged = (&mut **earlier as &mut dyn Any)
        .downcast_mut::<T>()
        .is_some_and(|earlier| earlier.merge(new));
    if merged {
        Ok(())
    } else {
        Err(directive_err(
            d,
            &d.name,
            "can only be used once per server block",
        ))
    }
}

/// A block's directives as read, in chain order.
pub type Setups = [(&'static str, Arc<dyn Setup>)];

/// Finds the settings of type `T` among `setups`.
pub fn find<T: Setup>(setups: &Setups) -> Option<&T> {
    setups
        .iter()
        .find_map(|(_, s)| (&**s as &dyn Any).downcast_ref::<T>())
}

/// A server block being built: what it is, and what its directives add to it.
pub struct Building<'a> {
    pub zones: &'a [LowerName],
    /// Where it listens; the first is the address its metrics are labelled with.
    pub listen: &'a [Listen],
    pub pos: &'a Pos,
    setups: &'a Setups,
    /// The plugins that see its queries, in chain order.
    pub chain: Vec<Plugin>,
    /// Tasks that keep its sources current, run beside the server.
    pub background: Vec<Background>,
    /// Plugins that report readiness (`/ready`), by directive.
    pub ready: Vec<(&'static str, Arc<AtomicBool>)>,
    /// HTTP paths to serve, by address (`/health`, `/ready`, `/metrics`).
    pub endpoints: Vec<(String, &'static str)>,
    /// `health { lameduck }`.
    pub lameduck: Duration,
    /// `autopath`: the search path walk.
    pub autopath: Option<Autopath>,
    /// `prometheus`: the block's queries are counted.
    pub metrics: bool,
    /// `on shutdown`: commands run when the process stops.
    pub shutdown: Vec<super::on::Hook>,
}

impl<'a> Building<'a> {
    pub fn new(
        zones: &'a [LowerName],
        listen: &'a [Listen],
        pos: &'a Pos,
        setups: &'a Setups,
    ) -> Self {
        Self {
            zones,
            listen,
            pos,
            setups,
            chain: Vec::new(),
            background: Vec::new(),
            ready: Vec::new(),
            endpoints: Vec::new(),
            lameduck: Duration::ZERO,
            autopath: None,
            metrics: false,
            shutdown: Vec::new(),
        }
    }

    /// Another directive's settings in the same block (`forward` takes `cache`'s).
    pub fn find<T: Setup>(&self) -> Option<&T> {
        find(self.setups)
    }

    /// The address the block's metrics are labelled with (its first).
    pub fn server_label(&self) -> String {
        self.listen
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

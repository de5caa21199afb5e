//! The `clusterdns` binary: CoreDNS's flags, then load everything, bind, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clusterdns::config::Config;
use clusterdns::plugin;
use std::time::Duration;

use tracing::{info, warn};

const USAGE: &str = "\
Usage: clusterdns [-conf FILE] [-dns.port PORT] [-workers N] [-tcp.max_connections N]
                  [-version] [-plugins]

  -conf FILE              Corefile to load (default \"Corefile\")
  -dns.port PORT          port of server blocks that name none (default 53)
  -workers N              UDP sockets (SO_REUSEPORT) and threads per port (default: the CPU count)
  -tcp.max_connections N  TCP connections served at once per port; more wait (default 1000)
  -version                show the version and quit
  -plugins                list the directives this build supports and quit

SIGHUP or SIGUSR1 loads the Corefile again; SIGTERM or SIGINT stops after the lameduck time.
";

/// jemalloc rather than glibc's malloc: a cluster change applies in two thirds of the time,
/// a large sync takes less CPU and peaks lower (measured in ARCHITECTURE.md). The answer path
/// does not allocate.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Logs unless `RUST_LOG` says otherwise. kube-client logs every failed request; the API
/// source logs each change between working and failing instead.
const DEFAULT_LOG: &str = "info,kube_client=off";

/// The filter while a block of the Corefile has `debug`: clusterdns's debug messages too.
const DEBUG_LOG: &str = "info,clusterdns=debug,kube_client=off";

/// How the log filter changes with the Corefile's `debug`; `None` when `RUST_LOG` sets it.
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Logs clusterdns's debug messages when `debug` (the `debug` directive), else the default.
fn set_debug(debug: bool) {
    if let Some(handle) = LOG_FILTER.get() {
        let filter = if debug { DEBUG_LOG } else { DEFAULT_LOG };
        if let Err(error) = handle.reload(tracing_subscriber::EnvFilter::new(filter)) {
            warn!(%error, "changing the log filter");
        }
    }
}

struct Flags {
    conf: PathBuf,
    port: u16,
    workers: usize,
    /// `-tcp.max_connections`.
    max_connections: usize,
}

/// The bounds of `-tcp.max_connections`.
const MAX_CONNECTIONS: std::ops::RangeInclusive<usize> = 1..=1_000_000;

/// Go-style flags as CoreDNS takes them: `-name value`, `--name value`, `-name=value`.
fn parse_flags() -> anyhow::Result<Option<Flags>> {
    let mut flags = Flags {
        conf: PathBuf::from("Corefile"),
        port: 53,
        workers: std::thread::available_parallelism().map_or(1, usize::from),
        max_connections: clusterdns::server::TcpOptions::default().max_connections,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let stripped = arg.trim_start_matches('-');
        if stripped.len() == arg.len() {
            bail!("unexpected argument {arg:?}\n\n{USAGE}");
        }
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (stripped, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("flag -{name} needs a value"))
        };
        match name {
            "conf" => flags.conf = PathBuf::from(value()?),
            "dns.port" => {
                let v = value()?;
                flags.port = v
                    .parse()
                    .with_context(|| format!("-dns.port: bad port {v:?}"))?;
            }
            "workers" => {
                let v = value()?;
                flags.workers = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1024).contains(&n))
                    .with_context(|| format!("-workers: not a count from 1 to 1024: {v:?}"))?;
            }
            "tcp.max_connections" => {
                let v = value()?;
                flags.max_connections = v
                    .parse()
                    .ok()
                    .filter(|n| MAX_CONNECTIONS.contains(n))
                    .with_context(|| {
                        format!(
                            "-tcp.max_connections: not a count from {} to {}: {v:?}",
                            MAX_CONNECTIONS.start(),
                            MAX_CONNECTIONS.end()
                        )
                    })?;
            }
            "version" => {
                println!(
                    "clusterdns-{}\n{}/{}",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH
                );
                return Ok(None);
            }
            "plugins" => {
                println!("Server types:\n  dns\n\nOther plugins:");
                let mut names: Vec<&str> = plugin::supported().collect();
                names.sort_unstable();
                for p in names {
                    println!("  dns.{p}");
                }
                return Ok(None);
            }
            "h" | "help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            _ => bail!("unknown flag -{name}\n\n{USAGE}"),
        }
    }
    Ok(Some(flags))
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let (filter, handle) = tracing_subscriber::reload::Layer::new(
        from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
    );
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stdout),
        )
        .init();
    if !fixed {
        let _ = LOG_FILTER.set(handle);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("clusterdns: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Some(flags) = parse_flags()? else {
        return Ok(());
    };
    // Memory freed after a large sync goes back to the system within seconds, not at the
    // next burst of allocations.
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        warn!(%error, "jemalloc background thread");
    }
    // Every TCP connection and forwarded query holds a descriptor: the soft limit goes up to
    // the hard one (Go, and so CoreDNS, does the same at start), so `-tcp.max_connections`
    // is what bounds connections, not a default of 1024 descriptors.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(error) => warn!(%error, "raising the open-file limit"),
    }
    // Everything is read and checked before a socket is bound.
    let corefile = std::fs::read(&flags.conf).unwrap_or_default();
    let config = Config::load(&flags.conf, flags.port)?;
    let bound = Bound::new(&config, &flags)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let mut signals = ReloadSignals::new().context("listening for SIGHUP and SIGUSR1")?;
        let debug = config.debug();
        let mut current = bound.start()?;
        set_debug(debug);
        let mut seen = fingerprint(&corefile);
        loop {
            let check = next_check(current.reload);
            // `reload` looks at the Corefile every interval and loads it when its bytes
            // changed; SIGHUP and SIGUSR1 load it at once, changed or not, `reload` or not.
            let signal = tokio::select! {
                r = &mut current.dns => {
                    r.context("serving")?.context("serving")?;
                    bail!("the DNS listeners stopped");
                }
                () = shutdown_signal() => break,
                () = check => None,
                name = signals.recv() => Some(name),
            };
            let text = std::fs::read(&flags.conf).unwrap_or_default();
            if signal.is_none() && fingerprint(&text) == seen {
                continue;
            }
            seen = fingerprint(&text);
            let (trigger, what) = match signal {
                Some(name) => (name, "the Corefile"),
                None => ("reload", "the changed Corefile"),
            };
            // A new configuration replaces everything, or nothing.
            match Config::load(&flags.conf, flags.port)
                .map_err(anyhow::Error::from)
                .and_then(|c| Ok((Bound::new(&c, &flags)?, c.debug())))
                .and_then(|(bound, debug)| Ok((bound.start()?, debug)))
            {
                Ok((next, debug)) => {
                    // The new listeners are up before the old ones close.
                    std::mem::replace(&mut current, next).stop();
                    set_debug(debug);
                    info!("{trigger}: serving {what}");
                }
                Err(error) => {
                    clusterdns::metrics::metrics().reload_failed();
                    warn!("{trigger}: {what} is not used, the last good one goes on: {error:#}");
                }
            }
        }
        clusterdns::STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
        // `on shutdown`, as CoreDNS runs it: when the stop begins, before the lameduck wait;
        // a command that takes longer than a minute is left behind.
        let hooks = std::mem::take(&mut current.shutdown);
        let run = async {
            for hook in hooks {
                hook.run().await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .is_err()
        {
            warn!("on shutdown: a command still runs after a minute; stopping anyway");
        }
        if !current.lameduck.is_zero() {
            info!(lameduck = ?current.lameduck, "lameduck: still serving before shutting down");
            tokio::time::sleep(current.lameduck).await;
        }
        info!("shutting down");
        // The UDP workers answer what their sockets hold before they close them.
        current.stop();
        let drained = tokio::task::spawn_blocking(|| {
            clusterdns::server::udp::wait_stopped(Duration::from_secs(1))
        })
        .await;
        if !matches!(drained, Ok(true)) {
            warn!("shutting down: UDP workers still busy after a second");
        }
        Ok(())
    })
}

/// A configuration assembled and its sockets bound, not yet served.
struct Bound {
    assembly: clusterdns::Assembly,
    listeners: Vec<clusterdns::server::Listener>,
    http: Vec<(std::net::TcpListener, clusterdns::server::http::Routes)>,
    reload: Option<(Duration, Duration)>,
    /// TCP options from the flags; each port's `timeouts` go over them.
    tcp: clusterdns::server::TcpOptions,
}

impl Bound {
    fn new(config: &Config, flags: &Flags) -> anyhow::Result<Self> {
        let mut assembly = clusterdns::assemble(config)?;
        let listeners = clusterdns::server::bind_with(
            std::mem::take(&mut assembly.blocks),
            flags.workers,
            &config.listen_options(),
        )?;
        let http = clusterdns::server::bind_http(std::mem::take(&mut assembly.http))?;
        let reload = config
            .servers
            .iter()
            .find_map(|s| s.get::<plugin::reload::Reload>())
            .map(|r| (r.interval, r.jitter));
        let tcp = clusterdns::server::TcpOptions {
            max_connections: flags.max_connections,
            ..Default::default()
        };
        Ok(Self {
            assembly,
            listeners,
            http,
            reload,
            tcp,
        })
    }

    /// Serves it: DNS, HTTP and the sources, each a task.
    fn start(self) -> anyhow::Result<Running> {
        for l in &self.listeners {
            info!(addr = %l.local_addr()?, "listening (udp and tcp)");
        }
        for (l, _) in &self.http {
            info!(addr = %l.local_addr()?, "listening (http)");
        }
        let http = tokio::spawn(clusterdns::server::run_http(self.http));
        let background = self
            .assembly
            .background
            .into_iter()
            .map(tokio::spawn)
            .collect();
        // DNS keeps being served through the lameduck period, so it runs as its own task.
        let dns = tokio::spawn(clusterdns::server::run(self.listeners, self.tcp));
        Ok(Running {
            dns,
            http,
            background,
            lameduck: self.assembly.lameduck,
            reload: self.reload,
            shutdown: self.assembly.shutdown,
        })
    }
}

/// A configuration being served.
struct Running {
    dns: tokio::task::JoinHandle<std::io::Result<()>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    lameduck: Duration,
    reload: Option<(Duration, Duration)>,
    /// `on shutdown`: run when the process stops.
    shutdown: Vec<clusterdns::plugin::on::Hook>,
}

impl Running {
    /// Closes its listeners and stops its sources; queries already taken finish in their own
    /// tasks.
    fn stop(self) {
        self.dns.abort();
        self.http.abort();
        for task in self.background {
            task.abort();
        }
    }
}

/// When to look at the Corefile again: the interval, moved by up to the jitter either way;
/// never without `reload`.
async fn next_check(reload: Option<(Duration, Duration)>) {
    let Some((interval, jitter)) = reload else {
        return std::future::pending().await;
    };
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
        % (2 * nanos).max(1);
    tokio::time::sleep((interval + Duration::from_nanos(spread)).saturating_sub(jitter)).await;
}

/// What a Corefile change is seen by: its bytes' hash.
fn fingerprint(text: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// SIGHUP and SIGUSR1: load the Corefile again now. CoreDNS reloads on SIGUSR1 (and stops on
/// SIGHUP); both reload here, as most daemons do on SIGHUP. Listening replaces the signals'
/// default action, which would end the process.
struct ReloadSignals {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    usr1: tokio::signal::unix::Signal,
}

impl ReloadSignals {
    /// Starts listening; needs the runtime.
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                hup: signal(SignalKind::hangup())?,
                usr1: signal(SignalKind::user_defined1())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next reload signal's name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        tokio::select! {
            Some(()) = self.hup.recv() => return "SIGHUP",
            Some(()) = self.usr1.recv() => return "SIGUSR1",
            else => {}
        }
        std::future::pending().await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

//! The `clusterdns` binary: CoreDNS's flags, then load everything, bind, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clusterdns::config::{Config, SUPPORTED};
use tracing::info;

const USAGE: &str = "\
Usage: clusterdns [-conf FILE] [-dns.port PORT] [-version] [-plugins]

  -conf FILE       Corefile to load (default \"Corefile\")
  -dns.port PORT   port of server blocks that name none (default 53)
  -version         show the version and quit
  -plugins         list the directives this build supports and quit
";

/// Logs unless `RUST_LOG` says otherwise. kube-client logs every failed request; the API
/// source logs each change between working and failing instead.
const DEFAULT_LOG: &str = "info,kube_client=off";

struct Flags {
    conf: PathBuf,
    port: u16,
}

/// Go-style flags as CoreDNS takes them: `-name value`, `--name value`, `-name=value`.
fn parse_flags() -> anyhow::Result<Option<Flags>> {
    let mut flags = Flags {
        conf: PathBuf::from("Corefile"),
        port: 53,
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
                for p in SUPPORTED {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
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
    // Everything is read and checked before a socket is bound.
    let config = Config::load(&flags.conf, flags.port)?;
    let assembly = clusterdns::assemble(&config)?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let listeners = clusterdns::server::bind(assembly.blocks, workers)?;
    let http = clusterdns::server::bind_http(assembly.http)?;
    let lameduck = assembly.lameduck;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        for l in &listeners {
            info!(addr = %l.local_addr()?, "listening (udp and tcp)");
        }
        for (l, _) in &http {
            info!(addr = %l.local_addr()?, "listening (http)");
        }
        tokio::spawn(clusterdns::server::run_http(http));
        for task in assembly.background {
            tokio::spawn(task);
        }
        // DNS keeps being served through the lameduck period, so it runs as its own task.
        let dns = tokio::spawn(clusterdns::server::run(listeners, Default::default()));
        tokio::select! {
            r = dns => r.context("serving")?.context("serving")?,
            () = shutdown_signal() => {
                if !lameduck.is_zero() {
                    info!(?lameduck, "lameduck: still serving before shutting down");
                    tokio::time::sleep(lameduck).await;
                }
                info!("shutting down");
            }
        }
        Ok(())
    })
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

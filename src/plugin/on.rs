//! `on EVENT COMMAND [ARGS...]`: a command run when the server starts (`startup`, each time a
//! configuration starts serving, reloads included) or when the process stops (`shutdown`), as
//! CoreDNS's `on` (caddy's onevent) runs it: waited for, or left running in the background when
//! the last argument is `&`; its output goes to the server's. `certrenew` is accepted and never
//! happens (no certificates are renewed here).

use crate::corefile::{ConfigError, Directive, directive_err};
use crate::plugin::setup::{Building, Context, Setup, SetupError};

const NAME: &str = "on";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Startup,
    Shutdown,
    CertRenew,
}

/// One `on` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub event: Event,
    pub command: String,
    pub args: Vec<String>,
    /// Not waited for (`&` last).
    pub background: bool,
}

impl Hook {
    /// Runs the command: waited for (polled, so no thread is held and the runtime can still
    /// stop) unless it runs in the background. A command that does not start, or fails, is
    /// logged.
    pub async fn run(self) {
        let what = format!("{} {}", self.command, self.args.join(" "));
        let mut child = match std::process::Command::new(&self.command)
            .args(&self.args)
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(command = %what, %error, "on: the command did not start");
                return;
            }
        };
        if self.background {
            tracing::info!(command = %what, "on: running in the background");
            // Reaped when it ends, so it does not linger as a zombie.
            tokio::spawn(async move {
                while matches!(child.try_wait(), Ok(None)) {
                    tokio::time::sleep(POLL).await;
                }
            });
            return;
        }
        tracing::info!(command = %what, "on: running");
        loop {
            match child.try_wait() {
                Ok(None) => tokio::time::sleep(POLL).await,
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => {
                    tracing::error!(command = %what, %status, "on: the command failed");
                    return;
                }
                Err(error) => {
                    tracing::error!(command = %what, %error, "on: the command could not be waited for");
                    return;
                }
            }
        }
    }
}

/// How often a running command is looked at.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// A block's `on` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct On {
    pub hooks: Vec<Hook>,
}

impl Setup for On {
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        let Some((event, rest)) = d.args.split_first() else {
            return Err(directive_err(
                d,
                NAME,
                "Wrong argument count or unexpected line ending after 'on'",
            ));
        };
        let event = match event.to_ascii_lowercase().as_str() {
            "startup" => Event::Startup,
            "shutdown" => Event::Shutdown,
            "certrenew" => Event::CertRenew,
            _ => {
                return Err(directive_err(
                    d,
                    NAME,
                    format!("Wrong event name or event not supported: '{event}'"),
                ));
            }
        };
        let Some((command, args)) = rest.split_first() else {
            return Err(directive_err(d, NAME, "no command to run"));
        };
        let mut args = args.to_vec();
        let background = args.last().is_some_and(|a| a == "&");
        if background {
            args.pop();
        }
        Ok(Self {
            hooks: vec![Hook {
                event,
                command: command.clone(),
                args,
                background,
            }],
        })
    }

    fn merge(&mut self, later: Self) -> bool {
        self.hooks.extend(later.hooks);
        true
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let startup: Vec<Hook> = self
            .hooks
            .iter()
            .filter(|h| h.event == Event::Startup)
            .cloned()
            .collect();
        if !startup.is_empty() {
            b.background.push(Box::pin(async move {
                for hook in startup {
                    hook.run().await;
                }
            }));
        }
        b.shutdown.extend(
            self.hooks
                .iter()
                .filter(|h| h.event == Event::Shutdown)
                .cloned(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    #[test]
    fn reads_events_commands_and_background() {
        let on: On =
            settings("on startup /bin/echo hello world\non shutdown touch /tmp/x &").unwrap();
        assert_eq!(
            on.hooks,
            [
                Hook {
                    event: Event::Startup,
                    command: "/bin/echo".into(),
                    args: vec!["hello".into(), "world".into()],
                    background: false
                },
                Hook {
                    event: Event::Shutdown,
                    command: "touch".into(),
                    args: vec!["/tmp/x".into()],
                    background: true
                },
            ]
        );
        for (lines, needle) in [
            ("on", "Wrong argument count"),
            (
                "on boot /bin/true",
                "Wrong event name or event not supported: 'boot'",
            ),
            ("on startup", "no command to run"),
        ] {
            let e = settings::<On>(lines).unwrap_err();
            assert!(e.contains(needle), "{lines}: {e}");
        }
    }
}

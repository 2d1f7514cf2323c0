//! `SIGHUP` reloads the configuration without dropping a request.
//!
//! Every request loads the current [`App`] once ([`Current`]) and finishes on it, so a request in
//! flight during a reload ends on the configuration it started with; the next one gets the new.
//! A reload builds a new `App` from the newly loaded file, carrying over the state that must
//! survive it (the local and Redis tiers, the in-flight tables, the metrics, and the provider
//! client unless its settings or key changed: [`diff::provider_changed`]). The local tier holds
//! facts, not verdicts, so new policies decide the very next request, cached addresses included.
//!
//! A file that does not load, or that changes a key only a restart applies
//! ([`diff::restart_only`]), is refused as a whole: the error is logged and the previous
//! configuration keeps running.

pub mod counts;
pub mod diff;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::app::App;
use crate::config::{self, Settings};
use crate::provider::Provider;
use crate::ListenOverrides;

/// The running configuration, swapped whole by a reload.
pub type Current = Arc<ArcSwap<App>>;

impl App {
    /// The `App` for `settings`, sharing this one's state (see the module docs), and a summary
    /// of what changed; an error naming the keys when a restart is needed, or the provider's
    /// key variable when it is unset.
    pub fn reloaded(&self, settings: Settings) -> anyhow::Result<(App, String)> {
        let restart = diff::restart_only(&self.settings, &settings);
        if !restart.is_empty() {
            anyhow::bail!(
                "{}: restart to change {} (a reload cannot apply {})",
                settings.origin,
                restart.join(", "),
                if restart.len() == 1 { "it" } else { "them" }
            );
        }
        // Re-read: `provider.api_key_file` may hold a rotated key, or `api_key_env` name another
        // variable (the process environment is fixed at exec, though: a key changed in
        // systemd's EnvironmentFile needs a restart).
        let key = match &settings.provider {
            Some(spec) => spec
                .api_key()
                .with_context(|| format!("{}: provider enabled but no API key", settings.origin))?,
            None => None,
        };
        let rebuild =
            diff::provider_changed(&self.settings, &settings, self.key.as_ref(), key.as_ref());
        let mut carried = self.carried();
        // Unchanged databases are kept (their files checked again now); a new or changed one
        // that does not load refuses the whole reload.
        carried.databases = Arc::new(crate::databases::Databases::open(
            &settings.origin,
            &settings.databases,
            Some(&self.databases),
        )?);
        if rebuild {
            carried.provider = settings
                .provider
                .clone()
                .map(|spec| Provider::new(spec, key.clone()))
                .transpose()?
                .map(Arc::new);
            if carried.provider.is_some() {
                carried.metrics.provider_configured();
            } else {
                carried.metrics.provider_removed();
            }
        }
        let summary = diff::summary(&self.settings, &settings, rebuild);
        Ok((App::assemble(settings, key, carried), summary))
    }
}

/// Loads the file again and swaps the running configuration on `SIGHUP`.
pub struct Reloader {
    /// The file given at start (`None`: the embedded default, so a reload changes nothing).
    pub path: Option<PathBuf>,
    /// The command line's addresses, applied to every load as at start.
    pub overrides: ListenOverrides,
    /// What the handlers read.
    pub current: Current,
}

impl Reloader {
    /// One reload: logs and counts the outcome. On error the previous configuration still runs.
    pub fn reload(&self) {
        let running = self.current.load_full();
        match self.next(&running) {
            Ok((app, summary)) => {
                let origin = app.settings.origin.clone();
                for warning in &app.settings.warnings {
                    tracing::warn!("{warning}");
                }
                app.settings.decision_log.warn_if_filtered();
                self.current.store(Arc::new(app));
                running.metrics.reloads.succeeded();
                tracing::info!("configuration reloaded from {origin}: {summary}");
            }
            Err(e) => {
                running.metrics.reloads.failed();
                tracing::error!(
                    "configuration not reloaded: {e:#}; still running the previous one"
                );
            }
        }
    }

    fn next(&self, running: &App) -> anyhow::Result<(App, String)> {
        let mut settings = config::load(self.path.as_deref())?;
        crate::apply_overrides(&mut settings, &self.overrides)?;
        running.reloaded(settings)
    }

    /// Reloads on every `SIGHUP`, for the life of the process. The handler is installed before
    /// this returns its future, so a HUP right after start reloads rather than kills.
    pub fn on_hangup(self) -> impl std::future::Future<Output = ()> {
        use tokio::signal::unix::{signal, SignalKind};
        let hangups = signal(SignalKind::hangup());
        async move {
            let mut hangups = match hangups {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!("cannot handle SIGHUP ({e}): a HUP will stop the process; restart to change the configuration");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                self.reload();
            }
        }
    }
}

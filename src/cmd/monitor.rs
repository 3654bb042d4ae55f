//! `authwatch monitor`: the daemon. Validates arguments, starts a tokio runtime, turns SIGINT/SIGTERM
//! into the shutdown signal and runs [`crate::monitor::run`].

use anyhow::Context;
use tokio::sync::watch;

use crate::cli::{engine_settings, load_specs, monitor_config, MonitorArgs, EXIT_OK, EXIT_REJECTED};

pub fn run(a: &MonitorArgs) -> anyhow::Result<i32> {
    let mut cfg = monitor_config(a)?;
    let specs = load_specs(a.detect.filters.as_ref())?;
    if let Some(path) = &a.respond {
        let policy = crate::respond::policy::Policy::load(path, &specs)?;
        if !policy.enabled {
            tracing::warn!(policy = %path.display(), "active response policy has enabled = false: nothing will be done");
        }
        cfg.respond = Some(crate::respond::RespondSettings { policy: std::sync::Arc::new(policy), dry_run: a.dry_run });
    }
    let settings = engine_settings(&a.detect)?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining, flushing, checkpointing");
            let _ = tx.send(true);
        });
        let report = crate::monitor::run(cfg, &specs, settings, rx).await?;
        tracing::info!(
            events = report.events,
            rejected = report.rejected,
            findings = report.findings_closed,
            notifications = report.notifications_sent,
            spooled = report.spooled,
            "monitor stopped"
        );
        // As replay: a run that rejected records (named in the log, counted in /metrics) exits 1.
        Ok(if report.rejected > 0 { EXIT_REJECTED } else { EXIT_OK })
    })
}

/// SIGINT or SIGTERM (systemd's stop). If the handler cannot be installed, Ctrl-C alone.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

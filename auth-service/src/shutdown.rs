//! Graceful shutdown: stop accepting on SIGTERM or SIGINT, let in-flight requests finish.
//! (SIGHUP reloads the configuration instead: [`crate::reload`].)

/// Resolves when the process is asked to stop.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests, then stopping"),
                _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests, then stopping"),
            }
        }
        // Without signal handlers the process can still be killed; serve until then.
        _ => std::future::pending::<()>().await,
    }
}

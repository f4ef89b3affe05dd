//! One cancellation token for the whole process, cancelled by SIGINT or SIGTERM.
//!
//! A second signal while the stages drain exits at once: an operator who presses Ctrl-C twice
//! wants the process gone, not a longer drain.

use tokio_util::sync::CancellationToken;

/// Exit status used when a second signal interrupts the drain (128 + SIGINT).
const FORCED_EXIT_STATUS: i32 = 130;

/// Returns a token that is cancelled on the first SIGINT/SIGTERM; the second one exits the process.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining in-flight work (signal again to exit now)");
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without finishing the drain");
        std::process::exit(FORCED_EXIT_STATUS);
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

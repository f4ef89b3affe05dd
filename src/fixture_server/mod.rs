//! Placeholder: being written.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {}

#[derive(Debug, thiserror::Error)]
pub enum Error {}

pub async fn run(_config: Config, _shutdown: CancellationToken) -> Result<(), Error> {
    Ok(())
}

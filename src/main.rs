use clap::Parser;
use userstream::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    userstream::telemetry::init_tracing();
    let shutdown = userstream::shutdown::on_signals();
    match cli.command {
        Command::Registry(config) => userstream::registry::run(config, shutdown).await?,
        Command::FixtureServer(config) => userstream::fixture_server::run(config, shutdown).await?,
    }
    Ok(())
}

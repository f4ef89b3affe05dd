use clap::Parser;
use userstream::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    userstream::telemetry::init_tracing();
    // Installed before any stage counts anything; a recorder installed on the first scrape would
    // miss what happened before it.
    userstream::telemetry::prometheus();
    let shutdown = userstream::shutdown::on_signals();
    match cli.command {
        Command::Migrate(config) => userstream::migrate::run(config, shutdown).await?,
        Command::Fetch(config) => userstream::fetcher::run(config, shutdown).await?,
        Command::Cdc(config) => userstream::cdc::run(config, shutdown).await?,
        Command::Process(config) => userstream::processor::run(config, shutdown).await?,
        Command::Run(config) => userstream::pipeline::run(config, shutdown).await?,
        Command::Schemas(config) => userstream::schemas_cmd::run(config, shutdown).await?,
        Command::Registry(config) => userstream::registry::run(config, shutdown).await?,
        Command::FixtureServer(config) => userstream::fixture_server::run(config, shutdown).await?,
        Command::Snapshot(config) => userstream::snapshot::run(config, shutdown).await?,
        Command::Status(config) => {
            let verdict = userstream::status::run(config, shutdown).await?;
            std::process::exit(verdict.exit_code());
        }
        Command::DeadLetters(config) => userstream::dead_letters::run(config, shutdown).await?,
        Command::Tail(config) => userstream::tail::run(config, shutdown).await?,
    }
    Ok(())
}

//! The cdc peer: Debezium's PostgreSQL connector on a Kafka Connect standalone worker, with the
//! run's own slot, publication, topic prefix and REST port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Command;

use crate::stage::Stage;

/// The worker and connector templates, the Maven pom that pins the jars, the logging set-up.
pub const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack/debezium");

/// How long the JVM may take to start the connector and open its replication slot.
const START_DEADLINE: Duration = Duration::from_secs(180);

pub struct Peer {
    pub stage: Stage,
    pub slot: String,
    pub topic: String,
    rest: String,
}

pub struct PeerSettings<'a> {
    pub run_id: &'a str,
    pub java: &'a Path,
    pub lib: &'a Path,
    pub state: &'a Path,
    pub brokers: &'a str,
    pub pg_host: &'a str,
    pub pg_port: u16,
    pub pg_user: &'a str,
    pub database: &'a str,
    pub partitions: i32,
}

/// What the worker reports about itself: the Connect and connector versions.
pub struct PeerVersions {
    pub connect: String,
    pub connector: String,
}

impl Peer {
    /// Starts the worker and waits until the connector streams from its slot.
    pub async fn start(
        settings: &PeerSettings<'_>,
        pg: &tokio_postgres::Client,
    ) -> anyhow::Result<Self> {
        let run_id = settings.run_id;
        let slot = format!("{run_id}_slot");
        let rest_port = free_port()?;
        let state = settings.state.join("debezium");
        std::fs::create_dir_all(&state)?;
        let fill = |template: &str, fields: &[(&str, String)]| -> anyhow::Result<PathBuf> {
            let source = Path::new(CONFIG_DIR).join(template);
            let mut text = std::fs::read_to_string(&source)
                .with_context(|| format!("reading {}", source.display()))?;
            for (field, value) in fields {
                text = text.replace(&format!("@{field}@"), value);
            }
            let target = state.join(template);
            std::fs::write(&target, text)?;
            Ok(target)
        };
        let worker = fill(
            "worker.properties",
            &[
                ("BROKERS", settings.brokers.to_owned()),
                ("STATE", state.display().to_string()),
                ("REST_PORT", rest_port.to_string()),
            ],
        )?;
        let connector = fill(
            "connector.properties",
            &[
                ("NAME", run_id.to_owned()),
                ("PG_HOST", settings.pg_host.to_owned()),
                ("PG_PORT", settings.pg_port.to_string()),
                ("PG_USER", settings.pg_user.to_owned()),
                ("DATABASE", settings.database.to_owned()),
                ("TOPIC_PREFIX", run_id.to_owned()),
                ("SLOT", slot.clone()),
                ("PUBLICATION", format!("{run_id}_pub")),
                ("PARTITIONS", settings.partitions.to_string()),
            ],
        )?;
        let mut command = Command::new(settings.java);
        command
            // Connect's own start script's heap.
            .args(["-Xms256m", "-Xmx2g", "-Djava.awt.headless=true"])
            .arg(format!(
                "-Dlog4j2.configurationFile={CONFIG_DIR}/log4j2.properties"
            ))
            .arg("-cp")
            .arg(format!("{}/*", settings.lib.display()))
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .arg(&worker)
            .arg(&connector);
        let mut stage = Stage::spawn("debezium", command, &settings.state.join("debezium.log"))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            stage.ensure_running()?;
            let active: Option<bool> = pg
                .query_opt(include_str!("slot_active.sql"), &[&slot])
                .await?
                .map(|row| row.get(0));
            if active == Some(true) {
                break;
            }
            if Instant::now() > deadline {
                bail!("Debezium's slot {slot} not streaming after {START_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(Self {
            stage,
            slot,
            topic: format!("{run_id}.public.users"),
            rest: format!("http://127.0.0.1:{rest_port}"),
        })
    }

    /// The versions the running worker reports on its REST API.
    pub async fn versions(&self, connector: &str) -> anyhow::Result<PeerVersions> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let root: serde_json::Value = http.get(&self.rest).send().await?.json().await?;
        let status: serde_json::Value = http
            .get(format!("{}/connectors/{connector}/status", self.rest))
            .send()
            .await?
            .json()
            .await?;
        let text = |value: &serde_json::Value| value.as_str().unwrap_or("unknown").to_owned();
        Ok(PeerVersions {
            connect: text(&root["version"]),
            connector: text(&status["connector"]["version"]),
        })
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Drops the run's replication slot once nothing holds it (the worker has stopped).
pub async fn drop_slot(pg: &tokio_postgres::Client, slot: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match pg
            .query_opt(include_str!("slot_active.sql"), &[&slot])
            .await?
        {
            None => return Ok(()),
            Some(row) if !row.get::<_, bool>(0) => {
                pg.execute(include_str!("drop_slot.sql"), &[&slot]).await?;
                return Ok(());
            }
            Some(_) if Instant::now() > deadline => {
                bail!("replication slot {slot} still active after 60 s; drop it by hand")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

//! The run's figures against the targets: `report.json` and the printed table.

use serde_json::{json, Value};

/// One row of the table.
struct Row {
    part: &'static str,
    ours: String,
    other: String,
    ratio: String,
    target: &'static str,
    /// `None`: a figure without a target; `Some(None)`: the figure is missing.
    pass: Option<Option<bool>>,
}

/// Every figure the report must hold, as JSON pointers: a run missing one is incomplete.
pub const REQUIRED: &[&str] = &[
    "/codec/decode_normalize/ours_rps",
    "/codec/decode_normalize/baseline_rps",
    "/codec/decode_normalize/ratio",
    "/codec/encode/ours_rps",
    "/codec/encode/baseline_rps",
    "/codec/encode/ratio",
    "/cdc/ours_cps",
    "/cdc/peer_cps",
    "/cdc/ratio",
    "/process/ours_cps",
    "/process/limit_cps",
    "/process/ratio",
    "/latency/p50_ms",
    "/latency/p99_ms",
    "/latency/max_ms",
    "/memory/cdc_peak_rss_mb",
    "/memory/process_peak_rss_mb",
];

/// The pointers of [`REQUIRED`] that `report` lacks (or holds as something other than a number).
pub fn missing(report: &Value) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .copied()
        .filter(|pointer| report.pointer(pointer).and_then(Value::as_f64).is_none())
        .collect()
}

/// Adds the targets and their verdicts to `report` and returns the table.
pub fn judge(report: &mut Value) -> String {
    let number = |pointer: &str| report.pointer(pointer).and_then(Value::as_f64);
    let rate = |pointer: &str| {
        number(pointer).map_or("missing".to_owned(), |value| format!("{value:.0}/s"))
    };
    let ratio = |pointer: &str| {
        number(pointer).map_or("missing".to_owned(), |value| format!("{value:.2}×"))
    };
    let millis = |pointer: &str| {
        number(pointer).map_or("missing".to_owned(), |value| format!("{value:.0} ms"))
    };
    let megabytes = |pointer: &str| {
        number(pointer).map_or("missing".to_owned(), |value| format!("{value:.1} MB"))
    };
    let at_least = |pointer: &str, bound: f64| Some(number(pointer).map(|value| value >= bound));
    let below = |pointer: &str, bound: f64| Some(number(pointer).map(|value| value < bound));
    let peer = report
        .pointer("/cdc/peer")
        .and_then(Value::as_str)
        .map_or("Debezium".to_owned(), |peer| {
            peer.split(',').next().unwrap_or(peer).to_owned()
        });
    let rows = [
        Row {
            part: "codec decode+normalize (1 core)",
            ours: rate("/codec/decode_normalize/ours_rps"),
            other: format!(
                "{} (apache-avro Value)",
                rate("/codec/decode_normalize/baseline_rps")
            ),
            ratio: ratio("/codec/decode_normalize/ratio"),
            target: "≥ 5×",
            pass: at_least("/codec/decode_normalize/ratio", 5.0),
        },
        Row {
            part: "codec encode (1 core)",
            ours: rate("/codec/encode/ours_rps"),
            other: format!("{} (apache-avro Value)", rate("/codec/encode/baseline_rps")),
            ratio: ratio("/codec/encode/ratio"),
            target: "—",
            pass: None,
        },
        Row {
            part: "cdc: changes → Kafka",
            ours: rate("/cdc/ours_cps"),
            other: format!("{} ({peer})", rate("/cdc/peer_cps")),
            ratio: ratio("/cdc/ratio"),
            target: "≥ 1× (aim 2×)",
            pass: at_least("/cdc/ratio", 1.0),
        },
        Row {
            part: "process: topic → Cassandra",
            ours: rate("/process/ours_cps"),
            other: format!("{} (blind-write limit)", rate("/process/limit_cps")),
            ratio: ratio("/process/ratio"),
            target: "≥ 0.8×",
            pass: at_least("/process/ratio", 0.8),
        },
        Row {
            part: "latency p50, commit → readable",
            ours: millis("/latency/p50_ms"),
            other: String::new(),
            ratio: String::new(),
            target: "—",
            pass: None,
        },
        Row {
            part: "latency p99",
            ours: millis("/latency/p99_ms"),
            other: String::new(),
            ratio: String::new(),
            target: "< 1000 ms",
            pass: below("/latency/p99_ms", 1000.0),
        },
        Row {
            part: "latency max",
            ours: millis("/latency/max_ms"),
            other: String::new(),
            ratio: String::new(),
            target: "—",
            pass: None,
        },
        Row {
            part: "peak RSS, cdc",
            ours: megabytes("/memory/cdc_peak_rss_mb"),
            other: format!(
                "{} (Debezium worker)",
                megabytes("/memory/peer_peak_rss_mb")
            ),
            ratio: String::new(),
            target: "< 100 MB",
            pass: below("/memory/cdc_peak_rss_mb", 100.0),
        },
        Row {
            part: "peak RSS, process",
            ours: megabytes("/memory/process_peak_rss_mb"),
            other: String::new(),
            ratio: String::new(),
            target: "< 100 MB",
            pass: below("/memory/process_peak_rss_mb", 100.0),
        },
    ];
    let verdict = |pass: &Option<Option<bool>>| match pass {
        None => "",
        Some(None) => "missing",
        Some(Some(true)) => "pass",
        Some(Some(false)) => "FAIL",
    };
    report["targets"] = Value::Array(
        rows.iter()
            .filter(|row| row.pass.is_some())
            .map(|row| json!({ "part": row.part, "target": row.target, "result": verdict(&row.pass) }))
            .collect(),
    );
    let header = [
        "part",
        "ours",
        "baseline / peer / limit",
        "ratio",
        "target",
        "pass",
    ];
    let cells: Vec<[String; 6]> = std::iter::once(header.map(str::to_owned))
        .chain(rows.iter().map(|row| {
            [
                row.part.to_owned(),
                row.ours.clone(),
                row.other.clone(),
                row.ratio.clone(),
                row.target.to_owned(),
                verdict(&row.pass).to_owned(),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|column| {
            cells
                .iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String; 6]| {
        let padded: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!(
        "|{}|",
        widths
            .iter()
            .map(|width| "-".repeat(width + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    let mut table = vec![line(&cells[0]), rule];
    table.extend(cells[1..].iter().map(line));
    table.join("\n")
}

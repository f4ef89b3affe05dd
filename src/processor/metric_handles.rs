//! The processor's metric handles, resolved once rather than per message: `metrics::counter!`
//! looks its series up in the recorder on every call, labels and all.

use std::collections::HashMap;

use metrics::{Counter, Histogram};

use crate::normalize::{Repair, Warning};

/// The consumer loop's handles (one task, so plain maps fill lazily).
pub(super) struct ConsumeMetrics {
    pub records_in: Counter,
    pub normalize_accepted: Counter,
    repaired: HashMap<Repair, Counter>,
    dropped: HashMap<Warning, Counter>,
}

impl ConsumeMetrics {
    pub fn new() -> Self {
        // Installed before the first handle is resolved, or the handles would go nowhere.
        crate::telemetry::prometheus();
        Self {
            records_in: metrics::counter!("userstream_processor_records_in_total"),
            normalize_accepted: metrics::counter!("userstream_normalize_accepted_total"),
            repaired: HashMap::new(),
            dropped: HashMap::new(),
        }
    }

    pub fn repaired(&mut self, repair: Repair) -> &Counter {
        self.repaired.entry(repair).or_insert_with(|| {
            metrics::counter!(
                "userstream_normalize_repaired_total",
                "field" => repair.field,
                "reason" => repair.reason.as_str()
            )
        })
    }

    pub fn dropped(&mut self, warning: Warning) -> &Counter {
        self.dropped.entry(warning).or_insert_with(|| {
            metrics::counter!(
                "userstream_normalize_dropped_total",
                "field" => warning.field,
                "reason" => warning.reason.as_str()
            )
        })
    }
}

/// One kind of write's handles, shared by the lanes.
#[derive(Debug, Clone)]
pub(super) struct WriteMetrics {
    pub written: Counter,
    pub seconds: Histogram,
}

impl WriteMetrics {
    fn of(op: &'static str) -> Self {
        Self {
            written: metrics::counter!("userstream_processor_records_written_total", "op" => op),
            seconds: metrics::histogram!("userstream_processor_write_seconds", "op" => op),
        }
    }
}

/// The lanes' handles.
#[derive(Debug, Clone)]
pub(super) struct LaneMetrics {
    pub upsert: WriteMetrics,
    pub delete: WriteMetrics,
}

impl LaneMetrics {
    pub fn new() -> Self {
        crate::telemetry::prometheus();
        Self {
            upsert: WriteMetrics::of("upsert"),
            delete: WriteMetrics::of("delete"),
        }
    }
}

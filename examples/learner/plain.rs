//! A plain-text renderer for burn-train, for when stdout is not a terminal (CI, a pipe, a
//! log file): one line per epoch and split with the epoch values of every numeric metric.
//!
//! burn-train's own fallback (`CliMetricsRenderer`) prints a `Debug` dump of its progress
//! counters after every batch and no metric values at all, which makes a CI log hard to read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Long splits still show signs of life, without flooding the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub struct PlainRenderer {
    names: HashMap<MetricId, String>,
    epoch: usize,
    total_epochs: usize,
    split: String,
    split_items: usize,
    split_start: Instant,
    last_progress: Instant,
    /// The epoch values of the current split, in the order burn-train reports them.
    values: Vec<(String, f64)>,
}

impl PlainRenderer {
    pub fn new() -> Self {
        Self {
            names: HashMap::new(),
            epoch: 1,
            total_epochs: 0,
            split: String::new(),
            split_items: 0,
            split_start: Instant::now(),
            last_progress: Instant::now(),
            values: Vec::new(),
        }
    }

    fn record(&mut self, state: MetricState) {
        // Batch entries arrive as `Value`/`Aggregated`; the epoch value, computed once over the
        // whole split, arrives as `Final` just before `end_split`: only that one is printed.
        if let MetricState::Numeric(entry, Some(NumericEntry::Final(value))) = state {
            let name = self
                .names
                .get(&entry.metric_id)
                .cloned()
                .unwrap_or_else(|| "?".to_string());
            self.values.push((name, value));
        }
    }
}

/// "Dice (per image, empty One, logit threshold 0)" -> "Dice": the full names are in the summary at
/// the end; here they would push each line past any terminal width.
fn short(name: &str) -> &str {
    name.split(" (").next().unwrap_or(name)
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(summary) = summary {
            println!("{summary}");
        }
        Ok(())
    }
}

impl TrainingProgressLogger for PlainRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch;
        println!("training for {total_epochs} epochs (from epoch {starting_epoch})");
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.split_items = total_items;
        self.split_start = Instant::now();
        self.last_progress = Instant::now();
        self.values.clear();
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            println!(
                "  epoch {}/{} {}: {items_processed}/{} images",
                self.epoch, self.total_epochs, self.split, self.split_items
            );
        }
    }

    fn end_split(&mut self) {
        let metrics: Vec<String> = self
            .values
            .iter()
            .map(|(name, value)| format!("{} {value:.4}", short(name)))
            .collect();
        println!(
            "epoch {}/{} {:<5} | {} | {:.1} s",
            self.epoch,
            self.total_epochs,
            self.split,
            metrics.join(" | "),
            self.split_start.elapsed().as_secs_f64()
        );
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

// The renderer trait also covers burn-train's `Evaluator`, which this example does not use.
impl EvaluationProgressLogger for PlainRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }
}

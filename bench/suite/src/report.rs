//! The figures: each one a measurement of easycaching next to a baseline measured in the same
//! run, with the ratio between them and, for the per-call figures, instruction counts. Every
//! stage of `make bench` writes its figures to `target/bench/parts/STAGE.json`; the report
//! gathers them, prints the table and writes `target/bench/results.json` and
//! `target/bench/results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What a figure counts, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Nanoseconds per operation; lower is better.
    #[serde(rename = "ns/op")]
    NsPerOp,
    /// Microseconds per operation (or per start); lower is better.
    #[serde(rename = "µs")]
    Micros,
    /// Milliseconds; lower is better.
    #[serde(rename = "ms")]
    Millis,
    /// Operations per second; higher is better.
    #[serde(rename = "ops/s")]
    OpsPerSec,
    /// Mebibytes of memory; lower is better.
    #[serde(rename = "MiB")]
    MiB,
    /// Megabytes on disk; lower is better.
    #[serde(rename = "MB")]
    MB,
}

impl Unit {
    /// Whether a larger value is better (throughput).
    pub fn higher_is_better(self) -> bool {
        self == Unit::OpsPerSec
    }

    fn label(self) -> &'static str {
        match self {
            Unit::NsPerOp => "ns/op",
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::OpsPerSec => "ops/s",
            Unit::MiB => "MiB",
            Unit::MB => "MB",
        }
    }
}

/// The baseline a figure is measured against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// What it is.
    pub name: String,
    /// Its value, in the figure's unit.
    pub value: f64,
}

/// Instructions per operation, from callgrind: they repeat exactly where times do not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instructions {
    /// easycaching's.
    pub ours: f64,
    /// The baseline's, when it was counted.
    pub baseline: Option<f64>,
}

/// A target a figure is held to, and whether this run met it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The target in words, e.g. `ratio <= 1.2`.
    pub text: String,
    /// Whether it was met.
    pub met: bool,
}

/// How a figure's target is judged.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// value / baseline at most this (for times: "within N x").
    RatioAtMost(f64),
    /// value / baseline at least this (for throughput).
    RatioAtLeast(f64),
    /// The value itself below this, in the figure's unit.
    Below(f64),
}

/// One line of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// The section it belongs to, e.g. `1. hit, native`.
    pub section: String,
    /// What was measured.
    pub name: String,
    /// easycaching's value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// The baseline measured in the same run.
    pub baseline: Option<Baseline>,
    /// value / baseline.
    pub ratio: Option<f64>,
    /// Instructions per operation, when counted.
    pub instructions: Option<Instructions>,
    /// The target, when the figure has one.
    pub target: Option<Target>,
    /// Anything the reader needs to read the figure right.
    pub note: Option<String>,
}

impl Figure {
    /// A figure with no baseline.
    pub fn new(section: &str, name: &str, value: f64, unit: Unit) -> Figure {
        Figure {
            section: section.to_owned(),
            name: name.to_owned(),
            value,
            unit,
            baseline: None,
            ratio: None,
            instructions: None,
            target: None,
            note: None,
        }
    }

    /// Sets the baseline, and the ratio with it.
    pub fn against(mut self, name: &str, value: f64) -> Figure {
        self.ratio = (value > 0.0).then(|| self.value / value);
        self.baseline = Some(Baseline { name: name.to_owned(), value });
        self
    }

    /// Judges the figure against `goal`.
    pub fn goal(mut self, goal: Goal) -> Figure {
        let (text, met) = match goal {
            Goal::RatioAtMost(limit) => (format!("ratio ≤ {limit}"), self.ratio.is_some_and(|r| r <= limit)),
            Goal::RatioAtLeast(limit) => (format!("ratio ≥ {limit}"), self.ratio.is_some_and(|r| r >= limit)),
            Goal::Below(limit) => (format!("< {limit} {}", self.unit.label()), self.value < limit),
        };
        self.target = Some(Target { text, met });
        self
    }

    /// Adds instruction counts.
    pub fn instructions(mut self, ours: Option<f64>, baseline: Option<f64>) -> Figure {
        self.instructions = ours.map(|ours| Instructions { ours, baseline });
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }
}

/// Where the stages leave their figures.
pub fn parts_dir() -> PathBuf {
    crate::bench_dir().join("parts")
}

/// Writes one stage's figures to `target/bench/parts/STAGE.json`.
pub fn write_part(stage: &str, figures: &[Figure]) -> Result<()> {
    let dir = parts_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{stage}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(figures)?)?;
    Ok(())
}

/// Every stage's figures, in the order of the stage names given (missing stages skipped).
pub fn read_parts(stages: &[&str]) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for stage in stages {
        let path = parts_dir().join(format!("{stage}.json"));
        if path.exists() {
            let text = std::fs::read(&path)?;
            figures.extend(
                serde_json::from_slice::<Vec<Figure>>(&text).with_context(|| path.display().to_string())?,
            );
        }
    }
    Ok(figures)
}

/// The median time per iteration, in nanoseconds, criterion measured for `group/name`.
pub fn criterion_median(criterion_home: &Path, case: &str) -> Option<f64> {
    let path = criterion_home.join(case).join("new/estimates.json");
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// Instructions per operation callgrind counted, by case (`target/bench/parts/callgrind-raw.json`).
pub fn read_instructions() -> BTreeMap<String, f64> {
    std::fs::read(parts_dir().join("callgrind-raw.json"))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

/// Formats a number with at most 3 significant digits after the point, and thousands
/// separated, so the table reads at a glance.
pub fn number(value: f64) -> String {
    let rounded = if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let (int, frac) = rounded.split_once('.').map_or((rounded.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The table as Markdown, one row per figure.
pub fn markdown(figures: &[Figure]) -> String {
    let mut out = String::new();
    out.push_str("| figure | easycaching | baseline | ratio | instructions/op | target |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    let mut section = "";
    for figure in figures {
        if figure.section != section {
            section = &figure.section;
            let _ = writeln!(out, "| **{section}** | | | | | |");
        }
        let unit = figure.unit.label();
        let baseline = figure
            .baseline
            .as_ref()
            .map_or_else(String::new, |b| format!("{} {unit} ({})", number(b.value), b.name));
        let ratio = figure.ratio.map_or_else(String::new, |r| format!("{r:.2}x"));
        let instructions = figure.instructions.as_ref().map_or_else(String::new, |i| match i.baseline {
            Some(base) => format!("{} / {}", number(i.ours), number(base)),
            None => number(i.ours),
        });
        let target = figure
            .target
            .as_ref()
            .map_or_else(String::new, |t| format!("{} {}", if t.met { "met" } else { "MISSED" }, t.text));
        let mut name = figure.name.clone();
        if let Some(note) = &figure.note {
            let _ = write!(name, " ({note})");
        }
        let _ = writeln!(
            out,
            "| {name} | {} {unit} | {baseline} | {ratio} | {instructions} | {target} |",
            number(figure.value)
        );
    }
    out
}

/// The table for a terminal: the Markdown with its columns padded to line up.
pub fn aligned(markdown: &str) -> String {
    let rows: Vec<Vec<&str>> = markdown
        .lines()
        .filter(|line| !line.starts_with("|---"))
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|row| row.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(out, "{cell:<width$}  ", width = widths[c]);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(number(1234567.4), "1,234,567");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(-4567.0), "-4,567");
    }

    #[test]
    fn a_figure_is_judged_by_its_ratio_or_its_value() {
        let hit =
            Figure::new("1", "get", 90.0, Unit::NsPerOp).against("map", 30.0).goal(Goal::RatioAtMost(3.0));
        assert!(hit.target.as_ref().unwrap().met);
        let set = Figure::new("4", "set", 700.0, Unit::OpsPerSec)
            .against("raw", 1000.0)
            .goal(Goal::RatioAtLeast(0.8));
        assert!(!set.target.as_ref().unwrap().met);
        let start = Figure::new("5", "start", 80.0, Unit::Micros).goal(Goal::Below(100.0));
        assert!(start.target.unwrap().met);
    }
}

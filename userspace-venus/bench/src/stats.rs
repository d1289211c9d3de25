// SPDX-License-Identifier: GPL-2.0

//! Measurements and their summaries: every measuring subcommand appends one [`Record`] as a
//! JSON line to the raw file, and `bench report` turns the lines into the table.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

/// One run of a measurement: latency percentiles of its calls and, for throughput runs,
/// the rate over the run's wall time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunStat {
    pub n: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
    pub rate: Option<f64>,
    /// Throughput runs: CPU time the guest spent busy (all CPUs) per completed call, and
    /// context switches per call, from /proc/stat over the run's window.
    #[serde(default)]
    pub cpu_us_per_call: Option<f64>,
    #[serde(default)]
    pub switches_per_call: Option<f64>,
}

impl RunStat {
    /// Summarises the latencies of one run (sorts them).
    pub fn from_latencies(lat: &mut [Duration]) -> Self {
        lat.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: f64 = lat.iter().map(|&d| us(d)).sum();
        RunStat {
            n: lat.len() as u64,
            p50_us: percentile(lat, 0.50).map_or(f64::NAN, us),
            p99_us: percentile(lat, 0.99).map_or(f64::NAN, us),
            mean_us: if lat.is_empty() {
                f64::NAN
            } else {
                total / lat.len() as f64
            },
            max_us: lat.last().map_or(f64::NAN, |&d| us(d)),
            ..Default::default()
        }
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// One measurement: its runs and the medians over them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// Stable name, e.g. `ours_rtt_20` or `coda_tput_c8_r2`.
    pub id: String,
    /// Row of the table (1-6).
    pub row: u32,
    /// `limit`, `ours` or `coda`.
    pub system: String,
    pub what: String,
    pub callers: Option<u32>,
    pub readers: Option<u32>,
    pub outstanding: Option<u64>,
    /// Request size in bytes.
    pub size: Option<u32>,
    pub runs: Vec<RunStat>,
    /// Medians over the runs.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub rate: Option<f64>,
    /// Further figures (memory, counters), by name.
    pub extra: BTreeMap<String, f64>,
}

impl Record {
    pub fn new(id: impl Into<String>, row: u32, system: &str, what: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            row,
            system: system.to_string(),
            what: what.into(),
            ..Default::default()
        }
    }

    /// Fills the medians from the runs.
    pub fn finish(mut self) -> Self {
        self.p50_us = median(self.runs.iter().map(|r| r.p50_us));
        self.p99_us = median(self.runs.iter().map(|r| r.p99_us));
        self.rate = median(self.runs.iter().filter_map(|r| r.rate));
        if let Some(c) = median(self.runs.iter().filter_map(|r| r.cpu_us_per_call)) {
            self.extra.insert("cpu_us_per_call".into(), c);
        }
        if let Some(c) = median(self.runs.iter().filter_map(|r| r.switches_per_call)) {
            self.extra.insert("switches_per_call".into(), c);
        }
        self
    }

    /// Appends the record to `path` as one JSON line and logs a summary to stderr.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut line = serde_json::to_string(self).map_err(std::io::Error::other)?;
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(line.as_bytes())?;
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
        eprintln!(
            "bench: {:<24} p50 {:>8} us  p99 {:>8} us  rate {:>9}/s  {}",
            self.id,
            fmt(self.p50_us),
            fmt(self.p99_us),
            fmt(self.rate),
            self.extra
                .iter()
                .map(|(k, v)| format!("{k}={v:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(())
    }
}

/// Reads the raw file: one record a line.
pub fn load(path: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

/// Joins the records of one id (the rounds of a measurement) into one: the runs of all of
/// them, extras averaged; in the order the ids first appear.
pub fn merge(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in records {
        match seen.get_mut(&r.id) {
            Some((i, n)) => {
                let m = &mut out[*i];
                m.runs.extend(r.runs);
                for (k, v) in r.extra {
                    let e = m.extra.entry(k).or_insert(0.0);
                    *e = (*e * *n as f64 + v) / (*n + 1) as f64;
                }
                *n += 1;
            }
            None => {
                seen.insert(r.id.clone(), (out.len(), 1));
                out.push(r);
            }
        }
    }
    out.into_iter().map(Record::finish).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
    }

    #[test]
    fn merge_rounds() {
        let mk = |id: &str, p50: f64, x: f64| {
            let mut r = Record::new(id, 1, "limit", id);
            r.runs.push(RunStat {
                p50_us: p50,
                p99_us: p50,
                ..Default::default()
            });
            r.extra.insert("x".into(), x);
            r.finish()
        };
        let m = merge(vec![
            mk("a", 1.0, 2.0),
            mk("b", 5.0, 0.0),
            mk("a", 3.0, 4.0),
            mk("a", 2.0, 6.0),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, "a");
        assert_eq!(m[0].runs.len(), 3);
        assert_eq!(m[0].p50_us, Some(2.0));
        assert_eq!(m[0].extra["x"], 4.0);
    }

    #[test]
    fn run_stat_of_latencies() {
        let mut lat: Vec<Duration> = (1..=10).rev().map(Duration::from_micros).collect();
        let s = RunStat::from_latencies(&mut lat);
        assert_eq!(s.n, 10);
        assert_eq!(s.p50_us, 5.0);
        assert_eq!(s.p99_us, 10.0);
        assert_eq!(s.max_us, 10.0);
        assert!((s.mean_us - 5.5).abs() < 1e-9);
    }
}

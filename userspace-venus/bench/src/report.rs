// SPDX-License-Identifier: GPL-2.0

//! `bench report`: the one table (rows 1-6 of issue 6, ratios against row 1 and row 3), the
//! verdict on each target, bench.json, bench.csv and the plot of latency against
//! outstanding upcalls.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use plotters::prelude::BitMapBackend;
use plotters::prelude::ChartBuilder;
use plotters::prelude::Circle;
use plotters::prelude::Color;
use plotters::prelude::DashedLineSeries;
use plotters::prelude::IntoDrawingArea;
use plotters::prelude::IntoLogRange;
use plotters::prelude::LineSeries;
use plotters::prelude::PathElement;
use plotters::prelude::PointSeries;
use plotters::prelude::SeriesLabelPosition;
use plotters::style::FontStyle;
use plotters::style::RGBColor;
use plotters::style::BLACK;
use plotters::style::WHITE;
use serde::Serialize;

use crate::stats::Record;
use crate::VenusMode;
use crate::CPU0_SUFFIX;

/// One line of the table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Line {
    pub row: u32,
    pub id: String,
    pub what: String,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub rate: Option<f64>,
    /// p50 over row 1's pipe ping-pong p50.
    pub x_pipe: Option<f64>,
    /// Latency rows: p50 over row 3's C coda statfs p50. Throughput rows: ours over C coda
    /// with the same callers and readers.
    pub x_coda: Option<f64>,
    pub note: String,
}

/// One target of the issue and whether this run meets it.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub target: String,
    pub met: Option<bool>,
    pub detail: String,
}

#[derive(Serialize)]
struct Output<'a> {
    meta: &'a BTreeMap<String, String>,
    table: &'a [Line],
    targets: &'a [Verdict],
    records: &'a [Record],
}

struct Index<'a>(BTreeMap<&'a str, &'a Record>);

impl<'a> Index<'a> {
    fn get(&self, id: &str) -> Option<&'a Record> {
        self.0.get(id).copied()
    }
    fn p50(&self, id: &str) -> Option<f64> {
        self.get(id).and_then(|r| r.p50_us)
    }
    fn rate(&self, id: &str) -> Option<f64> {
        self.get(id).and_then(|r| r.rate)
    }
    fn extra(&self, id: &str, key: &str) -> Option<f64> {
        self.get(id).and_then(|r| r.extra.get(key).copied())
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The outstanding counts measured, ascending.
fn outstanding_counts(records: &[Record], sys: &str) -> Vec<u64> {
    let mut v: Vec<u64> = records
        .iter()
        .filter(|r| r.row == 5 && r.system == sys)
        .filter_map(|r| r.outstanding)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The grid of throughput cells measured: (callers, readers), ascending.
fn throughput_cells(records: &[Record]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = records
        .iter()
        .filter(|r| r.row == 4)
        .filter_map(|r| Some((r.readers?, r.callers?)))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().map(|(r, c)| (c, r)).collect()
}

/// Median over rounds of `f(later) / f(earlier)`, each `later` measurement against the
/// nearest `earlier` one made before it (same round, seconds apart): load on the host drifts
/// between rounds, and a ratio of neighbours follows the drift where a ratio of medians
/// over all rounds does not.
fn paired(
    raw: &[Record],
    later: &str,
    earlier: &str,
    f: fn(&Record) -> Option<f64>,
) -> Option<f64> {
    let mut last = None;
    let mut ratios = Vec::new();
    for r in raw {
        if r.id == earlier {
            last = f(r);
        } else if r.id == later {
            if let (Some(x), Some(y)) = (f(r), last) {
                ratios.push(x / y);
            }
        }
    }
    crate::stats::median(ratios)
}

/// `raw` is the records as measured (one per round), `records` the same merged by id.
pub fn build(records: &[Record], raw: &[Record]) -> (Vec<Line>, Vec<Verdict>) {
    let ix = Index(records.iter().map(|r| (r.id.as_str(), r)).collect());
    let pipe = ix.p50("pipe");
    let coda = ix.p50("coda_statfs");
    let mut lines = Vec::new();
    let latency = |id: &str, what: String, note: String| -> Option<Line> {
        let r = ix.get(id)?;
        Some(Line {
            row: r.row,
            id: id.to_string(),
            what,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            rate: None,
            x_pipe: ratio(r.p50_us, pipe),
            x_coda: ratio(r.p50_us, coda),
            note,
        })
    };

    lines.extend(latency(
        "pipe",
        "pipe ping-pong, 1 byte each way".into(),
        String::new(),
    ));
    lines.extend(latency(
        "eventfd",
        "eventfd ping-pong".into(),
        String::new(),
    ));
    lines.extend(latency(
        "ours_rtt_20",
        "ours: round trip, 20-byte STATFS (stub -t 1, CPU 0)".into(),
        String::new(),
    ));
    lines.extend(latency(
        "ours_rtt_20_exchange",
        "ours: round trip, 20-byte STATFS (stub -t 1 --exchange, CPU 0)".into(),
        "Venus answers and reads in one CODA_PSDEV_IOC_EXCHANGE".into(),
    ));
    lines.extend(latency(
        "ours_rtt_4096",
        "ours: round trip, 4 KiB STATFS (stub -t 1, CPU 0)".into(),
        String::new(),
    ));
    lines.extend(latency(
        "coda_statfs",
        "C coda: statfs() round trip (stub -t 1, CPU 0)".into(),
        String::new(),
    ));
    lines.extend(latency(
        "rsfs_statfs",
        "Coda fs on ours (coda_rs_fs.ko): statfs() round trip (stub -t 1, CPU 0)".into(),
        "the kernel's fs/coda, its upcalls through our engine".into(),
    ));

    // Then the same with Venus's readers blocked in read(2): our driver wakes one of them
    // per message, Linux's psdev every one. Last, ours with Venus using the exchange
    // ioctl, which C coda does not have: against C coda's faster way of reading.
    for mode in [VenusMode::Poll, VenusMode::Blocking, VenusMode::Exchange] {
        let (suffix, how) = mode.label();
        for (callers, readers) in throughput_cells(records) {
            for sys in ["ours", "coda"] {
                let id = format!("{sys}_tput_c{callers}_r{readers}{suffix}");
                let Some(r) = ix.get(&id) else { continue };
                let other = if mode == VenusMode::Exchange {
                    best_coda_rate(&ix, callers, readers)
                } else {
                    ix.rate(&format!("coda_tput_c{callers}_r{readers}{suffix}"))
                };
                lines.push(Line {
                    row: 4,
                    id: id.clone(),
                    what: format!(
                        "{}: throughput, {callers} caller{} x {readers} reader{}{how}",
                        if sys == "ours" { "ours" } else { "C coda" },
                        if callers == 1 { "" } else { "s" },
                        if readers == 1 { "" } else { "s" },
                    ),
                    p50_us: r.p50_us,
                    p99_us: r.p99_us,
                    rate: r.rate,
                    x_pipe: None,
                    x_coda: ratio(r.rate, other),
                    note: cpu_note(r),
                });
            }
        }
    }

    // The 8 x 2 cell again with Venus's threads held on CPU 0, so that the callers run on
    // the other: where the scheduler puts the two sides decides the figures above.
    let (ours0, coda0) = cpu0_ids();
    for (id, who) in [(&ours0, "ours"), (&coda0, "C coda")] {
        let Some(r) = ix.get(id) else { continue };
        lines.push(Line {
            row: 4,
            id: id.clone(),
            what: format!("{who}: {}", r.what),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            rate: r.rate,
            x_pipe: None,
            x_coda: ratio(r.rate, ix.rate(&coda0)),
            note: cpu_note(r),
        });
    }

    for sys in ["ours", "coda"] {
        let base = ix.p50(&format!("{sys}_out_10"));
        let who = if sys == "ours" { "ours" } else { "C coda" };
        for n in outstanding_counts(records, sys) {
            let id = format!("{sys}_out_{n}");
            let vs10 = ratio(ix.p50(&id), base);
            let vs_coda = ratio(ix.p50(&id), ix.p50(&format!("coda_out_{n}")));
            let mut note = String::new();
            if let Some(v) = vs10.filter(|_| n != 10) {
                let _ = write!(note, "x{v:.2} vs N=10");
            }
            if sys == "ours" {
                if let Some(v) = vs_coda {
                    let sep = if note.is_empty() { "" } else { "; " };
                    let _ = write!(note, "{sep}x{v:.2} vs C coda same N");
                }
            }
            lines.extend(latency(
                &id,
                format!("{who}: round trip, {n} outstanding (lean Venus, CPU 0)"),
                note,
            ));
        }
    }
    for r in records.iter().filter(|r| r.row == 5 && r.system == "limit") {
        lines.extend(latency(
            &r.id,
            format!(
                "control: pipe ping-pong, {} idle threads",
                r.outstanding.unwrap_or(0)
            ),
            "the floor with row 5's thread count".into(),
        ));
    }
    let ours_max = outstanding_counts(records, "ours").last().copied();
    if let Some(n) = ours_max {
        let id = format!("ours_out_{n}");
        let msg = ix.extra(&id, "parked_msg_bytes").unwrap_or(0.0);
        let mut note = format!("message {msg:.0} B");
        if let Some(m) = ix.extra(&id, "mem_bytes_per_outstanding") {
            let _ = write!(note, "; driver count {m:.0} B (msg + {:.0})", m - msg);
        }
        if let Some(s) = slab_per_call(records, "ours") {
            let _ = write!(note, "; slab {s:.0} B/call (msg + {:.0})", s - msg);
        }
        lines.push(Line {
            row: 5,
            id: "ours_mem".into(),
            what: format!("ours: memory per outstanding upcall (N={n})"),
            note,
            ..Default::default()
        });
    }
    if let Some(s) = slab_per_call(records, "coda") {
        lines.push(Line {
            row: 5,
            id: "coda_mem".into(),
            what: "C coda: memory per blocked lookup".into(),
            note: format!("slab {s:.0} B/call (upc_req, buffer and the lookup's dentry)"),
            ..Default::default()
        });
    }

    for sys in ["ours", "coda"] {
        let id = format!("{sys}_signal");
        let who = if sys == "ours" { "ours" } else { "C coda" };
        let mut note = String::new();
        if let Some(c) = ix.extra(&id, "caller_eintr_p50_us") {
            let _ = write!(note, "caller back after {c:.1} us");
        }
        if sys == "ours" {
            if let Some(v) = ratio(ix.p50(&id), ix.p50("coda_signal")) {
                let _ = write!(note, "; x{v:.2} vs C coda");
            }
        }
        lines.extend(latency(
            &id,
            format!("{who}: interrupted call, signal to EINTR + CODA_SIGNAL"),
            note,
        ));
    }

    let verdicts = targets(&ix, records, raw);
    (lines, verdicts)
}

/// Where a throughput run's time went: guest CPU and context switches per call.
fn cpu_note(r: &Record) -> String {
    match (
        r.extra.get("cpu_us_per_call"),
        r.extra.get("switches_per_call"),
    ) {
        (Some(c), Some(s)) => format!("CPU {c:.0} us/call, {s:.1} switches/call"),
        _ => String::new(),
    }
}

/// The throughput cell measured again with Venus on CPU 0: ours (the exchange) and C coda
/// (its faster reading).
const CPU0_CELL: (&str, &str) = ("ours_tput_c8_r2_exchange", "coda_tput_c8_r2_blocking");

/// The record ids of [`CPU0_CELL`].
fn cpu0_ids() -> (String, String) {
    let (ours, coda) = CPU0_CELL;
    (
        format!("{ours}{CPU0_SUFFIX}"),
        format!("{coda}{CPU0_SUFFIX}"),
    )
}

/// C coda's throughput for one cell with the faster of the stub's two ways of reading.
fn best_coda_rate(ix: &Index<'_>, callers: u32, readers: u32) -> Option<f64> {
    ["", "_blocking"]
        .iter()
        .filter_map(|s| ix.rate(&format!("coda_tput_c{callers}_r{readers}{s}")))
        .reduce(f64::max)
}

/// Slab bytes per parked call, over all batches (the larger batches dominate, as they should).
fn slab_per_call(records: &[Record], sys: &str) -> Option<f64> {
    let counts = outstanding_counts(records, sys);
    let max = *counts.last()?;
    let r = records
        .iter()
        .find(|r| r.row == 5 && r.system == sys && r.outstanding == Some(max))?;
    // The largest batch alone: earlier ones are too small for kB-granular figures.
    r.extra.get("slab_delta_per_call").copied()
}

fn targets(ix: &Index<'_>, records: &[Record], raw: &[Record]) -> Vec<Verdict> {
    let mut v = Vec::new();
    let pipe = ix.p50("pipe");
    let ours = ix.p50("ours_rtt_20");
    let coda = ix.p50("coda_statfs");
    let p50 = |r: &Record| r.p50_us;
    let rate = |r: &Record| r.rate;
    let inv = |x: Option<f64>| x.map(|x| 1.0 / x);
    // Verdicts use the paired ratios where there are rounds to pair, else the medians.
    let r = ratio(ours, pipe);
    let rp = paired(raw, "ours_rtt_20", "pipe", p50);
    let xr = ratio(ix.p50("ours_rtt_20_exchange"), pipe);
    let xrp = paired(raw, "ours_rtt_20_exchange", "pipe", p50);
    // Met by either Venus: the exchange is how a Venus of this driver would run.
    let best = [rp.or(r), xrp.or(xr)]
        .into_iter()
        .flatten()
        .reduce(f64::min);
    v.push(Verdict {
        target: "round trip <= 1.5x pipe ping-pong".into(),
        met: best.map(|r| r <= 1.5),
        detail: format!(
            "stub with read/write x{} per round, x{} of medians; with the exchange ioctl x{} \
             per round, x{} of medians; lean Venus x{}",
            fmt2(rp),
            fmt2(r),
            fmt2(xrp),
            fmt2(xr),
            fmt2(ratio(ix.p50("ours_out_0"), pipe))
        ),
    });
    let r = ratio(ours, coda);
    let rp = inv(paired(raw, "coda_statfs", "ours_rtt_20", p50));
    v.push(Verdict {
        target: "round trip faster than C coda's statfs".into(),
        met: rp.or(r).map(|r| r < 1.0),
        detail: format!(
            "ours/C coda x{} per round, x{} of medians (stub); lean Venus x{}",
            fmt2(rp),
            fmt2(r),
            fmt2(ratio(ix.p50("ours_out_0"), ix.p50("coda_out_0")))
        ),
    });
    // Each of ours against C coda's faster reading mode, paired per round.
    let coda_best = best_coda_rate(ix, 8, 2);
    let vs_coda = |id: &str| {
        let per_round = ["coda_tput_c8_r2", "coda_tput_c8_r2_blocking"]
            .iter()
            .filter_map(|c| inv(paired(raw, c, id, rate)))
            .reduce(f64::min);
        per_round.or(ratio(ix.rate(id), coda_best))
    };
    let plain = vs_coda("ours_tput_c8_r2");
    let exchange = vs_coda("ours_tput_c8_r2_exchange");
    let best = [plain, exchange].into_iter().flatten().reduce(f64::max);
    let (ours0, coda0) = cpu0_ids();
    let cpu0 = inv(paired(raw, &coda0, &ours0, rate));
    v.push(Verdict {
        target: "throughput, 8 callers x 2 readers >= 1.5x C coda".into(),
        met: best.map(|r| r >= 1.5),
        detail: format!(
            "C coda {} /s (its faster reading); ours {} /s with read/write (x{}), {} /s with \
             the exchange ioctl (x{}); x per round. With Venus on CPU 0: ours {} /s, C coda \
             {} /s (x{})",
            fmt0(coda_best),
            fmt0(ix.rate("ours_tput_c8_r2")),
            fmt2(plain),
            fmt0(ix.rate("ours_tput_c8_r2_exchange")),
            fmt2(exchange),
            fmt0(ix.rate(&ours0)),
            fmt0(ix.rate(&coda0)),
            fmt2(cpu0)
        ),
    });
    let top = outstanding_counts(records, "ours")
        .last()
        .copied()
        .unwrap_or(0);
    let ours_growth = ratio(ix.p50(&format!("ours_out_{top}")), ix.p50("ours_out_10"));
    let ctop = outstanding_counts(records, "coda")
        .last()
        .copied()
        .unwrap_or(0);
    let coda_growth = ratio(ix.p50(&format!("coda_out_{ctop}")), ix.p50("coda_out_10"));
    v.push(Verdict {
        target: format!("latency flat (within 20%) from 10 to {top} outstanding"),
        met: ours_growth.map(|g| (0.8..=1.2).contains(&g)),
        detail: format!(
            "ours x{} (p99 x{}); C coda x{} to {ctop}",
            fmt2(ours_growth),
            fmt2(ratio(
                ix.get(&format!("ours_out_{top}")).and_then(|r| r.p99_us),
                ix.get("ours_out_10").and_then(|r| r.p99_us)
            )),
            fmt2(coda_growth)
        ),
    });
    let id = format!("ours_out_{top}");
    let msg = ix.extra(&id, "parked_msg_bytes");
    let slab = slab_per_call(records, "ours");
    let count = ix.extra(&id, "mem_bytes_per_outstanding");
    let over = slab.or(count).zip(msg).map(|(m, msg)| m - msg);
    v.push(Verdict {
        target: "memory per outstanding upcall <= message + 256 B".into(),
        met: over.map(|o| o <= 256.0),
        detail: format!(
            "slab delta msg + {} B, driver's own count msg + {} B",
            fmt0(slab.zip(msg).map(|(s, m)| s - m)),
            fmt0(count.zip(msg).map(|(c, m)| c - m))
        ),
    });
    v
}

fn fmt0(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.0}"))
}

fn fmt2(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

fn fmt1(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.1}"))
}

/// The table and verdicts as text.
pub fn render(lines: &[Line], verdicts: &[Verdict], meta: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    let what_w = lines
        .iter()
        .map(|l| l.what.len())
        .max()
        .unwrap_or(10)
        .max(11);
    let _ = writeln!(
        s,
        "{}",
        meta.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = writeln!(
        s,
        "{:>1} | {:<what_w$} | {:>9} | {:>9} | {:>9} | {:>6} | {:>8} | note",
        "#", "measurement", "p50 us", "p99 us", "calls/s", "x pipe", "x C coda"
    );
    let _ = writeln!(s, "{}", "-".repeat(what_w + 72));
    let mut last_row = 0;
    for l in lines {
        if last_row != 0 && l.row != last_row {
            let _ = writeln!(s, "{}", "-".repeat(what_w + 72));
        }
        last_row = l.row;
        let _ = writeln!(
            s,
            "{:>1} | {:<what_w$} | {:>9} | {:>9} | {:>9} | {:>6} | {:>8} | {}",
            l.row,
            l.what,
            fmt1(l.p50_us),
            fmt1(l.p99_us),
            l.rate.map_or(String::new(), |r| format!("{r:.0}")),
            l.x_pipe.map_or(String::new(), |r| format!("{r:.2}")),
            l.x_coda.map_or(String::new(), |r| format!("{r:.2}")),
            l.note
        );
    }
    let _ = writeln!(
        s,
        "Medians over runs. x pipe = p50 / row 1 pipe p50. x C coda = p50 / row 3 p50 \
         (latency: lower is better); throughput rows: ours calls/s / C coda's (higher is better)."
    );
    let _ = writeln!(s, "\nTargets (issue 6):");
    for v in verdicts {
        let mark = match v.met {
            Some(true) => "MET   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(s, "  [{mark}] {}: {}", v.target, v.detail);
    }
    s
}

pub fn write_csv(lines: &[Line], path: &Path) -> io::Result<()> {
    let mut s = String::from("row,id,measurement,p50_us,p99_us,calls_per_s,x_pipe,x_coda,note\n");
    let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
    for l in lines {
        let _ = writeln!(
            s,
            "{},{},\"{}\",{},{},{},{},{},\"{}\"",
            l.row,
            l.id,
            l.what.replace('"', "'"),
            f(l.p50_us),
            f(l.p99_us),
            f(l.rate),
            f(l.x_pipe),
            f(l.x_coda),
            l.note.replace('"', "'")
        );
    }
    std::fs::write(path, s)
}

pub fn write_json(
    meta: &BTreeMap<String, String>,
    lines: &[Line],
    verdicts: &[Verdict],
    records: &[Record],
    path: &Path,
) -> io::Result<()> {
    let out = Output {
        meta,
        table: lines,
        targets: verdicts,
        records,
    };
    let text = serde_json::to_string_pretty(&out).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Plots p50 and p99 latency against outstanding upcalls, ours and C coda (log x axis; the
/// N=0 points are left out of a log scale).
pub fn plot(records: &[Record], path: &Path) -> Result<(), String> {
    let font = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
    // plotters keeps registered fonts for the life of the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Vec::leak(font))
        .map_err(|_| "the font file does not parse")?;
    let series = |sys: &str, p99: bool| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = records
            .iter()
            .filter(|r| r.row == 5 && r.system == sys)
            .filter_map(|r| {
                let n = r.outstanding.filter(|&n| n > 0)? as f64;
                Some((n, if p99 { r.p99_us? } else { r.p50_us? }))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    // (legend, is p99, colour, points)
    type Curve = (&'static str, bool, RGBColor, Vec<(f64, f64)>);
    let all: Vec<Curve> = vec![
        (
            "ours p50",
            false,
            RGBColor(31, 119, 180),
            series("ours", false),
        ),
        (
            "ours p99 (dashed)",
            true,
            RGBColor(31, 119, 180),
            series("ours", true),
        ),
        (
            "C coda p50",
            false,
            RGBColor(214, 39, 40),
            series("coda", false),
        ),
        (
            "C coda p99 (dashed)",
            true,
            RGBColor(214, 39, 40),
            series("coda", true),
        ),
    ];
    let xmax = all
        .iter()
        .flat_map(|s| s.3.iter().map(|p| p.0))
        .fold(10.0f64, f64::max);
    let ys = || all.iter().flat_map(|s| s.3.iter().map(|p| p.1));
    let ymax = ys().fold(1.0f64, f64::max);
    let ymin = ys().fold(ymax, f64::min);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Upcall round trip vs outstanding upcalls (QEMU TCG guest)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (5.0f64..xmax * 2.0).log_scale(),
            // p99 is often a hundred times p50 under emulation: a log scale shows both.
            (ymin * 0.7..ymax * 1.5).log_scale(),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("upcalls outstanding (read by Venus, unanswered)")
        .y_desc("round trip of a new call, us")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (name, p99, color, pts) in all {
        if pts.is_empty() {
            continue;
        }
        let style = color.stroke_width(if p99 { 1 } else { 3 });
        let drawn = if p99 {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 6, style))
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))
        };
        drawn.map_err(|x| e(&x))?.label(name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
        chart
            .draw_series(PointSeries::of_element(
                pts,
                4,
                color.filled(),
                &|c, s, st| Circle::new(c, s, st),
            ))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, row: u32, sys: &str, p50: f64) -> Record {
        let mut r = Record::new(id, row, sys, id);
        r.p50_us = Some(p50);
        r.p99_us = Some(p50 * 2.0);
        r
    }

    #[test]
    fn ratios_and_verdicts() {
        let mut rs = vec![
            rec("pipe", 1, "limit", 50.0),
            rec("ours_rtt_20", 2, "ours", 60.0),
            rec("coda_statfs", 3, "coda", 80.0),
            rec("rsfs_statfs", 3, "rsfs", 72.0),
        ];
        for (sys, base) in [("ours", 40.0), ("coda", 50.0)] {
            for n in [0u64, 10, 10000] {
                let mut r = rec(&format!("{sys}_out_{n}"), 5, sys, base);
                if sys == "coda" {
                    r.p50_us = Some(base + n as f64 / 100.0);
                }
                r.outstanding = Some(n);
                if n == 10000 && sys == "ours" {
                    r.extra.insert("parked_msg_bytes".into(), 52.0);
                    r.extra.insert("slab_delta_per_call".into(), 250.0);
                    r.extra.insert("mem_bytes_per_outstanding".into(), 200.0);
                }
                rs.push(r);
            }
        }
        for (sys, rate) in [("ours", 3000.0), ("coda", 1000.0)] {
            let mut r = Record::new(format!("{sys}_tput_c8_r2"), 4, sys, "t");
            r.callers = Some(8);
            r.readers = Some(2);
            r.rate = Some(rate);
            rs.push(r);
        }
        let (lines, verdicts) = build(&rs, &rs);
        let ours = lines.iter().find(|l| l.id == "ours_rtt_20").unwrap();
        assert_eq!(ours.x_pipe, Some(1.2));
        assert_eq!(ours.x_coda, Some(0.75));
        let rsfs = lines.iter().find(|l| l.id == "rsfs_statfs").unwrap();
        assert_eq!(rsfs.x_coda, Some(0.9));
        let t = lines.iter().find(|l| l.id == "ours_tput_c8_r2").unwrap();
        assert_eq!(t.x_coda, Some(3.0));
        assert!(verdicts.iter().all(|v| v.met == Some(true)), "{verdicts:?}");
        let text = render(&lines, &verdicts, &BTreeMap::new());
        assert!(text.contains("msg + 198"), "{text}");
    }
}

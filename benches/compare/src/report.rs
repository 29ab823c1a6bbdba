//! The markdown report and the chart, from the samples of one run.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::machine::Machine;
use crate::orchestrate::Sample;
use crate::plan::Plan;
use crate::svg;
use crate::util::Spread;

pub struct Context {
    pub plan: Plan,
    pub rounds: usize,
    pub command: String,
    pub duration: Duration,
    pub machine: Machine,
    /// Records of the large and the small O1 journal, and the large one's full segments.
    pub o1_records: (u64, u64, u64),
    pub waits: Vec<crate::orchestrate::Wait>,
    pub quiet: f64,
    pub settle: Duration,
    pub wait_budget: Duration,
    pub priority: String,
}

/// The systems in the order of the tables and of the chart's bars.
const ORDER: [&str; 10] = crate::sys::ALL;

/// The two file systems of the workloads that run on both: variant and label.
const FILE_SYSTEMS: [(&str, &str); 2] = [("shm", "tmpfs"), ("disk", "ext4")];

/// Where a figure comes from: workload, variant, system and metric.
type At<'a> = (&'a str, &'a str, &'a str, &'a str);

/// A number with as many digits as it deserves.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let whole = format!("{:.0}", v);
        // Thousands separators for readability.
        let (sign, digits) = whole.split_at(if whole.starts_with('-') { 1 } else { 0 });
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn find<'a>(
    samples: &'a [Sample],
    workload: &'a str,
    variant: &'a str,
    system: &'a str,
) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |s| {
        s.workload == workload && s.variant == variant && s.system == system && s.round > 0
    })
}

fn per_round(samples: &[Sample], w: &str, v: &str, s: &str, metric: &str) -> BTreeMap<usize, f64> {
    find(samples, w, v, s)
        .filter_map(|x| x.get(metric).map(|m| (x.round, m)))
        .collect()
}

fn spread(samples: &[Sample], w: &str, v: &str, s: &str, metric: &str) -> Option<Spread> {
    let values: Vec<f64> = per_round(samples, w, v, s, metric).into_values().collect();
    Spread::of(&values)
}

/// `a / b` on the medians over the rounds (`median`), the range of the per-round ratios, and
/// the two medians.
struct Ratio {
    median: f64,
    min: f64,
    max: f64,
    a: f64,
    b: f64,
}

fn ratio(samples: &[Sample], a: At<'_>, b: At<'_>) -> Option<Ratio> {
    let ra = per_round(samples, a.0, a.1, a.2, a.3);
    let rb = per_round(samples, b.0, b.1, b.2, b.3);
    let ma = Spread::of(&ra.values().copied().collect::<Vec<_>>())?.median;
    let mb = Spread::of(&rb.values().copied().collect::<Vec<_>>())?.median;
    let rounds: Vec<f64> = ra
        .iter()
        .filter_map(|(r, x)| rb.get(r).map(|y| x / y))
        .collect();
    let s = Spread::of(&rounds)?;
    Some(Ratio {
        median: ma / mb,
        min: s.min,
        max: s.max,
        a: ma,
        b: mb,
    })
}

/// What a target asks of its figure.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

impl Bound {
    fn met(self, figure: f64) -> bool {
        match self {
            Bound::AtLeast(b) => figure >= b,
            Bound::AtMost(b) => figure <= b,
        }
    }
}

/// One target: the median of `at` over the rounds, or (with `over`) the ratio of that median
/// to the median of `over`, held against `bound`.
struct Target {
    name: String,
    at: At<'static>,
    over: Option<At<'static>>,
    unit: &'static str,
    bound: Bound,
}

impl Target {
    fn ratio(
        name: String,
        at: At<'static>,
        over: At<'static>,
        unit: &'static str,
        bound: Bound,
    ) -> Target {
        Target {
            name,
            at,
            over: Some(over),
            unit,
            bound,
        }
    }

    fn at_most(name: String, at: At<'static>, unit: &'static str, bound: f64) -> Target {
        Target {
            name,
            at,
            over: None,
            unit,
            bound: Bound::AtMost(bound),
        }
    }

    /// The figure the report shows and whether the target is met; `None` without data.
    fn evaluate(&self, samples: &[Sample]) -> Option<(String, bool)> {
        let unit = self.unit;
        match self.over {
            Some(over) => {
                let r = ratio(samples, self.at, over)?;
                let figure = format!(
                    "**{:.2}×** (per round {:.2}–{:.2}); {} {unit} vs {} {unit}",
                    r.median,
                    r.min,
                    r.max,
                    num(r.a),
                    num(r.b)
                );
                Some((figure, self.bound.met(r.median)))
            }
            None => {
                let (w, v, system, metric) = self.at;
                let s = spread(samples, w, v, system, metric)?;
                let figure = format!(
                    "**{} {unit}** (rounds {}–{})",
                    num(s.median),
                    num(s.min),
                    num(s.max)
                );
                Some((figure, self.bound.met(s.median)))
            }
        }
    }
}

/// The targets of issue 14 (kekbit with its default options unless named), then those of
/// issue 7 that it did not replace, in the order of the report.
fn targets() -> Vec<Target> {
    use Bound::{AtLeast, AtMost};
    let mut list = Vec::new();
    // Issue 14, ext4.
    for (w, label) in [("W1", "W1 128 B"), ("W2", "W2 4 KiB")] {
        for (peer, text, bound) in [
            ("raw-file", "1× raw file log", 1.0),
            ("okaywal", "2× okaywal", 2.0),
        ] {
            list.push(Target::ratio(
                format!("{label} ext4: kekbit ≥ {text}"),
                (w, "disk", "kekbit", "mb_s"),
                (w, "disk", peer, "mb_s"),
                "MB/s",
                AtLeast(bound),
            ));
        }
    }
    #[rustfmt::skip]
    let peers = [
        ("W3 ext4 p50: kekbit ≤ 1.0× okaywal", "W3", "p50_us", "okaywal", "µs", AtMost(1.0)),
        ("W4 ext4: kekbit ≥ 2× okaywal (appends/s)", "W4", "rec_s", "okaywal", "appends/s", AtLeast(2.0)),
        ("W5 ext4: kekbit ≥ 1.0× raw mmap log", "W5", "mb_s", "raw-mmap", "MB/s", AtLeast(1.0)),
    ];
    for (name, w, metric, peer, unit, bound) in peers {
        list.push(Target::ratio(
            name.into(),
            (w, "disk", "kekbit", metric),
            (w, "disk", peer, metric),
            unit,
            bound,
        ));
    }
    // Issue 14, tmpfs, default options.
    for (w, label) in [("W1", "W1 128 B"), ("W2", "W2 4 KiB"), ("W6", "W6 steady")] {
        list.push(Target::ratio(
            format!("{label} tmpfs: kekbit ≥ 0.6× limit probe"),
            (w, "shm", "kekbit", "mb_s"),
            (w, "shm", "limit", "mb_s"),
            "MB/s",
            AtLeast(0.6),
        ));
    }
    list.push(Target::at_most(
        "R1 ext4: kekbit p99.9 ≤ 3× p50".into(),
        ("R1", "disk", "kekbit", "p999_over_p50"),
        "× p50",
        3.0,
    ));
    // Issue 7's, not replaced.
    list.push(Target::ratio(
        "W3 ext4 p50: kekbit ≤ 1.1× raw mmap log".into(),
        ("W3", "disk", "kekbit", "p50_us"),
        ("W3", "disk", "raw-mmap", "p50_us"),
        "µs",
        AtMost(1.1),
    ));
    for (v, fs) in FILE_SYSTEMS {
        list.push(Target::ratio(
            format!("W5 {fs}: kekbit ≥ 4× okaywal"),
            ("W5", v, "kekbit", "mb_s"),
            ("W5", v, "okaywal", "mb_s"),
            "MB/s",
            AtLeast(4.0),
        ));
    }
    for (name, v, metric, bound) in [
        ("L1 busy-poll p50 ≤ 1 µs", "busy", "p50_us", 1.0),
        ("L1 busy-poll p99 ≤ 5 µs", "busy", "p99_us", 5.0),
        ("L1 blocking wake-up p50 ≤ 50 µs", "block", "p50_us", 50.0),
    ] {
        list.push(Target::at_most(
            name.into(),
            ("L1", v, "kekbit", metric),
            "µs",
            bound,
        ));
    }
    list.push(Target::at_most(
        "R1 tmpfs: kekbit p99.9 ≤ 5× p50".into(),
        ("R1", "shm", "kekbit", "p999_over_p50"),
        "× p50",
        5.0,
    ));
    for (cache, big, small) in [
        ("warm", "warm-big", "warm-small"),
        ("cold", "cold-big", "cold-small"),
    ] {
        list.push(Target::ratio(
            format!("O1 {cache} cache: kekbit open(2 GB) ≤ 1.5× open(20 MB)"),
            ("O1", big, "kekbit", "open_ms"),
            ("O1", small, "kekbit", "open_ms"),
            "ms",
            AtMost(1.5),
        ));
    }
    list
}

/// One table of the results: a row per system with data for `workload` and `variant`, the
/// spread of the `primary` metric, and the medians of the `others` (metric, column label).
struct Table {
    workload: &'static str,
    variant: &'static str,
    title: String,
    primary: (&'static str, &'static str),
    others: &'static [(&'static str, &'static str)],
}

const STREAM_OTHERS: [(&str, &str); 4] = [
    ("rec_s", "records/s"),
    ("append_ns_per_rec", "ns per append"),
    ("append_secs", "appends s"),
    ("sync_secs", "final sync s"),
];

const L1_OTHERS: [(&str, &str); 3] = [
    ("p99_us", "p99 µs"),
    ("p999_us", "p99.9 µs"),
    ("max_us", "max µs"),
];

/// The tables of the results section, in order (O1 has a section of its own).
fn result_tables(p: &Plan) -> Vec<Table> {
    let mut tables = Vec::new();
    for (w, n, size) in [("W1", p.w1_records, "128 B"), ("W2", p.w2_records, "4 KiB")] {
        for (v, fs) in [("shm", "tmpfs (/dev/shm)"), ("disk", "ext4 (real disk)")] {
            tables.push(Table {
                workload: w,
                variant: v,
                title: format!(
                    "{w}: {} appends of {size}, one sync at the end — {fs}",
                    count(n)
                ),
                primary: ("mb_s", "MB/s (payload)"),
                others: &STREAM_OTHERS,
            });
        }
    }
    tables.push(Table {
        workload: "W3",
        variant: "disk",
        title: format!(
            "W3: {} durable appends of 128 B, one at a time — ext4",
            count(p.w3_records)
        ),
        primary: ("p50_us", "p50 µs"),
        others: &[
            ("p99_us", "p99 µs"),
            ("p999_us", "p99.9 µs"),
            ("mean_us", "mean µs"),
            ("rec_s", "appends/s"),
        ],
    });
    tables.push(Table {
        workload: "W4",
        variant: "disk",
        title: format!(
            "W4: {} threads × {} durable appends of 128 B at once — ext4",
            p.w4_threads,
            count(p.w4_per_thread)
        ),
        primary: ("rec_s", "appends/s"),
        others: &[("p50_us", "p50 µs"), ("p99_us", "p99 µs"), ("secs", "s")],
    });
    for (v, fs) in [("shm", "tmpfs"), ("disk", "ext4, page cache warm")] {
        tables.push(Table {
            workload: "W5",
            variant: v,
            title: format!(
                "W5: replay of W1's {} records, every record checked — {fs}",
                count(p.w1_records)
            ),
            primary: ("mb_s", "MB/s (payload)"),
            others: &[("rec_s", "records/s"), ("secs", "s")],
        });
    }
    tables.push(Table {
        workload: "L1",
        variant: "busy",
        title: format!(
            "L1: one-way latency writer → reader process, reader busy-polling — {} records, one every {} µs",
            count(p.l1_busy_records),
            p.l1_busy_gap_ns / 1000
        ),
        primary: ("p50_us", "p50 µs"),
        others: &L1_OTHERS,
    });
    tables.push(Table {
        workload: "L1",
        variant: "block",
        title: format!(
            "L1: one-way latency, reader blocking in next_timeout — {} records, one every 0.5–1.5 ms",
            count(p.l1_block_records)
        ),
        primary: ("p50_us", "p50 µs"),
        others: &L1_OTHERS,
    });
    for (v, fs) in FILE_SYSTEMS {
        tables.push(Table {
            workload: "W6",
            variant: v,
            title: format!(
                "W6: steady state, {} MiB of 128 B records through 64 MiB segments, retention \
                 of the newest 256 MiB; second half timed — {fs}",
                p.w6_bytes >> 20
            ),
            primary: ("mb_s", "MB/s (payload)"),
            others: &[
                ("rec_s", "records/s"),
                ("secs", "second half s"),
                ("disk_bytes", "bytes left"),
            ],
        });
    }
    for (v, fs) in FILE_SYSTEMS {
        tables.push(Table {
            workload: "R1",
            variant: v,
            title: format!(
                "R1: latency of {} appends of 128 B with 1 MiB segments/files, rollovers included — {fs}",
                count(p.r1_records)
            ),
            primary: ("p50_ns", "p50 ns"),
            others: &[
                ("p99_ns", "p99 ns"),
                ("p999_ns", "p99.9 ns"),
                ("max_ns", "max ns"),
                ("p999_over_p50", "p99.9 / p50"),
                ("files", "files"),
            ],
        });
    }
    tables
}

fn table(out: &mut String, samples: &[Sample], t: &Table) {
    // The systems with data, each with the variant its row shows: the limit probe touches no
    // file, so its tmpfs runs stand in for the other file system.
    let rows: Vec<(&str, &str)> = ORDER
        .iter()
        .filter_map(|&system| {
            let has = |variant| find(samples, t.workload, variant, system).next().is_some();
            if has(t.variant) {
                Some((system, t.variant))
            } else if system == "limit" && has("shm") {
                Some((system, "shm"))
            } else {
                None
            }
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {}\n", t.title);
    let mut header = format!("| system | {} median | min | max | IQR |", t.primary.1);
    let mut rule = "|---|---:|---:|---:|---:|".to_string();
    for (_, label) in t.others {
        header.push_str(&format!(" {label} |"));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (system, variant) in rows {
        let mut name = if variant == t.variant {
            system.to_string()
        } else {
            format!("{system} (memory)")
        };
        if system.contains('+') {
            name = format!("*{name} (experiment)*");
        }
        let failed = find(samples, t.workload, variant, system)
            .filter(|s| s.error.is_some())
            .count();
        let Some(p) = spread(samples, t.workload, variant, system, t.primary.0) else {
            let _ = writeln!(out, "| {name} | failed ({failed} run(s)) | | | |");
            continue;
        };
        let mut row = format!(
            "| {name} | **{}** | {} | {} | {}–{} |",
            num(p.median),
            num(p.min),
            num(p.max),
            num(p.q1),
            num(p.q3)
        );
        for (metric, _) in t.others {
            match spread(samples, t.workload, variant, system, metric) {
                Some(s) => row.push_str(&format!(" {} |", num(s.median))),
                None => row.push_str(" – |"),
            }
        }
        if failed > 0 {
            row.push_str(&format!(" ({failed} failed run(s))"));
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out);
}

fn count(n: u64) -> String {
    num(n as f64)
}

pub fn markdown(samples: &[Sample], ctx: &Context) -> String {
    let p = &ctx.plan;
    let mut out = String::new();
    let _ = writeln!(out, "# kekbit and peer write-ahead logs, side by side\n");
    let _ = writeln!(
        out,
        "{} run: {} round(s), measured in {:.0} s (builds included). Every figure is the median \
         over the rounds, with the spread across rounds (min, max and interquartile range). \
         Ratios are computed between systems of this run only.\n",
        if p.quick { "**Quick**" } else { "**Full**" },
        ctx.rounds,
        ctx.duration.as_secs_f64()
    );
    let _ = writeln!(out, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &ctx.machine.rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "\n## Command\n\n```sh\n{}\n```\n", ctx.command);
    let _ = writeln!(
        out,
        "Measurements ran {}.\n",
        match ctx.priority.as_str() {
            "normal" => "at normal CPU and I/O priority (`--priority normal`); L1's writer and reader pinned to CPUs 0 and 1",
            "nice" => "in a session of their own whose scheduler group (autogroup) is at nice -20, at nice -20 themselves, and in the real-time I/O class (level 4), to shield them from other work on the machine; L1's writer and reader pinned to CPUs 0 and 1 (`--priority nice`: no real-time class)",
            _ => "in a session of their own whose scheduler group (autogroup) is at nice -20, at nice -20 themselves, and in the real-time I/O class (level 4), to shield them from other work on the machine; L1's writer and reader are pinned to CPUs 0 and 1, and in the busy-poll runs both are SCHED_FIFO, priority 10 (`--priority nice` drops the real-time class, `--priority normal` all of it but the pinning)",
        }
    );

    let _ = writeln!(
        out,
        "## Targets\n\n| target | figure | met? |\n|---|---|---|"
    );
    for t in targets() {
        let (figure, met) = match t.evaluate(samples) {
            Some((figure, true)) => (figure, "met"),
            Some((figure, false)) => (figure, "**not met**"),
            None => ("no data (a run failed; see below)".to_string(), "n/a"),
        };
        let _ = writeln!(out, "| {} | {figure} | {met} |", t.name);
    }
    let _ = writeln!(
        out,
        "\nThe limit probe touches no file, so it is the same figure for both file systems. On \
         ext4 the W1/W2 time includes the final sync, which the disk's write bandwidth bounds \
         for every system (see the `final sync s` columns), and W3/W4 are bounded by the \
         disk's flush latency; other work on the machine shares that disk (last section).\n"
    );

    let _ = writeln!(out, "{}", SYSTEMS_TEXT);

    let _ = writeln!(out, "## Results\n");
    for t in result_tables(p) {
        table(&mut out, samples, &t);
    }
    o1_section(&mut out, samples, ctx);
    noise_section(&mut out, samples, ctx);
    failures(&mut out, samples);
    let _ = writeln!(out, "{}", METHOD_TEXT);
    out
}

fn o1_section(out: &mut String, samples: &[Sample], ctx: &Context) {
    let systems: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|s| samples.iter().any(|x| x.workload == "O1" && x.system == *s))
        .collect();
    if systems.is_empty() {
        return;
    }
    let (big, small, full) = ctx.o1_records;
    let _ = writeln!(
        out,
        "### O1: time to open a journal for appending, {} vs {} records of 4 KiB — ext4\n\n\
         The large kekbit journal is {full} full 64 MiB segments followed by the same tail \
         ({} records) as the small one, so the two differ only in length. The peers' logs hold \
         the same records. `warm`: the files' pages are in the page cache; `cold`: dropped \
         before each open (`posix_fadvise(DONTNEED)`).\n",
        count(big),
        count(small),
        count(small)
    );
    let _ = writeln!(
        out,
        "| system | cache | open large ms (min–max) | open small ms (min–max) | large / small |\n|---|---|---:|---:|---:|"
    );
    let cell = |x: &Option<Spread>| match x {
        Some(x) => format!("**{}** ({}–{})", num(x.median), num(x.min), num(x.max)),
        None => "–".into(),
    };
    for system in systems {
        for v in ["warm", "cold"] {
            let b = spread(samples, "O1", &format!("{v}-big"), system, "open_ms");
            let s = spread(samples, "O1", &format!("{v}-small"), system, "open_ms");
            let r = match (&b, &s) {
                (Some(b), Some(s)) => format!("{:.2}×", b.median / s.median),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {system} | {v} | {} | {} | {r} |",
                cell(&b),
                cell(&s)
            );
        }
    }
    let builds: Vec<&Sample> = samples.iter().filter(|s| s.workload == "O1B").collect();
    if !builds.is_empty() {
        let _ = writeln!(out, "\nBuilt once per run (untimed in the comparison):\n\n| system | log | records | bytes on disk | build s |\n|---|---|---:|---:|---:|");
        for b in builds {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                b.system,
                b.variant,
                b.get("records").map(num).unwrap_or_else(|| "–".into()),
                b.get("disk_bytes").map(num).unwrap_or_else(|| "–".into()),
                b.get("secs")
                    .map(num)
                    .unwrap_or_else(|| b.error.clone().unwrap_or_default()),
            );
        }
    }
    let _ = writeln!(out);
}

/// How busy the machine was with other work during the run.
fn noise_section(out: &mut String, samples: &[Sample], ctx: &Context) {
    let _ = writeln!(
        out,
        "### Other work on the machine\n\n\
         `noise CPU` is the share of the machine's CPU time used by processes other than the \
         measured one (and its children) while it ran: the machine's busy time from \
         /proc/stat minus the worker's own, from wait4. Before each group of runs the \
         comparison waited up to {} s (at most {} s over the whole run) for a one-second \
         window under {:.0}% busy. Disk traffic \
         from other processes cannot be told apart and is not shown; it mostly affects W3, W4 \
         and the ext4 rows.\n",
        ctx.settle.as_secs(),
        ctx.wait_budget.as_secs(),
        ctx.quiet * 100.0
    );
    let _ = writeln!(
        out,
        "| workload | runs | noise CPU median | noise CPU max | load average (1 min) min–max |\n|---|---:|---:|---:|---:|"
    );
    let mut groups: Vec<(String, String)> = Vec::new();
    for s in samples.iter().filter(|s| s.round > 0) {
        let key = (s.workload.clone(), s.variant.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (w, v) in groups {
        let runs: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.round > 0 && s.workload == w && s.variant == v)
            .collect();
        let noise: Vec<f64> = runs.iter().filter_map(|s| s.get("noise_cpu")).collect();
        let load: Vec<f64> = runs.iter().filter_map(|s| s.get("loadavg1")).collect();
        let (Some(n), Some(l)) = (Spread::of(&noise), Spread::of(&load)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {w} {v} | {} | {:.0}% | {:.0}% | {:.1}–{:.1} |",
            runs.len(),
            n.median * 100.0,
            n.max * 100.0,
            l.min,
            l.max
        );
    }
    let waited: f64 = ctx.waits.iter().map(|w| w.waited.as_secs_f64()).sum();
    let noisy: Vec<String> = ctx
        .waits
        .iter()
        .filter(|w| w.busy >= ctx.quiet)
        .map(|w| {
            format!(
                "round {} {} ({:.0}% busy)",
                w.round,
                w.group,
                w.busy * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nWaits for a quiet machine: {} in all, {:.0} s in total; {} ended without one \
         (the group then ran anyway){}{}.\n",
        ctx.waits.len(),
        waited,
        noisy.len(),
        if noisy.is_empty() { "" } else { ": " },
        noisy.join(", ")
    );
}

fn failures(out: &mut String, samples: &[Sample]) {
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Failed runs\n\n| round | workload | variant | system | error |\n|---|---|---|---|---|"
    );
    for s in failed {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.round,
            s.workload,
            s.variant,
            s.system,
            s.error.as_deref().unwrap_or("").replace('|', "/")
        );
    }
    let _ = writeln!(out);
}

/// The chart: W1 and W2 throughput per system, on tmpfs and on ext4.
pub fn throughput_svg(samples: &[Sample]) -> String {
    let mut groups = Vec::new();
    for (w, size) in [("W1", "128 B"), ("W2", "4 KiB")] {
        for (v, fs) in FILE_SYSTEMS {
            let mut bars = Vec::new();
            for system in ORDER {
                let variant = if system == "limit" { "shm" } else { v };
                if let Some(s) = spread(samples, w, variant, system, "mb_s") {
                    bars.push(svg::Bar {
                        system: system.into(),
                        median: s.median,
                        min: s.min,
                        max: s.max,
                    });
                }
            }
            groups.push(svg::Group {
                label: format!("{w}: {size} records, {fs}"),
                bars,
            });
        }
    }
    let shown: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|s| groups.iter().any(|g| g.bars.iter().any(|b| b.system == *s)))
        .collect();
    svg::chart(
        "Append throughput, one sync at the end (W1, W2)",
        "MB/s of payload",
        &shown,
        &groups,
    )
}

const SYSTEMS_TEXT: &str = "## Systems, and what their sync does

Read from each crate's source (`~/.cargo/registry/src/*/`), versions as resolved in
`benches/compare/Cargo.lock`:

- **kekbit** (this repository, path dependency): `Journal::options().segment_capacity(64 MiB)
  .max_record_len(4096)`; `Durability::Never` for W1/W2/R1/L1 with `sync()` at the end,
  `Durability::EveryRecord` for W3/W4 (its built-in group commit). Records are copied into a
  shared memory mapping of a file reserved with `fallocate`. **Sync is `msync(MS_SYNC)`** of
  each segment not yet known durable, from the page holding its last durable watermark to
  its write position, and from offset 0 (the header page with the watermark included) when
  the watermark crosses a multiple of 64 KiB (`src/core/writer.rs` `sync_range`, then
  `src/mmap.rs` `Flusher::flush_range` → memmap2 `flush_range` → `msync`); on Linux
  `msync(MS_SYNC)` is `vfs_fsync_range(.., datasync=1)`, i.e. an fdatasync of that range. It
  then stores the durable watermark into the header page in memory. Opening a
  journal creates a segment with `fsync` of the file and of the folder.
- **kekbit-ahead** (W1, W2): the same journal configured for bursts, with
  `.segments_ahead(8).prefault(Prefault::Whole)`: its background thread keeps eight 64 MiB
  segments (512 MiB, more than W1 and W2 write) created, reserved and mapped in full ahead of
  the writer, and the worker calls `Journal::warm_up()` after opening (untimed, as opening
  is) so that they are ready. This is what a service that expects bursts would configure;
  it costs that memory (tmpfs) or that write-back of zeros (ext4) up front. Once a stream
  outruns the prepared segments, it is bound by page population again, like `kekbit`.
- **okaywal 0.3.1**: `EntryWriter::commit` flushes its 16 KiB buffer with `write` and calls
  **`File::sync_data` = `fdatasync`** (`log_file.rs`, `synchronize_locked`), once per
  commit, with group commit (one thread syncs while the others wait on a condition
  variable); new files also get a folder `fsync` (`sync_all` on the directory). There is no
  append without a sync: a commit always syncs. W1/W2 write one chunk per record into one
  entry and commit once; W3/W4 commit one entry per record. Checkpointing is off
  (`checkpoint_after_bytes = u64::MAX`) where the data must stay for a replay (W1/W2→W5, O1);
  W3/W4 use okaywal's defaults. **Opening reads the whole log** (every entry, to find where
  valid data ends), and the log manager must read every chunk to its end and check its CRC:
  if it leaves a chunk unread, okaywal 0.3.1 skips it itself but skips the chunk's 4-byte CRC
  twice (`EntryChunk::skip_remaining_bytes`, then its `Drop`), reads the next chunk header
  out of place as an aborted entry, ends the valid log there, and the next append overwrites
  committed entries (reproduced: 1,000 committed chunks, reopen without reading them, append
  one entry, reopen: the log no longer reads). So W5 and O1 open okaywal with a manager that
  reads and checks every chunk.
- **raft-engine 0.4.2** (`default-features = false`, `batch_compression_threshold = 0`):
  each append is `Engine::write` of a `LogBatch` holding one protobuf entry; the write goes
  through its write group (group commit: the leader `pwrite`s every member's batch, then syncs
  once). **Sync is `fdatasync`** (`env/log_fd/unix.rs`, `LogFd::sync` → `nix::unistd::fdatasync`;
  `fsync` on non-Linux). Rotating to a new file (`target_file_size`, default 128 MiB, 1 MiB in
  R1) `fdatasync`s the old file, then the new one, then `fsync`s the folder, on the appending
  thread. **`Engine::sync()` syncs nothing in 0.4.2**: it is `write(&mut LogBatch::default(),
  true)` and `write` returns early for an empty batch; so the streams make their last record
  durable with `write(batch, true)` instead, and W3/W4 use `write(batch, true)`.
  **Opening reads every file** (`Engine::open` rebuilds its in-memory index from each batch's
  header and item footer, checking the footer's checksum; the entries' own checksum is
  checked only when they are fetched), so its open time grows with the log; W5 opens the
  engine and then fetches every entry.
- **raft-log 0.4** (`src/sys/raftlog.rs`, default configuration; chunks of 64 MiB in W6):
  each append is `RaftLog::append` of one entry `((term 1, index), payload)`, which buffers it
  in memory; `flush(sync, callback)` hands the buffer to raft-log's worker thread, which
  `write`s it and, with `sync = true`, **`fsync`s**, then calls the callback. A durable
  append is `append` + `flush(true)` + waiting for the callback (concurrent ones share the
  worker's syncs: its group commit); the streams end with one. `RaftLog` takes `&mut self`,
  so the handle sits behind a mutex, released before waiting. Opening replays every chunk;
  W5 opens the log and reads every entry with `read`. Retention (W6) is `purge` plus a
  syncing `flush`, not waited for: raft-log removes purged chunks only on a syncing flush.
- **raw file log** (this crate, `src/sys/rawfile.rs`): `File` + 64 KiB `BufWriter`, kekbit's
  framing (8-byte header: u32 length + u32 CRC32 via crc32fast; payload padded to 8).
  **Sync = flush + `fdatasync`** (`File::sync_data`). No preallocation.
- kekbit's open reads only the newest segment(s), back to the newest durable seal (its
  README: recovery reads only what was written since the last durable sync), whatever the
  journal's length; W5 reads it with `JournalReader::open(dir, 0)` and `try_next`, which
  checks every record's CRC.
- **raw mmap log** (`src/sys/rawmmap.rs`): one file reserved in full with `fallocate` at
  creation and mapped shared, not prefaulted (the first store to each page faults it in);
  same framing, header word published with a release store. **Sync = `msync(MS_SYNC)`** of
  the pages written since the last sync.
- Both raw logs use a **leader-based group commit** for concurrent durable appends (W4): the
  first waiting thread syncs everything appended so far (taking a snapshot of the count under
  the append lock, then syncing without it) while later ones wait on a condition variable.
- **limit probe** (`src/sys/limit.rs`): CRC32 + copy of the framed bytes into a heap buffer
  whose pages were touched beforehand. No lock, no system call.
- Two experiments, in no target and marked as such in the tables: **raw-mmap+prefault** (W1,
  W2), the raw mmap log with every page mapped writable (`MADV_POPULATE_WRITE`, untimed)
  before the first append, which shows what streaming costs once page population is off the
  appending path; and **raw-mmap+watermark** (W3, W4), the raw mmap log laid out like a
  kekbit segment (records after a header page) that syncs from offset 0 and then stores the
  synced length in the header page, as kekbit does with its durable watermark, so that each
  sync writes that page again.
";

const METHOD_TEXT: &str = "## Method

- Each measurement runs in a process of its own (the binary re-executes itself with
  `--system X --workload Y`), in a folder of its own, removed afterwards. Rounds are
  interleaved: round 1 runs every system on W1, then W2, ..., then round 2 does it again; the
  order of the systems rotates by one each round. Between runs touching the disk, the file
  system is synced (untimed) so that one run's write-back does not land in the next.
- Opening a log is not timed, except in O1. The W1/W2 time runs from the first append to
  the return of the final sync (the last record's durable append); `appends s` and `final
  sync s` split it. Throughput counts payload bytes only.
- W6 streams 128 B records (4 GiB by default, 512 MiB in the quick run,
  `KEKBIT_COMPARE_W6_MIB` to change either) through segments or files of 64 MiB; every 65,536
  appends, in the appending thread, each system drops what lies before the newest 256 MiB
  of records with its own call (kekbit `prune_before`, whose pruned segments become its next
  segments by default; raft-engine `compact_to` + `purge_expired_files` with its purge
  threshold at 256 MiB; raft-log `purge` + `flush(true)`; the raw file log deletes its
  oldest 64 MiB files). The second half is timed, ending with one sync. okaywal (no append
  without a sync) and the raw mapped log (one file) sit it out; the limit probe copies into a
  64 MiB ring.
- Folders: W3, W4, O1 on the real disk (ext4, the system temporary folder); W1, W2, W5, W6 and R1
  on both tmpfs (`/dev/shm`) and ext4; L1 on tmpfs (live reading needs no disk). W5 replays
  the log W1 left in the same round, with its pages still in the page cache.
- Latencies are measured with `Instant::now()` around each call (W3, W4, R1), or (L1) as
  CLOCK_MONOTONIC in the reader process minus the writer's CLOCK_MONOTONIC time stamp taken
  just before `append`, carried in the record. L1's first records are a warm-up, not counted.
- Percentiles are nearest-rank over all samples of a run; the tables then give the median of
  those per-run figures over the rounds, their min and max, and their interquartile range.
";

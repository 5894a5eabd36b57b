//! Throughput ratios that hold on a machine whose speed drifts: the figures
//! and the hello component's `/static` served side by side and measured in
//! interleaved `wrk` rounds, each figure's round between two hello rounds.
//!
//! A shared VM's speed moves by ±20 % over minutes, so one row for hello and
//! a later one for a figure gives a ratio that swings from run to run. Here
//! every round runs hello, then each figure, then hello again (the closing
//! hello round opens the next round), and a figure's ratio in a round is its
//! throughput over the mean of the two hello rounds around it. The order of
//! the figures is reversed every other round, so that a figure does not
//! always sit right after (or right before) a hello round: under a steady
//! drift the mean of the two hello rounds is what hello did in the middle of
//! the round, and reversing the order evens out the figures' distance from
//! that middle. The headline is the median of a figure's per-round ratios.

use crate::load::{self, Load, Run, Script, Wrk};
use anyhow::Result;

/// One load to measure: a URL and the script that drives it.
pub struct Target {
    /// For the progress lines.
    pub name: String,
    pub url: String,
    pub script: Script,
}

/// A figure's rounds.
pub struct Figure {
    /// Each round's wrk run, in round order.
    pub rounds: Vec<Load>,
    /// All its rounds' requests together (throughput, p50, p99).
    pub pooled: Load,
    /// Each round's throughput over the mean of the hello rounds around it.
    pub ratios: Vec<f64>,
}

impl Figure {
    /// The median of the per-round ratios (the mean of the middle two for an
    /// even count).
    pub fn ratio(&self) -> f64 {
        median(&self.ratios)
    }

    /// The lowest and highest per-round ratio.
    pub fn range(&self) -> (f64, f64) {
        let lo = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self
            .ratios
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub struct Interleaved {
    pub rounds: usize,
    pub round_secs: u64,
    /// hello's rounds (one more than `rounds`), pooled.
    pub hello: Load,
    /// The figures, in the order they were given.
    pub figures: Vec<Figure>,
}

/// `wrk -t2 -c32` on hello and on each target: one warm-up of `warmup`
/// seconds each, then `rounds` rounds of `round_secs` seconds per run.
pub fn measure(
    wrk: &Wrk,
    hello: &Target,
    targets: &[Target],
    rounds: usize,
    round_secs: u64,
    warmup: u64,
) -> Result<Interleaved> {
    let run = |target: &Target, secs: u64| -> Result<Run> {
        wrk.sample(&target.url, &target.script, 2, 32, secs)
    };
    for target in std::iter::once(hello).chain(targets) {
        crate::step(&format!("{}: warm-up", target.name));
        run(target, warmup)?;
    }
    crate::step(&format!(
        "{rounds} interleaved rounds of {round_secs} s per run (-t2 -c32): {} between hello rounds",
        targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut hellos = vec![run(hello, round_secs)?];
    let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            runs[i].push(run(&targets[i], round_secs)?);
        }
        hellos.push(run(hello, round_secs)?);
        let figures: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.0}", r[round].load.ok_per_sec()))
            .collect();
        crate::step(&format!(
            "  round {}: hello {:.0} → {:.0} req/s; {} req/s",
            round + 1,
            hellos[round].load.ok_per_sec(),
            hellos[round + 1].load.ok_per_sec(),
            figures.join(", ")
        ));
    }
    let figures = runs
        .iter()
        .map(|r| Figure {
            rounds: r.iter().map(|run| run.load).collect(),
            pooled: load::pool(r),
            ratios: r
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let around =
                        (hellos[i].load.ok_per_sec() + hellos[i + 1].load.ok_per_sec()) / 2.0;
                    run.load.ok_per_sec() / around
                })
                .collect(),
        })
        .collect();
    Ok(Interleaved {
        rounds,
        round_secs,
        hello: load::pool(&hellos),
        figures,
    })
}

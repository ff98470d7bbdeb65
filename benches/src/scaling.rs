//! The library pool as the work grows (`--only scaling`,
//! docs/PERFORMANCE.md "Scaling").

use anyhow::Result;

use crate::{host, progress, stats, Config, Row};

/// The library pool (`plugwarden::pool`, pw-echo, batch 100) as the work
/// grows: 1 worker against 2 on 4 KiB jobs, and the cost of one job for
/// inputs of 1 KiB, 64 KiB, 1 MiB and 16 MiB (echoed back), each from
/// runs of many jobs minus a run of one (the pool's start-up).
pub(crate) fn section(c: &Config, h: &host::Host, rows: &mut Vec<Row>) -> Result<()> {
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for round in 0..c.batch_rounds {
        progress(&format!("scaling round {}/{}", round + 1, c.batch_rounds));
        two.push(host::pool_batch(&h.echo, c.batch_jobs, 100, 2)?.jobs_per_s);
        one.push(host::pool_batch(&h.echo, c.batch_jobs, 100, 1)?.jobs_per_s);
    }
    rows.push(Row::versus(
        &format!(
            "scaling: plugwarden::pool, {} 4 KiB pw-echo jobs, batch 100: 2 workers vs 1",
            c.batch_jobs
        ),
        "jobs/s",
        &two,
        "1 worker",
        &one,
    ));
    for (size, count) in [1usize << 10, 64 << 10, 1 << 20, 16 << 20]
        .into_iter()
        .zip(c.pool_by_size)
    {
        let kib = size >> 10;
        progress(&format!("scaling: {count} pool jobs of {kib} KiB"));
        let mut us = Vec::new();
        for _ in 0..c.batch_rounds {
            let many = host::pool_batch_sized(&h.echo, count, 100, 2, size)?.jobs_per_s;
            let single = host::pool_batch_sized(&h.echo, 1, 100, 2, size)?.jobs_per_s;
            let extra = count as f64 / many - 1.0 / single;
            us.push(extra.max(0.0) * 1e6 / (count - 1) as f64);
        }
        let mib_s = size as f64 / f64::from(1 << 20) / (stats::summarize(&us).median / 1e6);
        rows.push(Row::info(
            &format!(
                "scaling: plugwarden::pool, cost of one more job, {kib} KiB in and out ({count} vs 1 per run, 2 workers, batch 100; {mib_s:.0} MiB/s)"
            ),
            "µs",
            &us,
        ));
    }
    Ok(())
}

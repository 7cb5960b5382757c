//! One engine stats sample reduced to [`ContainerStats`], the way `docker stats` reads it.

use bollard::models::ContainerStatsResponse;
use chrono::{DateTime, Utc};

use super::docker::parse_time;
use super::ContainerStats;

/// Reduces a stats sample; `now` stands in when the engine did not say when it read it.
pub(crate) fn stats_from_engine(
    sample: &ContainerStatsResponse,
    now: DateTime<Utc>,
) -> ContainerStats {
    let cpu = sample.cpu_stats.as_ref();
    let usage = cpu.and_then(|c| c.cpu_usage.as_ref());
    let online_cpus = cpu
        .and_then(|c| c.online_cpus)
        .filter(|n| *n > 0)
        .or_else(|| {
            // Older engines leave online_cpus out; the per-CPU list has one entry per CPU.
            usage
                .and_then(|u| u.percpu_usage.as_ref())
                .and_then(|p| u32::try_from(p.len()).ok())
                .filter(|n| *n > 0)
        });
    let (rx_bytes, tx_bytes) =
        sample
            .networks
            .iter()
            .flat_map(|n| n.values())
            .fold((0u64, 0u64), |(rx, tx), n| {
                (
                    rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                )
            });
    let memory = sample.memory_stats.as_ref();
    ContainerStats {
        read_at: sample.read.as_deref().and_then(parse_time).unwrap_or(now),
        cpu_total_ns: usage.and_then(|u| u.total_usage).unwrap_or(0),
        system_cpu_ns: cpu.and_then(|c| c.system_cpu_usage),
        online_cpus,
        memory_working_set_bytes: memory.map(working_set).unwrap_or(0),
        // cgroups report "no limit" as the host's memory or a huge number; both are a real bound.
        memory_limit_bytes: memory.and_then(|m| m.limit).filter(|l| *l > 0),
        rx_bytes,
        tx_bytes,
    }
}

/// Usage minus inactive file cache (cgroup v2 `inactive_file`, v1 `total_inactive_file`): the
/// memory the container cannot give back, as `docker stats` and the kubelet count it.
fn working_set(memory: &bollard::models::ContainerMemoryStats) -> u64 {
    let usage = memory.usage.unwrap_or(0);
    let inactive = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    usage.saturating_sub(inactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(json: &str) -> ContainerStatsResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cgroup_v2_sample() {
        let s = sample(
            r#"{"read": "2026-11-22T00:05:30.5Z",
                "cpu_stats": {"cpu_usage": {"total_usage": 5000}, "system_cpu_usage": 900000, "online_cpus": 2},
                "memory_stats": {"usage": 10000, "limit": 50000, "stats": {"inactive_file": 3000}},
                "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}}}"#,
        );
        let stats = stats_from_engine(&s, Utc::now());
        assert_eq!(stats.read_at.to_rfc3339(), "2026-11-22T00:05:30.500+00:00");
        assert_eq!(stats.cpu_total_ns, 5000);
        assert_eq!(stats.system_cpu_ns, Some(900000));
        assert_eq!(stats.online_cpus, Some(2));
        assert_eq!(stats.memory_working_set_bytes, 7000);
        assert_eq!(stats.memory_limit_bytes, Some(50000));
        assert_eq!((stats.rx_bytes, stats.tx_bytes), (11, 22));
    }

    #[test]
    fn cgroup_v1_sample_counts_cpus_from_the_per_cpu_list() {
        let s = sample(
            r#"{"cpu_stats": {"cpu_usage": {"total_usage": 1, "percpu_usage": [1, 0, 0, 0]}},
                "memory_stats": {"usage": 100, "stats": {"total_inactive_file": 150}}}"#,
        );
        let now = Utc::now();
        let stats = stats_from_engine(&s, now);
        assert_eq!(stats.read_at, now);
        assert_eq!(stats.online_cpus, Some(4));
        // Inactive cache above usage never underflows.
        assert_eq!(stats.memory_working_set_bytes, 0);
        assert_eq!((stats.rx_bytes, stats.tx_bytes), (0, 0));
    }
}

//! What each workload does, in the full run and in the quick one.

/// Sizes of one run's workloads.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    pub rounds: usize,
    /// W1: records of 128 B, one sync at the end.
    pub w1_records: u64,
    /// W2: records of 4 KiB, one sync at the end.
    pub w2_records: u64,
    /// W3: durable appends of 128 B, one after the other.
    pub w3_records: u64,
    /// W4: threads, and durable appends per thread.
    pub w4_threads: u64,
    pub w4_per_thread: u64,
    /// L1 busy-poll: records sent (after `l1_warmup` untimed ones), one every `l1_busy_gap_ns`.
    pub l1_busy_records: u64,
    pub l1_busy_gap_ns: u64,
    /// L1 blocking: records sent, one every 0.5 to 1.5 ms (uniform).
    pub l1_block_records: u64,
    pub l1_warmup: u64,
    /// R1: appends timed one by one, after `r1_warmup` untimed ones.
    pub r1_records: u64,
    pub r1_warmup: u64,
    /// O1: payload bytes of the large and the small journal.
    pub o1_big: u64,
    pub o1_small: u64,
    /// Whether the peers take part in O1 (they replay everything when they open).
    pub o1_peers: bool,
    /// W6: bytes of records (frames) streamed with retention.
    pub w6_bytes: u64,
}

pub const SMALL: usize = 128;
pub const LARGE: usize = 4096;
/// Segment size of R1.
pub const R1_SEGMENT: u64 = 1 << 20;
/// kekbit's default segment size (used everywhere except R1).
pub const SEGMENT: u64 = 64 << 20;
/// Segment (file) size of W6.
pub const W6_SEGMENT: u64 = 64 << 20;
/// W6 keeps the newest this many bytes of records.
pub const W6_RETAIN: u64 = 256 << 20;
/// W6's size unless `KEKBIT_COMPARE_W6_MIB` says otherwise: 4 GiB, and 512 MiB in the quick run.
const W6_MIB: u64 = 4096;
const W6_MIB_QUICK: u64 = 512;

/// W6's size in bytes: `KEKBIT_COMPARE_W6_MIB` (MiB) if set, else `default_mib`.
fn w6_bytes(default_mib: u64) -> u64 {
    std::env::var("KEKBIT_COMPARE_W6_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default_mib)
        << 20
}

/// Record size of the O1 journals.
pub const O1_RECORD: usize = 4096;

impl Plan {
    pub fn full() -> Plan {
        Plan {
            quick: false,
            rounds: 5,
            w1_records: 1_000_000,
            w2_records: 100_000,
            w3_records: 5_000,
            w4_threads: 4,
            w4_per_thread: 2_000,
            // 0.5 s of busy polling per run: the kernel throttles a real-time task that keeps
            // a CPU for more than 0.95 s in a second (sched_rt_runtime_us), which would put
            // 50 ms pauses in the tail.
            l1_busy_records: 25_000,
            l1_busy_gap_ns: 20_000,
            l1_block_records: 3_000,
            l1_warmup: 2_000,
            r1_records: 1_000_000,
            r1_warmup: 100_000,
            o1_big: 2_000_000_000,
            o1_small: 20_000_000,
            o1_peers: true,
            w6_bytes: w6_bytes(W6_MIB),
        }
    }

    pub fn quick() -> Plan {
        Plan {
            quick: true,
            rounds: 2,
            w1_records: 200_000,
            w2_records: 20_000,
            w3_records: 500,
            w4_threads: 4,
            w4_per_thread: 250,
            l1_busy_records: 20_000,
            l1_busy_gap_ns: 20_000,
            l1_block_records: 400,
            l1_warmup: 500,
            r1_records: 200_000,
            r1_warmup: 20_000,
            o1_big: 2_000_000_000,
            o1_small: 20_000_000,
            o1_peers: false,
            w6_bytes: w6_bytes(W6_MIB_QUICK),
        }
    }

    pub fn from_flag(quick: bool) -> Plan {
        if quick {
            Plan::quick()
        } else {
            Plan::full()
        }
    }
}

//! CPU time by stage and by thread: on two cores a stage that holds one thread is invisible in
//! images/s, on sixty-four it is the whole limit, so a run records where its CPU went.
//!
//! Each thread of layerwise's own (the worker pool, the writer of each part, the reader of
//! each shard) is measured with its own CPU clock; ONNX Runtime's share is the rest of the
//! process's CPU time (its threads, and the part of the calling worker's time spent inside a
//! model call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The CPU time the calling thread has used so far.
pub fn thread_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The CPU time the whole process has used so far (every thread, user and system).
pub fn process_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(id, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The nice value of layerwise's own threads (workers, encoders, writers, readers): when the
/// cores are all busy, the threads of ONNX Runtime (and the thread that calls it) run first,
/// and decoding, reducing and writing take the cycles they leave, instead of preempting one
/// of its threads and making its parallel loops wait for the slowest.
pub const OWN_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`OWN_NICE`]; call it first thing on
/// every thread of layerwise's own. Where that is not allowed, nothing changes.
pub fn yield_to_inference() {
    // SAFETY: the gettid system call and setpriority take and change nothing but the calling
    // thread's nice. (The system call, not glibc's gettid(), which only glibc 2.30 and later
    // have: the wheel targets glibc 2.28.)
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, OWN_NICE);
    }
}

/// Gives the free memory of every allocator arena back to the system. Each thread that
/// allocates (workers, encoders, each part's writer) has arenas of its own, whose freed
/// fragments would otherwise add up part after part; called once a part is committed.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

thread_local! {
    /// The CPU time this thread has spent inside model calls (ONNX Runtime's, not ours).
    static IN_MODEL_CALLS: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Counts `cpu` of the calling thread's time as spent inside a model call.
pub fn model_call(cpu: Duration) {
    IN_MODEL_CALLS.with(|t| t.set(t.get() + cpu));
}

/// The calling thread's CPU time so far, without what it spent inside model calls.
pub fn own_time() -> Duration {
    thread_time().saturating_sub(IN_MODEL_CALLS.with(|t| t.get()))
}

/// CPU time spent in one stage, summed over the threads that do it.
#[derive(Debug, Default)]
pub struct Meter(AtomicU64);

impl Meter {
    /// Runs `work`, adding the calling thread's CPU time in it.
    pub fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        let start = thread_time();
        let out = work();
        self.add(thread_time().saturating_sub(start));
        out
    }

    /// Adds `cpu`.
    pub fn add(&self, cpu: Duration) {
        self.0.fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The time so far.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// Where a run's CPU time goes, as it runs.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Reading, decoding and preprocessing images, on the worker threads.
    pub decode: Meter,
    /// Encoding and writing part files, on the writer and encoder threads.
    pub write: Meter,
    /// Reading shards, on their reader threads.
    pub read: Meter,
    /// Each finished thread of layerwise's own: its name and its CPU time (without its model
    /// calls).
    threads: Mutex<Vec<(String, Duration)>>,
}

impl Ledger {
    /// Records a thread of layerwise's own with the CPU time it used.
    pub fn thread(&self, name: impl Into<String>, cpu: Duration) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.push((name.into(), cpu));
    }

    /// The record for `images` images, given the process CPU time used over the run.
    pub fn report(&self, images: u64, process: Duration) -> CpuTimes {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let own: Duration = threads.iter().map(|(_, cpu)| *cpu).sum();
        let per_image = |d: Duration| 1e3 * d.as_secs_f64() / images.max(1) as f64;
        let workers: Duration = threads
            .iter()
            .filter(|(name, _)| name.starts_with(WORKER))
            .map(|(_, cpu)| *cpu)
            .sum();
        let busiest = threads.iter().max_by_key(|(_, cpu)| *cpu);
        CpuTimes {
            process_ms: per_image(process),
            onnxruntime_ms: per_image(process.saturating_sub(own)),
            own_ms: per_image(own),
            decode_ms: per_image(self.decode.get()),
            reduce_ms: per_image(workers.saturating_sub(self.decode.get())),
            write_ms: per_image(self.write.get()),
            read_ms: per_image(self.read.get()),
            busiest_thread: busiest.map_or_else(String::new, |(name, _)| name.clone()),
            busiest_thread_ms: busiest.map_or(0.0, |(_, cpu)| per_image(*cpu)),
            threads: threads.len(),
        }
    }
}

/// The name of the worker threads (decoding, and the statistics and maps of each batch).
pub const WORKER: &str = "layerwise-worker";

/// Where the CPU time of a run went, in milliseconds per image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// The whole process.
    pub process_ms: f64,
    /// ONNX Runtime: the process less layerwise's own threads.
    pub onnxruntime_ms: f64,
    /// Layerwise's own threads, without their model calls.
    pub own_ms: f64,
    /// Reading, decoding and preprocessing (worker threads).
    pub decode_ms: f64,
    /// The rest of the worker threads: statistics, kept maps, top maps (and the pool's idle
    /// spinning).
    pub reduce_ms: f64,
    /// Encoding and writing the Parquet part files (writer and encoder threads).
    pub write_ms: f64,
    /// Reading shards (reader threads).
    pub read_ms: f64,
    /// The busiest of layerwise's own threads: a stage that runs on one thread shows here.
    pub busiest_thread: String,
    /// Its CPU time.
    pub busiest_thread_ms: f64,
    /// How many threads of layerwise's own ran.
    pub threads: usize,
}

/// Buffers of 4 MiB or more (image batches, maps, ONNX Runtime's arena regions) are mapped
/// from the system and returned to it when freed. glibc otherwise raises this threshold as
/// such buffers come and go, and serves them from heaps that keep the freed memory, so peak
/// memory would depend on the order in which threads happen to allocate.
///
/// Setting it also fixes glibc's trim threshold, which would otherwise stay at 128 KiB: every
/// free that left more than that at the top of a heap returned it to the system, and the next
/// page or image buffer faulted it back in, page by page. Heaps now keep up to 64 MiB free at
/// their top: a quarter of layerwise's own CPU per image on the small bench model went to
/// those faults, at +8 MiB of peak RSS on VGG16 (`benches/RESULTS.md`, issue 26).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; glibc's malloc takes its lock for it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(for_at_least: Duration) {
        let start = thread_time();
        let mut x = 0u64;
        while thread_time() - start < for_at_least {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn meters_add_the_cpu_time_of_each_thread() {
        let meter = Meter::default();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| meter.time(|| spin(Duration::from_millis(20))));
            }
        });
        assert!(
            meter.get() >= Duration::from_millis(40),
            "{:?}",
            meter.get()
        );
        // Sleeping is no CPU time.
        let slept = Meter::default();
        slept.time(|| std::thread::sleep(Duration::from_millis(30)));
        assert!(slept.get() < Duration::from_millis(10), "{:?}", slept.get());
    }

    #[test]
    fn the_report_names_the_busiest_thread_and_onnx_runtime_s_share() {
        let ledger = Ledger::default();
        ledger.decode.add(Duration::from_millis(300));
        ledger.write.add(Duration::from_millis(500));
        ledger.thread(format!("{WORKER}-0"), Duration::from_millis(400));
        ledger.thread(format!("{WORKER}-1"), Duration::from_millis(200));
        ledger.thread("layerwise-writer-0", Duration::from_millis(500));
        let report = ledger.report(100, Duration::from_millis(3100));
        assert_eq!(report.process_ms, 31.0);
        assert_eq!(report.own_ms, 11.0);
        assert_eq!(report.onnxruntime_ms, 20.0);
        assert_eq!(report.decode_ms, 3.0);
        assert_eq!(report.reduce_ms, 3.0);
        assert_eq!(report.write_ms, 5.0);
        assert_eq!(report.busiest_thread, "layerwise-writer-0");
        assert_eq!(report.busiest_thread_ms, 5.0);
        assert_eq!(report.threads, 3);
    }
}

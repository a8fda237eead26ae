//! A shard read on a thread of its own: its samples go through a bounded queue, so reading
//! (sequential I/O, a download) overlaps decoding, and memory holds at most the queue.

use std::collections::BTreeSet;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::cpu::{thread_time, Ledger};

use crate::input::shards::Shard;
use crate::input::{shard_image_id, Content, Sample, SampleReader, MAX_SHARD_SAMPLES};

/// Samples that may wait in the queue.
const QUEUE: usize = 64;

/// Hands a shard's samples on (to the reader thread's consumer, or a list), numbering them.
pub struct Emitter<'a> {
    /// Takes a sample; `false` when nobody takes samples any more.
    sink: Box<dyn FnMut(Sample) -> bool + Send + 'a>,
    part: usize,
    source: String,
    next: u64,
    limit: u64,
    /// Only the samples at these positions are handed on (the others are numbered and passed
    /// over); `None`: all.
    only: Option<BTreeSet<u64>>,
}

impl<'a> Emitter<'a> {
    /// An emitter for the shard `source` of part `part` that hands at most `limit` samples
    /// to `sink`.
    pub fn new(
        source: &str,
        part: usize,
        limit: usize,
        sink: impl FnMut(Sample) -> bool + Send + 'a,
    ) -> Emitter<'a> {
        Emitter {
            sink: Box::new(sink),
            part,
            source: source.to_owned(),
            next: 0,
            limit: (limit as u64).min(MAX_SHARD_SAMPLES),
            only: None,
        }
    }

    /// This emitter, handing on only the samples at `positions` of the shard and stopping after
    /// the last: the others are still numbered, so each sample keeps the id the run gave it.
    pub fn only(mut self, positions: BTreeSet<u64>) -> Emitter<'a> {
        let end = positions.last().map_or(0, |&last| last + 1);
        self.limit = self.limit.min(end);
        self.only = Some(positions);
        self
    }

    /// Whether the sample at `position` is handed on (a reader need not read one that is not).
    pub fn wants(&self, position: u64) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&position))
    }

    /// The positions handed on, when only some are (a reader may read only those).
    pub fn positions(&self) -> Option<&BTreeSet<u64>> {
        self.only.as_ref()
    }

    /// Passes over the samples before the next one handed on, for a reader that reads only
    /// the [`Emitter::positions`]: the next sample it emits is numbered as that one.
    pub fn skip_to_wanted(&mut self) {
        if let Some(next) = self.only.as_ref().and_then(|o| o.range(self.next..).next()) {
            self.next = *next;
        }
    }

    /// Sends the next sample; `false` when reading should stop (the limit is reached or
    /// nobody takes samples any more).
    pub fn emit(
        &mut self,
        path: String,
        key: Option<String>,
        label: Option<String>,
        content: Content,
    ) -> bool {
        if self.next >= self.limit {
            return false;
        }
        if !self.wants(self.next) {
            self.next += 1;
            return self.next < self.limit;
        }
        let sample = Sample {
            image_id: shard_image_id(self.part, self.next),
            path,
            source: Some(self.source.clone()),
            key,
            label,
            content,
        };
        self.next += 1;
        (self.sink)(sample) && self.next < self.limit
    }

    /// One row for the shard itself (`path` and `source` its name, no key): it cannot be
    /// opened, is not of its format, or ends in a way no sample can be blamed for. It is
    /// handed on even when only some positions are wanted.
    pub fn shard_error(&mut self, reason: String) {
        let name = self.source.clone();
        self.only = None;
        self.emit(name, None, None, Content::Failed(reason));
    }

    /// The samples sent so far.
    pub fn sent(&self) -> u64 {
        self.next
    }
}

/// Reads `shard` on a new thread with `read`, which sends its samples through the emitter;
/// at most `limit` of them are taken. A panic while reading becomes one last error row. The
/// thread's CPU time goes to `cpu`.
pub fn spawn(
    shard: &Shard,
    part: usize,
    limit: usize,
    cpu: &Arc<Ledger>,
    read: impl FnOnce(&mut Emitter) + Send + 'static,
) -> Streamed {
    let cpu = cpu.clone();
    let (queue, samples) = sync_channel(QUEUE);
    let mut emitter = Emitter::new(&shard.name, part, limit, move |s| queue.send(s).is_ok());
    let name = format!("layerwise-reader-{part}");
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            crate::cpu::yield_to_inference();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read(&mut emitter);
            }));
            if caught.is_err() {
                emitter.shard_error(
                    "reading stopped: layerwise failed while reading this shard (a bug; \
                     please report it with the shard)"
                        .into(),
                );
            }
            let used = thread_time();
            cpu.read.add(used);
            cpu.thread(name, used);
        })
        .expect("cannot start a shard reader thread");
    Streamed { samples }
}

/// Every sample `read` emits, in order, read on this thread (for tests and fuzzing).
pub fn collect(source: &str, read: impl FnOnce(&mut Emitter)) -> Vec<Sample> {
    let mut samples = Vec::new();
    read(&mut Emitter::new(source, 0, usize::MAX, |s| {
        samples.push(s);
        true
    }));
    samples
}

/// The consumer's end of a shard's queue.
pub struct Streamed {
    samples: Receiver<Sample>,
}

impl SampleReader for Streamed {
    fn next_batch(&mut self, n: usize) -> Vec<Sample> {
        self.samples.iter().take(n).collect()
    }
}

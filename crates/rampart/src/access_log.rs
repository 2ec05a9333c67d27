//! The access log's file writer: records are handed to a thread of their own through a bounded
//! queue, so a request or connection never waits for the disk (the access log writes a line per
//! request, far more than the other logs). When the queue is full the caller waits: records
//! are never dropped.

use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines waiting for the writer thread.
const QUEUE: usize = 4096;

/// A `MakeWriter` for tracing-subscriber: each record is one buffer sent to the writer thread.
#[derive(Debug, Clone)]
pub struct AccessFile {
    lines: SyncSender<Vec<u8>>,
    /// Answers each empty buffer (a flush request) once everything before it is written.
    flushed: Arc<Mutex<Receiver<()>>>,
}

impl AccessFile {
    pub fn start(mut file: File) -> std::io::Result<Self> {
        let (lines, queue) = sync_channel::<Vec<u8>>(QUEUE);
        let (ack, flushed) = channel();
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || {
                for line in queue {
                    if line.is_empty() {
                        let _ = file.sync_data();
                        let _ = ack.send(());
                    } else if let Err(err) = file.write_all(&line) {
                        eprintln!("cannot write the access log: {err}");
                    }
                }
            })?;
        Ok(Self {
            lines,
            flushed: Arc::new(Mutex::new(flushed)),
        })
    }

    /// Waits (a few seconds at most) until every record handed over so far is on disk: at
    /// shutdown, so the last connections' records are not lost with the process.
    pub fn flush(&self) {
        if self.lines.send(Vec::new()).is_ok()
            && let Ok(flushed) = self.flushed.lock()
        {
            let _ = flushed.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// One record being formatted.
#[derive(Debug)]
pub struct Record {
    lines: SyncSender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl Write for Record {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            let _ = self.lines.send(std::mem::take(&mut self.buffer));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessFile {
    type Writer = Record;

    fn make_writer(&'a self) -> Record {
        Record {
            lines: self.lines.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

//! A connection's pending output: small replies and shared frames, with a
//! cursor.
//!
//! Replies are appended as they are produced and written at once; whatever
//! the socket does not take stays here, and the cursor remembers how far the
//! front chunk got. JPEG frames are queued as `Rc<[u8]>` so a hundred viewers
//! of one frame hold one copy of it. Nothing here touches a socket except
//! through the `Write` handed to [`OutputQueue::write_to`].
//!
//! A queue that has been written out gives its buffers to the loop's
//! [`SpareBuffers`], and the next connection about to answer takes them
//! from there ([`OutputQueue::stock`]): replies cost no allocation, and an
//! idle connection still holds no output buffer at all.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Small replies are coalesced into one owned chunk up to this size, so a
/// thousand pipelined `PONG`s go out in one `write()`, not a thousand.
const COALESCE_LIMIT_BYTES: usize = 16 * 1024;

/// A new chunk of small replies starts with room for this many bytes (a
/// read's worth of pipelined `PONG`s), so a burst grows it rarely, not
/// once per reply. Between replies it waits among the loop's spares, not
/// on the connection.
const FIRST_CHUNK_BYTES: usize = 128;

/// How many chunks one `writev()` hands to the kernel.
const MAX_IOVECS: usize = 16;

/// How many drained queues the loop keeps. A queue is taken just before
/// a connection's input is handled and given back as soon as its output
/// is written, so only connections with output still pending hold one; a
/// few dozen cover a busy loop.
const MAX_SPARE_QUEUES: usize = 32;

/// A drained reply chunk bigger than this goes back to the allocator
/// instead: the spares exist for the many small replies, and must not
/// keep the high-water mark of a burst.
const MAX_SPARE_CHUNK_BYTES: usize = 1024;

/// Nor is a ring kept that a burst grew past this many chunks. With the
/// two limits the spares hold at most 32 x (1 KiB + 8 x 24 bytes), under
/// 40 KiB, however the connections behaved.
const MAX_SPARE_RING_CHUNKS: usize = 8;

enum Chunk {
    Owned(Vec<u8>),
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(bytes) => bytes,
            Chunk::Shared(bytes) => bytes,
        }
    }
}

/// Emptied output queues, kept by the loop for the next reply of any
/// connection.
///
/// Why: at one request per event (a client that waits for each answer),
/// a reply allocated and freed its chunk and its queue's ring every time,
/// and those four calls into the allocator cost more than decoding the
/// request. Keeping the buffers on each connection instead would make
/// every idle connection hold them; kept here, their number is bounded by
/// how many connections are mid-reply, not by how many are connected.
/// (memcached keeps freelists of connection buffers for the same reason.)
/// Each spare is a ring holding one empty, allocated reply chunk, so
/// taking one is a single move.
#[derive(Default)]
pub struct SpareBuffers {
    ready: Vec<VecDeque<Chunk>>,
}

/// The pending output of one connection.
#[derive(Default)]
pub struct OutputQueue {
    chunks: VecDeque<Chunk>,
    /// How much of the front chunk has already been written.
    cursor: usize,
    pending_bytes: usize,
    /// Bytes written since the queue was made: with [`OutputQueue::queued_total`]
    /// it tells when a given byte has been handed to the kernel.
    written_total: u64,
}

/// What a [`OutputQueue::write_to`] call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteProgress {
    /// Bytes the socket took.
    pub written: usize,
    /// Whether the socket said `WouldBlock` (so wait for WRITABLE).
    pub blocked: bool,
}

impl OutputQueue {
    /// Bytes not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Bytes handed to the writer since the queue was made.
    pub fn written_total(&self) -> u64 {
        self.written_total
    }

    /// Bytes ever queued: the position the next queued byte will have.
    pub fn queued_total(&self) -> u64 {
        self.written_total + self.pending_bytes as u64
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.pending_bytes == 0
    }

    /// Queues a copy of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.push_reply(bytes, b"");
    }

    /// Queues copies of `text` and then `terminator` (a reply and its line
    /// end), back to back. Two arguments rather than a list of pieces:
    /// this runs once per request, and a loop over a slice of slices cost
    /// more here than the copies themselves.
    pub fn push_reply(&mut self, text: &[u8], terminator: &[u8]) {
        let len = text.len() + terminator.len();
        if len == 0 {
            return;
        }
        self.pending_bytes += len;
        // Never append to the front chunk once writing has started on it:
        // the cursor points into it. Appending after the cursor is safe,
        // but keeping the rule simple costs nothing measurable.
        let can_append = self.chunks.len() > 1 || self.cursor == 0;
        if let (true, Some(Chunk::Owned(last))) = (can_append, self.chunks.back_mut()) {
            if last.len() + len <= COALESCE_LIMIT_BYTES {
                last.extend_from_slice(text);
                last.extend_from_slice(terminator);
                return;
            }
        }
        let mut chunk = Vec::with_capacity(len.max(FIRST_CHUNK_BYTES));
        chunk.extend_from_slice(text);
        chunk.extend_from_slice(terminator);
        self.chunks.push_back(Chunk::Owned(chunk));
    }

    /// Queues a shared buffer (a frame) without copying it.
    pub fn push_shared(&mut self, bytes: Rc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        self.pending_bytes += bytes.len();
        self.chunks.push_back(Chunk::Shared(bytes));
    }

    /// Makes the next small reply free of allocation: a queue that owns
    /// nothing takes a spare (a ring with an empty chunk) if there is one.
    pub fn stock(&mut self, spares: &mut SpareBuffers) {
        if self.chunks.capacity() == 0 {
            if let Some(ready) = spares.ready.pop() {
                self.chunks = ready;
            }
        }
    }

    /// Once everything is written, gives the queue's buffers back: to
    /// `spares` if they are one small reply chunk in its ring, else to the
    /// allocator. Afterwards an empty queue holds no memory.
    pub fn release(&mut self, spares: &mut SpareBuffers) {
        if !self.is_empty() || self.chunks.capacity() == 0 {
            return;
        }
        let reusable = match self.chunks.front() {
            Some(Chunk::Owned(bytes)) => {
                self.chunks.len() == 1
                    && bytes.capacity() <= MAX_SPARE_CHUNK_BYTES
                    && self.chunks.capacity() <= MAX_SPARE_RING_CHUNKS
            }
            _ => false,
        };
        self.cursor = 0;
        let drained = std::mem::take(&mut self.chunks);
        if reusable && spares.ready.len() < MAX_SPARE_QUEUES {
            spares.ready.push(drained);
        }
    }

    /// Writes until the queue is empty or the writer says `WouldBlock`.
    /// `Interrupted` is retried; any other error is returned as is.
    /// Once everything is written, the buffers go to `spares` ([`OutputQueue::release`]).
    pub fn write_to<W: Write>(
        &mut self,
        writer: &mut W,
        spares: &mut SpareBuffers,
    ) -> io::Result<WriteProgress> {
        let mut progress = WriteProgress {
            written: 0,
            blocked: false,
        };
        while !self.is_empty() {
            let result = if self.chunks.len() == 1 {
                // The usual case (one reply, or several coalesced): one
                // plain write(); writev() would first copy in an iovec
                // array for nothing.
                writer.write(&self.chunks[0].bytes()[self.cursor..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (index, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                    let start = if index == 0 { self.cursor } else { 0 };
                    slices[count] = IoSlice::new(&chunk.bytes()[start..]);
                    count += 1;
                }
                writer.write_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    progress.written += written;
                    self.advance(written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    progress.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // An idle connection should cost a few hundred bytes, not the
        // high-water mark of a burst: what is drained goes to the spares.
        self.release(spares);
        Ok(progress)
    }

    fn advance(&mut self, mut written: usize) {
        self.pending_bytes -= written;
        self.written_total += written as u64;
        while written > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left_in_front = front.bytes().len() - self.cursor;
            if written < left_in_front {
                self.cursor += written;
                return;
            }
            written -= left_in_front;
            self.cursor = 0;
            let last = self.chunks.len() == 1;
            match self.chunks.front_mut() {
                // The last chunk, written out: keep its memory for the next
                // reply (`release` decides whether it stays).
                Some(Chunk::Owned(bytes)) if last => {
                    bytes.clear();
                    break;
                }
                _ => {
                    self.chunks.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `budget` bytes per call, then blocks.
    struct Trickle {
        taken: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.per_call);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_at_the_cursor_in_order() {
        let mut queue = OutputQueue::default();
        queue.push_bytes(b"FRAME 5\n");
        queue.push_shared(Rc::from(&b"JPEG!"[..]));
        queue.push_bytes(b"PONG\n");
        let mut sink = Trickle {
            taken: Vec::new(),
            per_call: 3,
            calls_left: 2,
        };
        let progress = queue
            .write_to(&mut sink, &mut SpareBuffers::default())
            .unwrap();
        assert_eq!(
            progress,
            WriteProgress {
                written: 6,
                blocked: true
            }
        );
        assert_eq!(queue.pending_bytes(), 12);
        // Appending while the front is half written must not disturb it.
        queue.push_bytes(b"Bye\n");
        sink.calls_left = usize::MAX;
        let progress = queue
            .write_to(&mut sink, &mut SpareBuffers::default())
            .unwrap();
        assert!(!progress.blocked);
        assert!(queue.is_empty());
        assert_eq!(sink.taken, b"FRAME 5\nJPEG!PONG\nBye\n");
    }

    /// Writes everything to a Vec, as a socket that takes it all would.
    fn drain(queue: &mut OutputQueue, spares: &mut SpareBuffers) -> Vec<u8> {
        let mut written = Vec::new();
        queue.write_to(&mut written, spares).unwrap();
        written
    }

    #[test]
    fn a_written_queue_lends_its_buffers_to_the_next_reply() {
        let mut spares = SpareBuffers::default();
        let mut first = OutputQueue::default();
        first.push_reply(b"PONG", b"\n");
        let chunk_at = first.chunks[0].bytes().as_ptr();
        assert_eq!(drain(&mut first, &mut spares), b"PONG\n");
        // The connection that answered holds nothing any more...
        assert_eq!(first.chunks.capacity(), 0);
        assert_eq!(spares.ready.len(), 1);
        // ...and the next one to answer replies into the same memory.
        let mut second = OutputQueue::default();
        second.stock(&mut spares);
        assert!(spares.ready.is_empty());
        assert!(second.is_empty(), "a stocked queue has nothing to send");
        second.push_reply(b"Received", b"\n");
        assert_eq!(second.chunks.len(), 1);
        assert_eq!(second.chunks[0].bytes().as_ptr(), chunk_at);
        assert_eq!(drain(&mut second, &mut spares), b"Received\n");
    }

    #[test]
    fn a_stocked_queue_keeps_order_with_frames_and_returns_what_it_did_not_use() {
        let mut spares = SpareBuffers::default();
        let mut queue = OutputQueue::default();
        queue.push_bytes(b"x");
        drain(&mut queue, &mut spares);
        queue.stock(&mut spares);
        queue.push_shared(Rc::from(&b"JPEG"[..]));
        queue.push_bytes(b"\r\n");
        assert_eq!(queue.pending_bytes(), 6);
        assert_eq!(drain(&mut queue, &mut spares), b"JPEG\r\n");
        // Stocked and never written into: `release` gives it back.
        queue.stock(&mut spares);
        assert_eq!(queue.chunks.len(), 1);
        queue.release(&mut spares);
        assert_eq!(queue.chunks.capacity(), 0);
        assert_eq!(spares.ready.len(), 1);
    }

    #[test]
    fn spares_are_bounded_in_number_and_size() {
        let mut spares = SpareBuffers::default();
        let mut big = OutputQueue::default();
        big.push_bytes(&[b'b'; 2 * MAX_SPARE_CHUNK_BYTES]);
        drain(&mut big, &mut spares);
        assert!(spares.ready.is_empty(), "a burst's chunk is freed");
        let mut queues: Vec<OutputQueue> = (0..MAX_SPARE_QUEUES + 5)
            .map(|_| {
                let mut queue = OutputQueue::default();
                queue.push_bytes(b"PONG\n");
                queue
            })
            .collect();
        for queue in &mut queues {
            drain(queue, &mut spares);
            assert_eq!(queue.chunks.capacity(), 0);
        }
        assert_eq!(spares.ready.len(), MAX_SPARE_QUEUES);
    }

    #[test]
    fn a_ring_grown_by_a_burst_is_not_kept() {
        let mut spares = SpareBuffers::default();
        let mut queue = OutputQueue::default();
        let frame: Rc<[u8]> = Rc::from(&b"JPEG"[..]);
        for _ in 0..MAX_SPARE_RING_CHUNKS {
            queue.push_shared(frame.clone());
            queue.push_bytes(b"\r\n");
        }
        assert!(queue.chunks.capacity() > MAX_SPARE_RING_CHUNKS);
        drain(&mut queue, &mut spares);
        assert_eq!(queue.chunks.capacity(), 0);
        assert!(
            spares.ready.is_empty(),
            "its ring went back to the allocator"
        );
    }

    #[test]
    fn small_replies_are_coalesced() {
        let mut queue = OutputQueue::default();
        for _ in 0..1000 {
            queue.push_bytes(b"PONG\n");
        }
        assert_eq!(queue.chunks.len(), 1);
        assert_eq!(queue.pending_bytes(), 5000);
    }
}

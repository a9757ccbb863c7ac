//! Pending output: small replies and shared frames, with a cursor.
//!
//! Every byte camloop writes to a descriptor that may not take it all goes
//! through an [`OutputQueue`]: a client connection's replies and frames,
//! and the frames fed to a converter child's stdin pipe. It lives outside
//! [`crate::server`] so the camera side can use it without reaching into
//! the server.
//!
//! Replies are appended as they are produced and written at once; whatever
//! the socket does not take stays here, and the cursor remembers how far the
//! front got. Replies go into one byte buffer, the tail, so a request's
//! answer is an append and a read's worth of answers goes out in one
//! `write()`. JPEG frames are queued as `Rc<[u8]>` ahead of the tail, so a
//! hundred viewers of one frame hold one copy of it. Nothing here touches a
//! socket except through the `Write` handed to [`OutputQueue::write_to`].
//!
//! A queue that has been written out gives its tail to the loop's
//! [`SpareBuffers`], and the next connection about to answer takes it from
//! there ([`OutputQueue::stock`]): replies cost no allocation, and an idle
//! connection still holds no output buffer at all.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// A new tail starts with room for this many bytes (a read's worth of
/// pipelined `PONG`s), so a burst grows it rarely, not once per reply.
/// Between replies it waits among the loop's spares, not on the connection.
const FIRST_TAIL_BYTES: usize = 128;

/// How many chunks (frames and what came between them) one `writev()`
/// hands to the kernel, the tail included.
const MAX_IOVECS: usize = 16;

/// A drained frame ring with room for more chunks than this goes back to
/// the allocator (a GOP cache sent at once grows it); a smaller one stays
/// for the viewer's next frame.
const MAX_KEPT_RING_CHUNKS: usize = 8;

/// How many drained tails the loop keeps. A tail is taken just before a
/// connection's input is handled and given back as soon as its output is
/// written, so only connections with output still pending hold one; a few
/// dozen cover a busy loop.
const MAX_SPARE_TAILS: usize = 32;

/// A drained tail bigger than this goes back to the allocator instead: the
/// spares exist for the many small replies, and must not keep the
/// high-water mark of a burst. With [`MAX_SPARE_TAILS`] the spares hold at
/// most 32 KiB, however the connections behaved.
const MAX_SPARE_TAIL_BYTES: usize = 1024;

/// Output queued ahead of the tail.
enum Chunk {
    /// Bytes that were the tail when a frame was queued after them.
    Owned(Vec<u8>),
    /// A frame, shared with every other connection sending it.
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

/// Emptied reply buffers, kept by the loop for the next reply of any
/// connection.
///
/// Why: at one request per event (a client that waits for each answer),
/// a reply allocated and freed its buffer every time, and those calls
/// into the allocator cost more than decoding the request. Keeping the
/// buffer on each connection instead would make every idle connection
/// hold one; kept here, their number is bounded by how many connections
/// are mid-reply, not by how many are connected. (memcached keeps
/// freelists of connection buffers for the same reason.)
#[derive(Default)]
pub struct SpareBuffers {
    ready: Vec<Vec<u8>>,
}

/// The pending output of one connection, in order: `chunks`, then `tail`.
#[derive(Default)]
pub struct OutputQueue {
    /// Frames, and the replies queued before each. Allocated at the
    /// connection's first frame and kept, drained, for the next: a viewer
    /// is handed a frame every frame interval, and making the ring anew
    /// each time cost two trips to the allocator per viewer per frame. A
    /// connection that only answers requests never has it, and its slab
    /// slot stays small.
    #[allow(clippy::box_collection, reason = "8 bytes in every slab slot, not 32")]
    chunks: Option<Box<VecDeque<Chunk>>>,
    /// Replies queued after everything in `chunks`, back to back.
    tail: Vec<u8>,
    /// How much of the front (the first chunk, or the tail when there is
    /// none) has already been written.
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
    /// end), back to back: two appends to the tail. (The cursor may point
    /// into the tail; appending leaves what it points at where it is.)
    #[inline]
    pub fn push_reply(&mut self, text: &[u8], terminator: &[u8]) {
        let len = text.len() + terminator.len();
        if len == 0 {
            return;
        }
        self.pending_bytes += len;
        if self.tail.capacity() == 0 {
            self.tail.reserve(FIRST_TAIL_BYTES);
        }
        self.tail.extend_from_slice(text);
        // At most two bytes: pushed one by one, as a call to copy them
        // would cost more than the copy.
        for &byte in terminator {
            self.tail.push(byte);
        }
    }

    /// Queues a shared buffer (a frame) without copying it, after
    /// everything queued so far.
    pub fn push_shared(&mut self, bytes: Rc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        let chunks = self.chunks.get_or_insert_with(Box::default);
        if !self.tail.is_empty() {
            chunks.push_back(Chunk::Owned(std::mem::take(&mut self.tail)));
        }
        self.pending_bytes += bytes.len();
        chunks.push_back(Chunk::Shared(bytes));
    }

    /// Makes the next small reply free of allocation: a queue without a
    /// tail buffer takes a spare one if there is one.
    pub fn stock(&mut self, spares: &mut SpareBuffers) {
        if self.tail.capacity() == 0 {
            if let Some(spare) = spares.ready.pop() {
                self.tail = spare;
            }
        }
    }

    /// Once everything is written, gives the queue's buffers back: a small
    /// tail to `spares`, a large frame ring and a large tail to the
    /// allocator. Afterwards an empty queue holds at most a small frame
    /// ring, and only if it has been sent frames.
    #[inline]
    pub fn release(&mut self, spares: &mut SpareBuffers) {
        if !self.is_empty() {
            return;
        }
        self.cursor = 0;
        if self
            .chunks
            .as_ref()
            .is_some_and(|chunks| chunks.capacity() > MAX_KEPT_RING_CHUNKS)
        {
            self.chunks = None;
        }
        let capacity = self.tail.capacity();
        if capacity > 0 {
            let mut tail = std::mem::take(&mut self.tail);
            if capacity <= MAX_SPARE_TAIL_BYTES && spares.ready.len() < MAX_SPARE_TAILS {
                tail.clear();
                spares.ready.push(tail);
            }
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
            let result = match self.lone_piece() {
                // The usual cases: replies back to back, or a viewer's
                // frame. One plain write(), which on a socket is send():
                // writev() would first import an iovec array and go
                // through the file layer, for nothing.
                Some(piece) => writer.write(piece),
                None => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    let count = self.io_slices(&mut slices);
                    writer.write_vectored(&slices[..count])
                }
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

    /// Fills `slices` with the chunks and then the tail, from the cursor,
    /// for one `writev()`; returns how many it filled (the rest waits).
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let pieces = self
            .chunks
            .iter()
            .flat_map(|chunks| chunks.iter().map(Chunk::bytes));
        let pieces = pieces.chain(std::iter::once(&self.tail[..]));
        // Chunks are never empty, so the cursor is into the first piece.
        let pieces = pieces.filter(|piece| !piece.is_empty());
        let mut count = 0;
        for (slice, piece) in slices.iter_mut().zip(pieces) {
            let start = if count == 0 { self.cursor } else { 0 };
            *slice = IoSlice::new(&piece[start..]);
            count += 1;
        }
        count
    }

    /// What is left to write, from the cursor, when it is all one piece:
    /// the tail with no frame queued, or one frame with nothing after it.
    fn lone_piece(&self) -> Option<&[u8]> {
        let Some(chunks) = self.chunks.as_deref() else {
            return Some(&self.tail[self.cursor..]);
        };
        match chunks.len() {
            0 => Some(&self.tail[self.cursor..]),
            1 if self.tail.is_empty() => Some(&chunks[0].bytes()[self.cursor..]),
            _ => None,
        }
    }

    fn advance(&mut self, mut written: usize) {
        self.pending_bytes -= written;
        self.written_total += written as u64;
        if let Some(chunks) = &mut self.chunks {
            while let Some(front) = chunks.front() {
                let left_in_front = front.bytes().len() - self.cursor;
                if written < left_in_front {
                    self.cursor += written;
                    return;
                }
                written -= left_in_front;
                self.cursor = 0;
                chunks.pop_front();
            }
        }
        self.cursor += written;
        if self.cursor == self.tail.len() {
            // All written: the tail's memory stays for the next reply
            // (`release` decides whether it stays here).
            self.tail.clear();
            self.cursor = 0;
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
    fn a_half_written_tail_takes_more_replies_and_frames_in_order() {
        let mut queue = OutputQueue::default();
        queue.push_reply(b"PONG", b"\n");
        let mut sink = Trickle {
            taken: Vec::new(),
            per_call: 2,
            calls_left: 1,
        };
        let mut spares = SpareBuffers::default();
        queue.write_to(&mut sink, &mut spares).unwrap();
        // The cursor is inside the tail now: append to it, then a frame
        // (which moves the half-written tail ahead of itself), then more.
        queue.push_reply(b"Received", b"\r\n");
        queue.push_shared(Rc::from(&b"JPEG"[..]));
        queue.push_bytes(b"\r\n");
        assert_eq!(queue.pending_bytes(), 3 + 10 + 4 + 2);
        assert_eq!(queue.written_total(), 2);
        sink.calls_left = usize::MAX;
        queue.write_to(&mut sink, &mut spares).unwrap();
        assert!(queue.is_empty());
        assert_eq!(sink.taken, b"PONG\nReceived\r\nJPEG\r\n");
        assert_eq!(queue.written_total(), 5 + 10 + 4 + 2);
    }

    #[test]
    fn a_written_queue_lends_its_buffers_to_the_next_reply() {
        let mut spares = SpareBuffers::default();
        let mut first = OutputQueue::default();
        first.push_reply(b"PONG", b"\n");
        let tail_at = first.tail.as_ptr();
        assert_eq!(drain(&mut first, &mut spares), b"PONG\n");
        // The connection that answered holds nothing any more...
        assert_eq!(first.tail.capacity(), 0);
        assert_eq!(spares.ready.len(), 1);
        // ...and the next one to answer replies into the same memory.
        let mut second = OutputQueue::default();
        second.stock(&mut spares);
        assert!(spares.ready.is_empty());
        assert!(second.is_empty(), "a stocked queue has nothing to send");
        second.push_reply(b"Received", b"\n");
        assert_eq!(second.tail.as_ptr(), tail_at);
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
        // Written out, it keeps its small frame ring, empty, for the next
        // frame, but not the tail.
        assert!(queue.chunks.as_ref().is_some_and(|ring| ring.is_empty()));
        assert_eq!(queue.tail.capacity(), 0);
        // Stocked and never written into: `release` gives it back.
        queue.stock(&mut spares);
        assert!(queue.tail.capacity() > 0);
        queue.release(&mut spares);
        assert_eq!(queue.tail.capacity(), 0);
        assert_eq!(spares.ready.len(), 1);
    }

    #[test]
    fn a_viewer_keeps_its_drained_frame_ring_but_not_a_bursts() {
        let mut spares = SpareBuffers::default();
        let mut queue = OutputQueue::default();
        queue.push_shared(Rc::from(&b"AU 1"[..]));
        assert_eq!(drain(&mut queue, &mut spares), b"AU 1");
        let ring_at = queue.chunks.as_deref().map(|ring| ring as *const _);
        assert!(ring_at.is_some(), "the drained ring is kept");
        queue.push_shared(Rc::from(&b"AU 2"[..]));
        assert_eq!(
            queue.chunks.as_deref().map(|ring| ring as *const _),
            ring_at
        );
        assert_eq!(drain(&mut queue, &mut spares), b"AU 2");
        // A GOP cache's worth at once grows the ring past what is kept.
        for _ in 0..2 * MAX_KEPT_RING_CHUNKS {
            queue.push_shared(Rc::from(&b"AU"[..]));
        }
        drain(&mut queue, &mut spares);
        assert!(queue.chunks.is_none(), "a burst's ring is freed");
    }

    /// Counts which call the queue makes: a lone frame takes `write`
    /// (send() on a socket), more than one piece `write_vectored`.
    #[derive(Default)]
    struct CallCounter {
        taken: Vec<u8>,
        writes: usize,
        vectored_writes: usize,
    }

    impl Write for CallCounter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.taken.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.vectored_writes += 1;
            let before = self.taken.len();
            for buf in bufs {
                self.taken.extend_from_slice(buf);
            }
            Ok(self.taken.len() - before)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lone_frame_is_one_plain_write_and_a_frame_with_replies_one_vectored() {
        let mut spares = SpareBuffers::default();
        let mut queue = OutputQueue::default();
        let mut socket = CallCounter::default();
        queue.push_shared(Rc::from(&b"AU"[..]));
        queue.write_to(&mut socket, &mut spares).unwrap();
        assert_eq!((socket.writes, socket.vectored_writes), (1, 0));
        queue.push_bytes(b"RTCP");
        queue.push_shared(Rc::from(&b"AU"[..]));
        queue.write_to(&mut socket, &mut spares).unwrap();
        assert_eq!((socket.writes, socket.vectored_writes), (1, 1));
        assert_eq!(socket.taken, b"AURTCPAU");
    }

    #[test]
    fn spares_are_bounded_in_number_and_size() {
        let mut spares = SpareBuffers::default();
        let mut big = OutputQueue::default();
        big.push_bytes(&[b'b'; 2 * MAX_SPARE_TAIL_BYTES]);
        drain(&mut big, &mut spares);
        assert!(spares.ready.is_empty(), "a burst's buffer is freed");
        let mut queues: Vec<OutputQueue> = (0..MAX_SPARE_TAILS + 5)
            .map(|_| {
                let mut queue = OutputQueue::default();
                queue.push_bytes(b"PONG\n");
                queue
            })
            .collect();
        for queue in &mut queues {
            drain(queue, &mut spares);
            assert_eq!(queue.tail.capacity(), 0);
        }
        assert_eq!(spares.ready.len(), MAX_SPARE_TAILS);
    }

    #[test]
    fn small_replies_are_coalesced() {
        let mut queue = OutputQueue::default();
        for _ in 0..1000 {
            queue.push_bytes(b"PONG\n");
        }
        assert!(queue.chunks.is_none());
        assert_eq!(queue.tail.len(), 5000);
        assert_eq!(queue.pending_bytes(), 5000);
    }
}

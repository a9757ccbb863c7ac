//! A connection's pending output: small replies and shared frames, with a
//! cursor.
//!
//! Replies are appended as they are produced and written at once; whatever
//! the socket does not take stays here, and the cursor remembers how far the
//! front chunk got. JPEG frames are queued as `Rc<[u8]>` so a hundred viewers
//! of one frame hold one copy of it. Nothing here touches a socket except
//! through the `Write` handed to [`OutputQueue::write_to`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Small replies are coalesced into one owned chunk up to this size, so a
/// thousand pipelined `PONG`s go out in one `write()`, not a thousand.
const COALESCE_LIMIT_BYTES: usize = 16 * 1024;

/// A new chunk of small replies starts with room for this many bytes (a
/// read's worth of pipelined `PONG`s), so a burst grows it rarely, not
/// once per reply. It lives only while output is pending.
const FIRST_CHUNK_BYTES: usize = 128;

/// How many chunks one `writev()` hands to the kernel.
const MAX_IOVECS: usize = 16;

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
        self.push_pieces(&[bytes]);
    }

    /// Queues copies of `pieces`, back to back (a reply and its terminator).
    pub fn push_pieces(&mut self, pieces: &[&[u8]]) {
        let len: usize = pieces.iter().map(|piece| piece.len()).sum();
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
                for piece in pieces {
                    last.extend_from_slice(piece);
                }
                return;
            }
        }
        let mut chunk = Vec::with_capacity(len.max(FIRST_CHUNK_BYTES));
        for piece in pieces {
            chunk.extend_from_slice(piece);
        }
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

    /// Writes until the queue is empty or the writer says `WouldBlock`.
    /// `Interrupted` is retried; any other error is returned as is.
    pub fn write_to<W: Write>(&mut self, writer: &mut W) -> io::Result<WriteProgress> {
        let mut progress = WriteProgress {
            written: 0,
            blocked: false,
        };
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (index, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let start = if index == 0 { self.cursor } else { 0 };
                slices[count] = IoSlice::new(&chunk.bytes()[start..]);
                count += 1;
            }
            match writer.write_vectored(&slices[..count]) {
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
        if self.chunks.is_empty() {
            // Give back the ring's memory: an idle connection should cost
            // a few hundred bytes, not the high-water mark of a burst.
            self.chunks = VecDeque::new();
        }
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
            self.chunks.pop_front();
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
        let progress = queue.write_to(&mut sink).unwrap();
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
        let progress = queue.write_to(&mut sink).unwrap();
        assert!(!progress.blocked);
        assert!(queue.is_empty());
        assert_eq!(sink.taken, b"FRAME 5\nJPEG!PONG\nBye\n");
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

//! Streaming chunk iterator with a bounded buffer.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

use crate::Chunker;

/// Smallest read issued to the source, to keep syscall counts low on large files.
const MIN_READ: usize = 256 * 1024;

/// Iterator over the chunks of a stream; created by [`Chunker::chunks`].
///
/// Each item is an owned chunk (a `Bytes` that shares the read buffer, so no bytes are
/// copied) or the I/O error that stopped the stream. After an error the iterator ends.
/// Memory held by the iterator itself is at most about `2 * max_size`.
pub struct Chunks<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    buf: BytesMut,
    /// How many bytes to try to hold before cutting: the maximum chunk size, or less
    /// when the stream is known to be shorter.
    want: usize,
    /// Bytes the source is still expected to hold, plus one to see its end: reads are
    /// no longer than this, so a small file costs a small buffer (the buffer is zeroed
    /// before each read). Zero once the hint is used up (a file that grew).
    expect_left: u64,
    eof: bool,
    failed: bool,
}

impl<R> std::fmt::Debug for Chunks<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("buffered", &self.buf.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<'c, R: Read> Chunks<'c, R> {
    pub(crate) fn new(chunker: &'c Chunker, reader: R, size_hint: u64) -> Self {
        let max = chunker.params.max_size as usize;
        // One byte more than the hint lets a file of exactly the hinted size see EOF
        // without a second allocation.
        let hint = usize::try_from(size_hint.saturating_add(1)).unwrap_or(usize::MAX);
        Self {
            chunker,
            reader,
            buf: BytesMut::with_capacity(hint.min(max.max(MIN_READ))),
            want: max,
            expect_left: size_hint.saturating_add(1),
            eof: false,
            failed: false,
        }
    }

    /// Reads until at least `want` bytes are buffered or the source ends.
    fn fill(&mut self) -> io::Result<()> {
        while !self.eof && self.buf.len() < self.want {
            let missing = self.want - self.buf.len();
            let mut read_len = missing.max(MIN_READ.min(self.want));
            if self.expect_left > 0 {
                read_len = read_len.min(usize::try_from(self.expect_left).unwrap_or(usize::MAX));
            }
            let start = self.buf.len();
            self.buf.resize(start + read_len, 0);
            let got = loop {
                match self.reader.read(&mut self.buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(start + got);
            self.expect_left = self.expect_left.saturating_sub(got as u64);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }
}

impl<R: Read> Iterator for Chunks<'_, R> {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Err(e) = self.fill() {
            self.failed = true;
            return Some(Err(e));
        }
        let cut = self.chunker.next_cut(&self.buf);
        if cut == 0 {
            return None;
        }
        Some(Ok(self.buf.split_to(cut).freeze()))
    }
}

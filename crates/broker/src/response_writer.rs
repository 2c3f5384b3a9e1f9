//! Writes a response made of chunks ([`Chunk`]) to a client socket: framing bytes as they are,
//! record ranges of segment files with `sendfile(2)`, straight from the page cache to the
//! socket, so the records of a fetch are never copied through user space.
//!
//! The socket is tokio's, non-blocking: each system call runs in `try_io` after
//! `writable()`, and partial writes and `WouldBlock` loop. A range whose file turned out
//! shorter than the range (truncation or retention raced the fetch: `sendfile` returns 0
//! before the range's end) fails with [`WriteError::ShortFile`]: part of the response is on
//! the wire and the rest cannot be made right, so the caller closes the connection, as Kafka
//! does.
//!
//! Small framing chunks (the length prefix and partition header between two ranges) would each
//! leave as a TCP segment of their own. [`Coalescing`] says how they are merged with the
//! record bytes; the connection uses [`COALESCING`] (see its doc for the measurement). Ranges
//! too short to be worth a `sendfile` never get here: the fetch handler copies them into the
//! framing.
//!
//! Blocking: `sendfile` reads the file synchronously on the calling (runtime) thread. Fetches
//! read recent data, which is in the page cache; a range evicted from it stalls this thread
//! for the disk read, as Kafka's network threads do with `FileChannel.transferTo`.
//!
//! `sendfile` is Linux's; elsewhere ranges are read into memory and written.

use std::io;

use rivulet_protocol::Chunk;
use rivulet_storage::FileSlice;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Why a response could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The socket failed (the client went away, a reset).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A range's file ended before the range did (it was truncated or deleted and reused):
    /// the response on the wire is cut short.
    #[error("segment file ended {missing} bytes before the end of the range {position}+{len}")]
    ShortFile {
        /// Start of the range in the file.
        position: u64,
        /// Length of the range.
        len: u64,
        /// Bytes of the range that could not be sent.
        missing: u64,
    },
}

/// How framing bytes are merged with the record bytes around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coalescing {
    /// Nothing: each chunk is its own system call and may leave as its own segment.
    Off,
    /// `TCP_CORK` is set while a response with ranges is written, then cleared (which sends
    /// the last partial segment): two more system calls per response.
    Cork,
    /// Framing chunks followed by a range are sent with `MSG_MORE`, so the kernel holds them
    /// for the range's bytes; the end of each range is still pushed at once.
    MsgMore,
}

/// What the connection uses: `MSG_MORE`. Measured with `cargo bench -p rivulet-broker --bench
/// response_writer` (docs/benchmarks.md, "Fetch by sendfile"), as the writer's CPU time for
/// 16 ranges of 64 KiB to 1 MiB: `MSG_MORE` costs the same as nothing or less (the framing
/// rides in the records' first segment instead of a segment of its own), `TCP_CORK` 30-60%
/// more.
pub const COALESCING: Coalescing = Coalescing::MsgMore;

/// Most bytes one `sendfile` call may move (Linux's own limit).
const MAX_SENDFILE: u64 = 0x7fff_f000;

/// Writes `chunks` in order to `stream`. Returns the bytes written.
pub async fn write_chunks(
    stream: &TcpStream,
    chunks: &[Chunk<FileSlice>],
    coalescing: Coalescing,
) -> Result<u64, WriteError> {
    let cork = coalescing == Coalescing::Cork && chunks.len() > 1;
    if cork {
        sys::set_cork(stream, true)?;
    }
    let mut written = 0u64;
    for (i, chunk) in chunks.iter().enumerate() {
        match chunk {
            Chunk::Bytes(b) => {
                let more = coalescing == Coalescing::MsgMore
                    && matches!(chunks.get(i + 1), Some(Chunk::Range(_)));
                write_bytes(stream, b, more).await?;
                written += b.len() as u64;
            }
            Chunk::Range(slice) => {
                sys::send_file(stream, slice).await?;
                written += slice.len;
            }
        }
    }
    if cork {
        sys::set_cork(stream, false)?;
    }
    Ok(written)
}

/// Writes all of `buf`; with `more`, tells the kernel more data follows at once (MSG_MORE).
async fn write_bytes(stream: &TcpStream, mut buf: &[u8], more: bool) -> io::Result<()> {
    while !buf.is_empty() {
        stream.writable().await?;
        let sent = if more {
            stream.try_io(Interest::WRITABLE, || sys::send_more(stream, buf))
        } else {
            stream.try_write(buf)
        };
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod sys {
    //! The Linux system calls: `sendfile`, `send` with `MSG_MORE`, `TCP_CORK`.

    use std::io;
    use std::os::fd::AsRawFd;

    use rivulet_storage::FileSlice;
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::{WriteError, MAX_SENDFILE};

    /// Sends all of `slice` from its file to `stream`.
    pub(super) async fn send_file(stream: &TcpStream, slice: &FileSlice) -> Result<(), WriteError> {
        let file = slice.file().as_raw_fd();
        let socket = stream.as_raw_fd();
        let end = slice.position + slice.len;
        let mut position = slice.position;
        while position < end {
            stream.writable().await?;
            let count = (end - position).min(MAX_SENDFILE) as usize;
            let sent = stream.try_io(Interest::WRITABLE, || {
                let mut offset = libc::off_t::try_from(position)
                    .map_err(|_| io::Error::other("file position beyond off_t"))?;
                // SAFETY: `socket` and `file` are open descriptors borrowed from `stream` and
                // `slice`, both alive for the call; `offset` is a valid, exclusive pointer.
                let n = unsafe { libc::sendfile(socket, file, &mut offset, count) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(n as u64)
            });
            match sent {
                Ok(0) => {
                    return Err(WriteError::ShortFile {
                        position: slice.position,
                        len: slice.len,
                        missing: end - position,
                    })
                }
                Ok(n) => position += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One `send(2)` of `buf` with `MSG_MORE` (and `MSG_NOSIGNAL`: a closed peer is an error,
    /// not a signal).
    pub(super) fn send_more(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the descriptor is open for the call and `buf` is valid for `buf.len()` bytes.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sets or clears `TCP_CORK` (clearing it sends what it held back).
    pub(super) fn set_cork(stream: &TcpStream, on: bool) -> io::Result<()> {
        let value: libc::c_int = on.into();
        // SAFETY: the descriptor is open for the call; the option value is a valid c_int of
        // the length given.
        let r = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! Without `sendfile`: ranges are read into memory and written; no coalescing.

    use std::io;
    use std::os::unix::fs::FileExt;

    use rivulet_storage::FileSlice;
    use tokio::net::TcpStream;

    use super::WriteError;

    /// Reads `slice` and writes it to `stream`.
    pub(super) async fn send_file(stream: &TcpStream, slice: &FileSlice) -> Result<(), WriteError> {
        let mut buf = vec![0u8; slice.len as usize];
        let mut read = 0;
        while read < buf.len() {
            match slice
                .file()
                .read_at(&mut buf[read..], slice.position + read as u64)?
            {
                0 => {
                    return Err(WriteError::ShortFile {
                        position: slice.position,
                        len: slice.len,
                        missing: slice.len - read as u64,
                    })
                }
                n => read += n,
            }
        }
        super::write_bytes(stream, &buf, false).await?;
        Ok(())
    }

    /// A plain write (no `MSG_MORE` here).
    pub(super) fn send_more(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
        stream.try_write(buf)
    }

    /// No `TCP_CORK` here.
    pub(super) fn set_cork(_stream: &TcpStream, _on: bool) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected loopback pair: (the side written to, the side read from).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.expect("accept").0, client.expect("connect"))
    }

    /// A file holding `content`, shared as segment files are.
    fn file_with(content: &[u8]) -> Arc<std::fs::File> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(content).expect("write");
        Arc::new(f)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Reads until the peer closes, with a bound.
    async fn read_all(mut stream: TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
            .await
            .expect("the writer closed in time")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn chunks_arrive_in_order_with_every_coalescing() {
        // Larger than the socket buffers, so sendfile writes partially and waits.
        let content = pattern(8 << 20);
        let file = file_with(&content);
        for coalescing in [Coalescing::Off, Coalescing::Cork, Coalescing::MsgMore] {
            let ranges = [(0u64, 100u64), (100, 5 << 20), (7 << 20, 1 << 20), (3, 1)];
            let mut chunks = Vec::new();
            let mut expected = Vec::new();
            for (i, &(position, len)) in ranges.iter().enumerate() {
                let framing = format!("framing {i}");
                expected.extend_from_slice(framing.as_bytes());
                chunks.push(Chunk::Bytes(Bytes::from(framing)));
                chunks.push(Chunk::Range(FileSlice::new(
                    Arc::clone(&file),
                    position,
                    len,
                )));
                expected.extend_from_slice(&content[position as usize..(position + len) as usize]);
            }
            chunks.push(Chunk::Bytes(Bytes::from_static(b"tail")));
            expected.extend_from_slice(b"tail");

            let (writer, reader) = pair().await;
            let reading = tokio::spawn(read_all(reader));
            let written = write_chunks(&writer, &chunks, coalescing)
                .await
                .expect("write");
            drop(writer);
            let received = reading.await.expect("reader");
            assert_eq!(written, expected.len() as u64, "{coalescing:?}");
            assert!(received == expected, "{coalescing:?}: bytes differ");
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_range_fails_after_what_it_had() {
        let content = pattern(10_000);
        let file = file_with(&content);
        let chunks = [
            Chunk::Bytes(Bytes::from_static(b"head")),
            // The segment was truncated to 10,000 bytes after the read found 12,000.
            Chunk::Range(FileSlice::new(Arc::clone(&file), 4_000, 8_000)),
            Chunk::Bytes(Bytes::from_static(b"never sent")),
        ];
        let (writer, reader) = pair().await;
        let reading = tokio::spawn(read_all(reader));
        let err = write_chunks(&writer, &chunks, COALESCING)
            .await
            .expect_err("the range cannot be sent whole");
        assert!(
            matches!(
                err,
                WriteError::ShortFile {
                    position: 4_000,
                    len: 8_000,
                    missing: 2_000
                }
            ),
            "{err:?}"
        );
        drop(writer);
        let received = reading.await.expect("reader");
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&content[4_000..]);
        assert!(received == expected, "what the file had, then nothing");
    }

    #[tokio::test]
    async fn a_closed_peer_is_an_io_error() {
        let file = file_with(&pattern(4 << 20));
        let (writer, reader) = pair().await;
        drop(reader);
        let chunks = [
            Chunk::Bytes(Bytes::from_static(b"head")),
            Chunk::Range(FileSlice::new(file, 0, 4 << 20)),
        ];
        let err = write_chunks(&writer, &chunks, COALESCING)
            .await
            .expect_err("nobody reads");
        assert!(matches!(err, WriteError::Io(_)), "{err:?}");
    }
}

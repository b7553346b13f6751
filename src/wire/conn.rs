//! The gRPC connection as h2 writes to it.
//!
//! h2 copies a DATA frame into its write buffer only when the payload is
//! under 256 bytes on a connection that says it takes vectored writes (a
//! TCP or TLS stream does), 1 KiB on one that does not; a larger frame is
//! chained behind the buffer, and nothing more can be buffered until that
//! is written out. cedar-gate's answers, with their access-log metadata,
//! are 300–600 bytes: each one cost its own `writev` before the stream's
//! trailers could follow, about two write system calls per Check where the
//! null server (answers of a few bytes) needed one, and no two answers ever
//! shared one (issue 17: counted with `/proc/<pid>/io` over 50,000 Checks).
//! [`Coalescing`] says "no vectored writes", so an answer is copied into
//! the buffer with its headers and trailers, and the answers that are ready
//! together go out in one write.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// A connection whose writes h2 gathers into its own buffer (see the module).
#[derive(Debug)]
pub struct Coalescing<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    /// The point of the type: h2 then buffers frames up to 1 KiB.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for Coalescing<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

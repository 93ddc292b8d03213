//! Answers the connection layer gives itself, as problem+json like every other answer.
//!
//! hyper answers a request it cannot parse (a head over its buffer: `431`; an invalid request
//! line or header: `400`) on its own, with an empty body, before any service sees it.
//! [`ProblemAnswers`] wraps a connection's IO and replaces exactly those canned answers with
//! problem+json of the same status. They are recognisable: hyper writes each as a lone head with
//! `connection: close` and `content-length: 0`, then closes; every answer of the API carries a
//! body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The headers hyper's own error answers carry, in its order.
const CANNED_HEADERS: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// A whole HTTP/1.1 answer with a problem+json body; the connection closes after it.
/// `extra_headers` are whole header lines (`name: value\r\n`).
pub(crate) fn problem_response(
    status: u16,
    reason: &str,
    code: &str,
    detail: &str,
    extra_headers: &str,
) -> Vec<u8> {
    let body = format!(
        r#"{{"type":"urn:nexus:error:{code}","title":"{reason}","status":{status},"detail":"{detail}","code":"{code}"}}"#
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n\
         {extra_headers}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The problem+json answer that replaces `head`, if `head` is one of hyper's canned answers.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let is_canned = head.ends_with(b"\r\n\r\n")
        && head
            .windows(CANNED_HEADERS.len())
            .any(|window| window == CANNED_HEADERS);
    if !is_canned {
        return None;
    }
    if head.starts_with(b"HTTP/1.1 431 ") {
        Some(problem_response(
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are larger than the server reads",
            "",
        ))
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        Some(problem_response(
            400,
            "Bad Request",
            "malformed_request",
            "the request line or a header is not valid HTTP/1.1",
            "",
        ))
    } else {
        None
    }
}

/// A connection's IO, with hyper's canned error answers replaced (see the module docs).
#[derive(Debug)]
pub(crate) struct ProblemAnswers<I> {
    inner: I,
    /// A replacement still being written, and how much of it has been.
    pending: Vec<u8>,
    written: usize,
}

impl<I> ProblemAnswers<I> {
    pub(crate) fn new(inner: I) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<I: AsyncWrite + Unpin> ProblemAnswers<I> {
    /// Writes what is left of a replacement.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `head` in place of writing it, queueing its replacement, if it is canned.
    fn replace(&mut self, cx: &mut Context<'_>, head: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let replacement = replacement_for(head)?;
        self.pending = replacement;
        self.written = 0;
        // Started now; `poll_flush` (which hyper calls next) finishes it.
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(head.len())),
        })
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ProblemAnswers<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ProblemAnswers<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(done) = self.replace(cx, buf) {
            return done;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // A canned answer is a head alone: one non-empty slice.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(head), None) = (non_empty.next(), non_empty.next())
            && let Some(done) = self.replace(cx, head)
        {
            return done;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_canned_answers_are_replaced() {
        let date = "date: Mon, 07 Dec 2026 22:40:33 GMT\r\n\r\n";
        for (head, code) in [
            (
                format!("HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n{date}"),
                Some("headers_too_large"),
            ),
            (
                format!("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n{date}"),
                Some("malformed_request"),
            ),
            // The API's own answers carry bodies (and other headers first).
            (
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nconnection: close\r\ncontent-length: 90\r\n\r\n".to_owned(),
                None,
            ),
            (
                format!("HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n{date}"),
                None,
            ),
            // Not a whole head.
            (
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n".to_owned(),
                None,
            ),
        ] {
            let replaced = replacement_for(head.as_bytes()).map(|r| String::from_utf8(r).unwrap());
            match code {
                Some(code) => {
                    let replaced = replaced.expect("replaced");
                    assert!(replaced.starts_with(&head[..12]), "{replaced}");
                    let body = replaced.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
                    assert_eq!(problem["code"], code);
                    let length = format!("content-length: {}\r\n", body.len());
                    assert!(replaced.contains(&length), "{replaced}");
                }
                None => assert!(replaced.is_none(), "{head}"),
            }
        }
    }
}

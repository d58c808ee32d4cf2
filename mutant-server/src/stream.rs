//! Answers written while they are produced: a body fed through a bounded
//! channel, so a large NDJSON result streams from the store to the client
//! page by page, and a slow client slows the producer instead of filling
//! memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Chunks in flight between the producer and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A response body whose chunks arrive through a channel; it ends when the
/// sender is dropped.
#[derive(Debug)]
pub(crate) struct ChannelBody {
    chunks: mpsc::Receiver<Bytes>,
}

/// The producing end of a [`ChannelBody`].
pub(crate) type ChunkSender = mpsc::Sender<Bytes>;

/// A body and the sender that feeds it.
pub(crate) fn channel_body() -> (ChunkSender, ChannelBody) {
    let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    (sender, ChannelBody { chunks })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_the_body_ends_with_its_sender() {
        let (sender, body) = channel_body();
        let producer = tokio::spawn(async move {
            for chunk in ["a\n", "b\n", "c\n"] {
                sender.send(Bytes::from(chunk)).await.unwrap();
            }
        });
        let collected = body.collect().await.unwrap().to_bytes();
        producer.await.unwrap();
        assert_eq!(collected, Bytes::from("a\nb\nc\n"));
    }
}

//! The frame codec: `u32 BE length ‖ u32 BE header length ‖ JSON header ‖ blob`.
//!
//! Both directions use the same layout. The parser is strict: a length above the limits
//! ends the stream (the peer is out of step or hostile), a header that is not the expected
//! JSON is reported as [`FrameError::Header`] and the stream stays usable, because the frame
//! boundaries were intact.

use std::io::{self, Read, Write};

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted, header and blob included: 256 MiB.
pub const MAX_FRAME_LEN: usize = 256 * 1024 * 1024;
/// Largest JSON header accepted: 64 KiB.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    #[error("the peer closed the stream")]
    Closed,
    /// Reading or writing the pipe failed.
    #[error("frame I/O failed: {0}; check that the peer process is still running")]
    Io(#[from] io::Error),
    /// A length field is out of range; the stream cannot be resynchronised.
    #[error(
        "frame of {len} bytes refused: {why}; the peer does not speak the ecld enclave protocol"
    )]
    Length {
        /// The length that was announced.
        len: usize,
        /// Which limit it broke.
        why: &'static str,
    },
    /// The header is not the JSON this side expects. The stream is still in step.
    #[error(
        "frame header is not a valid message: {0}; check that both sides run the same ecld version"
    )]
    Header(#[source] serde_json::Error),
}

impl FrameError {
    /// Whether the stream can still be used after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Header(_))
    }
}

/// One frame: a typed header and the message's binary field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<H> {
    /// The JSON header.
    pub header: H,
    /// The binary field (input or result ciphertext); empty when the message has none.
    pub blob: Vec<u8>,
}

fn encode_prefix<H: Serialize>(header: &H, blob_len: usize) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(header).map_err(FrameError::Header)?;
    if json.len() > MAX_HEADER_LEN {
        return Err(FrameError::Length { len: json.len(), why: "header above 64 KiB" });
    }
    let total = 4 + json.len() + blob_len;
    if total > MAX_FRAME_LEN {
        return Err(FrameError::Length { len: total, why: "frame above 256 MiB" });
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

fn check_total(total: usize) -> Result<(), FrameError> {
    if total < 4 {
        return Err(FrameError::Length { len: total, why: "frame shorter than its header length" });
    }
    if total > MAX_FRAME_LEN {
        return Err(FrameError::Length { len: total, why: "frame above 256 MiB" });
    }
    Ok(())
}

fn split_body<H: DeserializeOwned>(mut body: Vec<u8>) -> Result<Frame<H>, FrameError> {
    let header_len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if header_len > MAX_HEADER_LEN || header_len > body.len() - 4 {
        return Err(FrameError::Length { len: header_len, why: "header length out of range" });
    }
    let header = serde_json::from_slice(&body[4..4 + header_len]).map_err(FrameError::Header)?;
    let blob = body.split_off(4 + header_len);
    Ok(Frame { header, blob })
}

/// Writes one frame and flushes.
pub fn write_frame<H: Serialize>(
    w: &mut impl Write,
    header: &H,
    blob: &[u8],
) -> Result<(), FrameError> {
    let prefix = encode_prefix(header, blob.len())?;
    w.write_all(&prefix)?;
    w.write_all(blob)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; [`FrameError::Closed`] at a clean end of stream.
pub fn read_frame<H: DeserializeOwned>(r: &mut impl Read) -> Result<Frame<H>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let total = u32::from_be_bytes(len) as usize;
    check_total(total)?;
    let mut body = Vec::new();
    r.by_ref().take(total as u64).read_to_end(&mut body)?;
    if body.len() != total {
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("stream ended inside a frame after {} of {total} bytes", body.len()),
        )));
    }
    split_body(body)
}

/// Async [`write_frame`].
pub async fn write_frame_async<H: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    header: &H,
    blob: &[u8],
) -> Result<(), FrameError> {
    let prefix = encode_prefix(header, blob.len())?;
    w.write_all(&prefix).await?;
    w.write_all(blob).await?;
    w.flush().await?;
    Ok(())
}

/// Async [`read_frame`].
pub async fn read_frame_async<H: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Frame<H>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let total = u32::from_be_bytes(len) as usize;
    check_total(total)?;
    let mut body = Vec::new();
    r.take(total as u64).read_to_end(&mut body).await?;
    if body.len() != total {
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("stream ended inside a frame after {} of {total} bytes", body.len()),
        )));
    }
    split_body(body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn frame_layout_is_length_header_length_json_blob() {
        let mut out = Vec::new();
        write_frame(&mut out, &json!({"type": "ping"}), b"xy").unwrap();
        let json = br#"{"type":"ping"}"#;
        let mut expected = Vec::new();
        expected.extend_from_slice(&((4 + json.len() + 2) as u32).to_be_bytes());
        expected.extend_from_slice(&(json.len() as u32).to_be_bytes());
        expected.extend_from_slice(json);
        expected.extend_from_slice(b"xy");
        assert_eq!(out, expected);
    }

    #[test]
    fn clean_end_of_stream_is_closed() {
        let err = read_frame::<Value>(&mut &b""[..]).unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err}");
    }

    #[test]
    fn oversized_length_is_refused_without_allocating() {
        let bytes = u32::MAX.to_be_bytes();
        let err = read_frame::<Value>(&mut &bytes[..]).unwrap_err();
        assert!(matches!(err, FrameError::Length { .. }), "{err}");
        assert!(!err.is_recoverable());
    }

    #[test]
    fn truncated_frame_is_an_io_error() {
        let mut out = Vec::new();
        write_frame(&mut out, &json!({"a": 1}), b"blob").unwrap();
        out.truncate(out.len() - 1);
        let err = read_frame::<Value>(&mut &out[..]).unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
    }

    #[test]
    fn bad_header_leaves_the_stream_in_step() {
        let mut out = Vec::new();
        let bad = b"not json";
        out.extend_from_slice(&((4 + bad.len()) as u32).to_be_bytes());
        out.extend_from_slice(&(bad.len() as u32).to_be_bytes());
        out.extend_from_slice(bad);
        write_frame(&mut out, &json!({"ok": true}), b"").unwrap();
        let mut r = &out[..];
        let err = read_frame::<Value>(&mut r).unwrap_err();
        assert!(err.is_recoverable(), "{err}");
        let next: Frame<Value> = read_frame(&mut r).unwrap();
        assert_eq!(next.header, json!({"ok": true}));
    }

    #[test]
    fn header_length_beyond_frame_is_refused() {
        let mut out = Vec::new();
        out.extend_from_slice(&8u32.to_be_bytes());
        out.extend_from_slice(&100u32.to_be_bytes());
        out.extend_from_slice(b"abcd");
        let err = read_frame::<Value>(&mut &out[..]).unwrap_err();
        assert!(matches!(err, FrameError::Length { .. }), "{err}");
    }

    proptest! {
        #[test]
        fn frames_round_trip(n in any::<u64>(), s in ".{0,40}", blob in proptest::collection::vec(any::<u8>(), 0..512)) {
            let header = json!({"n": n, "s": s});
            let mut out = Vec::new();
            write_frame(&mut out, &header, &blob).unwrap();
            let frame: Frame<Value> = read_frame(&mut &out[..]).unwrap();
            prop_assert_eq!(frame.header, header);
            prop_assert_eq!(frame.blob, blob);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_frame::<Value>(&mut &bytes[..]);
        }
    }

    #[tokio::test]
    async fn async_codec_matches_sync_codec() {
        let mut out = Vec::new();
        write_frame_async(&mut out, &json!({"type": "pong"}), b"z").await.unwrap();
        let frame: Frame<Value> = read_frame(&mut &out[..]).unwrap();
        assert_eq!(frame.blob, b"z");
        let again: Frame<Value> = read_frame_async(&mut &out[..]).await.unwrap();
        assert_eq!(again, frame);
    }
}

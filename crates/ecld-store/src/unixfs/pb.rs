//! Hand-written protobuf for dag-pb (`PBNode`, `PBLink`) and UnixFS `Data`.
//!
//! Decoding is strict where the dag-pb spec is strict (field order, known fields only, one
//! `Data`), and lenient for UnixFS (unknown fields skipped), as Kubo is.

use bytes::Bytes;
use cid::Cid;

/// A dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// The child's CID.
    pub cid: Cid,
    /// The link name (`Some("")` for file chunks, as IPFS writes them).
    pub name: Option<String>,
    /// The cumulative size of the child's DAG.
    pub tsize: Option<u64>,
}

/// A dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Links, in order.
    pub links: Vec<PbLink>,
    /// The opaque data (a UnixFS `Data` message for files).
    pub data: Option<Bytes>,
}

/// The UnixFS node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixFsType {
    /// Raw bytes.
    Raw,
    /// A directory.
    Directory,
    /// A file.
    File,
    /// Metadata.
    Metadata,
    /// A symbolic link.
    Symlink,
    /// A sharded directory.
    HamtShard,
}

/// The UnixFS `Data` message (the fields files use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData {
    /// Node type.
    pub kind: UnixFsType,
    /// Inline file bytes.
    pub data: Option<Bytes>,
    /// Total file bytes under this node.
    pub file_size: Option<u64>,
    /// File bytes under each child, in order.
    pub block_sizes: Vec<u64>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        if len > self.buf.len() {
            return Err(format!("field of {len} bytes but {} left", self.buf.len()));
        }
        let (b, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(b)
    }

    /// The next (field number, wire type), or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            w => Err(format!("unsupported protobuf wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.buf.len() < n {
            return Err("truncated fixed-size field".into());
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

impl PbNode {
    /// Canonical dag-pb bytes: links first, then data.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut link_buf = Vec::new();
        for link in &self.links {
            link_buf.clear();
            put_bytes(&mut link_buf, 0x0a, &link.cid.to_bytes());
            if let Some(name) = &link.name {
                put_bytes(&mut link_buf, 0x12, name.as_bytes());
            }
            if let Some(tsize) = link.tsize {
                link_buf.push(0x18);
                put_varint(&mut link_buf, tsize);
            }
            put_bytes(&mut out, 0x12, &link_buf);
        }
        if let Some(data) = &self.data {
            put_bytes(&mut out, 0x0a, data);
        }
        out
    }

    /// Parses dag-pb bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut r = Reader { buf };
        let mut node = PbNode::default();
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (2, 2) => {
                    if node.data.is_some() {
                        return Err("dag-pb link after data".into());
                    }
                    node.links.push(decode_link(r.bytes()?)?);
                }
                (1, 2) => {
                    if node.data.is_some() {
                        return Err("dag-pb node has two data fields".into());
                    }
                    node.data = Some(Bytes::copy_from_slice(r.bytes()?));
                }
                (f, w) => return Err(format!("unexpected dag-pb field {f} (wire type {w})")),
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8]) -> Result<PbLink, String> {
    let mut r = Reader { buf };
    let (mut cid, mut name, mut tsize) = (None, None, None);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) if cid.is_none() => {
                let raw = r.bytes()?;
                cid = Some(Cid::try_from(raw).map_err(|e| format!("bad link CID: {e}"))?);
            }
            (2, 2) if name.is_none() => {
                let raw = r.bytes()?;
                name = Some(String::from_utf8(raw.to_vec()).map_err(|_| "link name not UTF-8")?);
            }
            (3, 0) if tsize.is_none() => tsize = Some(r.varint()?),
            (f, w) => return Err(format!("unexpected dag-pb link field {f} (wire type {w})")),
        }
    }
    Ok(PbLink { cid: cid.ok_or("dag-pb link without a hash")?, name, tsize })
}

impl UnixFsType {
    fn code(self) -> u64 {
        match self {
            Self::Raw => 0,
            Self::Directory => 1,
            Self::File => 2,
            Self::Metadata => 3,
            Self::Symlink => 4,
            Self::HamtShard => 5,
        }
    }

    fn from_code(code: u64) -> Result<Self, String> {
        Ok(match code {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            c => return Err(format!("unknown UnixFS type {c}")),
        })
    }
}

impl UnixFsData {
    /// Protobuf bytes, fields in number order, `blocksizes` unpacked (as go-unixfs and
    /// js-ipfs-unixfs write them).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = vec![0x08];
        put_varint(&mut out, self.kind.code());
        if let Some(d) = self.data.as_ref().filter(|d| !d.is_empty()) {
            put_bytes(&mut out, 0x12, d);
        }
        if let Some(size) = self.file_size {
            out.push(0x18);
            put_varint(&mut out, size);
        }
        for size in &self.block_sizes {
            out.push(0x20);
            put_varint(&mut out, *size);
        }
        Bytes::from(out)
    }

    /// Parses the protobuf; unknown fields (mode, mtime, fanout) are skipped.
    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut r = Reader { buf };
        let (mut kind, mut data, mut file_size, mut block_sizes) = (None, None, None, Vec::new());
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 0) => kind = Some(UnixFsType::from_code(r.varint()?)?),
                (2, 2) => data = Some(Bytes::copy_from_slice(r.bytes()?)),
                (3, 0) => file_size = Some(r.varint()?),
                (4, 0) => block_sizes.push(r.varint()?),
                (4, 2) => {
                    let mut packed = Reader { buf: r.bytes()? };
                    while !packed.buf.is_empty() {
                        block_sizes.push(packed.varint()?);
                    }
                }
                (_, w) => r.skip(w)?,
            }
        }
        Ok(Self { kind: kind.ok_or("UnixFS data without a type")?, data, file_size, block_sizes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a_cid(seed: u8) -> Cid {
        super::super::cid_of(super::super::RAW, &[seed])
    }

    proptest! {
        #[test]
        fn pb_node_round_trips(
            seeds in proptest::collection::vec(any::<u8>(), 0..20),
            tsize in any::<u64>(),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let node = PbNode {
                links: seeds.iter().map(|s| PbLink {
                    cid: a_cid(*s), name: Some(String::new()), tsize: Some(tsize),
                }).collect(),
                data: data.map(Bytes::from),
            };
            prop_assert_eq!(PbNode::decode(&node.encode()).unwrap(), node);
        }

        #[test]
        fn unixfs_round_trips(sizes in proptest::collection::vec(any::<u64>(), 0..200), fs in any::<u64>()) {
            let d = UnixFsData { kind: UnixFsType::File, data: None, file_size: Some(fs), block_sizes: sizes };
            prop_assert_eq!(UnixFsData::decode(&d.encode()).unwrap(), d);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PbNode::decode(&bytes);
            let _ = UnixFsData::decode(&bytes);
        }
    }

    #[test]
    fn data_before_links_is_rejected() {
        let mut bytes = vec![0x0a, 0x00];
        bytes.extend(
            PbNode { links: vec![PbLink { cid: a_cid(1), name: None, tsize: None }], data: None }
                .encode(),
        );
        assert!(PbNode::decode(&bytes).unwrap_err().contains("link after data"));
    }
}

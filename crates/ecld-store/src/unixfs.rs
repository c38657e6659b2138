//! UnixFS files as IPFS builds them: raw leaves under a balanced dag-pb tree.
//!
//! The protobuf encodings of dag-pb (`PBNode`, `PBLink`) and of the UnixFS `Data` message are
//! written by hand: they are three small messages, and doing it here keeps the byte order
//! exactly canonical (dag-pb puts `Links` before `Data`), which the CIDs depend on.

mod pb;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use cid::multihash::Multihash;
use sha2::{Digest, Sha256};

pub use pb::{PbLink, PbNode, UnixFsData, UnixFsType};

/// Multicodec of a raw block (the bytes themselves).
pub const RAW: u64 = 0x55;
/// Multicodec of a dag-pb block.
pub const DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256, the only hash this store writes and verifies.
pub const SHA2_256: u64 = 0x12;
/// The fixed chunk size of `ipfs add` (`size-262144`).
pub const CHUNK_SIZE: usize = 262_144;
/// Links per node of the balanced layout, as in Kubo and js-ipfs.
pub const MAX_LINKS: usize = 174;

/// One content-addressed block: its CID and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The CID of `data`.
    pub cid: Cid,
    /// The block's bytes.
    pub data: Bytes,
}

/// The CIDv1 of `data` under `codec`, hashed with sha2-256.
#[must_use]
pub fn cid_of(codec: u64, data: &[u8]) -> Cid {
    let digest = Sha256::digest(data);
    // A 32-byte digest always fits the 64-byte multihash.
    let hash = Multihash::wrap(SHA2_256, &digest).unwrap_or_default();
    Cid::new_v1(codec, hash)
}

/// Whether `data` hashes to `cid`'s multihash. `None` when the CID uses a hash this crate does
/// not implement (anything but sha2-256 and identity).
#[must_use]
pub fn verify(cid: &Cid, data: &[u8]) -> Option<bool> {
    let mh = cid.hash();
    match mh.code() {
        SHA2_256 => Some(mh.size() == 32 && Sha256::digest(data).as_slice() == mh.digest()),
        0x00 => Some(mh.digest() == data),
        _ => None,
    }
}

/// A link under construction: the child's CID, its cumulative DAG size and its file bytes.
#[derive(Debug, Clone)]
struct PendingLink {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

/// Builds the UnixFS DAG of a file from a stream of bytes, one chunk at a time, in bounded
/// memory: at most one chunk plus [`MAX_LINKS`] links per tree level are held.
///
/// The result is byte-identical to `ipfs add --cid-version=1 --raw-leaves` (fixed 256 KiB
/// chunks, balanced layout, 174 links per node; a file of at most one chunk, the empty file
/// included, is a single raw leaf).
#[derive(Debug, Default)]
pub struct DagBuilder {
    buf: BytesMut,
    levels: Vec<Vec<PendingLink>>,
    bytes: u64,
    /// When false, blocks are hashed but their bytes are not returned (verification of a
    /// remote store's CID without keeping data).
    hash_only: bool,
}

/// The root of a finished DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    /// The file's CID.
    pub cid: Cid,
    /// The number of content bytes.
    pub file_size: u64,
    /// The cumulative size of all blocks of the DAG (Kubo's `Size` of `add`).
    pub dag_size: u64,
}

impl DagBuilder {
    /// A builder whose blocks are returned for storage.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that only computes the CID: the returned blocks carry empty data.
    #[must_use]
    pub fn hash_only() -> Self {
        Self { hash_only: true, ..Self::default() }
    }

    /// Content bytes consumed so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Feeds bytes; every completed block is appended to `out` (children before parents).
    pub fn write(&mut self, mut data: &[u8], out: &mut Vec<Block>) {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= CHUNK_SIZE {
                // Whole chunks straight from the input, without copying into the buffer.
                let (chunk, rest) = data.split_at(CHUNK_SIZE);
                self.leaf(Bytes::copy_from_slice(chunk), out);
                data = rest;
                continue;
            }
            if self.buf.capacity() < CHUNK_SIZE {
                self.buf.reserve(CHUNK_SIZE - self.buf.len());
            }
            let take = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK_SIZE {
                let chunk = self.buf.split().freeze();
                self.leaf(chunk, out);
            }
        }
    }

    /// Feeds an owned buffer (avoids a copy when it is a whole chunk).
    pub fn write_bytes(&mut self, data: Bytes, out: &mut Vec<Block>) {
        if self.buf.is_empty() && data.len() == CHUNK_SIZE {
            self.bytes += CHUNK_SIZE as u64;
            self.leaf(data, out);
        } else {
            self.write(&data, out);
        }
    }

    /// Ends the file: emits the last leaf and the parents still open, and returns the root.
    pub fn finish(mut self, out: &mut Vec<Block>) -> Root {
        let no_leaf_yet = self.levels.first().is_none_or(Vec::is_empty);
        if !self.buf.is_empty() || no_leaf_yet {
            let chunk = self.buf.split().freeze();
            self.leaf(chunk, out);
        }
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            if top && self.levels[level].len() == 1 {
                let link = &self.levels[level][0];
                return Root { cid: link.cid, file_size: link.filesize, dag_size: link.tsize };
            }
            let links = std::mem::take(&mut self.levels[level]);
            let parent = self.parent(&links, out);
            self.push(level + 1, parent, out);
            level += 1;
        }
    }

    fn leaf(&mut self, chunk: Bytes, out: &mut Vec<Block>) {
        let cid = cid_of(RAW, &chunk);
        let len = chunk.len() as u64;
        out.push(Block { cid, data: if self.hash_only { Bytes::new() } else { chunk } });
        self.push(0, PendingLink { cid, tsize: len, filesize: len }, out);
    }

    /// Adds a link at `level`, first closing that level into a parent when it is full.
    fn push(&mut self, level: usize, link: PendingLink, out: &mut Vec<Block>) {
        if self.levels.len() <= level {
            self.levels.push(Vec::with_capacity(MAX_LINKS));
        }
        if self.levels[level].len() == MAX_LINKS {
            let links = std::mem::replace(&mut self.levels[level], Vec::with_capacity(MAX_LINKS));
            let parent = self.parent(&links, out);
            self.push(level + 1, parent, out);
        }
        self.levels[level].push(link);
    }

    fn parent(&self, links: &[PendingLink], out: &mut Vec<Block>) -> PendingLink {
        let data = UnixFsData {
            kind: UnixFsType::File,
            data: None,
            file_size: Some(links.iter().map(|l| l.filesize).sum()),
            block_sizes: links.iter().map(|l| l.filesize).collect(),
        };
        let node = PbNode {
            links: links
                .iter()
                .map(|l| PbLink { cid: l.cid, name: Some(String::new()), tsize: Some(l.tsize) })
                .collect(),
            data: Some(data.encode()),
        };
        let bytes = Bytes::from(node.encode());
        let cid = cid_of(DAG_PB, &bytes);
        let tsize = bytes.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>();
        let filesize = links.iter().map(|l| l.filesize).sum();
        out.push(Block { cid, data: if self.hash_only { Bytes::new() } else { bytes } });
        PendingLink { cid, tsize, filesize }
    }
}

/// The CID `ipfs add --cid-version=1 --raw-leaves` gives `data`.
#[must_use]
pub fn file_cid(data: &[u8]) -> Cid {
    let mut builder = DagBuilder::hash_only();
    let mut sink = Vec::new();
    builder.write(data, &mut sink);
    builder.finish(&mut sink).cid
}

/// What a block of a file is, once decoded.
#[derive(Debug)]
pub enum FileNode {
    /// File bytes (a raw leaf, or the inline data of a dag-pb node).
    Leaf(Bytes),
    /// An inner node: inline data first (usually none), then the children in order.
    Inner {
        /// Inline bytes that come before the children's.
        data: Bytes,
        /// The children, in file order.
        children: Vec<Cid>,
        /// The file size this node declares.
        file_size: u64,
    },
}

/// Decodes a block of a UnixFS file. Errors name what is wrong with the block.
pub fn decode_file_node(cid: &Cid, block: Bytes) -> Result<FileNode, String> {
    match cid.codec() {
        RAW => Ok(FileNode::Leaf(block)),
        DAG_PB => {
            let node = PbNode::decode(&block)?;
            let data = node.data.ok_or("dag-pb node has no UnixFS data")?;
            let fs = UnixFsData::decode(&data)?;
            match fs.kind {
                UnixFsType::File | UnixFsType::Raw => {}
                other => return Err(format!("a UnixFS {other:?} is not a file")),
            }
            let inline = fs.data.unwrap_or_default();
            let file_size = fs.file_size.unwrap_or(inline.len() as u64);
            if node.links.is_empty() {
                return Ok(FileNode::Leaf(inline));
            }
            Ok(FileNode::Inner {
                data: inline,
                children: node.links.into_iter().map(|l| l.cid).collect(),
                file_size,
            })
        }
        other => Err(format!("codec 0x{other:x} is neither raw nor dag-pb")),
    }
}

/// The file size a root block declares (its length for a raw leaf).
#[must_use]
pub fn declared_size(node: &FileNode) -> u64 {
    match node {
        FileNode::Leaf(b) => b.len() as u64,
        FileNode::Inner { file_size, .. } => *file_size,
    }
}

/// The child CIDs of any block this store understands (for pinning and garbage collection):
/// none for raw blocks, the links of a dag-pb node.
pub fn child_links(cid: &Cid, block: &[u8]) -> Result<Vec<Cid>, String> {
    match cid.codec() {
        DAG_PB => Ok(PbNode::decode(block)?.links.into_iter().map(|l| l.cid).collect()),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn build_in_pieces(data: &[u8], piece: usize) -> (Root, Vec<Block>) {
        let mut b = DagBuilder::new();
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            b.write(p, &mut out);
        }
        let root = b.finish(&mut out);
        (root, out)
    }

    #[test]
    fn empty_file_is_one_raw_leaf() {
        let (root, blocks) = build_in_pieces(&[], 1);
        assert_eq!(blocks.len(), 1);
        assert_eq!(root.cid.codec(), RAW);
        assert_eq!(root.cid, cid_of(RAW, &[]));
    }

    #[test]
    fn chunk_boundaries_do_not_depend_on_write_sizes() {
        let data = content(3 * CHUNK_SIZE + 17);
        let (a, _) = build_in_pieces(&data, 1000);
        let (b, _) = build_in_pieces(&data, CHUNK_SIZE);
        let (c, blocks) = build_in_pieces(&data, data.len());
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(blocks.len(), 5, "four leaves and one root");
        assert_eq!(c.file_size, data.len() as u64);
    }

    #[test]
    fn root_decodes_to_its_children() {
        let data = content(2 * CHUNK_SIZE + 1);
        let (root, blocks) = build_in_pieces(&data, 4096);
        let root_block = blocks.iter().find(|b| b.cid == root.cid).unwrap();
        match decode_file_node(&root.cid, root_block.data.clone()).unwrap() {
            FileNode::Inner { children, file_size, .. } => {
                assert_eq!(children.len(), 3);
                assert_eq!(file_size, data.len() as u64);
            }
            FileNode::Leaf(_) => panic!("expected an inner node"),
        }
        assert_eq!(verify(&root.cid, &root_block.data), Some(true));
        assert_eq!(verify(&root.cid, b"other"), Some(false));
    }
}

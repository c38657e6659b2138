// Generates testdata/cid/vectors.json: the CIDs that js-ipfs's UnixFS importer (an independent
// implementation) gives deterministic files, with the options of
// `ipfs add --cid-version=1 --raw-leaves` (fixed 256 KiB chunks, balanced layout, 174 links).
//
// Content of a file of length n: byte i is i % 251 (reproduced by the Rust tests).
// Run: node tools/gen_cid_vectors.mjs > testdata/cid/vectors.json
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { readFileSync } from 'node:fs'

const CHUNK = 262144
const cases = [
  ['empty', 0],
  ['one byte', 1],
  ['small', 1000],
  ['one chunk less one byte', CHUNK - 1],
  ['exactly one chunk', CHUNK],
  ['one chunk plus one byte', CHUNK + 1],
  ['three chunks and a bit', 3 * CHUNK + 5],
  ['174 chunks: one full node', 174 * CHUNK],
  ['174 chunks plus one byte: second layer', 174 * CHUNK + 1],
  ['100 MiB', 100 * 1024 * 1024]
]

async function * content (len) {
  const piece = 1 << 20
  for (let off = 0; off < len; off += piece) {
    const n = Math.min(piece, len - off)
    const buf = new Uint8Array(n)
    for (let i = 0; i < n; i++) buf[i] = (off + i) % 251
    yield buf
  }
}

// A store that keeps nothing: only the CIDs matter, and 100 MiB need not stay in memory.
class NullBlockstore extends MemoryBlockstore {
  async put (cid) { return cid }
}

const out = []
for (const [name, len] of cases) {
  const store = len > 8 * CHUNK ? new NullBlockstore() : new MemoryBlockstore()
  let last
  for await (const entry of importer([{ content: content(len) }], store, {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: CHUNK }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    reduceSingleLeafToSelf: true
  })) {
    last = entry
  }
  out.push({ name, len, cid: last.cid.toString(), size: Number(last.size) })
}
const pkg = JSON.parse(readFileSync(new URL('./node_modules/ipfs-unixfs-importer/package.json', import.meta.url)))
const generator = `ipfs-unixfs-importer ${pkg.version}`
process.stdout.write(JSON.stringify({ generator, content: 'byte i = i % 251', chunk_size: CHUNK, max_links: 174, vectors: out }, null, 2) + '\n')

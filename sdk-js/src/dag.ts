import { base32 } from "@scure/base";
import { sha256 } from "viem";
import { EcldError } from "./errors.js";

/** Multicodec of raw leaves. */
export const CODEC_RAW = 0x55;
/** Multicodec of dag-pb nodes. */
export const CODEC_DAG_PB = 0x70;

/** A parsed CIDv1 with a sha2-256 multihash. */
export interface ParsedCid {
  codec: number;
  digest: Uint8Array;
  bytes: Uint8Array;
}

function cidError(msg: string): EcldError {
  return new EcldError("StoreError", msg, { hint: "pass a CIDv1 (base32, sha2-256) as `ipfs add --cid-version=1 --raw-leaves` prints it" });
}

function varint(b: Uint8Array, o: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (let i = o; i < b.length && i < o + 8; i++) {
    const byte = b[i] ?? 0;
    v += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [v, i + 1];
    shift += 7;
  }
  throw cidError("truncated varint");
}

/** Parses binary CIDv1 bytes (sha2-256 only). */
export function parseCidBytes(bytes: Uint8Array): ParsedCid {
  const [version, o1] = varint(bytes, 0);
  const [codec, o2] = varint(bytes, o1);
  const [hashFn, o3] = varint(bytes, o2);
  const [len, o4] = varint(bytes, o3);
  if (version !== 1 || hashFn !== 0x12 || len !== 32 || bytes.length !== o4 + 32)
    throw cidError("only CIDv1 with a sha2-256 multihash is supported");
  if (codec !== CODEC_RAW && codec !== CODEC_DAG_PB) throw cidError(`unsupported codec 0x${codec.toString(16)}`);
  return { codec, digest: bytes.slice(o4), bytes };
}

/** Parses a base32 CIDv1 string (`b…`). */
export function parseCid(text: string): ParsedCid {
  if (!text.startsWith("b")) throw cidError(`${text.slice(0, 80)} is not a base32 CIDv1`);
  let raw: Uint8Array;
  try {
    const body = text.slice(1).toUpperCase();
    raw = base32.decode(body + "=".repeat((8 - (body.length % 8)) % 8));
  } catch {
    throw cidError(`${text.slice(0, 80)} is not valid base32`);
  }
  return parseCidBytes(raw);
}

/** The base32 text of a CID. */
export function cidToString(cid: ParsedCid): string {
  return `b${base32.encode(cid.bytes).toLowerCase().replace(/=+$/, "")}`;
}

/** The links of a dag-pb node, in order (protobuf PBNode.Links[].Hash). */
export function dagPbLinks(block: Uint8Array): ParsedCid[] {
  const links: ParsedCid[] = [];
  let o = 0;
  const bad = (): EcldError => new EcldError("StoreError", "malformed dag-pb node", { hint: "the store sent a damaged block; use another store" });
  const readLen = (): [number, number] => {
    const [len, next] = varint(block, o);
    if (next + len > block.length) throw bad();
    return [len, next];
  };
  while (o < block.length) {
    const [key, next] = varint(block, o);
    o = next;
    const field = Math.floor(key / 8);
    if (key % 8 !== 2) throw bad();
    const [len, start] = readLen();
    const end = start + len;
    if (field === 2) {
      // PBLink: field 1 is Hash (bytes)
      let p = start;
      let hash: Uint8Array | undefined;
      while (p < end) {
        const [k, n] = varint(block, p);
        p = n;
        if (k % 8 === 2) {
          const [l, s] = varint(block, p);
          if (k >> 3 === 1) hash = block.slice(s, s + l);
          p = s + l;
        } else if (k % 8 === 0) {
          p = varint(block, p)[1];
        } else throw bad();
      }
      if (hash === undefined) throw bad();
      links.push(parseCidBytes(hash));
    } else if (field !== 1) {
      throw bad();
    }
    o = end;
  }
  return links;
}

/**
 * The bytes of a UnixFS file with raw leaves, fetched block by block with `getBlock` and
 * each block checked against its CID's sha2-256 digest before it is used.
 */
export async function readVerifiedFile(
  root: string,
  getBlock: (cid: string) => Promise<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const visit = async (cid: ParsedCid): Promise<void> => {
    const text = cidToString(cid);
    const block = await getBlock(text);
    const digest = sha256(block, "bytes");
    if (digest.length !== cid.digest.length || digest.some((b, i) => b !== cid.digest[i]))
      throw new EcldError("StoreError", `the store sent a block that does not match ${text}`, {
        hint: "the store is lying or damaged; use another store",
      });
    if (cid.codec === CODEC_RAW) {
      total += block.length;
      if (total > maxBytes)
        throw new EcldError("StoreError", `${root} is larger than ${maxBytes} bytes`, { hint: "raise the limit if you expect a file this big" });
      parts.push(block);
      return;
    }
    for (const link of dagPbLinks(block)) await visit(link);
  };
  await visit(parseCid(root));
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

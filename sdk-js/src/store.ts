import { base32 } from "@scure/base";
import { sha256 } from "viem";
import { readVerifiedFile } from "./dag.js";
import { EcldError, describe } from "./errors.js";

/** Files of at most one chunk are one raw block; larger ones are a dag-pb tree. */
export const CHUNK_SIZE = 262144;

/**
 * The CIDv1 (raw codec, sha2-256, base32) of a file of at most {@link CHUNK_SIZE} bytes — what
 * `ipfs add --cid-version=1 --raw-leaves` answers for it — or `undefined` for larger files
 * (a UnixFS tree this package does not rebuild; their content is checked by keccak256 instead).
 */
export function rawFileCid(bytes: Uint8Array): string | undefined {
  if (bytes.length > CHUNK_SIZE) return undefined;
  const digest = sha256(bytes, "bytes");
  const cid = new Uint8Array(4 + 32);
  cid.set([0x01, 0x55, 0x12, 0x20]);
  cid.set(digest, 4);
  return `b${base32.encode(cid).toLowerCase().replace(/=+$/, "")}`;
}

/** {@link rawFileCid} of bytes or of a `Blob` (read only when it is one chunk or less). */
export async function rawFileCidOf(data: Uint8Array | Blob): Promise<string | undefined> {
  if (data instanceof Blob) return data.size > CHUNK_SIZE ? undefined : rawFileCid(new Uint8Array(await data.arrayBuffer()));
  return rawFileCid(data);
}

function storeError(msg: string, p: { details?: string; cause?: unknown; hint?: string }): EcldError {
  return new EcldError("StoreError", msg, {
    ...p,
    hint: p.hint ?? "check that the store (Kubo RPC API) is running and reachable from here",
  });
}

async function errorBody(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const j: unknown = JSON.parse(text);
    if (typeof j === "object" && j !== null && "Message" in j && typeof j.Message === "string") return j.Message;
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 200);
}

/** A client of the store's Kubo RPC API (`/api/v0/add`, `/api/v0/cat`). */
export class StoreClient {
  readonly url: string;
  constructor(url: string) {
    this.url = url.replace(/\/+$/, "");
  }

  /**
   * Uploads bytes (or a `Blob`, which is not read into memory) and returns their CID; checks
   * the store's answer when the CID is computable here.
   */
  async add(data: Uint8Array | Blob): Promise<string> {
    const form = new FormData();
    form.append("file", data instanceof Blob ? data : new Blob([data as Uint8Array<ArrayBuffer>]), "file");
    let res: Response;
    try {
      res = await fetch(`${this.url}/api/v0/add?cid-version=1&raw-leaves=true&pin=true`, { method: "POST", body: form });
    } catch (cause) {
      throw storeError(`cannot reach the store at ${this.url}`, { cause, details: describe(cause) });
    }
    if (!res.ok) throw storeError(`the store refused the upload (HTTP ${res.status})`, { details: await errorBody(res) });
    const lines = (await res.text()).trim().split("\n");
    const last: unknown = JSON.parse(lines[lines.length - 1] ?? "{}");
    const hash = typeof last === "object" && last !== null && "Hash" in last && typeof last.Hash === "string" ? last.Hash : undefined;
    if (hash === undefined) throw storeError("the store answered the upload without a CID", { details: lines.join("\n").slice(0, 200) });
    const expected = await rawFileCidOf(data);
    if (expected !== undefined && expected !== hash)
      throw storeError(`the store answered CID ${hash} for content whose CID is ${expected}`, {
        hint: "the store is misconfigured or lying; use another store",
      });
    return hash;
  }

  /** One block's bytes (`/api/v0/block/get`), unchecked. */
  async blockGet(cid: string): Promise<Uint8Array> {
    let res: Response;
    try {
      res = await fetch(`${this.url}/api/v0/block/get?arg=${encodeURIComponent(cid)}`, { method: "POST" });
    } catch (cause) {
      throw storeError(`cannot reach the store at ${this.url}`, { cause, details: describe(cause) });
    }
    if (!res.ok) throw storeError(res.status === 404 ? `block ${cid} is not in the store` : `the store refused block ${cid} (HTTP ${res.status})`, { details: await errorBody(res) });
    return new Uint8Array(await res.arrayBuffer());
  }

  /**
   * Downloads a file block by block (`block/get`), checking every block against its CID
   * before using it, so a lying store is caught whatever the file's size.
   */
  async catVerified(cid: string, maxBytes = 1 << 30): Promise<Uint8Array> {
    return await readVerifiedFile(cid, (c) => this.blockGet(c), maxBytes);
  }

  /** Downloads a file, refusing more than `maxBytes`; checks raw-block CIDs against the bytes. */
  async cat(cid: string, maxBytes = 1 << 30): Promise<Uint8Array> {
    let res: Response;
    try {
      res = await fetch(`${this.url}/api/v0/cat?arg=${encodeURIComponent(cid)}`, { method: "POST" });
    } catch (cause) {
      throw storeError(`cannot reach the store at ${this.url}`, { cause, details: describe(cause) });
    }
    if (!res.ok) {
      const details = await errorBody(res);
      throw storeError(res.status === 404 ? `${cid} is not in the store` : `the store refused to send ${cid} (HTTP ${res.status})`, {
        details,
      });
    }
    const body = res.body;
    if (body === null) return new Uint8Array();
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw storeError(`${cid} is larger than ${maxBytes} bytes`, { hint: "raise the limit if you expect a result this big" });
      }
      chunks.push(value);
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    if (cid.startsWith("bafkrei")) {
      const actual = rawFileCid(out);
      if (actual !== undefined && actual !== cid)
        throw storeError(`the store sent bytes whose CID is ${actual} for ${cid}`, { hint: "the store is lying or damaged; use another store" });
    }
    return out;
  }
}

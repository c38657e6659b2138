import { keccak_256 } from "@noble/hashes/sha3.js";
import { type Hex, bytesToHex } from "viem";
import { encryptStream } from "./envelope.js";
import { EcldError } from "./errors.js";
import { type PayloadHeader, payloadStream } from "./payload.js";
import { type TaskSpec, cidHash } from "./proof.js";

/**
 * The spec `submitTask` takes for an uploaded input: `inputCidHash` is keccak256 of `inputCid`
 * as text (the contract reverts `InputCidMismatch` when it is not), `inputHash` keccak256 of
 * the ciphertext stored under it.
 */
export function taskSpec(p: {
  imageId: Hex;
  inputHash: Hex;
  inputCid: string;
  memoryMb: number;
  maxRuntimeS: number;
  deadline: bigint;
}): TaskSpec {
  return {
    imageId: p.imageId,
    inputHash: p.inputHash,
    inputCidHash: cidHash(p.inputCid),
    memoryMb: p.memoryMb,
    maxRuntimeS: p.maxRuntimeS,
    deadline: p.deadline,
  };
}

/** A task input encrypted by {@link encryptInputStream}, ready to upload. */
export interface EncryptedInput {
  /**
   * The ciphertext (binary age v1). A `Blob`: in a browser its bytes go to the browser's blob
   * store (which moves large blobs to disk), not the page's memory.
   */
  ciphertext: Blob;
  /** The ciphertext's length in bytes. */
  length: number;
  /** keccak256 of the ciphertext: the task's `inputHash`, computed as the chunks passed. */
  inputHash: Hex;
  /** The payload's length in bytes (before encryption). */
  payloadLength: number;
}

/**
 * An incremental keccak256. {@link keccakHasher} runs in the calling thread; a page may hand
 * {@link encryptInputStream} one that runs in a Web Worker, so hashing overlaps encryption.
 * `update` may keep the chunk it is given (the caller does not touch it afterwards) and may
 * return a promise to hold the producer back while it catches up.
 */
export interface ChunkHasher {
  update(chunk: Uint8Array): void | Promise<void>;
  digest(): Hex | Promise<Hex>;
}

/** keccak256 in the calling thread. */
export function keccakHasher(): ChunkHasher {
  const h = keccak_256.create();
  return {
    update(chunk) {
      h.update(chunk);
    },
    digest() {
      return bytesToHex(h.digest());
    },
  };
}

/** How many ciphertext bytes are gathered before they become one part of the `Blob`. */
const BLOB_PART = 1 << 20;

/**
 * Builds the payload around an input stream and encrypts it to `recipients`, chunk by chunk:
 * input → payload framing → age STREAM encryption → keccak256 and `Blob` parts. The input
 * is never whole in memory, nor is the ciphertext outside the `Blob`. The input's length goes
 * in the payload header, so it is needed up front (`File.size`). `onProgress` is called with
 * the ciphertext bytes produced and their total. `hasher` computes the input hash (by
 * default {@link keccakHasher}, in this thread).
 */
export async function encryptInputStream(
  recipients: readonly string[],
  header: PayloadHeader,
  input: ReadableStream<Uint8Array>,
  onProgress?: (done: number, total: number) => void,
  hasher: ChunkHasher = keccakHasher(),
): Promise<EncryptedInput> {
  const payload = payloadStream(header, input);
  const encrypted = await encryptStream(recipients, payload.stream);
  const total = encrypted.size(payload.length);
  const parts: Blob[] = [];
  const buf = new Uint8Array(BLOB_PART);
  let used = 0;
  let done = 0;
  const reader = encrypted.getReader();
  try {
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      done += value.length;
      let chunk = value;
      while (chunk.length > 0) {
        const n = Math.min(BLOB_PART - used, chunk.length);
        buf.set(chunk.subarray(0, n), used);
        used += n;
        chunk = chunk.subarray(n);
        if (used === BLOB_PART) {
          // The Blob constructor copies the bytes, so the buffer is reused.
          parts.push(new Blob([buf]));
          used = 0;
        }
      }
      // Last: the hasher may keep the chunk.
      await hasher.update(value);
      onProgress?.(done, total);
    }
  } catch (cause) {
    await reader.cancel(cause).catch(() => undefined);
    if (cause instanceof EcldError) throw cause;
    throw new EcldError("EnvelopeError", "encrypting the input failed", {
      cause,
      details: cause instanceof Error ? cause.message : String(cause),
      hint: "check that the input file is readable and was not changed while it was read",
    });
  }
  if (used > 0) parts.push(new Blob([buf.subarray(0, used)]));
  let inputHash: Hex;
  try {
    inputHash = await hasher.digest();
  } catch (cause) {
    throw new EcldError("EnvelopeError", "hashing the encrypted input failed", {
      cause,
      details: cause instanceof Error ? cause.message : String(cause),
      hint: "reload the page and try again",
    });
  }
  const ciphertext = new Blob(parts);
  if (ciphertext.size !== total)
    throw new EcldError("EnvelopeError", `the encryption produced ${ciphertext.size} bytes, ${total} were expected`, {
      hint: "this is a bug of the encryption library; report it",
    });
  return { ciphertext, length: total, inputHash, payloadLength: payload.length };
}

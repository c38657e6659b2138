/**
 * A Web Worker computing keccak256 over the ciphertext chunks the page posts to it, so the
 * input hash is computed beside the encryption rather than after it (see `hasher.ts`).
 * Messages in: `{ chunk: Uint8Array }` (its buffer transferred), then `{ digest: true }`. Out:
 * `{ ack: n, buffer }` after each chunk, the buffer transferred back for reuse; `{ hash }` at
 * the end, or `{ error }`.
 */
import { keccakHasher } from "@ecld/sdk";

const hasher = keccakHasher();
let hashed = 0;
self.onmessage = (e: MessageEvent<{ chunk?: Uint8Array; digest?: boolean }>) => {
  try {
    if (e.data.chunk !== undefined) {
      const chunk = e.data.chunk;
      void hasher.update(chunk);
      self.postMessage({ ack: ++hashed, buffer: chunk.buffer }, { transfer: [chunk.buffer] });
    } else if (e.data.digest === true) {
      self.postMessage({ hash: hasher.digest() });
    }
  } catch (err) {
    self.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
};

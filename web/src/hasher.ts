/**
 * keccak256 of the ciphertext in a Web Worker: the page encrypts while the worker hashes the
 * chunks already encrypted. At most `MAX_IN_FLIGHT` chunks wait for the worker, so a slower
 * worker holds the encryption back instead of piling ciphertext up in memory. The chunk
 * buffers go back and forth (transferred, not copied), so hashing leaves no garbage behind.
 */
import type { ChunkHasher } from "@ecld/sdk";
import type { Hex } from "viem";

const MAX_IN_FLIGHT = 16;

export function workerHasher(): ChunkHasher & { close(): void } {
  const worker = new Worker(new URL("./hash-worker.ts", import.meta.url), { type: "module" });
  const pool: ArrayBuffer[] = [];
  let sent = 0;
  let acked = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let finish: { resolve: (h: Hex) => void; reject: (e: Error) => void } | undefined;
  const fail = (e: Error) => {
    failure ??= e;
    wake?.();
    finish?.reject(failure);
  };
  worker.onmessage = (e: MessageEvent<{ ack?: number; buffer?: ArrayBuffer; hash?: Hex; error?: string }>) => {
    if (e.data.error !== undefined) fail(new Error(`the hashing worker failed: ${e.data.error}`));
    else if (e.data.hash !== undefined) finish?.resolve(e.data.hash);
    else if (e.data.ack !== undefined) {
      acked = e.data.ack;
      if (e.data.buffer !== undefined) pool.push(e.data.buffer);
      wake?.();
    }
  };
  worker.onerror = (e) => fail(new Error(`the hashing worker failed: ${e.message}`));
  return {
    async update(chunk) {
      if (failure !== undefined) throw failure;
      // A copy in a buffer of the worker's pool, transferred (not copied again) to the worker.
      let buffer = pool.pop();
      if (buffer === undefined || buffer.byteLength < chunk.length) buffer = new ArrayBuffer(Math.max(chunk.length, 65_552));
      const own = new Uint8Array(buffer, 0, chunk.length);
      own.set(chunk);
      worker.postMessage({ chunk: own }, [buffer]);
      sent++;
      while (sent - acked > MAX_IN_FLIGHT && failure === undefined) await new Promise<void>((r) => (wake = r));
      if (failure !== undefined) throw failure;
    },
    digest() {
      return new Promise<Hex>((resolve, reject) => {
        if (failure !== undefined) return reject(failure);
        finish = { resolve, reject };
        worker.postMessage({ digest: true });
      });
    },
    close() {
      worker.terminate();
    },
  };
}

/**
 * keccak256 of the ciphertext in a Web Worker: the page encrypts while the worker hashes the
 * chunks already encrypted. At most `MAX_IN_FLIGHT` chunks wait for the worker, so a slower
 * worker holds the encryption back instead of piling ciphertext up in memory.
 */
import type { ChunkHasher } from "@ecld/sdk";
import type { Hex } from "viem";

const MAX_IN_FLIGHT = 16;

export function workerHasher(): ChunkHasher & { close(): void } {
  const worker = new Worker(new URL("./hash-worker.ts", import.meta.url), { type: "module" });
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
  worker.onmessage = (e: MessageEvent<{ ack?: number; hash?: Hex; error?: string }>) => {
    if (e.data.error !== undefined) fail(new Error(`the hashing worker failed: ${e.data.error}`));
    else if (e.data.hash !== undefined) finish?.resolve(e.data.hash);
    else if (e.data.ack !== undefined) {
      acked = e.data.ack;
      wake?.();
    }
  };
  worker.onerror = (e) => fail(new Error(`the hashing worker failed: ${e.message}`));
  return {
    async update(chunk) {
      if (failure !== undefined) throw failure;
      // A copy of its own, transferred (not copied again) to the worker.
      const own = chunk.slice();
      worker.postMessage({ chunk: own }, [own.buffer]);
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

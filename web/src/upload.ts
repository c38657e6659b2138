/**
 * Upload to the store's Kubo API with progress (`fetch` reports none for request bodies, and
 * Chromium refuses a streamed `fetch` body on the HTTP/1.1 that `ecld up` serves, so this uses
 * XMLHttpRequest's upload events over a `Blob`). The multipart body is built here around the
 * ciphertext `Blob` (which stays in the browser's blob store, never copied into the page), so
 * progress counts the ciphertext's bytes alone, not the multipart wrapping. The CID the store
 * answers is checked against the bytes when it is computable here (single-chunk files).
 */
import { EcldError, rawFileCidOf } from "@ecld/sdk";

export function uploadWithProgress(store: string, data: Blob, onProgress: (sent: number, total: number) => void): Promise<string> {
  const url = `${store.replace(/\/+$/, "")}/api/v0/add?cid-version=1&raw-leaves=true&pin=true`;
  const boundary = `ecld-${Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const body = new Blob([head, data, `\r\n--${boundary}--\r\n`]);
  const total = data.size;
  const unreachable = (details: string) =>
    new EcldError("StoreError", `cannot reach the store at ${store}`, { details, hint: "check that the store (Kubo RPC API) is running and reachable from here" });
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Content-Type", `multipart/form-data; boundary=${boundary}`);
    xhr.upload.onprogress = (e) => onProgress(Math.max(0, Math.min(total, e.loaded - head.length)), total);
    xhr.onerror = () => reject(unreachable("the connection failed"));
    xhr.onload = () => void (async () => {
      if (xhr.status === 502 || xhr.status === 503 || xhr.status === 504) return reject(unreachable(`HTTP ${xhr.status}: ${xhr.responseText.slice(0, 200)}`));
      if (xhr.status < 200 || xhr.status >= 300)
        return reject(new EcldError("StoreError", `the store refused the upload (HTTP ${xhr.status})`, { details: xhr.responseText.slice(0, 200), hint: "check the store's log" }));
      const lines = xhr.responseText.trim().split("\n");
      let hash: unknown;
      try {
        hash = (JSON.parse(lines[lines.length - 1] ?? "{}") as { Hash?: unknown }).Hash;
      } catch {
        hash = undefined;
      }
      if (typeof hash !== "string") return reject(new EcldError("StoreError", "the store answered the upload without a CID", { details: xhr.responseText.slice(0, 200), hint: "check that /store is a Kubo RPC API" }));
      const expected = await rawFileCidOf(data);
      if (expected !== undefined && expected !== hash)
        return reject(new EcldError("StoreError", `the store answered CID ${hash} for content whose CID is ${expected}`, { hint: "the store is misconfigured or lying; use another store" }));
      onProgress(total, total);
      resolve(hash);
    })().catch(reject);
    xhr.send(body);
  });
}

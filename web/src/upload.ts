/**
 * Upload to the store's Kubo API with progress (`fetch` reports none for request bodies, so
 * this uses XMLHttpRequest's upload events). The CID the store answers is checked against
 * the bytes when it is computable here (single-chunk files).
 */
import { EcldError, rawFileCid } from "@ecld/sdk";

export function uploadWithProgress(store: string, data: Uint8Array, onProgress: (sent: number, total: number) => void): Promise<string> {
  const url = `${store.replace(/\/+$/, "")}/api/v0/add?cid-version=1&raw-leaves=true&pin=true`;
  const form = new FormData();
  form.append("file", new Blob([data as Uint8Array<ArrayBuffer>]), "file");
  const unreachable = (details: string) =>
    new EcldError("StoreError", `cannot reach the store at ${store}`, { details, hint: "check that the store (Kubo RPC API) is running and reachable from here" });
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : data.length);
    xhr.onerror = () => reject(unreachable("the connection failed"));
    xhr.onload = () => {
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
      const expected = rawFileCid(data);
      if (expected !== undefined && expected !== hash)
        return reject(new EcldError("StoreError", `the store answered CID ${hash} for content whose CID is ${expected}`, { hint: "the store is misconfigured or lying; use another store" }));
      resolve(hash);
    };
    xhr.send(form);
  });
}

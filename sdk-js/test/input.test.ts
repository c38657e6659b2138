import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Address, type Hex, bytesToHex, hexToBytes, keccak256 } from "viem";
import { describe, expect, it } from "vitest";
import { EcldError, decrypt, encodePayload, encryptInputStream, generateResultIdentity, payloadStream, taskSpec } from "../src/index.js";
import { readVectors } from "./util.js";

interface Vector { name: string; requester: Address; recipient: string; code: Hex | null; input: Hex; encoded: Hex }
const { vectors } = readVectors<{ vectors: Vector[] }>("payload");

/** A stream of `bytes` cut at `cuts` (empty chunks included where two cuts are equal). */
function chunked(bytes: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    parts.push(bytes.subarray(at, c));
    at = c;
  }
  return new ReadableStream<Uint8Array>({ pull(ctl) { const x = parts.shift(); if (x === undefined) ctl.close(); else ctl.enqueue(x); } });
}

async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

describe("streamed payload", () => {
  for (const v of vectors) {
    it(`streams the same bytes as the Rust encoding: ${v.name}`, async () => {
      const input = hexToBytes(v.input);
      const code = v.code === null ? undefined : hexToBytes(v.code);
      const cuts = input.length < 2 ? [] : [1, 1, input.length >> 1];
      const { stream, length } = payloadStream({ requester: v.requester, recipient: v.recipient, code, inputLength: input.length }, chunked(input, cuts));
      const out = await readAll(stream);
      expect(bytesToHex(out)).toBe(v.encoded);
      expect(length).toBe(out.length);
    });
  }

  it("fails when the input is shorter or longer than announced", async () => {
    const v = vectors.find((x) => hexToBytes(x.input).length > 0)!;
    const input = hexToBytes(v.input);
    const h = { requester: v.requester, recipient: v.recipient, code: undefined };
    await expect(readAll(payloadStream({ ...h, inputLength: input.length + 1 }, chunked(input, [])).stream)).rejects.toThrow(/ended after \d+ bytes/);
    await expect(readAll(payloadStream({ ...h, inputLength: input.length - 1 }, chunked(input, [])).stream)).rejects.toThrow(/longer than the \d+ bytes announced/);
  });

  it("refuses an input over the maximum before reading it", () => {
    const v = vectors[0]!;
    const never = new ReadableStream<Uint8Array>({ pull() { throw new Error("read"); } });
    expect(() => payloadStream({ requester: v.requester, recipient: v.recipient, inputLength: 256 * 1024 * 1024 + 1 }, never)).toThrow(EcldError);
  });
});

describe("encryptInputStream", () => {
  it("encrypts a multi-chunk input to a Blob whose hash, length and plaintext are right", async () => {
    const { identity, recipient } = await generateResultIdentity();
    const v = vectors[0]!;
    // Over several age STREAM chunks (64 KiB) and Blob parts (1 MiB), cut off the boundaries.
    const input = Uint8Array.from({ length: 2_500_000 }, (_, i) => (i * 131 + (i >> 9)) & 0xff);
    const code = new TextEncoder().encode("print(input())");
    const seen: number[] = [];
    const enc = await encryptInputStream(
      [recipient],
      { requester: v.requester, recipient: v.recipient, code, inputLength: input.length },
      chunked(input, [7, 65_536, 65_536, 1_000_003]),
      (done, total) => { seen.push(done); expect(total).toBe(enc0Total(input.length, code.length, v.recipient)); },
    );
    const ct = new Uint8Array(await enc.ciphertext.arrayBuffer());
    expect(ct.length).toBe(enc.length);
    expect(enc.inputHash).toBe(keccak256(ct));
    expect(seen[seen.length - 1]).toBe(enc.length);
    expect(seen.every((x, i) => i === 0 || x >= seen[i - 1]!)).toBe(true);
    const expected = encodePayload({ requester: v.requester, recipient: v.recipient, code, input });
    expect(enc.payloadLength).toBe(expected.length);
    const plain = await decrypt(identity, ct);
    expect(plain.length).toBe(expected.length);
    expect(keccak256(plain)).toBe(keccak256(expected));
    // Debian age reads it too.
    const dir = mkdtempSync(join(tmpdir(), "ecld-js-input-"));
    writeFileSync(join(dir, "id.txt"), identity + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "in.age"), ct);
    expect(keccak256(execFileSync("age", ["-d", "-i", join(dir, "id.txt"), join(dir, "in.age")], { maxBuffer: 1 << 26 }))).toBe(keccak256(expected));
  });

  it("reports an input that ends early as an error, not a short ciphertext", async () => {
    const { recipient } = await generateResultIdentity();
    const v = vectors[0]!;
    const input = new Uint8Array(100_000);
    await expect(encryptInputStream([recipient], { requester: v.requester, recipient: v.recipient, inputLength: input.length + 5 }, chunked(input, [50_000])))
      .rejects.toThrow(/ended after 100000 bytes/);
  });
});

describe("taskSpec", () => {
  it("commits to the input CID: inputCidHash is keccak256 of its UTF-8 text, as submitTask checks", () => {
    const inputCid = "bafkreia3zjtcgsdjg4zcd3cmrekhqvtzgy7amn537lv3mi2gr5fwdmdy6e";
    const p = { imageId: keccak256(new Uint8Array([1])), inputHash: keccak256(new Uint8Array([2])), inputCid, memoryMb: 64, maxRuntimeS: 10, deadline: 1_900_000_000n };
    expect(taskSpec(p)).toEqual({
      imageId: p.imageId,
      inputHash: p.inputHash,
      inputCidHash: "0x4999d240334ef1cad72c8c4cc90822b8ecb72105f4054d1a9d247245da7c7294",
      memoryMb: 64,
      maxRuntimeS: 10,
      deadline: 1_900_000_000n,
    });
    expect(taskSpec(p).inputCidHash).toBe(keccak256(new TextEncoder().encode(inputCid)));
  });
});

/** The age v1 length of a payload for one X25519 recipient: header, nonce, 16-byte tag per 64 KiB chunk. */
function enc0Total(inputLen: number, codeLen: number, recipient: string): number {
  const payload = 4 + 1 + 20 + 2 + recipient.length + 1 + 4 + codeLen + 4 + inputLen;
  const header = "age-encryption.org/v1\n".length + "-> X25519 ".length + 43 + 1 + 43 + 1 + "--- ".length + 43 + 1;
  return header + 16 + payload + 16 * Math.max(1, Math.ceil(payload / 65536));
}

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bytesToHex, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  RESULT_KEY_TYPED_DATA, decodeResultEnvelope, decrypt, encrypt, encryptStream, enclaveKeyToRecipient, generateResultIdentity,
  identityFromSignature, recipientOf, recipientToKey,
} from "../src/index.js";
import { requireEcld } from "./util.js";

const dir = mkdtempSync(join(tmpdir(), "ecld-js-age-"));
const plaintext = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 31 + 7) & 0xff);

describe("age interop", () => {
  it("a file encrypted here decrypts with Debian age and the ecld CLI", async (ctx) => {
    const { identity, recipient } = await generateResultIdentity();
    writeFileSync(join(dir, "id.txt"), identity + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "js.age"), await encrypt([recipient], plaintext));
    const out = execFileSync("age", ["-d", "-i", join(dir, "id.txt"), join(dir, "js.age")]);
    expect(bytesToHex(out)).toBe(bytesToHex(plaintext));
    const bin = requireEcld(ctx);
    execFileSync(bin, ["decrypt", "-i", join(dir, "id.txt"), "-o", join(dir, "js.out"), join(dir, "js.age")]);
    expect(bytesToHex(readFileSync(join(dir, "js.out")))).toBe(bytesToHex(plaintext));
  });

  it("files encrypted by Debian age and the ecld CLI decrypt here", async (ctx) => {
    execFileSync("age-keygen", ["-o", join(dir, "k.txt")], { stdio: "ignore" });
    const identity = readFileSync(join(dir, "k.txt"), "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    const recipient = await recipientOf(identity);
    writeFileSync(join(dir, "plain"), plaintext);
    execFileSync("age", ["-r", recipient, "-o", join(dir, "go.age"), join(dir, "plain")]);
    expect(bytesToHex(await decrypt(identity, readFileSync(join(dir, "go.age"))))).toBe(bytesToHex(plaintext));
    execFileSync("age", ["-a", "-r", recipient, "-o", join(dir, "go.age.asc"), join(dir, "plain")]);
    expect(bytesToHex(await decrypt(identity, readFileSync(join(dir, "go.age.asc"))))).toBe(bytesToHex(plaintext));
    const bin = requireEcld(ctx);
    execFileSync(bin, ["encrypt", "-r", recipient, "-o", join(dir, "rs.age"), join(dir, "plain")]);
    expect(bytesToHex(await decrypt(identity, readFileSync(join(dir, "rs.age"))))).toBe(bytesToHex(plaintext));
  });

  it("streams: a Web Stream encrypted here decrypts with Debian age", async () => {
    const { identity, recipient } = await generateResultIdentity();
    writeFileSync(join(dir, "sid.txt"), identity + "\n", { mode: 0o600 });
    const chunks = [plaintext.subarray(0, 70_000), plaintext.subarray(70_000, 70_001), plaintext.subarray(70_001)];
    const source = new ReadableStream<Uint8Array>({ pull(c) { const x = chunks.shift(); if (x === undefined) c.close(); else c.enqueue(x); } });
    const parts: Uint8Array[] = [];
    for await (const part of (await encryptStream([recipient], source)) as unknown as AsyncIterable<Uint8Array>) parts.push(part);
    writeFileSync(join(dir, "stream.age"), Buffer.concat(parts));
    expect(bytesToHex(execFileSync("age", ["-d", "-i", join(dir, "sid.txt"), join(dir, "stream.age")]))).toBe(bytesToHex(plaintext));
  });

  it("refuses the wrong identity with an actionable error", async () => {
    const a = await generateResultIdentity();
    const b = await generateResultIdentity();
    const ct = await encrypt([a.recipient], plaintext.subarray(0, 10));
    await expect(decrypt(b.identity, ct)).rejects.toThrow(/decryption failed[\s\S]*Hint:/);
  });
});

describe("keys", () => {
  it("enclave keys and recipients convert both ways", async () => {
    const { recipient } = await generateResultIdentity();
    expect(enclaveKeyToRecipient(recipientToKey(recipient))).toBe(recipient);
    expect(() => enclaveKeyToRecipient(`0x${"00".repeat(32)}`)).toThrow(/not an X25519/);
  });

  it("derives the same identity from the same wallet signature", async () => {
    const acct = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
    const s1 = await acct.signTypedData(RESULT_KEY_TYPED_DATA);
    const s2 = await acct.signTypedData(RESULT_KEY_TYPED_DATA);
    const id = identityFromSignature(s1);
    expect(identityFromSignature(s2)).toBe(id);
    expect(id).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    const ct = await encrypt([await recipientOf(id)], new TextEncoder().encode("hi"));
    writeFileSync(join(dir, "derived.txt"), id + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "derived.age"), ct);
    expect(execFileSync("age", ["-d", "-i", join(dir, "derived.txt"), join(dir, "derived.age")], { encoding: "utf8" })).toBe("hi");
  });
});

describe("result envelope", () => {
  it("decodes the protocol.md example", () => {
    const e = decodeResultEnvelope(hexToBytes("0x65636c6472657331000100000003000000036f75740000000165"));
    expect(e.status).toBe(1);
    expect(e.exitCode).toBe(3);
    expect(new TextDecoder().decode(e.stdout)).toBe("out");
    expect(new TextDecoder().decode(e.stderr)).toBe("e");
    expect(() => decodeResultEnvelope(hexToBytes("0x65636c6472657331000100000003000000036f7574000000016500"))).toThrow(/trailing/);
  });
});

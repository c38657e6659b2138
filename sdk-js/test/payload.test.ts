import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Address, type Hex, bytesToHex, hexToBytes } from "viem";
import { describe, expect, it } from "vitest";
import { EcldError, decodePayload, encodePayload } from "../src/index.js";
import { readVectors, requireEcld } from "./util.js";

interface Vector { name: string; requester: Address; recipient: string; code: Hex | null; input: Hex; encoded: Hex }
const { vectors } = readVectors<{ vectors: Vector[] }>("payload");

describe("payload", () => {
  it("has vectors", () => expect(vectors.length).toBeGreaterThanOrEqual(4));
  for (const v of vectors) {
    it(`encodes like Rust: ${v.name}`, () => {
      const p = { requester: v.requester, recipient: v.recipient, code: v.code === null ? undefined : hexToBytes(v.code), input: hexToBytes(v.input) };
      expect(bytesToHex(encodePayload(p))).toBe(v.encoded);
      const back = decodePayload(hexToBytes(v.encoded));
      expect(back.requester.toLowerCase()).toBe(v.requester.toLowerCase());
      expect(back.recipient).toBe(v.recipient);
      expect(back.code === undefined ? null : bytesToHex(back.code)).toBe(v.code);
      expect(bytesToHex(back.input)).toBe(v.input);
    });
  }

  it("refuses what Rust refuses", () => {
    const good = hexToBytes(vectors[0]!.encoded);
    const bad = (b: Uint8Array, msg: RegExp) => {
      const e = (() => { try { decodePayload(b); } catch (err) { return err; } return undefined; })();
      expect(e).toBeInstanceOf(EcldError);
      expect((e as EcldError).shortMessage).toMatch(msg);
    };
    bad(new Uint8Array([1, 2, 3, 4, 5]), /magic/);
    bad(Uint8Array.of(...good, 0), /unexpected bytes/);
    bad(good.slice(0, good.length - 1), /truncated in the input/);
    const v2 = good.slice(); v2[4] = 2; bad(v2, /version 2/);
    const flag = good.slice(); flag[27 + 62] = 7; bad(flag, /code flag is 7/);
    expect(() => encodePayload({ requester: "0x0000000000000000000000000000000000000001", recipient: "age1nope", input: new Uint8Array() })).toThrow(/recipient/);
  });

  it("the committed vectors are what the Rust CLI builds today (ecld payload build)", (ctx) => {
    const bin = requireEcld(ctx);
    const dir = mkdtempSync(join(tmpdir(), "ecld-js-"));
    for (const [i, v] of vectors.entries()) {
      writeFileSync(join(dir, `in${i}`), hexToBytes(v.input));
      const args = ["payload", "build", "--input", join(dir, `in${i}`), "--requester", v.requester, "--recipient", v.recipient, "-o", join(dir, `out${i}`)];
      if (v.code !== null) {
        writeFileSync(join(dir, `code${i}`), hexToBytes(v.code));
        args.push("--code", join(dir, `code${i}`));
      }
      execFileSync(bin, args, { stdio: ["ignore", "ignore", "inherit"] });
      expect(bytesToHex(readFileSync(join(dir, `out${i}`))), v.name).toBe(v.encoded);
    }
  });

  it("round-trips through the Rust CLI (ecld payload inspect)", (ctx) => {
    const bin = requireEcld(ctx);
    const dir = mkdtempSync(join(tmpdir(), "ecld-js-"));
    const code = new TextEncoder().encode("code!");
    const input = crypto.getRandomValues(new Uint8Array(1000));
    const bytes = encodePayload({ requester: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", recipient: vectors[0]!.recipient, code, input });
    writeFileSync(join(dir, "p.bin"), bytes);
    const info = JSON.parse(execFileSync(bin, ["payload", "inspect", "--json", join(dir, "p.bin")], { encoding: "utf8" })) as Record<string, unknown>;
    expect(info.codeLen).toBe(5);
    expect(info.inputLen).toBe(1000);
    expect(info.encodedLen).toBe(bytes.length);
  });
});

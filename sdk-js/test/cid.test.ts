import { describe, expect, it } from "vitest";
import { EcldError, cidToString, parseCid, rawFileCid, readVerifiedFile } from "../src/index.js";
import { readVectors } from "./util.js";

interface Vector { name: string; len: number; cid: string }
const { vectors } = readVectors<{ vectors: Vector[] }>("cid");
const content = (len: number) => Uint8Array.from({ length: len }, (_, i) => i % 251);

describe("CIDs (vectors from js-ipfs's importer)", () => {
  for (const v of vectors.filter((x) => x.len <= 1_000_000)) {
    it(`${v.name}: parses, and raw leaves are computed here`, () => {
      expect(cidToString(parseCid(v.cid))).toBe(v.cid);
      expect(rawFileCid(content(v.len))).toBe(v.len <= 262144 ? v.cid : undefined);
    });
  }

  it("a single raw block is checked against its CID", async () => {
    const v = vectors.find((x) => x.name === "small")!;
    const bytes = content(v.len);
    expect(await readVerifiedFile(v.cid, async () => bytes, 1 << 20)).toEqual(bytes);
    const bad = bytes.slice();
    bad[0] = 99;
    await expect(readVerifiedFile(v.cid, async () => bad, 1 << 20)).rejects.toBeInstanceOf(EcldError);
    await expect(readVerifiedFile(v.cid, async () => bytes, 10)).rejects.toThrow(/larger than 10 bytes/);
  });
});

import { type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { codeHashOf, proofNamesCode, proofDomainSeparator, recoverResultSigner, resultDigest, resultStructHash, resultTypedData } from "../src/index.js";
import { readVectors } from "./util.js";

interface Vector {
  name: string; privateKey: Hex; signer: Address;
  domain: { chainId: string; verifyingContract: Address };
  message: { taskId: string; imageId: Hex; inputHash: Hex; codeHash: Hex; resultHash: Hex; status: number; runtimeMs: string };
  domainSeparator: Hex; structHash: Hex; digest: Hex; signature: Hex;
}
const { vectors } = readVectors<{ vectors: Vector[] }>("eip712");

describe("EIP-712 Result proofs", () => {
  it("has vectors", () => expect(vectors.length).toBeGreaterThan(2));
  for (const v of vectors) {
    const proof = { ...v.message, taskId: BigInt(v.message.taskId), runtimeMs: BigInt(v.message.runtimeMs) };
    const domain = { chainId: BigInt(v.domain.chainId), verifyingContract: v.domain.verifyingContract };
    it(`matches the shared vector: ${v.name}`, async () => {
      expect(proofDomainSeparator(domain)).toBe(v.domainSeparator);
      expect(resultStructHash(proof)).toBe(v.structHash);
      expect(resultDigest(proof, domain)).toBe(v.digest);
      expect(await recoverResultSigner(proof, domain, v.signature)).toBe(v.signer);
      const account = privateKeyToAccount(v.privateKey);
      expect(account.address).toBe(v.signer);
      expect(await account.signTypedData(resultTypedData(proof, domain))).toBe(v.signature);
    });
    it(`a changed field recovers another signer: ${v.name}`, async () => {
      const other = { ...proof, status: proof.status + 1 };
      expect(await recoverResultSigner(other, domain, v.signature)).not.toBe(v.signer);
      expect(await recoverResultSigner(proof, { ...domain, chainId: domain.chainId + 1n }, v.signature)).not.toBe(v.signer);
    });
  }
});

describe("code hash check", () => {
  const base = { taskId: 1n, imageId: `0x${"00".repeat(32)}`, inputHash: `0x${"00".repeat(32)}`, resultHash: `0x${"00".repeat(32)}`, runtimeMs: 0n } as const;
  const zero = `0x${"00".repeat(32)}` as const;
  it("the proof must name the code sent", () => {
    const code = new TextEncoder().encode("print(1)");
    expect(proofNamesCode(code, { ...base, status: 0, codeHash: codeHashOf(code) })).toBe(true);
    expect(proofNamesCode(undefined, { ...base, status: 0, codeHash: zero })).toBe(true);
    expect(proofNamesCode(code, { ...base, status: 0, codeHash: codeHashOf(new TextEncoder().encode("print(2)")) })).toBe(false);
    expect(proofNamesCode(code, { ...base, status: 0, codeHash: zero })).toBe(false);
    expect(proofNamesCode(code, { ...base, status: 4, codeHash: zero })).toBe(true);
  });
});

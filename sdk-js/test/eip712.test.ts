import { type Address, type Hex, encodeAbiParameters, keccak256, stringToBytes, zeroHash } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  FIRST_SYSTEM_STATUS, RESULT_TYPE, type ResultProof, STATUS_DESCRIPTIONS, STATUS_NAMES, type TaskSpec, cidHash, codeHashOf, isKnownStatus,
  proofDomainSeparator, proofNamesCode, recoverResultSigner, resultDigest, resultStructHash, resultTypedData, statusName, statusPaysNode,
  taskSpecStructHash,
} from "../src/index.js";
import { readVectors } from "./util.js";

/**
 * A fixed vector, computed with viem (sdk-js `resultDigest`, `signTypedData`) and checked once
 * against the compiled Marketplace in an EVM: its `RESULT_TYPEHASH`, `TASK_SPEC_TYPEHASH`,
 * `hashSpec` and `DOMAIN_SEPARATOR`, and `submitResult` accepting a proof signed this way.
 * The same vector (domain, message, digest) is given to the Rust side.
 */
const V = {
  privateKey: "0xed9b56f514b1c62fde44c9cbf5e583982ec0b8cf7f09123f92de7b99e46bca6e",
  signer: "0xCd7715904fFBDEC05D10869C93F27eBc4EE147d8",
  domain: { chainId: 31337n, verifyingContract: "0x44a55a10E81A8bdcd088f422Fed92c7d290E90dd" },
  inputCid: "bafkreia3zjtcgsdjg4zcd3cmrekhqvtzgy7amn537lv3mi2gr5fwdmdy6e",
  resultCid: "bafkreiatmvpgmu6fazd6pkbzwxflfood4y6wz72knijbvzqk2kpsgdvkzu",
  proof: {
    taskId: 1n,
    spec: {
      imageId: "0x13bfc95c3f5352be7408ddbcb9fc53d0c27e40a789d39c968934f1a4b1b3c162",
      inputHash: "0x1274418c3764a64f245d10fd0dc7efc412ac831182c473d0b73908f950a86126",
      inputCidHash: "0x4999d240334ef1cad72c8c4cc90822b8ecb72105f4054d1a9d247245da7c7294",
      memoryMb: 64,
      maxRuntimeS: 10,
      deadline: 1_900_000_000n,
    },
    codeHash: zeroHash,
    resultHash: "0xa14fc851294e823d824f8345095cbce60d337799a3573df95d57b78d319d0a9f",
    resultCidHash: "0x7564a58fc992287e3fd64bcb2495c975833f298ed2145e6d5e21ce7881ce2968",
    status: 0,
    runtimeMs: 1234n,
  },
  resultTypeHash: "0xf407cdc798cb8376b328b1404af4bd2438329470050d4202835b0089c5990d03",
  taskSpecTypeHash: "0x0a3a6621f7d2b8d1f3ef9f42757b312081b3f391f0f07efe3d0b985e5f56124c",
  domainSeparator: "0xbf388ac5da3ea8ca2ceaffef4fb26934fdd4962139cf662f9a85a5d1ff730d83",
  specHash: "0xa6d02fd1a784a1aa26f061e18c1e4f9760087f73c677fbdb0fc34c80ade7081b",
  structHash: "0xbe531fc43ea78d7e93c20fc96630c86330b0b91ed6c0a139ab9004df1d0e783c",
  digest: "0x86bff89d3b0d794cbe59af6ef84498bd979d3f2375a2376d172101e0fa210d78",
  signature:
    "0x9b2d1243ccfbec9bc684fed42cccf5f14a1267d88a571c75ffd7ccac3264ed554e105eff82f5730acdbfac7222b61f5dbb5a6937210b6cee54057dfb1fd59aba1b",
} as const satisfies { proof: ResultProof } & Record<string, unknown>;

const TASK_SPEC_TYPE = RESULT_TYPE.slice(RESULT_TYPE.indexOf("TaskSpec("));

describe("EIP-712 Result proofs (the whole spec nested, the result CID's hash)", () => {
  it("the type string is the contract's, TaskSpec appended (encodeType)", () => {
    expect(RESULT_TYPE).toBe(
      "Result(uint256 taskId,TaskSpec spec,bytes32 codeHash,bytes32 resultHash,bytes32 resultCidHash,uint16 status,uint64 runtimeMs)" +
        "TaskSpec(bytes32 imageId,bytes32 inputHash,bytes32 inputCidHash,uint32 memoryMb,uint32 maxRuntimeS,uint64 deadline)",
    );
    expect(keccak256(stringToBytes(RESULT_TYPE))).toBe(V.resultTypeHash);
    expect(keccak256(stringToBytes(TASK_SPEC_TYPE))).toBe(V.taskSpecTypeHash);
  });

  it("the spec commits to the CIDs as UTF-8 text", () => {
    expect(cidHash(V.inputCid)).toBe(V.proof.spec.inputCidHash);
    expect(cidHash(V.resultCid)).toBe(V.proof.resultCidHash);
    // A proof without a result signs the hash of the empty CID: keccak256 of no bytes.
    expect(cidHash("")).toBe("0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  });

  it("matches the fixed vector", async () => {
    expect(proofDomainSeparator(V.domain)).toBe(V.domainSeparator);
    expect(taskSpecStructHash(V.proof.spec)).toBe(V.specHash);
    expect(resultStructHash(V.proof)).toBe(V.structHash);
    expect(resultDigest(V.proof, V.domain)).toBe(V.digest);
    expect(await recoverResultSigner(V.proof, V.domain, V.signature)).toBe(V.signer);
    const account = privateKeyToAccount(V.privateKey);
    expect(account.address).toBe(V.signer);
    expect(await account.signTypedData(resultTypedData(V.proof, V.domain))).toBe(V.signature);
  });

  it("the digest is what Marketplace.submitResult computes (abi.encode of the type hash and fields, hashSpec nested)", () => {
    const s = V.proof.spec;
    const specHash = keccak256(encodeAbiParameters(
      [{ type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "uint32" }, { type: "uint32" }, { type: "uint64" }],
      [keccak256(stringToBytes(TASK_SPEC_TYPE)), s.imageId, s.inputHash, s.inputCidHash, s.memoryMb, s.maxRuntimeS, s.deadline],
    ));
    expect(specHash).toBe(V.specHash);
    const structHash = keccak256(encodeAbiParameters(
      [{ type: "bytes32" }, { type: "uint256" }, { type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "bytes32" }, { type: "uint16" }, { type: "uint64" }],
      [keccak256(stringToBytes(RESULT_TYPE)), V.proof.taskId, specHash, V.proof.codeHash, V.proof.resultHash, keccak256(stringToBytes(V.resultCid)), V.proof.status, V.proof.runtimeMs],
    ));
    expect(structHash).toBe(V.structHash);
    expect(keccak256(`0x1901${V.domainSeparator.slice(2)}${structHash.slice(2)}`)).toBe(V.digest);
  });

  describe("a proof whose result CID, spec or any other field differs does not verify", () => {
    const specChanges: [string, Partial<TaskSpec>][] = [
      ["spec.memoryMb", { memoryMb: V.proof.spec.memoryMb + 1 }],
      ["spec.maxRuntimeS", { maxRuntimeS: V.proof.spec.maxRuntimeS + 1 }],
      ["spec.deadline", { deadline: V.proof.spec.deadline + 1n }],
      ["spec.inputCidHash (another input CID)", { inputCidHash: cidHash(`${V.inputCid}x`) }],
      ["spec.inputHash", { inputHash: keccak256(stringToBytes("another input")) }],
      ["spec.imageId", { imageId: keccak256(stringToBytes("another image")) }],
    ];
    for (const [name, change] of specChanges) {
      it(name, async () => {
        const other = { ...V.proof, spec: { ...V.proof.spec, ...change } };
        expect(await recoverResultSigner(other, V.domain, V.signature)).not.toBe(V.signer);
      });
    }
    const changes: [string, Partial<ResultProof>][] = [
      ["resultCidHash (another result CID)", { resultCidHash: cidHash(`${V.resultCid}x`) }],
      ["resultCidHash of no result", { resultCidHash: cidHash("") }],
      ["resultHash", { resultHash: zeroHash }],
      ["codeHash", { codeHash: keccak256(stringToBytes("code")) }],
      ["status", { status: 1 }],
      ["runtimeMs", { runtimeMs: V.proof.runtimeMs + 1n }],
      ["taskId", { taskId: 2n }],
    ];
    for (const [name, change] of changes) {
      it(name, async () => {
        expect(await recoverResultSigner({ ...V.proof, ...change }, V.domain, V.signature)).not.toBe(V.signer);
      });
    }
    it("the domain (chain id, Marketplace)", async () => {
      expect(await recoverResultSigner(V.proof, { ...V.domain, chainId: 1n }, V.signature)).not.toBe(V.signer);
      expect(await recoverResultSigner(V.proof, { ...V.domain, verifyingContract: "0x0000000000000000000000000000000000000001" }, V.signature)).not.toBe(V.signer);
    });
  });
});

/** The vectors shared with Rust (testdata/eip712/vectors.json, eth-account): the spec nested under `spec`. */
interface SharedVector {
  name: string; privateKey: Hex; signer: Address;
  domain: { chainId: string | number; verifyingContract: Address };
  message: Record<string, unknown> & { spec?: Record<string, unknown> };
  domainSeparator: Hex; structHash: Hex; digest: Hex; signature: Hex;
}
const shared = readVectors<{ resultType?: string; vectors: SharedVector[] }>("eip712");

function sharedProof(m: SharedVector["message"]): ResultProof {
  // Integers as JSON numbers or decimal strings.
  const s = m.spec ?? {};
  const hex = (o: Record<string, unknown>, k: string) => o[k] as Hex;
  return {
    taskId: BigInt(String(m.taskId)),
    spec: {
      imageId: hex(s, "imageId"), inputHash: hex(s, "inputHash"), inputCidHash: hex(s, "inputCidHash"),
      memoryMb: Number(s.memoryMb), maxRuntimeS: Number(s.maxRuntimeS), deadline: BigInt(String(s.deadline)),
    },
    codeHash: hex(m, "codeHash"), resultHash: hex(m, "resultHash"), resultCidHash: hex(m, "resultCidHash"),
    status: Number(m.status), runtimeMs: BigInt(String(m.runtimeMs)),
  };
}

describe("EIP-712 vectors shared with Rust (testdata/eip712/vectors.json)", () => {
  it("are for the Result type signed here (else regenerate them: tools/gen_eip712_vectors.py)", () => expect(shared.resultType).toBe(RESULT_TYPE));
  it("has vectors", () => expect(shared.vectors.length).toBeGreaterThan(2));
  for (const v of shared.vectors) {
    const proof = sharedProof(v.message);
    const domain = { chainId: BigInt(String(v.domain.chainId)), verifyingContract: v.domain.verifyingContract };
    it(`matches: ${v.name}`, async () => {
      expect(proofDomainSeparator(domain)).toBe(v.domainSeparator);
      expect(resultStructHash(proof)).toBe(v.structHash);
      expect(resultDigest(proof, domain)).toBe(v.digest);
      expect(await recoverResultSigner(proof, domain, v.signature)).toBe(v.signer);
      expect(await privateKeyToAccount(v.privateKey).signTypedData(resultTypedData(proof, domain))).toBe(v.signature);
    });
  }
});

describe("status codes", () => {
  it("are the protocol's: 0-6 pay the node, 16-19 refund the requester", () => {
    expect(Object.keys(STATUS_NAMES).map(Number)).toEqual([0, 1, 2, 3, 4, 5, 6, 16, 17, 18, 19]);
    expect(Object.keys(STATUS_DESCRIPTIONS)).toEqual(Object.keys(STATUS_NAMES));
    expect(statusName(6)).toBe("INPUT_MISMATCH");
    expect(statusName(19)).toBe("STALLED");
    expect(statusName(7)).toBe("STATUS_7");
    expect(isKnownStatus(6) && isKnownStatus(19) && !isKnownStatus(7) && !isKnownStatus(20)).toBe(true);
    expect(FIRST_SYSTEM_STATUS).toBe(16);
    expect([0, 1, 2, 3, 4, 5, 6].every(statusPaysNode)).toBe(true);
    expect([16, 17, 18, 19].some(statusPaysNode)).toBe(false);
  });
});

describe("code hash check", () => {
  const zero = zeroHash;
  it("the proof must name the code sent", () => {
    const code = new TextEncoder().encode("print(1)");
    expect(proofNamesCode(code, { status: 0, codeHash: codeHashOf(code) })).toBe(true);
    expect(proofNamesCode(undefined, { status: 0, codeHash: zero })).toBe(true);
    expect(proofNamesCode(code, { status: 0, codeHash: codeHashOf(new TextEncoder().encode("print(2)")) })).toBe(false);
    expect(proofNamesCode(code, { status: 0, codeHash: zero })).toBe(false);
    // The payload was not read: a zero code hash is expected.
    for (const status of [4, 6, 16, 18]) expect(proofNamesCode(code, { status, codeHash: zero })).toBe(true);
    // The program ran (and stalled): the hash must be the code's.
    expect(proofNamesCode(code, { status: 19, codeHash: zero })).toBe(false);
    expect(proofNamesCode(code, { status: 2, codeHash: zero })).toBe(false);
  });
});

import {
  type Address,
  type Hex,
  hashDomain,
  hashStruct,
  hashTypedData,
  keccak256,
  recoverTypedDataAddress,
  stringToBytes,
} from "viem";

/** The EIP-712 domain name and version of result proofs. */
export const PROOF_DOMAIN = { name: "ecld", version: "1" } as const;

/**
 * EIP-712 types of the `Result` message the enclave signs: the task id, the task's whole
 * spec as committed on chain (nested `TaskSpec`), and the outcome, with the keccak256 of the
 * result's CID.
 */
export const RESULT_TYPES = {
  Result: [
    { name: "taskId", type: "uint256" },
    { name: "spec", type: "TaskSpec" },
    { name: "codeHash", type: "bytes32" },
    { name: "resultHash", type: "bytes32" },
    { name: "resultCidHash", type: "bytes32" },
    { name: "status", type: "uint16" },
    { name: "runtimeMs", type: "uint64" },
  ],
  TaskSpec: [
    { name: "imageId", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "inputCidHash", type: "bytes32" },
    { name: "memoryMb", type: "uint32" },
    { name: "maxRuntimeS", type: "uint32" },
    { name: "deadline", type: "uint64" },
  ],
} as const;

/** The EIP-712 `encodeType` of `Result` (the contract's `RESULT_TYPEHASH` is its keccak256). */
export const RESULT_TYPE =
  "Result(uint256 taskId,TaskSpec spec,bytes32 codeHash,bytes32 resultHash,bytes32 resultCidHash,uint16 status,uint64 runtimeMs)" +
  "TaskSpec(bytes32 imageId,bytes32 inputHash,bytes32 inputCidHash,uint32 memoryMb,uint32 maxRuntimeS,uint64 deadline)";

/**
 * The immutable fields of a task, as `submitTask` takes them and the Marketplace commits to
 * them (`Marketplace.TaskSpec`); nested in every proof.
 */
export interface TaskSpec {
  /** ImageRegistry id of the image to run. */
  imageId: Hex;
  /** keccak256 of the input ciphertext as stored. */
  inputHash: Hex;
  /** keccak256 of the input's CID as UTF-8 text ({@link cidHash}). */
  inputCidHash: Hex;
  /** Memory the task needs, MB: the enclave's memory limit. */
  memoryMb: number;
  /** Run time the task may use, seconds: the enclave's fuel budget derives from it. */
  maxRuntimeS: number;
  /** Unix time after which the task can no longer be claimed or proven. */
  deadline: bigint;
}

/** The signed fields of a result proof (`ecld_crypto::ResultProof`, with the spec nested as signed). */
export interface ResultProof {
  taskId: bigint;
  /** The task's spec, as submitted on chain. */
  spec: TaskSpec;
  codeHash: Hex;
  resultHash: Hex;
  /** keccak256 of the result's CID as UTF-8 text (of "" when there is no result). */
  resultCidHash: Hex;
  status: number;
  runtimeMs: bigint;
}

/** Where a proof is valid: the chain and the Marketplace that verifies it. */
export interface ProofDomain {
  chainId: bigint | number;
  verifyingContract: Address;
}

/** First status code that refunds the requester (the contract's `FIRST_SYSTEM_STATUS`). */
export const FIRST_SYSTEM_STATUS = 16;

/** Status names (docs/protocol.md, "Status codes of execution"; `ecld_types::StatusCode`). */
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "SUCCESS",
  1: "PROGRAM_ERROR",
  2: "TIMEOUT",
  3: "RESOURCE_LIMIT",
  4: "INPUT_INVALID",
  5: "CODE_INVALID",
  6: "INPUT_MISMATCH",
  16: "INPUT_UNAVAILABLE",
  17: "IMAGE_UNAVAILABLE",
  18: "ENCLAVE_FAILURE",
  19: "STALLED",
};

/** What each status code means, in one line (`StatusCode::description`). */
export const STATUS_DESCRIPTIONS: Readonly<Record<number, string>> = {
  0: "the program ran and succeeded",
  1: "the program exited with an error or trapped",
  2: "the program used up the fuel of the task's run time",
  3: "the program exceeded its memory or output limit",
  4: "the input payload could not be decrypted or parsed",
  5: "the supplied code is missing or does not compile",
  6: "the input is what the requester's CID names, but not what its committed hash names",
  16: "the input could not be fetched, or was not what its CID names",
  17: "the image could not be fetched or did not match its measurement",
  18: "the enclave failed",
  19: "the enclave was paused or starved past its wall-clock allowance",
};

/** The name of a status code, or `STATUS_<n>`. */
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `STATUS_${status}`;
}

/** Whether the protocol defines a status code (0-6 and 16-19). */
export function isKnownStatus(status: number): boolean {
  return STATUS_NAMES[status] !== undefined;
}

/** Whether a status pays the node its price (codes below 16); otherwise the requester is refunded in full. */
export function statusPaysNode(status: number): boolean {
  return status < FIRST_SYSTEM_STATUS;
}

/** keccak256 of bytes (the content hash of inputs, results and code). */
export function contentHash(bytes: Uint8Array): Hex {
  return keccak256(bytes);
}

/**
 * keccak256 of a CID as UTF-8 text: the spec's `inputCidHash` and the proof's `resultCidHash`
 * (the contract hashes the `string` it is given, `keccak256(bytes(cid))`). The empty string
 * (no result) hashes to keccak256 of no bytes.
 */
export function cidHash(cid: string): Hex {
  return keccak256(stringToBytes(cid));
}

function domainOf(d: ProofDomain) {
  return { ...PROOF_DOMAIN, chainId: BigInt(d.chainId), verifyingContract: d.verifyingContract };
}

/** The EIP-712 typed data of a proof, ready for viem's signTypedData. */
export function resultTypedData(proof: ResultProof, domain: ProofDomain) {
  return { domain: domainOf(domain), types: RESULT_TYPES, primaryType: "Result", message: proof } as const;
}

/** The EIP-712 domain separator. */
export function proofDomainSeparator(domain: ProofDomain): Hex {
  return hashDomain({
    domain: domainOf(domain),
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
    },
  });
}

/** The EIP-712 struct hash of a `TaskSpec` (what `Marketplace.hashSpec` returns). */
export function taskSpecStructHash(spec: TaskSpec): Hex {
  return hashStruct({ data: spec, primaryType: "TaskSpec", types: RESULT_TYPES });
}

/** The EIP-712 struct hash of the `Result` message. */
export function resultStructHash(proof: ResultProof): Hex {
  return hashStruct({ data: proof, primaryType: "Result", types: RESULT_TYPES });
}

/** The digest the enclave signs and `submitResult` recovers. */
export function resultDigest(proof: ResultProof, domain: ProofDomain): Hex {
  return hashTypedData(resultTypedData(proof, domain));
}

/** The address that signed a proof (65-byte r‖s‖v signature). */
export async function recoverResultSigner(proof: ResultProof, domain: ProofDomain, signature: Hex): Promise<Address> {
  return await recoverTypedDataAddress({ ...resultTypedData(proof, domain), signature });
}

/** The code hash a proof must name: keccak256 of the code sent, zero when none was sent. */
export function codeHashOf(code: Uint8Array | undefined): Hex {
  return code === undefined ? `0x${"00".repeat(32)}` : keccak256(code);
}

/**
 * Statuses signed without reading the payload, so with a zero code hash: 4 INPUT_INVALID (it
 * does not decrypt or parse), 6 INPUT_MISMATCH (the bytes are not the committed input),
 * 16 INPUT_UNAVAILABLE and 18 ENCLAVE_FAILURE.
 */
export const PAYLOAD_UNREAD_STATUSES: readonly number[] = [4, 6, 16, 18];

/**
 * Whether a proof names the code the requester sent (as `ecld_sdk`'s check): equal hashes, or
 * a zero hash for the statuses where the enclave could not read the payload
 * ({@link PAYLOAD_UNREAD_STATUSES}).
 */
export function proofNamesCode(code: Uint8Array | undefined, proof: Pick<ResultProof, "codeHash" | "status">): boolean {
  const zero = `0x${"00".repeat(32)}`;
  const unread = PAYLOAD_UNREAD_STATUSES.includes(proof.status);
  return proof.codeHash === codeHashOf(code) || (unread && proof.codeHash === zero);
}

import {
  type Address,
  type Hex,
  hashDomain,
  hashStruct,
  hashTypedData,
  keccak256,
  recoverTypedDataAddress,
} from "viem";

/** The EIP-712 domain name and version of result proofs. */
export const PROOF_DOMAIN = { name: "ecld", version: "1" } as const;

/** EIP-712 types of the `Result` message the enclave signs. */
export const RESULT_TYPES = {
  Result: [
    { name: "taskId", type: "uint256" },
    { name: "imageId", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "codeHash", type: "bytes32" },
    { name: "resultHash", type: "bytes32" },
    { name: "status", type: "uint16" },
    { name: "runtimeMs", type: "uint64" },
  ],
} as const;

/** The signed fields of a result proof (`ecld_crypto::ResultProof`). */
export interface ResultProof {
  taskId: bigint;
  imageId: Hex;
  inputHash: Hex;
  codeHash: Hex;
  resultHash: Hex;
  status: number;
  runtimeMs: bigint;
}

/** Where a proof is valid: the chain and the Marketplace that verifies it. */
export interface ProofDomain {
  chainId: bigint | number;
  verifyingContract: Address;
}

/** Status names (DESIGN.md table). */
export const STATUS_NAMES: Readonly<Record<number, string>> = {
  0: "SUCCESS",
  1: "PROGRAM_ERROR",
  2: "TIMEOUT",
  3: "RESOURCE_LIMIT",
  4: "INPUT_INVALID",
  5: "CODE_INVALID",
  16: "INPUT_UNAVAILABLE",
  17: "IMAGE_UNAVAILABLE",
  18: "ENCLAVE_FAILURE",
};

/** The name of a status code, or `STATUS_<n>`. */
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `STATUS_${status}`;
}

/** keccak256 of bytes (the content hash of inputs, results and code). */
export function contentHash(bytes: Uint8Array): Hex {
  return keccak256(bytes);
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
 * Whether a proof names the code the requester sent (as `ecld_sdk`'s check): equal hashes, or
 * a zero hash for the statuses where the enclave could not read the payload (4, 16, 18).
 */
export function proofNamesCode(code: Uint8Array | undefined, proof: ResultProof): boolean {
  const zero = `0x${"00".repeat(32)}`;
  const unread = proof.status === 4 || proof.status === 16 || proof.status === 18;
  return proof.codeHash === codeHashOf(code) || (unread && proof.codeHash === zero);
}

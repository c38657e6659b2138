import type { Address, Hex } from "viem";
import type { ResultProof, TaskSpec } from "./proof.js";

// The values EcldClient reads from and returns about the chain.

/** The contract addresses `ecld up` writes to `deployment.json`. */
export interface Deployment {
  chainId: number;
  token: Address;
  registry: Address;
  marketplace: Address;
  deployBlock: number;
}

/** An image from the ImageRegistry. */
export interface Image {
  id: Hex;
  name: string;
  version: string;
  codeCid: string;
  measurement: Hex;
  enclaveKey: Hex;
  enclaveSigner: Address;
  casIdentity: Address;
  owner: Address;
  platforms: number;
  /** The owner stopped new tasks for it (tasks already submitted still settle). */
  deprecated: boolean;
  /**
   * The owner revoked it (its enclave key leaked or its code is unsafe): the Marketplace takes
   * no claim or proof for it, its tasks' escrow can be reclaimed at once, and its proofs are
   * not trusted here. A revoked image is also deprecated.
   */
  revoked: boolean;
  /** The image lets the simulated platform run it: its proofs are INSECURE. */
  allowsSim: boolean;
}

/** A compute offer from the Marketplace. */
export interface Offer {
  id: bigint;
  node: Address;
  slots: number;
  usedSlots: number;
  memoryMb: number;
  maxRuntimeS: number;
  price: bigint;
  platform: number;
  withdrawn: boolean;
  imageId: Hex;
}

/**
 * Steps of {@link EcldClient.runTask}, in order (for numbered progress), each named by what it
 * does; the same steps as the Rust SDK's `Step`, plus `permit` (a wallet prompt of its own here):
 * - `encrypt`: the payload, encrypted to the image's enclave key;
 * - `upload`: the ciphertext to the store;
 * - `permit`: the EIP-2612 permit signature (wallet prompt 1); skipped when the account's
 *   deposit in the Marketplace covers the escrow;
 * - `submit`: `submitTaskWithPermit` (wallet prompt 2), or `submitTask` paid from the deposit
 *   (the only prompt), and its receipt;
 * - `execute`: a node runs the task; polls the task on chain until it is settled (or reclaimed);
 * - `proof`: reads the proof of execution, the task's `ResultSubmitted` log;
 * - `download`: the result ciphertext from the store, every block checked against its CID;
 * - `verify`: the proof's signer (the image must not be revoked), chain, Marketplace, the spec
 *   as submitted, the input, result and result CID hashes, and the code hash;
 * - `decrypt`: the result, with the user's identity.
 */
export type Step = "encrypt" | "upload" | "permit" | "submit" | "execute" | "proof" | "download" | "verify" | "decrypt";
/** All steps in order. */
export const STEPS: readonly Step[] = ["encrypt", "upload", "permit", "submit", "execute", "proof", "download", "verify", "decrypt"];

/** What to run. */
export interface TaskRequest {
  image: Hex;
  input: Uint8Array;
  code?: Uint8Array | undefined;
  /** The user's age recipient; the result is encrypted to it. */
  recipient: string;
  memoryMb?: number;
  maxRuntimeS?: number;
  /** Seconds from now until the task's deadline (when a held task may be reclaimed). */
  deadlineS?: number;
  /**
   * The most the requester pays (token base units), escrowed whole until the task ends: the
   * node gets its offer's price when the status pays it (< 16), the rest comes back; a status
   * of 16 and up refunds all of it. Default: the cheapest fitting offer's price.
   */
  maxPrice?: bigint;
}

/** A submitted task. */
export interface Submitted {
  taskId: bigint;
  inputCid: string;
  inputHash: Hex;
  /** The spec as submitted (`inputCidHash` is keccak256 of `inputCid`). */
  spec: TaskSpec;
  /** The ciphertext uploaded, to check `inputHash` against later (absent when it was streamed). */
  input?: Uint8Array | undefined;
  /** The escrow: held whole until the task ends. */
  maxPrice: bigint;
  /** The part of the escrow drawn from the account's deposit; the rest came from its wallet. */
  fromDeposit: bigint;
  /** The price of the offer the task was matched to at submission (what the node is paid). */
  price: bigint;
  offerId: bigint;
  tx: Hex;
  block: bigint;
}

/**
 * The on-chain outcome of a task. A result's `proof` is rebuilt from the chain: the spec from
 * `TaskSubmitted` (with `inputCidHash` = keccak256 of its `inputCid`), the rest from
 * `ResultSubmitted` (with `resultCidHash` = keccak256 of its `resultCid`). `paid` went to the
 * node, `refunded` back to the requester (the escrow's rest, or all of it for a status >= 16).
 */
export type Outcome =
  | {
      kind: "result"; proof: ResultProof; signature: Hex; signer: Address; resultCid: string; node: Address; offerId: bigint;
      paid: bigint; refunded: bigint; block: bigint;
    }
  | { kind: "reclaimed"; amount: bigint; block: bigint };

/** A deposit or withdrawal: the amount moved, the account's deposit after it, its transaction. */
export interface DepositChange {
  amount: bigint;
  deposit: bigint;
  tx: Hex;
  block: bigint;
}

/** A proof checked by {@link EcldClient.verify}. */
export interface VerifiedProof {
  proof: ResultProof;
  status: number;
  statusName: string;
  signer: Address;
  chainId: number;
  marketplace: Address;
  image: Image;
  resultCid: string;
  insecureSim: boolean;
}

/** Where a task is on chain (the counterpart of `ecld_sdk::TaskState`). */
export type TaskState =
  | { kind: "open" }
  | { kind: "matched"; offerId: bigint; node: Address }
  | { kind: "done"; status: number; statusName: string; paid: bigint; refunded: bigint }
  | { kind: "reclaimed" };

/** A task as the chain records it (`TaskSubmitted`, and its state now). */
export interface TaskInfo {
  taskId: bigint;
  requester: Address;
  imageId: Hex;
  inputHash: Hex;
  inputCid: string;
  /** keccak256 of `inputCid` as text. */
  inputCidHash: Hex;
  memoryMb: number;
  maxRuntimeS: number;
  /** Unix time after which no node may claim or prove the task, and the requester may reclaim a held task's escrow. */
  deadline: bigint;
  /** The spec as submitted (the fields above), as the contract's calls take it. */
  spec: TaskSpec;
  /** The escrow, held whole until the task ends. */
  maxPrice: bigint;
  /** The price of the offer named at submission (0 for an open task). */
  price: bigint;
  /** The offer named at submission (0 for an open task). */
  offerId: bigint;
  /** Block of `TaskSubmitted`. */
  block: bigint;
  state: TaskState;
}

/** Platform bits of the ImageRegistry. */
export const PLATFORM_SIM = 1;

import {
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
  BaseError,
  ContractFunctionRevertedError,
  getAddress,
  hexToSignature,
  isAddressEqual,
  parseEventLogs,
  zeroHash,
} from "viem";
import { imageRegistryAbi, marketplaceAbi, devTokenAbi } from "./abi.js";
import { decrypt, encrypt } from "./envelope.js";
import { EcldError, describe } from "./errors.js";
import { enclaveKeyToRecipient } from "./keys.js";
import { type ChunkHasher, type EncryptedInput, encryptInputStream } from "./input.js";
import { encodePayload } from "./payload.js";
import { type ResultProof, codeHashOf, contentHash, proofNamesCode, recoverResultSigner, statusName } from "./proof.js";
import { type ResultEnvelope, decodeResultEnvelope } from "./result.js";
import { StoreClient } from "./store.js";

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
  deprecated: boolean;
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
 * - `permit`: the EIP-2612 permit signature (wallet prompt 1);
 * - `submit`: `submitTaskWithPermit` (wallet prompt 2) and its receipt;
 * - `execute`: a node runs the task; polls the task on chain until it is settled (or reclaimed);
 * - `proof`: reads the proof of execution, the task's `ResultSubmitted` log;
 * - `download`: the result ciphertext from the store, every block checked against its CID;
 * - `verify`: the proof's signer, chain, Marketplace, input, result and code hashes;
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
  /** Seconds from now until the task may be reclaimed. */
  deadlineS?: number;
}

/** A submitted task. */
export interface Submitted {
  taskId: bigint;
  inputCid: string;
  inputHash: Hex;
  /** The ciphertext uploaded, to check `inputHash` against later (absent when it was streamed). */
  input?: Uint8Array | undefined;
  price: bigint;
  offerId: bigint;
  tx: Hex;
  block: bigint;
}

/** The on-chain outcome of a task. */
export type Outcome =
  | { kind: "result"; proof: ResultProof; signature: Hex; signer: Address; resultCid: string; node: Address; amount: bigint; block: bigint }
  | { kind: "reclaimed"; amount: bigint; block: bigint };

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
  | { kind: "done"; status: number; statusName: string }
  | { kind: "reclaimed" };

/** A task as the chain records it (`TaskSubmitted`, and its state now). */
export interface TaskInfo {
  taskId: bigint;
  requester: Address;
  imageId: Hex;
  inputHash: Hex;
  inputCid: string;
  memoryMb: number;
  maxRuntimeS: number;
  /** Unix time after which the requester may reclaim the escrow of an unfinished task. */
  deadline: bigint;
  /** The escrowed price at submission. */
  price: bigint;
  /** The offer named at submission (0 for an open task). */
  offerId: bigint;
  /** Block of `TaskSubmitted`. */
  block: bigint;
  state: TaskState;
}

/** Platform bits of the ImageRegistry. */
export const PLATFORM_SIM = 1;

function chainError(what: string, cause: unknown): EcldError {
  let details = describe(cause);
  if (cause instanceof BaseError) {
    const revert = cause.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError && revert.data !== undefined)
      details = `reverted with ${revert.data.errorName}(${(revert.data.args ?? []).map(String).join(", ")})`;
  }
  return new EcldError("ChainError", `${what} failed`, {
    cause,
    details,
    hint: "check the RPC endpoint, the deployment addresses and the account's balance",
  });
}

function unixNow(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The user side of ecld in TypeScript (the counterpart of `ecld_sdk::Client`). */
export class EcldClient {
  readonly deployment: Deployment;
  readonly publicClient: PublicClient;
  readonly store: StoreClient;

  constructor(p: { deployment: Deployment; publicClient: PublicClient; store: StoreClient | string }) {
    this.deployment = p.deployment;
    this.publicClient = p.publicClient;
    this.store = typeof p.store === "string" ? new StoreClient(p.store) : p.store;
  }

  /** Checks that the RPC serves the deployment's chain. */
  async checkChain(): Promise<void> {
    const id = await this.publicClient.getChainId().catch((e: unknown) => {
      throw chainError("reading the chain id", e);
    });
    if (id !== this.deployment.chainId)
      throw new EcldError("ChainError", `the RPC serves chain ${id}, the deployment is on chain ${this.deployment.chainId}`, {
        hint: "point the RPC URL at the chain the contracts are deployed on",
      });
  }

  /** One image from the registry. */
  async image(id: Hex): Promise<Image> {
    const r = await this.publicClient
      .readContract({ address: this.deployment.registry, abi: imageRegistryAbi, functionName: "getImage", args: [id] })
      .catch((e: unknown) => {
        throw chainError(`reading image ${id}`, e);
      });
    if (r.enclaveSigner === "0x0000000000000000000000000000000000000000")
      throw new EcldError("ChainError", `image ${id} is not in the registry`, { hint: "pick an image from the list" });
    return {
      id,
      name: r.name,
      version: r.version,
      codeCid: r.codeCid,
      measurement: r.measurement,
      enclaveKey: r.enclaveKey,
      enclaveSigner: getAddress(r.enclaveSigner),
      casIdentity: r.casIdentity,
      owner: r.owner,
      platforms: r.platforms,
      deprecated: r.deprecated,
      allowsSim: (r.platforms & PLATFORM_SIM) !== 0,
    };
  }

  /** Every image published (from `ImagePublished` logs), newest state from `getImage`. */
  async images(): Promise<Image[]> {
    const logs = await this.publicClient
      .getContractEvents({
        address: this.deployment.registry,
        abi: imageRegistryAbi,
        eventName: "ImagePublished",
        fromBlock: BigInt(this.deployment.deployBlock),
        toBlock: "latest",
      })
      .catch((e: unknown) => {
        throw chainError("listing images", e);
      });
    const ids = [...new Set(logs.map((l) => l.args.imageId).filter((x): x is Hex => x !== undefined))];
    return await Promise.all(ids.map((id) => this.image(id)));
  }

  /** Every offer of the Marketplace. */
  async offers(): Promise<Offer[]> {
    const m = { address: this.deployment.marketplace, abi: marketplaceAbi } as const;
    try {
      const count = await this.publicClient.readContract({ ...m, functionName: "offerCount" });
      const out: Offer[] = [];
      for (let id = 1n; id <= count; id++) {
        const o = await this.publicClient.readContract({ ...m, functionName: "getOffer", args: [id] });
        out.push({ id, ...o });
      }
      return out;
    } catch (e) {
      throw chainError("listing offers", e);
    }
  }

  /** The cheapest offer with a free slot that serves the image. */
  async cheapestOffer(image: Image, memoryMb: number, maxRuntimeS: number): Promise<Offer> {
    const fits = (await this.offers()).filter(
      (o) =>
        !o.withdrawn &&
        o.usedSlots < o.slots &&
        o.memoryMb >= memoryMb &&
        o.maxRuntimeS >= maxRuntimeS &&
        (o.platform & image.platforms) !== 0 &&
        (o.imageId === zeroHash || o.imageId === image.id),
    );
    const best = fits.sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0))[0];
    if (best === undefined)
      throw new EcldError("TaskError", `no offer with a free slot serves image ${image.name}`, {
        hint: "start a node (`ecld up` starts one) or try again when a slot is free",
      });
    return best;
  }

  /** Builds the payload and encrypts it to the image's enclave key. */
  async encryptInput(image: Image, requester: Address, req: TaskRequest): Promise<Uint8Array> {
    const payload = encodePayload({ requester, recipient: req.recipient, code: req.code, input: req.input });
    return await encrypt([enclaveKeyToRecipient(image.enclaveKey)], payload);
  }

  /**
   * Builds the payload around an input stream of `inputLength` bytes (a `File.stream()` and
   * `File.size`) and encrypts it to the image's enclave key chunk by chunk, hashing the
   * ciphertext as it passes; see {@link encryptInputStream}.
   */
  async encryptInputStream(
    image: Image,
    requester: Address,
    req: { recipient: string; code?: Uint8Array | undefined; input: ReadableStream<Uint8Array>; inputLength: number },
    onProgress?: (done: number, total: number) => void,
    hasher?: ChunkHasher,
  ): Promise<EncryptedInput> {
    return await encryptInputStream(
      [enclaveKeyToRecipient(image.enclaveKey)],
      { requester, recipient: req.recipient, code: req.code, inputLength: req.inputLength },
      req.input,
      onProgress,
      hasher,
    );
  }

  /**
   * Submits an uploaded input with `submitTaskWithPermit`: two wallet prompts, the permit
   * signature and the transaction.
   */
  async submitUploaded<A extends Account>(
    wallet: WalletClient<Transport, Chain | undefined, A>,
    image: Image,
    req: Pick<TaskRequest, "memoryMb" | "maxRuntimeS" | "deadlineS">,
    upload: { cid: string } & ({ ciphertext: Uint8Array } | { inputHash: Hex }),
    onStep?: (s: Step) => void,
  ): Promise<Submitted> {
    const account = wallet.account;
    const owner = account.address;
    const memoryMb = req.memoryMb ?? 64;
    const maxRuntimeS = req.maxRuntimeS ?? 10;
    const offer = await this.cheapestOffer(image, memoryMb, maxRuntimeS);
    const token = { address: this.deployment.token, abi: devTokenAbi } as const;
    const [balance, nonce, name] = await Promise.all([
      this.publicClient.readContract({ ...token, functionName: "balanceOf", args: [owner] }),
      this.publicClient.readContract({ ...token, functionName: "nonces", args: [owner] }),
      this.publicClient.readContract({ ...token, functionName: "name" }),
    ]).catch((e: unknown) => {
      throw chainError("reading the token", e);
    });
    if (balance < offer.price)
      throw new EcldError("TaskError", `account ${owner} holds ${balance} tokens, the task costs ${offer.price}`, {
        hint: "fund the account with the Marketplace's token",
      });
    const permitDeadline = unixNow() + 3600n;
    onStep?.("permit");
    const sig = await wallet
      .signTypedData({
        account,
        domain: { name, version: "1", chainId: this.deployment.chainId, verifyingContract: this.deployment.token },
        types: {
          Permit: [
            { name: "owner", type: "address" },
            { name: "spender", type: "address" },
            { name: "value", type: "uint256" },
            { name: "nonce", type: "uint256" },
            { name: "deadline", type: "uint256" },
          ],
        },
        primaryType: "Permit",
        message: { owner, spender: this.deployment.marketplace, value: offer.price, nonce, deadline: permitDeadline },
      })
      .catch((e: unknown) => {
        throw new EcldError("TaskError", "the wallet did not sign the payment permit", { cause: e, details: describe(e), hint: "approve the signature request in your wallet" });
      });
    const { r, s, v, yParity } = hexToSignature(sig);
    const inputHash = "ciphertext" in upload ? contentHash(upload.ciphertext) : upload.inputHash;
    const spec = { imageId: image.id, inputHash, memoryMb, maxRuntimeS, deadline: unixNow() + BigInt(req.deadlineS ?? 600) };
    onStep?.("submit");
    const tx = await wallet
      .writeContract({
        account,
        chain: wallet.chain ?? null,
        address: this.deployment.marketplace,
        abi: marketplaceAbi,
        functionName: "submitTaskWithPermit",
        args: [spec, upload.cid, offer.price, offer.id, permitDeadline, Number(v ?? BigInt(yParity + 27)), r, s],
      } as Parameters<typeof wallet.writeContract>[0])
      .catch((e: unknown) => {
        throw chainError("submitTaskWithPermit", e);
      });
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash: tx }).catch((e: unknown) => {
      throw chainError("waiting for the submission", e);
    });
    if (receipt.status !== "success")
      throw new EcldError("ChainError", `submitTaskWithPermit reverted (tx ${tx})`, { hint: "check the offer, price and deadline" });
    const ev = parseEventLogs({ abi: marketplaceAbi, logs: receipt.logs, eventName: "TaskSubmitted" })[0];
    if (ev === undefined) throw new EcldError("ChainError", "submitTask emitted no TaskSubmitted event", { hint: "check the Marketplace address" });
    return {
      taskId: ev.args.taskId,
      inputCid: upload.cid,
      inputHash,
      input: "ciphertext" in upload ? upload.ciphertext : undefined,
      price: ev.args.price,
      offerId: offer.id,
      tx,
      block: receipt.blockNumber,
    };
  }

  /**
   * Waits until the task is no longer live on chain: settled by a node's proof or reclaimed
   * (its `getTask` commitment is zero). {@link waitForOutcome} then reads which.
   */
  async waitSettled(taskId: bigint, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<void> {
    const end = Date.now() + (opts.timeoutMs ?? 15 * 60 * 1000);
    while (Date.now() < end) {
      const { commitment } = await this.publicClient
        .readContract({ address: this.deployment.marketplace, abi: marketplaceAbi, functionName: "getTask", args: [taskId] })
        .catch((e: unknown) => {
          throw chainError(`reading task ${taskId}`, e);
        });
      if (/^0x0*$/.test(commitment)) return;
      await sleep(opts.pollMs ?? 250);
    }
    throw new EcldError("TaskError", `task ${taskId} has no result yet`, { hint: "wait longer, or reclaim the escrow after the deadline" });
  }

  /** Waits for the task's `ResultSubmitted` or `TaskReclaimed` event, polling logs. */
  async waitForOutcome(taskId: bigint, fromBlock: bigint, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<Outcome> {
    const end = Date.now() + (opts.timeoutMs ?? 15 * 60 * 1000);
    const m = { address: this.deployment.marketplace, abi: marketplaceAbi } as const;
    while (Date.now() < end) {
      const [res, rec] = await Promise.all([
        this.publicClient.getContractEvents({ ...m, eventName: "ResultSubmitted", args: { taskId }, fromBlock, toBlock: "latest" }),
        this.publicClient.getContractEvents({ ...m, eventName: "TaskReclaimed", args: { taskId }, fromBlock, toBlock: "latest" }),
      ]).catch((e: unknown) => {
        throw chainError("reading task events", e);
      });
      const r = res[0];
      if (r !== undefined) {
        const a = r.args;
        const task = await this.taskSubmitted(taskId, fromBlock);
        return {
          kind: "result",
          proof: {
            taskId,
            imageId: task.imageId,
            inputHash: task.inputHash,
            codeHash: a.codeHash ?? zeroHash,
            resultHash: a.resultHash ?? zeroHash,
            status: a.status ?? 0,
            runtimeMs: a.runtimeMs ?? 0n,
          },
          signature: a.signature ?? "0x",
          signer: a.signer ?? "0x0000000000000000000000000000000000000000",
          resultCid: a.resultCid ?? "",
          node: a.node ?? "0x0000000000000000000000000000000000000000",
          amount: a.amount ?? 0n,
          block: r.blockNumber,
        };
      }
      const c = rec[0];
      if (c !== undefined) return { kind: "reclaimed", amount: c.args.amount ?? 0n, block: c.blockNumber };
      await sleep(opts.pollMs ?? 250);
    }
    throw new EcldError("TaskError", `task ${taskId} has no result yet`, { hint: "wait longer, or reclaim the escrow after the deadline" });
  }

  /** The task's `TaskSubmitted` event (image, input hash and CID as the chain recorded them). */
  async taskSubmitted(taskId: bigint, fromBlock: bigint) {
    const logs = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskSubmitted", args: { taskId }, fromBlock, toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError("reading the task", e);
      });
    const a = logs[0]?.args;
    if (a?.imageId === undefined || a.inputHash === undefined || a.requester === undefined)
      throw new EcldError("TaskError", `task ${taskId} was not submitted at or after block ${fromBlock}`, { hint: "check the task id" });
    return { imageId: a.imageId, inputHash: a.inputHash, requester: a.requester, inputCid: a.inputCid ?? "" };
  }

  /**
   * Verifies a proof before anything is decrypted: the signature recovers, over this chain
   * and Marketplace, to the image's registered enclave signer; the input hash is that of the
   * bytes uploaded (given as the bytes, or as their keccak256 when they were streamed); the
   * result bytes hash to `resultHash`.
   */
  async verify(
    outcome: Extract<Outcome, { kind: "result" }>,
    input: Uint8Array | { inputHash: Hex } | undefined,
    result: Uint8Array,
  ): Promise<VerifiedProof> {
    const fail = (msg: string, details?: string): EcldError =>
      new EcldError("VerifyError", msg, { ...(details === undefined ? {} : { details }), hint: "do not trust this result; report the node" });
    await this.checkChain();
    const image = await this.image(outcome.proof.imageId);
    const domain = { chainId: this.deployment.chainId, verifyingContract: this.deployment.marketplace };
    let signer: Address;
    try {
      signer = await recoverResultSigner(outcome.proof, domain, outcome.signature);
    } catch (e) {
      throw fail("the proof signature does not recover", describe(e));
    }
    if (!isAddressEqual(signer, image.enclaveSigner))
      throw fail(`the proof was signed by ${signer}, not by the image's enclave signer ${image.enclaveSigner}`);
    const uploaded = input === undefined ? undefined : input instanceof Uint8Array ? contentHash(input) : input.inputHash;
    if (uploaded !== undefined && uploaded !== outcome.proof.inputHash)
      throw fail("the proof is about another input than the one uploaded", `inputHash ${outcome.proof.inputHash}, uploaded ${uploaded}`);
    const rh = result.length === 0 ? zeroHash : contentHash(result);
    if (rh !== outcome.proof.resultHash)
      throw fail("the downloaded result does not match the proof's resultHash", `proof ${outcome.proof.resultHash}, downloaded ${rh}`);
    return {
      proof: outcome.proof,
      status: outcome.proof.status,
      statusName: statusName(outcome.proof.status),
      signer,
      chainId: this.deployment.chainId,
      marketplace: this.deployment.marketplace,
      image,
      resultCid: outcome.resultCid,
      insecureSim: image.allowsSim,
    };
  }

  /** The state of a task now: live on chain (open or matched), settled, or reclaimed. */
  async taskState(taskId: bigint, fromBlock: bigint): Promise<TaskState> {
    const m = { address: this.deployment.marketplace, abi: marketplaceAbi } as const;
    try {
      const { commitment, offerId } = await this.publicClient.readContract({ ...m, functionName: "getTask", args: [taskId] });
      if (!/^0x0*$/.test(commitment)) {
        if (offerId === 0n) return { kind: "open" };
        const offer = await this.publicClient.readContract({ ...m, functionName: "getOffer", args: [offerId] });
        return { kind: "matched", offerId, node: getAddress(offer.node) };
      }
      const done = await this.publicClient.getContractEvents({ ...m, eventName: "ResultSubmitted", args: { taskId }, fromBlock, toBlock: "latest" });
      const status = done[0]?.args.status;
      if (status !== undefined) return { kind: "done", status, statusName: statusName(status) };
      return { kind: "reclaimed" };
    } catch (e) {
      throw chainError(`reading the state of task ${taskId}`, e);
    }
  }

  private taskInfoOf(a: {
    taskId?: bigint | undefined; requester?: Address | undefined; imageId?: Hex | undefined; inputHash?: Hex | undefined;
    memoryMb?: number | undefined; maxRuntimeS?: number | undefined; deadline?: bigint | undefined; price?: bigint | undefined;
    offerId?: bigint | undefined; inputCid?: string | undefined;
  }, block: bigint, state: TaskState): TaskInfo {
    return {
      taskId: a.taskId ?? 0n,
      requester: getAddress(a.requester ?? "0x0000000000000000000000000000000000000000"),
      imageId: a.imageId ?? zeroHash,
      inputHash: a.inputHash ?? zeroHash,
      inputCid: a.inputCid ?? "",
      memoryMb: a.memoryMb ?? 0,
      maxRuntimeS: a.maxRuntimeS ?? 0,
      deadline: a.deadline ?? 0n,
      price: a.price ?? 0n,
      offerId: a.offerId ?? 0n,
      block,
      state,
    };
  }

  /** One task: its `TaskSubmitted` record and its state now. */
  async task(taskId: bigint): Promise<TaskInfo> {
    const logs = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskSubmitted", args: { taskId }, fromBlock: BigInt(this.deployment.deployBlock), toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError(`reading task ${taskId}`, e);
      });
    const l = logs[0];
    if (l === undefined) throw new EcldError("TaskError", `task ${taskId} does not exist on this Marketplace`, { hint: "check the task id and the deployment" });
    return this.taskInfoOf(l.args, l.blockNumber, await this.taskState(taskId, l.blockNumber));
  }

  /** Every task the account submitted (`TaskSubmitted` filtered by requester), newest first. */
  async tasksOf(requester: Address): Promise<TaskInfo[]> {
    const logs = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskSubmitted", args: { requester }, fromBlock: BigInt(this.deployment.deployBlock), toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError(`listing the tasks of ${requester}`, e);
      });
    const out = await Promise.all(logs.map(async (l) => this.taskInfoOf(l.args, l.blockNumber, await this.taskState(l.args.taskId ?? 0n, l.blockNumber))));
    return out.sort((a, b) => (a.taskId < b.taskId ? 1 : a.taskId > b.taskId ? -1 : 0));
  }

  /**
   * The earliest time the next block can carry (development chains may run ahead of the wall
   * clock; deadlines are checked against block time).
   */
  async chainNow(): Promise<bigint> {
    const block = await this.publicClient.getBlock({ blockTag: "latest" }).catch((e: unknown) => {
      throw chainError("reading the latest block", e);
    });
    const next = block.timestamp + 1n;
    const now = unixNow();
    return next > now ? next : now;
  }

  /**
   * After its deadline, takes back the escrow of a task that has no result (one wallet
   * prompt: the transaction). Returns the transaction hash.
   */
  async reclaim<A extends Account>(wallet: WalletClient<Transport, Chain | undefined, A>, taskId: bigint): Promise<Hex> {
    const info = await this.task(taskId);
    if (info.state.kind === "done" || info.state.kind === "reclaimed")
      throw new EcldError("TaskError", `task ${taskId} cannot be reclaimed: it is already ${info.state.kind}`, { hint: "nothing to do: its escrow is settled" });
    if ((await this.chainNow()) <= info.deadline)
      throw new EcldError("TaskError", `task ${taskId} cannot be reclaimed before its deadline (unix time ${info.deadline})`, { hint: "try again after the deadline" });
    // The escrow is the submitted price, or the offer's price once a node claimed it.
    const claims = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskClaimed", args: { taskId }, fromBlock: info.block, toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError(`reading the claims of task ${taskId}`, e);
      });
    const escrow = claims[claims.length - 1]?.args.price ?? info.price;
    const spec = { imageId: info.imageId, inputHash: info.inputHash, memoryMb: info.memoryMb, maxRuntimeS: info.maxRuntimeS, deadline: info.deadline };
    const tx = await wallet
      .writeContract({
        account: wallet.account,
        chain: wallet.chain ?? null,
        address: this.deployment.marketplace,
        abi: marketplaceAbi,
        functionName: "reclaim",
        args: [taskId, spec, escrow],
      } as Parameters<typeof wallet.writeContract>[0])
      .catch((e: unknown) => {
        throw chainError("reclaim", e);
      });
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash: tx }).catch((e: unknown) => {
      throw chainError("waiting for the reclaim", e);
    });
    if (receipt.status !== "success") throw new EcldError("ChainError", `reclaim of task ${taskId} reverted (tx ${tx})`, { hint: "check the task's state and deadline" });
    return tx;
  }

  /** Downloads the result ciphertext of an outcome (empty when the proof has none). */
  async download(outcome: Extract<Outcome, { kind: "result" }>): Promise<Uint8Array> {
    if (outcome.proof.resultHash === zeroHash || outcome.resultCid === "") return new Uint8Array();
    return await this.store.catVerified(outcome.resultCid);
  }

  /** The whole task: encrypt, upload, permit, submit, execute, proof, download, verify, decrypt (see {@link Step}). */
  async runTask<A extends Account>(
    wallet: WalletClient<Transport, Chain | undefined, A>,
    req: TaskRequest & { identity: string },
    onStep?: (s: Step, info?: string) => void,
  ): Promise<{ submitted: Submitted; verified: VerifiedProof; result: ResultEnvelope | undefined }> {
    const image = await this.image(req.image);
    onStep?.("encrypt");
    const ciphertext = await this.encryptInput(image, wallet.account.address, req);
    onStep?.("upload");
    const cid = await this.store.add(ciphertext);
    const submitted = await this.submitUploaded(wallet, image, req, { cid, ciphertext }, onStep);
    onStep?.("execute", `task ${submitted.taskId}`);
    await this.waitSettled(submitted.taskId);
    onStep?.("proof");
    const outcome = await this.waitForOutcome(submitted.taskId, submitted.block);
    if (outcome.kind === "reclaimed")
      throw new EcldError("TaskError", `task ${submitted.taskId} was reclaimed before a result came`, { hint: "submit it again" });
    onStep?.("download");
    const bytes = await this.download(outcome);
    onStep?.("verify");
    const verified = await this.verify(outcome, ciphertext, bytes);
    if (!proofNamesCode(req.code, verified.proof))
      throw new EcldError("VerifyError", `the proof of task ${submitted.taskId} names code ${verified.proof.codeHash}, not the code sent`, {
        details: `sent ${codeHashOf(req.code)}`,
        hint: "do not trust this result: the node ran other code than yours",
      });
    onStep?.("decrypt");
    const result = bytes.length === 0 ? undefined : decodeResultEnvelope(await decrypt(req.identity, bytes));
    if (result !== undefined && result.status !== verified.status)
      throw new EcldError("VerifyError", `the result says status ${result.status}, the proof ${verified.status}`, { hint: "do not trust this result" });
    return { submitted, verified, result };
  }
}

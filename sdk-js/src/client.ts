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
  type TransactionReceipt,
  UserRejectedRequestError,
  getAddress,
  isAddressEqual,
  parseEventLogs,
  zeroHash,
} from "viem";
import { imageRegistryAbi, marketplaceAbi, devTokenAbi } from "./abi.js";
import { DepositReservations, InsufficientDepositError, insufficientDepositOf } from "./deposit.js";
import { decrypt, encrypt } from "./envelope.js";
import { EcldError, describe } from "./errors.js";
import { enclaveKeyToRecipient } from "./keys.js";
import { type ChunkHasher, type EncryptedInput, encryptInputStream, taskSpec } from "./input.js";
import { encodePayload } from "./payload.js";
import { PermitQueue, signPermit } from "./permit.js";
import { cidHash, codeHashOf, contentHash, proofNamesCode, recoverResultSigner, statusName } from "./proof.js";
import { type ResultEnvelope, decodeResultEnvelope } from "./result.js";
import { StoreClient } from "./store.js";
import {
  type DepositChange,
  type Deployment,
  type Image,
  type Offer,
  type Outcome,
  PLATFORM_SIM,
  type Step,
  type Submitted,
  type TaskInfo,
  type TaskRequest,
  type TaskState,
  type VerifiedProof,
} from "./types.js";

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

/** Whether the user turned a wallet request down (EIP-1193 code 4001), which no fallback retries. */
function isRejection(e: unknown): boolean {
  if (!(e instanceof BaseError)) return false;
  return e.walk((x) => x instanceof UserRejectedRequestError || (typeof x === "object" && x !== null && "code" in x && (x as { code: unknown }).code === 4001)) !== null;
}

function unixNow(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const NO_RESULT_HINT = "wait longer; cancel the task while no node holds it, or reclaim the escrow after the deadline";

function undecodable(event: string, taskId: bigint): EcldError {
  return new EcldError("ChainError", `the ${event} event of task ${taskId} does not decode`, {
    hint: "check that the deployment's Marketplace is the version this SDK was built for (npm run gen-abi)",
  });
}

/** A `TaskSubmitted` event's fields as a task record (without its state). */
function submittedRecord(
  a: {
    taskId?: bigint | undefined; requester?: Address | undefined; imageId?: Hex | undefined; inputHash?: Hex | undefined;
    memoryMb?: number | undefined; maxRuntimeS?: number | undefined; deadline?: bigint | undefined; maxPrice?: bigint | undefined;
    price?: bigint | undefined; offerId?: bigint | undefined; inputCid?: string | undefined;
  },
  block: bigint,
): Omit<TaskInfo, "state"> {
  const { taskId, requester, imageId, inputHash, memoryMb, maxRuntimeS, deadline, maxPrice, price, offerId, inputCid } = a;
  if (
    taskId === undefined || requester === undefined || imageId === undefined || inputHash === undefined || memoryMb === undefined ||
    maxRuntimeS === undefined || deadline === undefined || maxPrice === undefined || price === undefined || offerId === undefined ||
    inputCid === undefined
  )
    throw undecodable("TaskSubmitted", taskId ?? 0n);
  const spec = taskSpec({ imageId, inputHash, inputCid, memoryMb, maxRuntimeS, deadline });
  return {
    taskId,
    requester: getAddress(requester),
    imageId,
    inputHash,
    inputCid,
    inputCidHash: spec.inputCidHash,
    memoryMb,
    maxRuntimeS,
    deadline,
    spec,
    maxPrice,
    price,
    offerId,
    block,
  };
}

/** Refuses to reclaim (or cancel) a task that is over, or for another account than its requester. */
function checkReclaimable(account: Address, info: TaskInfo, what: "reclaimed" | "cancelled"): void {
  if (info.state.kind === "done" || info.state.kind === "reclaimed")
    throw new EcldError("TaskError", `task ${info.taskId} cannot be ${what}: it is already ${info.state.kind}`, { hint: "nothing to do: its escrow is settled" });
  if (!isAddressEqual(account, info.requester))
    throw new EcldError("TaskError", `task ${info.taskId} cannot be ${what} by ${account}: only its requester ${info.requester} may`, {
      hint: "use the account that submitted the task",
    });
}

/** The user side of ecld in TypeScript (the counterpart of `ecld_sdk::Client`). */
export class EcldClient {
  readonly deployment: Deployment;
  readonly publicClient: PublicClient;
  readonly store: StoreClient;
  /** Deposit promised to this client's submissions in flight. */
  private readonly reservations = new DepositReservations();
  /** This client's permit flows, one at a time per account. */
  private readonly permits = new PermitQueue();

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
      revoked: r.revoked,
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
   * Submits an uploaded input, matched to the cheapest fitting offer. When the account's
   * deposit in the Marketplace covers `maxPrice` (less what this client's other submissions in
   * flight draw on it), `submitTask` draws the escrow from it: one wallet prompt, the
   * transaction, and no `permit` step. Otherwise `submitTaskWithPermit`: two prompts, the
   * permit signature (for `maxPrice`; the contract pulls only what the deposit lacks) and the
   * transaction. A deposit that no longer covers the escrow when the transaction is tried
   * (spent or withdrawn meanwhile) falls back to the permit. The spec commits to the input's
   * CID (`inputCidHash`).
   */
  async submitUploaded<A extends Account>(
    wallet: WalletClient<Transport, Chain | undefined, A>,
    image: Image,
    req: Pick<TaskRequest, "memoryMb" | "maxRuntimeS" | "deadlineS" | "maxPrice">,
    upload: { cid: string } & ({ ciphertext: Uint8Array } | { inputHash: Hex }),
    onStep?: (s: Step, info?: string) => void,
  ): Promise<Submitted> {
    const owner = wallet.account.address;
    const memoryMb = req.memoryMb ?? 64;
    const maxRuntimeS = req.maxRuntimeS ?? 10;
    const offer = await this.cheapestOffer(image, memoryMb, maxRuntimeS);
    const maxPrice = req.maxPrice ?? offer.price;
    if (offer.price > maxPrice)
      throw new EcldError("TaskError", `the cheapest offer for image ${image.name} costs ${offer.price}, more than the maximum price ${maxPrice}`, {
        hint: "raise the maximum price, or wait for a cheaper offer",
      });
    const [balance, deposit] = await Promise.all([this.tokenBalance(owner), this.depositBalance(owner)]);
    if (balance + deposit < maxPrice)
      throw new EcldError("TaskError", `account ${owner} holds ${balance} tokens and a deposit of ${deposit}, the task costs ${maxPrice}`, {
        ...(maxPrice === offer.price ? {} : { details: `${maxPrice} is escrowed until the task ends; the node's price is ${offer.price}` }),
        hint: "fund the account with the Marketplace's token, or deposit more",
      });
    const inputHash = "ciphertext" in upload ? contentHash(upload.ciphertext) : upload.inputHash;
    const spec = taskSpec({ imageId: image.id, inputHash, inputCid: upload.cid, memoryMb, maxRuntimeS, deadline: unixNow() + BigInt(req.deadlineS ?? 600) });
    const submitted = (tx: Hex, receipt: TransactionReceipt): Submitted => {
      const ev = parseEventLogs({ abi: marketplaceAbi, logs: receipt.logs, eventName: "TaskSubmitted" })[0];
      if (ev === undefined) throw new EcldError("ChainError", "submitTask emitted no TaskSubmitted event", { hint: "check the Marketplace address" });
      const pulled = parseEventLogs({ abi: devTokenAbi, logs: receipt.logs, eventName: "Transfer", args: { from: owner, to: this.deployment.marketplace } })
        .filter((l) => isAddressEqual(l.address, this.deployment.token))
        .reduce((sum, l) => sum + l.args.value, 0n);
      return {
        taskId: ev.args.taskId,
        inputCid: upload.cid,
        inputHash,
        spec,
        input: "ciphertext" in upload ? upload.ciphertext : undefined,
        maxPrice: ev.args.maxPrice,
        fromDeposit: ev.args.maxPrice - pulled,
        price: ev.args.price,
        offerId: ev.args.offerId,
        tx,
        block: receipt.blockNumber,
      };
    };
    const args = [spec, upload.cid, maxPrice, offer.id] as const;
    if (this.reservations.claim(owner, deposit, maxPrice)) {
      try {
        onStep?.("submit", "the escrow is drawn from the deposit");
        const sent = await this.transact(wallet, "submitTask", args, "check the offer, price and deadline").catch(async (e: unknown) => {
          if (isRejection(e) || (await this.depositBalance(owner)) >= maxPrice) throw e;
          return undefined;
        });
        if (sent !== undefined) return submitted(sent.tx, sent.receipt);
      } finally {
        this.reservations.release(owner, maxPrice);
      }
    }
    return await this.permits.run(owner, async () => {
      onStep?.("permit");
      const p = await signPermit(wallet, this.publicClient, {
        chainId: this.deployment.chainId, token: this.deployment.token, spender: this.deployment.marketplace, value: maxPrice, what: "payment",
      });
      onStep?.("submit");
      const { tx, receipt } = await this.transact(wallet, "submitTaskWithPermit", [...args, p.deadline, p.v, p.r, p.s], "check the offer, price and deadline");
      return submitted(tx, receipt);
    });
  }

  /** The account's token balance in its wallet (token base units). */
  async tokenBalance(account: Address): Promise<bigint> {
    return await this.publicClient
      .readContract({ address: this.deployment.token, abi: devTokenAbi, functionName: "balanceOf", args: [account] })
      .catch((e: unknown) => {
        throw chainError(`reading the token balance of ${account}`, e);
      });
  }

  /**
   * The account's deposit in the Marketplace (token base units): what tasks it submits draw
   * their escrow from before its wallet. Takes an address or a wallet (its account).
   */
  async depositBalance(of: Address | { account: { address: Address } }): Promise<bigint> {
    const account = typeof of === "string" ? of : of.account.address;
    return await this.publicClient
      .readContract({ address: this.deployment.marketplace, abi: marketplaceAbi, functionName: "balanceOf", args: [account] })
      .catch((e: unknown) => {
        throw chainError(`reading the deposit of ${account}`, e);
      });
  }

  /**
   * Moves `amount` tokens from the wallet into its deposit in the Marketplace with
   * `depositWithPermit`: two wallet prompts, the permit signature (`onStep("permit")`) and the
   * transaction (`onStep("submit")`). Tasks then draw their escrow from the deposit without a
   * permit. Returns the transaction and the deposit after it.
   */
  async deposit<A extends Account>(
    wallet: WalletClient<Transport, Chain | undefined, A>,
    amount: bigint,
    onStep?: (s: "permit" | "submit") => void,
  ): Promise<DepositChange> {
    const owner = wallet.account.address;
    if (amount <= 0n) throw new EcldError("DepositError", `cannot deposit ${amount}: the amount must be positive`, { hint: "enter an amount above zero" });
    const balance = await this.tokenBalance(owner);
    if (balance < amount)
      throw new EcldError("DepositError", `cannot deposit ${amount}: account ${owner} has ${balance} tokens in its wallet`, {
        details: `wallet ${balance}, deposit asked ${amount} (token base units)`,
        hint: "fund the account with the Marketplace's token, or deposit less",
      });
    return await this.permits.run(owner, async () => {
      onStep?.("permit");
      const p = await signPermit(wallet, this.publicClient, {
        chainId: this.deployment.chainId, token: this.deployment.token, spender: this.deployment.marketplace, value: amount, what: "deposit",
      });
      onStep?.("submit");
      const { tx, receipt } = await this.transact(wallet, "depositWithPermit", [amount, p.deadline, p.v, p.r, p.s], "check the account's token balance");
      const ev = parseEventLogs({ abi: marketplaceAbi, logs: receipt.logs, eventName: "Deposited", args: { account: owner } })[0];
      if (ev === undefined) throw new EcldError("ChainError", "depositWithPermit emitted no Deposited event", { hint: "check the Marketplace address" });
      return { amount: ev.args.amount, deposit: await this.depositBalance(owner), tx, block: receipt.blockNumber };
    });
  }

  /**
   * Sends `amount` of the account's deposit back to its wallet (one wallet prompt). More than
   * the deposit is refused with an {@link InsufficientDepositError} naming both amounts: before
   * the prompt, or from the Marketplace's `InsufficientDeposit` revert if it shrank meanwhile.
   */
  async withdraw<A extends Account>(wallet: WalletClient<Transport, Chain | undefined, A>, amount: bigint): Promise<DepositChange> {
    const owner = wallet.account.address;
    if (amount <= 0n) throw new EcldError("DepositError", `cannot withdraw ${amount}: the amount must be positive`, { hint: "enter an amount above zero" });
    const balance = await this.depositBalance(owner);
    if (amount > balance) throw new InsufficientDepositError({ account: owner, balance, amount });
    const { tx, receipt } = await this.transact(wallet, "withdraw", [amount], "check the account's deposit", (e) => insufficientDepositOf(e, owner));
    const ev = parseEventLogs({ abi: marketplaceAbi, logs: receipt.logs, eventName: "Withdrawn", args: { account: owner } })[0];
    if (ev === undefined) throw new EcldError("ChainError", "withdraw emitted no Withdrawn event", { hint: "check the Marketplace address" });
    return { amount: ev.args.amount, deposit: await this.depositBalance(owner), tx, block: receipt.blockNumber };
  }

  /**
   * Sends one Marketplace transaction and waits for its successful receipt; `typed` turns a
   * revert the caller knows into its own error.
   */
  private async transact<A extends Account>(
    wallet: WalletClient<Transport, Chain | undefined, A>,
    functionName: string,
    args: readonly unknown[],
    hint: string,
    typed?: (e: unknown) => EcldError | undefined,
  ): Promise<{ tx: Hex; receipt: TransactionReceipt }> {
    const tx = await wallet
      .writeContract({
        account: wallet.account,
        chain: wallet.chain ?? null,
        address: this.deployment.marketplace,
        abi: marketplaceAbi,
        functionName,
        args,
      } as unknown as Parameters<typeof wallet.writeContract>[0])
      .catch((e: unknown) => {
        throw typed?.(e) ?? chainError(functionName, e);
      });
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash: tx }).catch((e: unknown) => {
      throw chainError(`waiting for ${functionName}`, e);
    });
    if (receipt.status !== "success") throw new EcldError("ChainError", `${functionName} reverted (tx ${tx})`, { hint });
    return { tx, receipt };
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
    throw new EcldError("TaskError", `task ${taskId} has no result yet`, { hint: NO_RESULT_HINT });
  }

  /**
   * Waits for the task's `ResultSubmitted` or `TaskReclaimed` event, polling logs. A result's
   * proof is rebuilt from the chain: the spec from `TaskSubmitted` (its `inputCidHash` is
   * keccak256 of the event's `inputCid`), `resultCidHash` from `ResultSubmitted`'s `resultCid`.
   */
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
        if (
          a.node === undefined || a.offerId === undefined || a.signer === undefined || a.resultHash === undefined || a.codeHash === undefined ||
          a.status === undefined || a.runtimeMs === undefined || a.paid === undefined || a.refunded === undefined ||
          a.resultCid === undefined || a.signature === undefined
        )
          throw undecodable("ResultSubmitted", taskId);
        const task = await this.taskSubmitted(taskId, fromBlock);
        return {
          kind: "result",
          proof: {
            taskId,
            spec: task.spec,
            codeHash: a.codeHash,
            resultHash: a.resultHash,
            resultCidHash: cidHash(a.resultCid),
            status: a.status,
            runtimeMs: a.runtimeMs,
          },
          signature: a.signature,
          signer: a.signer,
          resultCid: a.resultCid,
          node: a.node,
          offerId: a.offerId,
          paid: a.paid,
          refunded: a.refunded,
          block: r.blockNumber,
        };
      }
      const c = rec[0];
      if (c !== undefined) return { kind: "reclaimed", amount: c.args.amount ?? 0n, block: c.blockNumber };
      await sleep(opts.pollMs ?? 250);
    }
    throw new EcldError("TaskError", `task ${taskId} has no result yet`, { hint: NO_RESULT_HINT });
  }

  /** The task's `TaskSubmitted` record: its spec, requester, input CID and prices as the chain recorded them. */
  async taskSubmitted(taskId: bigint, fromBlock: bigint): Promise<Omit<TaskInfo, "state">> {
    const logs = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskSubmitted", args: { taskId }, fromBlock, toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError("reading the task", e);
      });
    const l = logs[0];
    if (l === undefined)
      throw new EcldError("TaskError", `task ${taskId} was not submitted at or after block ${fromBlock}`, { hint: "check the task id" });
    return submittedRecord(l.args, l.blockNumber);
  }

  /**
   * Verifies a proof before anything is decrypted: the image is not revoked; the signature
   * recovers, over this chain and Marketplace, to the image's registered enclave signer; the
   * proof's result CID hash is that of the CID the result was published (and downloaded)
   * under; the input hash is that of the bytes uploaded (given as the bytes, or as their
   * keccak256 when they were streamed, with the CID they were uploaded under when known); the
   * result bytes hash to `resultHash`. The spec the signature covers is the one submitted on
   * chain ({@link waitForOutcome} reads it from `TaskSubmitted`), so the limits the enclave
   * signed are the requester's.
   */
  async verify(
    outcome: Extract<Outcome, { kind: "result" }>,
    input: Uint8Array | { inputHash: Hex; inputCid?: string | undefined } | undefined,
    result: Uint8Array,
  ): Promise<VerifiedProof> {
    const fail = (msg: string, details?: string, hint = "do not trust this result; report the node"): EcldError =>
      new EcldError("VerifyError", msg, { ...(details === undefined ? {} : { details }), hint });
    const { proof } = outcome;
    await this.checkChain();
    const image = await this.image(proof.spec.imageId);
    if (image.revoked)
      throw fail(`image ${image.name} ${image.version} was revoked by its owner: its enclave signer ${image.enclaveSigner} is no longer trusted`, undefined,
        "do not trust this result: the image's key may have leaked or its code is unsafe; run the task again on another image");
    const domain = { chainId: this.deployment.chainId, verifyingContract: this.deployment.marketplace };
    let signer: Address;
    try {
      signer = await recoverResultSigner(proof, domain, outcome.signature);
    } catch (e) {
      throw fail("the proof signature does not recover", describe(e));
    }
    if (!isAddressEqual(signer, image.enclaveSigner))
      throw fail(`the proof was signed by ${signer}, not by the image's enclave signer ${image.enclaveSigner}`);
    const resultCidHash = cidHash(outcome.resultCid);
    if (resultCidHash !== proof.resultCidHash)
      throw fail("the proof names another result CID than the one published", `resultCidHash ${proof.resultCidHash}, keccak256("${outcome.resultCid}") ${resultCidHash}`);
    const uploaded = input === undefined ? undefined : input instanceof Uint8Array ? contentHash(input) : input.inputHash;
    if (uploaded !== undefined && uploaded !== proof.spec.inputHash)
      throw fail("the proof is about another input than the one uploaded", `inputHash ${proof.spec.inputHash}, uploaded ${uploaded}`);
    const uploadedCid = input === undefined || input instanceof Uint8Array ? undefined : input.inputCid;
    if (uploadedCid !== undefined && cidHash(uploadedCid) !== proof.spec.inputCidHash)
      throw fail("the proof is about another input CID than the one uploaded", `inputCidHash ${proof.spec.inputCidHash}, keccak256("${uploadedCid}") ${cidHash(uploadedCid)}`);
    const rh = result.length === 0 ? zeroHash : contentHash(result);
    if (rh !== proof.resultHash)
      throw fail("the downloaded result does not match the proof's resultHash", `proof ${proof.resultHash}, downloaded ${rh}`);
    return {
      proof,
      status: proof.status,
      statusName: statusName(proof.status),
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
      const a = done[0]?.args;
      if (a?.status !== undefined) return { kind: "done", status: a.status, statusName: statusName(a.status), paid: a.paid ?? 0n, refunded: a.refunded ?? 0n };
      return { kind: "reclaimed" };
    } catch (e) {
      throw chainError(`reading the state of task ${taskId}`, e);
    }
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
    return { ...submittedRecord(l.args, l.blockNumber), state: await this.taskState(taskId, l.blockNumber) };
  }

  /** Every task the account submitted (`TaskSubmitted` filtered by requester), newest first. */
  async tasksOf(requester: Address): Promise<TaskInfo[]> {
    const logs = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskSubmitted", args: { requester }, fromBlock: BigInt(this.deployment.deployBlock), toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError(`listing the tasks of ${requester}`, e);
      });
    const out = await Promise.all(
      logs.map(async (l) => {
        const rec = submittedRecord(l.args, l.blockNumber);
        return { ...rec, state: await this.taskState(rec.taskId, l.blockNumber) };
      }),
    );
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
   * The price of the offer holding a task now (what `reclaim` and `releaseTask` take): its
   * last `TaskClaimed`, else the price it was matched at on submission (a released task is
   * open again, and only a claim holds it after that).
   */
  async heldPrice(info: Pick<TaskInfo, "taskId" | "block" | "price">): Promise<bigint> {
    const claims = await this.publicClient
      .getContractEvents({ address: this.deployment.marketplace, abi: marketplaceAbi, eventName: "TaskClaimed", args: { taskId: info.taskId }, fromBlock: info.block, toBlock: "latest" })
      .catch((e: unknown) => {
        throw chainError(`reading the claims of task ${info.taskId}`, e);
      });
    return claims[claims.length - 1]?.args.price ?? info.price;
  }

  /**
   * Takes back the whole escrow (`maxPrice`) of a task that has no result, one wallet prompt
   * (the transaction): at any time while no node holds the task (a cancel, as
   * {@link cancel}), at once when its image was revoked, else after its deadline. Only the
   * requester may. Returns the transaction hash.
   */
  async reclaim<A extends Account>(wallet: WalletClient<Transport, Chain | undefined, A>, taskId: bigint): Promise<Hex> {
    const info = await this.task(taskId);
    checkReclaimable(wallet.account.address, info, "reclaimed");
    let price = 0n;
    if (info.state.kind === "matched") {
      const image = await this.image(info.imageId);
      if (!image.revoked && (await this.chainNow()) <= info.deadline)
        throw new EcldError("TaskError", `task ${taskId} cannot be reclaimed before its deadline (unix time ${info.deadline}): node ${info.state.node} holds it`, {
          hint: "try again after the deadline (a task no node holds can be cancelled at any time)",
        });
      price = await this.heldPrice(info);
    }
    return await this.sendReclaim(wallet, info, price);
  }

  /**
   * Cancels a task no node holds (it is open: submitted without an offer, or released): its
   * whole escrow comes back at once; one wallet prompt. Returns the transaction hash. A held
   * task is {@link reclaim}ed after its deadline instead.
   */
  async cancel<A extends Account>(wallet: WalletClient<Transport, Chain | undefined, A>, taskId: bigint): Promise<Hex> {
    const info = await this.task(taskId);
    checkReclaimable(wallet.account.address, info, "cancelled");
    if (info.state.kind === "matched")
      throw new EcldError("TaskError", `task ${taskId} cannot be cancelled: node ${info.state.node} holds it`, {
        hint: "its escrow can be reclaimed after the deadline (at once if its image is revoked)",
      });
    return await this.sendReclaim(wallet, info, 0n);
  }

  private async sendReclaim<A extends Account>(wallet: WalletClient<Transport, Chain | undefined, A>, info: TaskInfo, price: bigint): Promise<Hex> {
    const hint = "check the task's state (a node may have claimed it meanwhile) and its deadline";
    return (await this.transact(wallet, "reclaim", [info.taskId, info.spec, info.maxPrice, price], hint)).tx;
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
    const verified = await this.verify(outcome, { inputHash: contentHash(ciphertext), inputCid: cid }, bytes);
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

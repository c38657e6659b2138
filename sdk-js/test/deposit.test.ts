import {
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
  ContractFunctionExecutionError,
  ContractFunctionRevertedError,
  UserRejectedRequestError,
  encodeAbiParameters,
  encodeErrorResult,
  encodeEventTopics,
  encodeFunctionData,
  keccak256,
  recoverTypedDataAddress,
  stringToBytes,
  toFunctionSelector,
  zeroHash,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  type Deployment,
  DepositReservations,
  EcldClient,
  EcldError,
  type Image,
  InsufficientDepositError,
  type Step,
  devTokenAbi,
  insufficientDepositOf,
  marketplaceAbi,
  permitTypedData,
} from "../src/index.js";

// A simulated Marketplace and token behind stub clients: deposits, permits (checked against
// the signer and the nonce, as EIP-2612 does), escrow drawn from the deposit first and the rest
// pulled with the allowance, and the events and reverts the real contracts emit.
const owner = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const deployment: Deployment = {
  chainId: 31337,
  token: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  registry: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  marketplace: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  deployBlock: 0,
};
const TOKEN_NAME = "ecld Dev Token";
const image: Image = {
  id: keccak256(stringToBytes("image")), name: "stats", version: "1", codeCid: "bafy", measurement: zeroHash, enclaveKey: zeroHash,
  enclaveSigner: owner.address, casIdentity: owner.address, owner: owner.address, platforms: 1, deprecated: false, revoked: false, allowsSim: true,
};
const PRICE = 5n;
const upload = { cid: "bafkreia3zjtcgsdjg4zcd3cmrekhqvtzgy7amn537lv3mi2gr5fwdmdy6e", inputHash: keccak256(stringToBytes("ciphertext")) };

function logOf(abi: Abi, address: Address, eventName: string, args: Record<string, unknown>) {
  const event = abi.find((x) => x.type === "event" && x.name === eventName);
  if (event === undefined || event.type !== "event") throw new Error(`no event ${eventName}`);
  const topics = encodeEventTopics({ abi, eventName, args } as Parameters<typeof encodeEventTopics>[0]);
  const plain = event.inputs.filter((i) => !i.indexed);
  return { address, topics, data: encodeAbiParameters(plain, plain.map((i) => args[i.name ?? ""])), blockNumber: 7n, logIndex: 0, transactionIndex: 0, blockHash: zeroHash, transactionHash: zeroHash, removed: false };
}

function reverted(functionName: string, errorName: string, args: readonly unknown[]): ContractFunctionExecutionError {
  const data = encodeErrorResult({ abi: marketplaceAbi, errorName, args } as Parameters<typeof encodeErrorResult>[0]);
  return new ContractFunctionExecutionError(new ContractFunctionRevertedError({ abi: marketplaceAbi, data, functionName }), {
    abi: marketplaceAbi, args, contractAddress: deployment.marketplace, functionName,
  });
}

interface Sim {
  wallet: bigint;
  deposit: bigint;
  nonce: bigint;
  allowance: bigint;
  /** Every transaction tried, with its calldata; `ok` false for those that reverted. */
  sent: { functionName: string; args: readonly unknown[]; data: Hex; ok: boolean }[];
  /** The permits signed, as the wallet saw them. */
  signed: { value: bigint; nonce: bigint }[];
  /** Runs before a transaction is tried (to change the chain under the client). */
  before?: (functionName: string) => void;
  /** Delay of each receipt, so submissions overlap. */
  receiptMs: number;
}

function setup(p: Partial<Sim> = {}) {
  const sim: Sim = { wallet: 100n, deposit: 0n, nonce: 0n, allowance: 0n, sent: [], signed: [], receiptMs: 0, ...p };
  const receipts = new Map<Hex, { status: "success"; blockNumber: bigint; logs: ReturnType<typeof logOf>[] }>();
  let taskId = 0n;
  const pull = (amount: bigint) => {
    if (amount === 0n) return [];
    if (sim.allowance < amount || sim.wallet < amount) throw reverted("submitTask", "TokenTransferFailed", []);
    sim.allowance -= amount;
    sim.wallet -= amount;
    return [logOf(devTokenAbi, deployment.token, "Transfer", { from: owner.address, to: deployment.marketplace, value: amount })];
  };
  const permit = async (value: bigint, deadline: bigint, v: number, r: Hex, s: Hex) => {
    const signer = await recoverTypedDataAddress({
      ...permitTypedData({ name: TOKEN_NAME, chainId: deployment.chainId, address: deployment.token }, { owner: owner.address, spender: deployment.marketplace, value, nonce: sim.nonce, deadline }),
      signature: { r, s, v: BigInt(v) },
    });
    // The Marketplace ignores a permit that fails (try/catch), as the contract does.
    if (signer !== owner.address) return;
    sim.nonce += 1n;
    sim.allowance = value;
  };
  const submit = (args: readonly unknown[]) => {
    const maxPrice = args[2] as bigint;
    const logs = [];
    if (sim.deposit >= maxPrice) sim.deposit -= maxPrice;
    else {
      logs.push(...pull(maxPrice - sim.deposit));
      sim.deposit = 0n;
    }
    taskId += 1n;
    const spec = args[0] as { imageId: Hex; inputHash: Hex; memoryMb: number; maxRuntimeS: number; deadline: bigint };
    logs.push(logOf(marketplaceAbi, deployment.marketplace, "TaskSubmitted", {
      taskId, requester: owner.address, imageId: spec.imageId, inputHash: spec.inputHash, memoryMb: spec.memoryMb, maxRuntimeS: spec.maxRuntimeS,
      deadline: spec.deadline, maxPrice, price: PRICE, offerId: args[3], inputCid: args[1],
    }));
    return logs;
  };
  const publicClient = {
    readContract: async ({ address, functionName, args }: { address: Address; functionName: string; args?: readonly unknown[] }) => {
      const isToken = address === deployment.token;
      switch (`${isToken ? "token" : "market"}.${functionName}`) {
        case "token.balanceOf": return sim.wallet;
        case "token.nonces": return sim.nonce;
        case "token.name": return TOKEN_NAME;
        case "market.balanceOf": expect(args).toEqual([owner.address]); return sim.deposit;
        case "market.offerCount": return 1n;
        case "market.getOffer":
          return { node: owner.address, slots: 4, usedSlots: 0, memoryMb: 1024, maxRuntimeS: 60, price: PRICE, platform: 1, withdrawn: false, imageId: zeroHash };
        default: throw new Error(`unexpected readContract ${functionName} on ${address}`);
      }
    },
    waitForTransactionReceipt: async ({ hash }: { hash: Hex }) => {
      await new Promise((r) => setTimeout(r, sim.receiptMs));
      const r = receipts.get(hash);
      if (r === undefined) throw new Error(`no receipt ${hash}`);
      return r;
    },
  } as unknown as PublicClient;
  const wallet = {
    account: { address: owner.address, type: "json-rpc" },
    chain: undefined,
    signTypedData: async (x: Parameters<typeof owner.signTypedData>[0]) => {
      const m = x.message as { value: bigint; nonce: bigint };
      sim.signed.push({ value: m.value, nonce: m.nonce });
      return await owner.signTypedData(x);
    },
    writeContract: async ({ functionName, args, address }: { functionName: string; args: readonly unknown[]; address: Address }) => {
      expect(address).toBe(deployment.marketplace);
      sim.before?.(functionName);
      const data = encodeFunctionData({ abi: marketplaceAbi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
      const entry = { functionName, args, data, ok: false };
      sim.sent.push(entry);
      let logs: ReturnType<typeof logOf>[];
      switch (functionName) {
        case "depositWithPermit": {
          const [amount, deadline, v, r, s] = args as [bigint, bigint, number, Hex, Hex];
          await permit(amount, deadline, v, r, s);
          if (sim.allowance < amount || sim.wallet < amount) throw reverted(functionName, "TokenTransferFailed", []);
          sim.allowance -= amount;
          sim.wallet -= amount;
          sim.deposit += amount;
          logs = [logOf(devTokenAbi, deployment.token, "Transfer", { from: owner.address, to: deployment.marketplace, value: amount }),
            logOf(marketplaceAbi, deployment.marketplace, "Deposited", { account: owner.address, amount })];
          break;
        }
        case "withdraw": {
          const [amount] = args as [bigint];
          if (amount > sim.deposit) throw reverted(functionName, "InsufficientDeposit", [sim.deposit, amount]);
          sim.deposit -= amount;
          sim.wallet += amount;
          logs = [logOf(marketplaceAbi, deployment.marketplace, "Withdrawn", { account: owner.address, amount })];
          break;
        }
        case "submitTask":
          logs = submit(args);
          break;
        case "submitTaskWithPermit": {
          const [, , maxPrice, , deadline, v, r, s] = args as [unknown, unknown, bigint, unknown, bigint, number, Hex, Hex];
          await permit(maxPrice, deadline, v, r, s);
          logs = submit(args);
          break;
        }
        default: throw new Error(`unexpected transaction ${functionName}`);
      }
      entry.ok = true;
      const hash = keccak256(encodeAbiParameters([{ type: "uint256" }], [BigInt(sim.sent.length)]));
      receipts.set(hash, { status: "success", blockNumber: 7n, logs });
      return hash;
    },
  };
  const client = new EcldClient({ deployment, publicClient, store: "http://127.0.0.1:9" });
  return { sim, client, wallet: wallet as any };
}

describe("deposits: depositWithPermit, withdraw and the deposit balance", () => {
  it("deposit signs a permit for the amount and sends depositWithPermit with it", async () => {
    const { sim, client, wallet } = setup({ nonce: 3n });
    const steps: string[] = [];
    const r = await client.deposit(wallet, 40n, (s) => steps.push(s));
    expect(steps).toEqual(["permit", "submit"]);
    expect(sim.signed).toEqual([{ value: 40n, nonce: 3n }]);
    expect(sim.sent.map((x) => x.functionName)).toEqual(["depositWithPermit"]);
    const sent = sim.sent[0]!;
    expect(sent.data.slice(0, 10)).toBe(toFunctionSelector("depositWithPermit(uint256,uint256,uint8,bytes32,bytes32)"));
    expect(sent.args[0]).toBe(40n);
    expect([27, 28]).toContain(sent.args[2]);
    // The simulated token accepted the permit (signer and nonce), so the allowance was there.
    expect(sim.nonce).toBe(4n);
    expect([r.amount, r.deposit, sim.wallet, sim.deposit]).toEqual([40n, 40n, 60n, 40n]);
    expect(await client.depositBalance(owner.address)).toBe(40n);
    expect(await client.depositBalance(wallet)).toBe(40n);
  });

  it("deposit refuses an amount the wallet does not hold, and zero, before any prompt", async () => {
    const { sim, client, wallet } = setup({ wallet: 10n });
    await expect(client.deposit(wallet, 11n)).rejects.toThrow(/cannot deposit 11: account .* has 10 tokens in its wallet/);
    await expect(client.deposit(wallet, 0n)).rejects.toThrow(/must be positive/);
    expect([sim.signed, sim.sent]).toEqual([[], []]);
  });

  it("concurrent deposits sign one permit after the other, each with its own nonce", async () => {
    const { sim, client, wallet } = setup({ receiptMs: 20 });
    await Promise.all([client.deposit(wallet, 10n), client.deposit(wallet, 20n)]);
    expect(sim.signed.map((x) => x.nonce)).toEqual([0n, 1n]);
    expect(sim.sent.every((x) => x.ok)).toBe(true);
    expect(sim.deposit).toBe(30n);
  });

  it("withdraw sends withdraw(amount); the deposit drops and the wallet grows", async () => {
    const { sim, client, wallet } = setup({ deposit: 30n });
    const r = await client.withdraw(wallet, 12n);
    expect(sim.sent.map((x) => [x.functionName, x.args])).toEqual([["withdraw", [12n]]]);
    expect(sim.sent[0]!.data).toBe(encodeFunctionData({ abi: marketplaceAbi, functionName: "withdraw", args: [12n] }));
    expect(sim.sent[0]!.data.slice(0, 10)).toBe(toFunctionSelector("withdraw(uint256)"));
    expect([r.amount, r.deposit, sim.wallet]).toEqual([12n, 18n, 112n]);
  });

  it("withdrawing more than the deposit is an InsufficientDepositError naming both amounts, before any prompt", async () => {
    const { sim, client, wallet } = setup({ deposit: 7n });
    const e = await client.withdraw(wallet, 8n).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InsufficientDepositError);
    expect(e).toBeInstanceOf(EcldError);
    const err = e as InsufficientDepositError;
    expect([err.name, err.balance, err.amount]).toEqual(["DepositError", 7n, 8n]);
    expect(err.shortMessage).toBe(`cannot withdraw 8 from the deposit of ${owner.address}: it holds 7`);
    expect(sim.sent).toEqual([]);
  });

  it("the Marketplace's InsufficientDeposit revert (the deposit shrank meanwhile) becomes the same typed error", async () => {
    const { sim, client, wallet } = setup({ deposit: 9n });
    sim.before = () => { sim.deposit = 2n; };
    const e = await client.withdraw(wallet, 9n).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InsufficientDepositError);
    expect([(e as InsufficientDepositError).balance, (e as InsufficientDepositError).amount]).toEqual([2n, 9n]);
    // Other reverts are not mistaken for it.
    expect(insufficientDepositOf(reverted("withdraw", "TokenTransferFailed", []), owner.address)).toBeUndefined();
    expect(insufficientDepositOf(new Error("InsufficientDeposit"), owner.address)).toBeUndefined();
  });
});

describe("submission: the escrow from the deposit without a permit, else with one", () => {
  const submit = async (client: EcldClient, wallet: any, steps: Step[] = []) =>
    await client.submitUploaded(wallet, image, { maxPrice: 6n }, upload, (s) => steps.push(s));

  it("a deposit covering maxPrice: submitTask, no permit; the wallet is untouched and the deposit drops", async () => {
    const { sim, client, wallet } = setup({ deposit: 10n });
    const steps: Step[] = [];
    const s = await submit(client, wallet, steps);
    expect(steps).toEqual(["submit"]);
    expect(sim.signed).toEqual([]);
    expect(sim.sent.map((x) => x.functionName)).toEqual(["submitTask"]);
    expect(sim.sent[0]!.data.slice(0, 10)).toBe(toFunctionSelector("submitTask((bytes32,bytes32,bytes32,uint32,uint32,uint64),string,uint96,uint64)"));
    expect(sim.sent[0]!.args.slice(1)).toEqual([upload.cid, 6n, 1n]);
    expect([s.maxPrice, s.fromDeposit, s.price, s.taskId]).toEqual([6n, 6n, PRICE, 1n]);
    expect([sim.wallet, sim.deposit]).toEqual([100n, 4n]);
  });

  it("a deposit short of maxPrice: the permit path, and the wallet pays only the rest", async () => {
    const { sim, client, wallet } = setup({ deposit: 2n });
    const steps: Step[] = [];
    const s = await submit(client, wallet, steps);
    expect(steps).toEqual(["permit", "submit"]);
    expect(sim.signed).toEqual([{ value: 6n, nonce: 0n }]);
    expect(sim.sent.map((x) => x.functionName)).toEqual(["submitTaskWithPermit"]);
    expect([s.fromDeposit, sim.wallet, sim.deposit]).toEqual([2n, 96n, 0n]);
  });

  it("refuses a task the wallet and the deposit together cannot pay, before any prompt", async () => {
    const { sim, client, wallet } = setup({ wallet: 3n, deposit: 2n });
    await expect(submit(client, wallet)).rejects.toThrow(/holds 3 tokens and a deposit of 2, the task costs 6/);
    expect([sim.signed, sim.sent]).toEqual([[], []]);
  });

  it("two concurrent submissions do not both count on one deposit: the second signs a permit", async () => {
    const { sim, client, wallet } = setup({ deposit: 6n, receiptMs: 20 });
    const [a, b] = await Promise.all([submit(client, wallet), submit(client, wallet)]);
    expect(sim.sent.map((x) => [x.functionName, x.ok])).toEqual([["submitTask", true], ["submitTaskWithPermit", true]]);
    expect([a.fromDeposit, b.fromDeposit]).toEqual([6n, 0n]);
    expect([sim.wallet, sim.deposit]).toEqual([94n, 0n]);
    // Once mined, nothing stays promised: the next submission with a deposit skips the permit again.
    sim.deposit = 6n;
    await submit(client, wallet);
    expect(sim.sent.at(-1)?.functionName).toBe("submitTask");
  });

  it("a deposit spent elsewhere before the transaction falls back to the permit", async () => {
    const { sim, client, wallet } = setup({ deposit: 6n });
    sim.before = (f) => { if (f === "submitTask") sim.deposit = 0n; };
    const steps: Step[] = [];
    const s = await submit(client, wallet, steps);
    expect(sim.sent.map((x) => [x.functionName, x.ok])).toEqual([["submitTask", false], ["submitTaskWithPermit", true]]);
    expect(steps).toEqual(["submit", "permit", "submit"]);
    expect([s.fromDeposit, sim.wallet]).toEqual([0n, 94n]);
  });

  it("no fallback when the user rejects the transaction, or when the deposit still covers it", async () => {
    const rejected = setup({ deposit: 6n });
    // Even with the deposit gone meanwhile: a "no" is not asked again as a permit.
    rejected.wallet.writeContract = async () => { rejected.sim.deposit = 0n; throw new UserRejectedRequestError(new Error("User rejected the request.")); };
    await expect(submit(rejected.client, rejected.wallet)).rejects.toThrow(/submitTask failed/);
    expect(rejected.sim.signed).toEqual([]);
    const other = setup({ deposit: 6n });
    other.wallet.writeContract = async () => { throw reverted("submitTask", "OfferFull", [1n, 4]); };
    await expect(submit(other.client, other.wallet)).rejects.toThrow(/submitTask failed/);
    expect(other.sim.signed).toEqual([]);
  });
});

describe("DepositReservations", () => {
  const a: Address = owner.address;
  it("claims what the deposit covers after this client's other claims, per account, until released", () => {
    const r = new DepositReservations();
    expect(r.claim(a, 10n, 6n)).toBe(true);
    expect(r.claim(a, 10n, 5n)).toBe(false);
    expect(r.claim(a.toLowerCase() as Address, 10n, 4n)).toBe(true);
    expect(r.reserved(a)).toBe(10n);
    expect(r.claim("0x000000000000000000000000000000000000dEaD", 10n, 10n)).toBe(true);
    r.release(a, 6n);
    expect(r.reserved(a)).toBe(4n);
    expect(r.claim(a, 10n, 6n)).toBe(true);
    expect(r.claim(a, 100n, 0n)).toBe(false);
  });
});

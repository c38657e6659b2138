import { type Address, type Hex, type PublicClient, keccak256, stringToBytes, zeroHash } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { type Deployment, EcldClient, type Outcome, cidHash, resultTypedData, taskSpec } from "../src/index.js";

// An in-memory chain behind a stub PublicClient: the events and views EcldClient reads, as
// the Marketplace and ImageRegistry emit and answer them.
const enclave = privateKeyToAccount("0xed9b56f514b1c62fde44c9cbf5e583982ec0b8cf7f09123f92de7b99e46bca6e");
const requester: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const nodeAddr: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const deployment: Deployment = {
  chainId: 31337,
  token: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  registry: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  marketplace: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  deployBlock: 0,
};
const imageId = keccak256(stringToBytes("image"));
const inputCid = "bafkreia3zjtcgsdjg4zcd3cmrekhqvtzgy7amn537lv3mi2gr5fwdmdy6e";
const resultCid = "bafkreiatmvpgmu6fazd6pkbzwxflfood4y6wz72knijbvzqk2kpsgdvkzu";
const inputHash = keccak256(stringToBytes("input ciphertext"));
const resultBytes = stringToBytes("result ciphertext");
const DEADLINE = 2_000_000_000n;

interface Submitted { memoryMb: number; maxRuntimeS: number; deadline: bigint; inputCid: string; inputHash: Hex; maxPrice: bigint; price: bigint; offerId: bigint }
interface Chain {
  now: bigint;
  revoked: boolean;
  submitted: Submitted;
  /** getTask's word: live (open or held by `offerId`) or gone. */
  task: { live: boolean; offerId: bigint };
  claims: bigint[];
  result?: { resultCid: string; status: number; paid: bigint; refunded: bigint; signature: Hex; resultHash: Hex };
}

function newChain(p: Partial<Chain> = {}): Chain {
  return {
    now: 1_800_000_000n,
    revoked: false,
    submitted: { memoryMb: 64, maxRuntimeS: 10, deadline: DEADLINE, inputCid, inputHash, maxPrice: 9n, price: 5n, offerId: 1n },
    task: { live: true, offerId: 1n },
    claims: [],
    ...p,
  };
}

function stubPublicClient(c: Chain): PublicClient {
  const s = c.submitted;
  const stub = {
    getChainId: async () => deployment.chainId,
    getBlock: async () => ({ timestamp: c.now }),
    waitForTransactionReceipt: async () => ({ status: "success", blockNumber: 9n, logs: [] }),
    readContract: async ({ functionName }: { functionName: string }) => {
      switch (functionName) {
        case "getImage":
          return {
            enclaveSigner: enclave.address, platforms: 1, deprecated: c.revoked, revoked: c.revoked, owner: requester, casIdentity: requester,
            measurement: zeroHash, enclaveKey: zeroHash, codeCid: "bafy", name: "stats", version: "1",
          };
        case "getTask":
          return { commitment: c.task.live ? "0x0100000000000000000000000000000000000000000000ff" : `0x${"00".repeat(24)}`, offerId: c.task.live ? c.task.offerId : 0n };
        case "getOffer":
          return { node: nodeAddr };
        default:
          throw new Error(`unexpected readContract ${functionName}`);
      }
    },
    getContractEvents: async ({ eventName }: { eventName: string }) => {
      switch (eventName) {
        case "TaskSubmitted":
          return [{ blockNumber: 5n, args: { taskId: 1n, requester, imageId, ...s } }];
        case "TaskClaimed":
          return c.claims.map((price) => ({ blockNumber: 6n, args: { taskId: 1n, offerId: 2n, node: nodeAddr, price } }));
        case "ResultSubmitted": {
          const r = c.result;
          if (r === undefined) return [];
          return [{
            blockNumber: 8n,
            args: {
              taskId: 1n, offerId: 1n, node: nodeAddr, signer: enclave.address, resultHash: r.resultHash, codeHash: zeroHash, status: r.status,
              runtimeMs: 42n, paid: r.paid, refunded: r.refunded, resultCid: r.resultCid, signature: r.signature,
            },
          }];
        }
        case "TaskReclaimed":
          return [];
        default:
          throw new Error(`unexpected event ${eventName}`);
      }
    },
  };
  return stub as unknown as PublicClient;
}

const spec = taskSpec({ imageId, inputHash, inputCid, memoryMb: 64, maxRuntimeS: 10, deadline: DEADLINE });
/** What the enclave signs for the task as submitted, with the result under `resultCid`. */
async function enclaveSignature(over: { resultCid?: string; status?: number; resultHash?: Hex } = {}): Promise<Hex> {
  const proof = {
    taskId: 1n, spec, codeHash: zeroHash, resultHash: over.resultHash ?? keccak256(resultBytes),
    resultCidHash: cidHash(over.resultCid ?? resultCid), status: over.status ?? 0, runtimeMs: 42n,
  };
  return await enclave.signTypedData(resultTypedData(proof, { chainId: deployment.chainId, verifyingContract: deployment.marketplace }));
}

async function settled(p: Partial<Chain> = {}, result: Partial<NonNullable<Chain["result"]>> = {}) {
  const c = newChain({ task: { live: false, offerId: 0n }, ...p });
  c.result = { resultCid, status: 0, paid: 5n, refunded: 4n, signature: await enclaveSignature(), resultHash: keccak256(resultBytes), ...result };
  const client = new EcldClient({ deployment, publicClient: stubPublicClient(c), store: "http://127.0.0.1:9" });
  const outcome = await client.waitForOutcome(1n, 0n, { timeoutMs: 1000 });
  if (outcome.kind !== "result") throw new Error("expected a result");
  return { client, outcome, chain: c };
}

describe("EcldClient: the proof is rebuilt from TaskSubmitted and ResultSubmitted and verified", () => {
  it("an honest proof verifies; the escrow's split is decoded", async () => {
    const { client, outcome } = await settled();
    expect(outcome.proof.spec).toEqual(spec);
    expect(outcome.proof.spec.inputCidHash).toBe(cidHash(inputCid));
    expect(outcome.proof.resultCidHash).toBe(cidHash(resultCid));
    expect([outcome.paid, outcome.refunded, outcome.offerId, outcome.node]).toEqual([5n, 4n, 1n, nodeAddr]);
    const v = await client.verify(outcome, { inputHash, inputCid }, resultBytes);
    expect(v.statusName).toBe("SUCCESS");
    expect(v.signer).toBe(enclave.address);
    expect(v.resultCid).toBe(resultCid);
    expect(await client.taskState(1n, 0n)).toEqual({ kind: "done", status: 0, statusName: "SUCCESS", paid: 5n, refunded: 4n });
  });

  it("a result-less proof signs the hash of the empty CID", async () => {
    const signature = await enclaveSignature({ resultCid: "", status: 16, resultHash: zeroHash });
    const { client, outcome } = await settled({}, { resultCid: "", status: 16, resultHash: zeroHash, signature, paid: 0n, refunded: 9n });
    expect(outcome.proof.resultCidHash).toBe(keccak256(new Uint8Array()));
    expect(await client.download(outcome)).toEqual(new Uint8Array());
    expect((await client.verify(outcome, undefined, new Uint8Array())).statusName).toBe("INPUT_UNAVAILABLE");
  });

  // The enclave signed the task as submitted; a chain record that differs in any spec field
  // (or a result published under another CID) yields a proof that recovers another signer.
  const fields: [string, Partial<Submitted>][] = [
    ["memoryMb", { memoryMb: 65 }],
    ["maxRuntimeS", { maxRuntimeS: 11 }],
    ["deadline", { deadline: DEADLINE + 1n }],
    ["inputCid (so inputCidHash)", { inputCid: `${inputCid}x` }],
    ["inputHash", { inputHash: keccak256(stringToBytes("other")) }],
  ];
  for (const [name, change] of fields) {
    it(`does not verify when the submitted ${name} differs from what was signed`, async () => {
      const { client, outcome } = await settled({ submitted: { ...newChain().submitted, ...change } });
      await expect(client.verify(outcome, undefined, resultBytes)).rejects.toThrow(/signed by 0x[0-9a-fA-F]{40}, not by the image's enclave signer/);
    });
  }

  it("does not verify when the result was published under another CID than the one signed", async () => {
    const { client, outcome } = await settled({}, { resultCid: `${resultCid}x` });
    await expect(client.verify(outcome, undefined, resultBytes)).rejects.toThrow(/not by the image's enclave signer/);
    // An outcome whose CID was swapped after the proof was rebuilt is caught by the CID check.
    const honest = await settled();
    const swapped: Extract<Outcome, { kind: "result" }> = { ...honest.outcome, resultCid: `${resultCid}x` };
    await expect(honest.client.verify(swapped, undefined, resultBytes)).rejects.toThrow(/another result CID/);
  });

  it("checks the uploaded input, the downloaded result and the image's revocation", async () => {
    const { client, outcome } = await settled();
    await expect(client.verify(outcome, { inputHash, inputCid: "bafkreiother" }, resultBytes)).rejects.toThrow(/another input CID/);
    await expect(client.verify(outcome, { inputHash: zeroHash }, resultBytes)).rejects.toThrow(/another input/);
    await expect(client.verify(outcome, stringToBytes("other input"), resultBytes)).rejects.toThrow(/another input/);
    await expect(client.verify(outcome, undefined, stringToBytes("tampered"))).rejects.toThrow(/resultHash/);
    const revoked = await settled({ revoked: true });
    await expect(revoked.client.verify(revoked.outcome, undefined, resultBytes)).rejects.toThrow(/revoked/);
  });

  it("reads the task's record: spec, escrow and price", async () => {
    const client = new EcldClient({ deployment, publicClient: stubPublicClient(newChain({ task: { live: true, offerId: 0n } })), store: "http://127.0.0.1:9" });
    const t = await client.task(1n);
    expect(t.spec).toEqual(spec);
    expect([t.maxPrice, t.price, t.offerId, t.inputCidHash, t.requester]).toEqual([9n, 5n, 1n, cidHash(inputCid), requester]);
    expect(t.state).toEqual({ kind: "open" });
  });
});

describe("EcldClient: cancel and reclaim pass the spec, the escrow and the holder's price", () => {
  function setup(p: Partial<Chain>, account: Address = requester) {
    const chain = newChain(p);
    const client = new EcldClient({ deployment, publicClient: stubPublicClient(chain), store: "http://127.0.0.1:9" });
    const calls: { functionName: string; args: readonly unknown[] }[] = [];
    const wallet = {
      account: { address: account, type: "json-rpc" },
      chain: undefined,
      writeContract: async (x: { functionName: string; args: readonly unknown[] }) => {
        calls.push(x);
        return "0x01" as Hex;
      },
    };
    return { client, wallet: wallet as any, calls, chain };
  }

  it("an open task is cancelled (or reclaimed) at any time, with price 0", async () => {
    const { client, wallet, calls } = setup({ task: { live: true, offerId: 0n } });
    await client.cancel(wallet, 1n);
    await client.reclaim(wallet, 1n);
    expect(calls.map((c) => c.functionName)).toEqual(["reclaim", "reclaim"]);
    for (const c of calls) expect(c.args).toEqual([1n, spec, 9n, 0n]);
  });

  it("a held task is not cancelled, nor reclaimed before its deadline", async () => {
    const { client, wallet, calls } = setup({ task: { live: true, offerId: 1n } });
    await expect(client.cancel(wallet, 1n)).rejects.toThrow(/cannot be cancelled: node .* holds it/);
    await expect(client.reclaim(wallet, 1n)).rejects.toThrow(/before its deadline/);
    expect(calls).toEqual([]);
  });

  it("after the deadline a held task is reclaimed with its holder's price: the submission's, or the last claim's", async () => {
    const matched = setup({ task: { live: true, offerId: 1n }, now: DEADLINE + 1n });
    await matched.client.reclaim(matched.wallet, 1n);
    expect(matched.calls[0]?.args).toEqual([1n, spec, 9n, 5n]);
    const claimed = setup({ task: { live: true, offerId: 2n }, now: DEADLINE + 1n, claims: [3n, 4n] });
    await claimed.client.reclaim(claimed.wallet, 1n);
    expect(claimed.calls[0]?.args).toEqual([1n, spec, 9n, 4n]);
  });

  it("a held task of a revoked image is reclaimed at once", async () => {
    const { client, wallet, calls } = setup({ task: { live: true, offerId: 1n }, revoked: true });
    await client.reclaim(wallet, 1n);
    expect(calls[0]?.args).toEqual([1n, spec, 9n, 5n]);
  });

  it("only the requester, and only a live task", async () => {
    const other = setup({ task: { live: true, offerId: 0n } }, nodeAddr);
    await expect(other.client.cancel(other.wallet, 1n)).rejects.toThrow(/only its requester/);
    await expect(other.client.reclaim(other.wallet, 1n)).rejects.toThrow(/only its requester/);
    const gone = setup({ task: { live: false, offerId: 0n } });
    await expect(gone.client.reclaim(gone.wallet, 1n)).rejects.toThrow(/already reclaimed/);
    expect([...other.calls, ...gone.calls]).toEqual([]);
  });
});

import { createPublicClient, createWalletClient, defineChain, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EcldClient, EcldError, InsufficientDepositError, StoreClient, cidHash, devTokenAbi, marketplaceAbi, type Step, decodeResultEnvelope, decrypt, generateResultIdentity, insufficientDepositOf, readVerifiedFile, taskSpec } from "../../src/index.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { keccak256 } from "viem";
import { ECLD_MISSING, missingPeer, readVectors, repoRoot } from "../util.js";
import { type Stack, startStack } from "./stack.js";

let stack: Stack | undefined;
beforeAll(async () => {
  // Undefined without the ecld binary: each test then fails under CI and is skipped elsewhere.
  stack = await startStack();
}, 180_000);
afterAll(async () => { await stack?.stop(); }, 60_000);

function clients(s: Stack) {
  const chain = defineChain({ id: s.chainId, name: "ecld devnet", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [s.rpc] } } });
  const publicClient = createPublicClient({ chain, transport: http(s.rpc), pollingInterval: 100 });
  const wallet = createWalletClient({ chain, transport: http(s.rpc), account: privateKeyToAccount(s.demoKey) });
  const client = new EcldClient({ deployment: s.deployment, publicClient, store: s.store });
  return { client, wallet };
}

describe("a whole task from TypeScript against ecld up", () => {
  it("submits, watches, verifies and decrypts (stats image)", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const { client, wallet } = clients(stack);
    await client.checkChain();
    const images = await client.images();
    const stats = images.find((i) => i.name === "stats");
    expect(stats, "ecld up publishes the stats example").toBeDefined();
    expect(stats!.allowsSim).toBe(true);
    const { identity, recipient } = await generateResultIdentity();
    const steps: Step[] = [];
    const { submitted, verified, result } = await client.runTask(
      wallet,
      { image: stats!.id, input: new TextEncoder().encode("3 1 4 1 5 9 2 6\n"), recipient, identity },
      (s) => steps.push(s),
    );
    expect(steps).toEqual(["encrypt", "upload", "permit", "submit", "execute", "proof", "download", "verify", "decrypt"]);
    expect(submitted.taskId).toBeGreaterThan(0n);
    expect(verified.statusName).toBe("SUCCESS");
    expect(verified.signer).toBe(stats!.enclaveSigner);
    expect(verified.marketplace).toBe(stack.deployment.marketplace);
    expect(verified.proof.spec).toEqual(submitted.spec);
    expect(verified.proof.spec.inputCidHash).toBe(cidHash(submitted.inputCid));
    expect(verified.proof.resultCidHash).toBe(cidHash(verified.resultCid));
    expect(result).toBeDefined();
    expect(result!.exitCode).toBe(0);
    const out = new TextDecoder().decode(result!.stdout);
    expect(out.length).toBeGreaterThan(0);
    expect(out).toMatch(/8/); // eight numbers summarised

    // A tampered result or a proof for another input is refused before decryption.
    const outcome = await client.waitForOutcome(submitted.taskId, submitted.block);
    if (outcome.kind !== "result") throw new Error("expected a result");
    // The escrow was held whole: the node got its price, the requester the rest.
    expect(outcome.paid).toBe(submitted.price);
    expect(outcome.paid + outcome.refunded).toBe(submitted.maxPrice);
    const bytes = await client.download(outcome);
    const tampered = bytes.slice();
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    await expect(client.verify(outcome, submitted.input, tampered)).rejects.toBeInstanceOf(EcldError);
    await expect(client.verify(outcome, new Uint8Array([1]), bytes)).rejects.toThrow(/another input/);
    await expect(client.verify({ ...outcome, proof: { ...outcome.proof, status: 1 } }, submitted.input, bytes)).rejects.toThrow(/signed by/);
    const otherSpec = { ...outcome.proof.spec, memoryMb: outcome.proof.spec.memoryMb + 1 };
    await expect(client.verify({ ...outcome, proof: { ...outcome.proof, spec: otherSpec } }, submitted.input, bytes)).rejects.toThrow(/signed by/);
    await expect(client.verify({ ...outcome, resultCid: submitted.inputCid }, submitted.input, bytes)).rejects.toThrow(/another result CID/);
    // The result is for our key only.
    expect(decodeResultEnvelope(await decrypt(identity, bytes)).status).toBe(0);
    await expect(decrypt((await generateResultIdentity()).identity, bytes)).rejects.toThrow(/decryption failed/);
  }, 120_000);

  it("streams an input (payload → age → Blob, hashed as it passes) to the hash image; the proof is over that hash", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const { client, wallet } = clients(stack);
    const image = (await client.images()).find((i) => i.name === "hash");
    expect(image, "ecld up publishes the hash example").toBeDefined();
    const input = new Uint8Array(3_000_000).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
    const source = new Blob([input.subarray(0, 1_234_567), input.subarray(1_234_567)]).stream();
    const { identity, recipient } = await generateResultIdentity();
    const enc = await client.encryptInputStream(image!, wallet.account.address, { recipient, input: source, inputLength: input.length });
    expect(enc.inputHash).toBe(keccak256(new Uint8Array(await enc.ciphertext.arrayBuffer())));
    const cid = await client.store.add(enc.ciphertext);
    const submitted = await client.submitUploaded(wallet, image!, {}, { cid, inputHash: enc.inputHash });
    expect(submitted.inputHash).toBe(enc.inputHash);
    expect(submitted.input).toBeUndefined();
    const outcome = await client.waitForOutcome(submitted.taskId, submitted.block, { timeoutMs: 60_000 });
    if (outcome.kind !== "result") throw new Error("expected a result");
    const bytes = await client.download(outcome);
    const verified = await client.verify(outcome, { inputHash: enc.inputHash }, bytes);
    expect(verified.statusName).toBe("SUCCESS");
    await expect(client.verify(outcome, { inputHash: keccak256(new Uint8Array([1])) }, bytes)).rejects.toThrow(/another input/);
    const out = JSON.parse(new TextDecoder().decode(decodeResultEnvelope(await decrypt(identity, bytes)).stdout)) as { length: number; keccak256: string };
    expect(out).toMatchObject({ length: input.length, keccak256: keccak256(input) });
  }, 120_000);

  it("runs code sent in the payload on the wasm runner image; the proof names that code", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const { client, wallet } = clients(stack);
    const runner = (await client.images()).find((i) => i.name === "wasm");
    expect(runner, "ecld up publishes the wasm runner image").toBeDefined();
    const code = new Uint8Array(readFileSync(join(repoRoot, "testdata/enclave/echo.wasm")));
    const { identity, recipient } = await generateResultIdentity();
    const input = new TextEncoder().encode("echo from a runner\n");
    const { verified, result } = await client.runTask(wallet, { image: runner!.id, input, code, recipient, identity });
    expect(verified.statusName).toBe("SUCCESS");
    expect(verified.proof.codeHash).toBe(keccak256(code));
    expect(new TextDecoder().decode(result!.stdout)).toBe("echo from a runner\n");
  }, 120_000);

  it("uploads a multi-chunk file and reads it back block by block, every block checked", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const v = readVectors<{ vectors: { name: string; len: number; cid: string }[] }>("cid").vectors.find((x) => x.name === "three chunks and a bit")!;
    const bytes = Uint8Array.from({ length: v.len }, (_, i) => i % 251);
    const store = new StoreClient(stack.store);
    expect(await store.add(bytes)).toBe(v.cid);
    expect(await store.catVerified(v.cid)).toEqual(bytes);
    expect(await store.cat(v.cid)).toEqual(bytes);
    // A store that alters one leaf is caught.
    let n = 0;
    const lying = async (cid: string) => {
      const b = await store.blockGet(cid);
      if (n++ === 2) b[0] = (b[0] ?? 0) ^ 1;
      return b;
    };
    await expect(readVerifiedFile(v.cid, lying, 1 << 30)).rejects.toThrow(/does not match/);
  }, 60_000);

  it("lists the account's tasks with their state and cancels an unmatched task at once", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const { client, wallet } = clients(stack);
    const me = wallet.account.address;
    const stats = (await client.images()).find((i) => i.name === "stats")!;
    // An open task no offer can take (more memory than any node offers), deadline in a few seconds.
    const inputCid = await client.store.add(new TextEncoder().encode("not run"));
    const price = 7n;
    const deadline = (await client.chainNow()) + 600n;
    const spec = taskSpec({ imageId: stats.id, inputHash: keccak256(new TextEncoder().encode("not run")), inputCid, memoryMb: 1_000_000, maxRuntimeS: 10, deadline });
    const approve = await wallet.writeContract({ address: stack.deployment.token, abi: devTokenAbi, functionName: "approve", args: [stack.deployment.marketplace, price] });
    await client.publicClient.waitForTransactionReceipt({ hash: approve });
    const sub = await wallet.writeContract({ address: stack.deployment.marketplace, abi: marketplaceAbi, functionName: "submitTask", args: [spec, inputCid, price, 0n] });
    await client.publicClient.waitForTransactionReceipt({ hash: sub });
    const mine = await client.tasksOf(me);
    expect(mine.length).toBeGreaterThanOrEqual(2);
    const open = mine[0]!;
    expect(open.state).toEqual({ kind: "open" });
    expect(open.deadline).toBe(deadline);
    expect(open.maxPrice).toBe(price);
    expect(open.price).toBe(0n);
    expect(open.spec).toEqual(spec);
    expect(open.requester).toBe(me);
    // Earlier tasks of this file ran to completion.
    expect(mine.slice(1).every((t) => t.state.kind === "done" && t.state.statusName === "SUCCESS")).toBe(true);
    expect(await client.tasksOf("0x000000000000000000000000000000000000dEaD")).toEqual([]);
    // No node holds it: it is cancelled before its deadline, and the whole escrow comes back.
    const balanceOf = () => client.publicClient.readContract({ address: stack!.deployment.token, abi: devTokenAbi, functionName: "balanceOf", args: [me] });
    const before = await balanceOf();
    await client.cancel(wallet, open.taskId);
    expect(await balanceOf()).toBe(before + price);
    expect((await client.task(open.taskId)).state).toEqual({ kind: "reclaimed" });
    await expect(client.reclaim(wallet, open.taskId)).rejects.toThrow(/already reclaimed/);
    await expect(client.cancel(wallet, open.taskId)).rejects.toThrow(/already reclaimed/);
  }, 60_000);
  it("deposits, runs a task paid from the deposit (no permit; the wallet untouched at submission), withdraws; too much is an InsufficientDepositError", async (ctx) => {
    if (stack === undefined) missingPeer(ctx, ECLD_MISSING);
    const { client, wallet } = clients(stack);
    const me = wallet.account.address;
    const { token, marketplace } = stack.deployment;
    const pub = client.publicClient;
    const walletAt = () => pub.readContract({ address: token, abi: devTokenAbi, functionName: "balanceOf", args: [me] });
    const nonce = () => pub.readContract({ address: token, abi: devTokenAbi, functionName: "nonces", args: [me] });
    // The Marketplace's tokens are the escrows it holds plus the deposits (only this account's here).
    const conserved = async () => {
      const [held, balance, deposit] = await Promise.all([
        pub.readContract({ address: marketplace, abi: marketplaceAbi, functionName: "totals" }).then((t) => t.held),
        pub.readContract({ address: token, abi: devTokenAbi, functionName: "balanceOf", args: [marketplace] }),
        client.depositBalance(me),
      ]);
      expect(balance).toBe(held + deposit);
    };
    const stats = (await client.images()).find((i) => i.name === "stats")!;
    const price = (await client.cheapestOffer(stats, 64, 10)).price;
    expect(price).toBeGreaterThan(0n);
    const amount = 3n * price;

    const wallet0 = await walletAt();
    expect(await client.depositBalance(me)).toBe(0n);
    const deposited = await client.deposit(wallet, amount);
    expect(deposited).toMatchObject({ amount, deposit: amount });
    expect(await walletAt()).toBe(wallet0 - amount);
    expect(await client.depositBalance(wallet)).toBe(amount);
    await conserved();

    const nonceBefore = await nonce();
    const { identity, recipient } = await generateResultIdentity();
    const steps: Step[] = [];
    const walletBefore = await walletAt();
    const { submitted, verified, result } = await client.runTask(wallet, { image: stats.id, input: new TextEncoder().encode("2 7 1 8\n"), recipient, identity }, (s) => steps.push(s));
    expect(steps).toEqual(["encrypt", "upload", "submit", "execute", "proof", "download", "verify", "decrypt"]);
    expect(await nonce()).toBe(nonceBefore); // no permit was used
    expect(submitted.fromDeposit).toBe(submitted.maxPrice);
    // The submission moved no token out of the wallet (the devnet keeps no past state, so its
    // Transfer logs say so), and the deposit went down by the escrow.
    const pulled = await pub.getContractEvents({ address: token, abi: devTokenAbi, eventName: "Transfer", args: { from: me }, fromBlock: submitted.block, toBlock: submitted.block });
    expect(pulled).toEqual([]);
    expect(verified.statusName).toBe("SUCCESS");
    expect(new TextDecoder().decode(result!.stdout)).toMatch(/4/);
    // Settled: the refund goes to the wallet; the deposit stays as the submission left it.
    const outcome = await client.waitForOutcome(submitted.taskId, submitted.block);
    if (outcome.kind !== "result") throw new Error("expected a result");
    expect(await walletAt()).toBe(walletBefore + outcome.refunded);
    expect(outcome.paid + outcome.refunded).toBe(submitted.maxPrice);
    const left = await client.depositBalance(me);
    expect(left).toBe(amount - submitted.maxPrice);
    await conserved();

    // Too much: refused before the prompt, and reverted by the Marketplace when sent anyway.
    const tooMuch = await client.withdraw(wallet, left + 1n).catch((e: unknown) => e);
    expect(tooMuch).toBeInstanceOf(InsufficientDepositError);
    expect([(tooMuch as InsufficientDepositError).balance, (tooMuch as InsufficientDepositError).amount]).toEqual([left, left + 1n]);
    const reverted = await wallet.writeContract({ address: marketplace, abi: marketplaceAbi, functionName: "withdraw", args: [left + 1n] }).catch((e: unknown) => e);
    const typed = insufficientDepositOf(reverted, me);
    expect(typed, String(reverted)).toBeInstanceOf(InsufficientDepositError);
    expect([typed!.balance, typed!.amount]).toEqual([left, left + 1n]);

    const walletBeforeWithdraw = await walletAt();
    const withdrawn = await client.withdraw(wallet, left);
    expect(withdrawn).toMatchObject({ amount: left, deposit: 0n });
    expect(await walletAt()).toBe(walletBeforeWithdraw + left);
    expect(await client.depositBalance(me)).toBe(0n);
    await conserved();
  }, 120_000);
});

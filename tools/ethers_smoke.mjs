// Drives an Ethereum JSON-RPC endpoint with ethers v6 the way a dApp would.
//
// Usage: node ethers_smoke.mjs RPC_URL WS_URL PRIVATE_KEY ARTIFACT_DIR
//
// Deploys Token (ARTIFACT_DIR/Token.json), transfers tokens and ether with signed EIP-1559
// transactions, waits for receipts, reads logs over HTTP (eth_getLogs) and receives them over
// WebSocket (eth_subscribe), checks a revert reason. Prints one JSON line; exits non-zero on
// any mismatch.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ContractFactory, JsonRpcProvider, WebSocketProvider, Wallet, Contract, version } from "ethers";

const [url, wsUrl, key, artifacts] = process.argv.slice(2);
// cacheTimeout -1: ethers otherwise reuses a nonce read within 250 ms, and this chain is faster.
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
const wallet = new Wallet(key, provider);
const network = await provider.getNetwork();
assert.equal(network.chainId, 31337n);

const artifact = JSON.parse(readFileSync(join(artifacts, "Token.json"), "utf8"));
const factory = new ContractFactory(artifact.abi, artifact.bytecode, wallet);
const token = await factory.deploy(1_000_000n);
const deployReceipt = await token.deploymentTransaction().wait();
assert.equal(deployReceipt.status, 1);
assert.equal(deployReceipt.type, 2);
const address = await token.getAddress();
assert.equal(await token.balanceOf(wallet.address), 1_000_000n);

// Subscribe over WebSocket before transferring.
const ws = new WebSocketProvider(wsUrl);
const wsToken = new Contract(address, artifact.abi, ws);
const seen = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no Transfer event over WebSocket")), 15000);
  wsToken.on("Transfer", (from, to, value) => {
    if (value === 250n) {
      clearTimeout(timer);
      resolve({ from, to, value });
    }
  });
});
const heads = new Promise((resolve) => ws.once("block", (n) => resolve(n)));
// Give the subscription a moment to be registered on the server.
await new Promise((r) => setTimeout(r, 300));

const bob = Wallet.createRandom().address;
const tx = await token.transfer(bob, 250n);
assert.equal(tx.type, 2);
const receipt = await tx.wait();
assert.equal(receipt.status, 1);
assert.equal(receipt.logs.length, 1);
const parsed = token.interface.parseLog(receipt.logs[0]);
assert.equal(parsed.name, "Transfer");
assert.equal(parsed.args.to, bob);
assert.equal(await token.balanceOf(bob), 250n);

const event = await seen;
assert.equal(event.to, bob);
const head = await heads;
assert.ok(head >= 1);

const logs = await token.queryFilter(token.filters.Transfer(null, bob), 0, "latest");
assert.equal(logs.length, 1);
assert.equal(logs[0].args.value, 250n);

// A revert reason string comes back decoded.
await assert.rejects(token.transfer.staticCall(bob, 10n ** 30n), (e) => {
  assert.match(String(e.reason ?? e.shortMessage), /balance too low/);
  return true;
});

// Plain signed EIP-1559 value transfer.
const before = await provider.getBalance(bob);
const pay = await wallet.sendTransaction({ to: bob, value: 10n ** 15n, type: 2 });
const payReceipt = await pay.wait();
assert.equal(payReceipt.gasUsed, 21000n);
assert.equal(await provider.getBalance(bob), before + 10n ** 15n);

const fee = await provider.getFeeData();
assert.ok(fee.maxFeePerGas > 0n && fee.maxPriorityFeePerGas > 0n);

console.log(JSON.stringify({ client: `ethers ${version}`, token: address, block: await provider.getBlockNumber() }));
await ws.destroy();
provider.destroy();

#!/usr/bin/env python3
"""Drives an Ethereum JSON-RPC endpoint with web3.py the way a dApp would.

Usage: web3_smoke.py RPC_URL PRIVATE_KEY ARTIFACT_DIR

Deploys Counter (ARTIFACT_DIR/Counter.json), calls it with signed EIP-1559 transactions,
reads its logs, sends a signed EIP-1559 value transfer, checks a revert's custom error, and
waits for every receipt. Prints one JSON line with what it saw; exits non-zero on any mismatch.
"""
import json
import sys
from importlib.metadata import version
from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractCustomError


def main() -> None:
    url, key, artifacts = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    assert w3.is_connected(), "not connected"
    me = Account.from_key(key)
    chain_id = w3.eth.chain_id
    assert chain_id == 31337, chain_id
    assert me.address in w3.eth.accounts, "dev account 0 missing from eth_accounts"

    def send(tx: dict) -> dict:
        tx.setdefault("chainId", chain_id)
        tx.setdefault("nonce", w3.eth.get_transaction_count(me.address, "pending"))
        tx.setdefault("maxPriorityFeePerGas", w3.eth.max_priority_fee)
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        tx.setdefault("maxFeePerGas", 2 * base + tx["maxPriorityFeePerGas"])
        if "gas" not in tx:
            tx["gas"] = w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "chainId"})
        signed = me.sign_transaction(tx)
        h = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.05)
        assert receipt["type"] == 2, receipt
        return receipt

    artifact = json.loads((artifacts / "Counter.json").read_text())
    Counter = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy = Counter.constructor().build_transaction({"from": me.address, "type": 2})
    receipt = send({k: v for k, v in deploy.items() if k in ("data", "value", "gas", "type")} | {"from": me.address})
    assert receipt["status"] == 1, receipt
    counter = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    assert len(w3.eth.get_code(counter.address)) > 0

    for amount in (5, 7):
        call = counter.functions.add(amount).build_transaction({"from": me.address, "type": 2})
        r = send({"from": me.address, "to": counter.address, "data": call["data"]})
        assert r["status"] == 1, r
        assert len(r["logs"]) == 1, r
    assert counter.functions.count().call() == 12

    events = counter.events.Incremented().get_logs(from_block=0)
    amounts = [e["args"]["amount"] for e in events]
    assert amounts == [5, 7], amounts
    assert [e["args"]["newCount"] for e in events] == [5, 12]
    assert all(e["args"]["by"] == me.address for e in events)

    try:
        counter.functions.add(101).call({"from": me.address})
        raise AssertionError("add(101) did not revert")
    except ContractCustomError as e:
        selector = Web3.keccak(text="TooBig(uint256)")[:4].hex()
        assert selector in str(e.args[0]), e.args

    to = Web3.to_checksum_address("0x" + "00" * 19 + "42")
    before = w3.eth.get_balance(to)
    r = send({"from": me.address, "to": to, "value": 10**15, "gas": 21000})
    assert r["gasUsed"] == 21000, r
    assert w3.eth.get_balance(to) == before + 10**15

    history = w3.eth.fee_history(3, "latest", [50])
    assert len(history["baseFeePerGas"]) == 4, history
    print(json.dumps({
        "client": f"web3.py {version('web3')}",
        "counter": counter.address,
        "count": counter.functions.count().call(),
        "logs": len(events),
        "block": w3.eth.block_number,
    }))


if __name__ == "__main__":
    main()

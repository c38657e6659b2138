#!/usr/bin/env python3
"""Generates testdata/eip712/vectors.json: EIP-712 `Result` proofs of execution hashed and
signed by eth-account, an implementation independent of ecld's Rust code.

Usage: python3 tools/gen_eip712_vectors.py [OUT]   (default: print to stdout)

The Rust test `crates/ecld-crypto/tests/it/eip712_vectors.rs` checks every digest, signature
and recovered address against this file, and re-runs this script when eth_account is
importable to check the committed file is what eth-account produces.
"""

import json
import sys

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

RESULT_TYPE = (
    "Result(uint256 taskId,TaskSpec spec,bytes32 codeHash,bytes32 resultHash,"
    "bytes32 resultCidHash,uint16 status,uint64 runtimeMs)"
    "TaskSpec(bytes32 imageId,bytes32 inputHash,bytes32 inputCidHash,uint32 memoryMb,"
    "uint32 maxRuntimeS,uint64 deadline)"
)
DOMAIN_TYPE = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)

TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Result": [
        {"name": "taskId", "type": "uint256"},
        {"name": "spec", "type": "TaskSpec"},
        {"name": "codeHash", "type": "bytes32"},
        {"name": "resultHash", "type": "bytes32"},
        {"name": "resultCidHash", "type": "bytes32"},
        {"name": "status", "type": "uint16"},
        {"name": "runtimeMs", "type": "uint64"},
    ],
    "TaskSpec": [
        {"name": "imageId", "type": "bytes32"},
        {"name": "inputHash", "type": "bytes32"},
        {"name": "inputCidHash", "type": "bytes32"},
        {"name": "memoryMb", "type": "uint32"},
        {"name": "maxRuntimeS", "type": "uint32"},
        {"name": "deadline", "type": "uint64"},
    ],
}
U32_MAX = 2**32 - 1

U64_MAX = 2**64 - 1


def h(label: str) -> str:
    return "0x" + keccak(text=label).hex()


def key(i: int) -> str:
    return "0x" + keccak(text=f"ecld eip712 vector key {i}").hex()


def address(label: str) -> str:
    return to_checksum_address(keccak(text=label)[12:])


# (name, chainId, contract, taskId, imageId, inputHash, codeHash, resultHash, status, runtimeMs)
CASES = [
    ("success on devnet", 31337, address("marketplace a"), 1, h("image a"), h("input 1"),
     "0x" + "00" * 32, h("result 1"), 0, 1234),
    ("runner image with code", 31337, address("marketplace a"), 2, h("image runner"),
     h("input 2"), h("code 2"), h("result 2"), 0, 87),
    ("program error", 1, address("marketplace mainnet"), 42, h("image b"), h("input 42"),
     "0x" + "00" * 32, h("result 42"), 1, 5),
    ("timeout", 11155111, address("marketplace sepolia"), 7, h("image c"), h("input 7"),
     "0x" + "00" * 32, h("result 7"), 2, 60000),
    ("resource limit", 31337, address("marketplace a"), 3, h("image a"), h("input 3"),
     "0x" + "00" * 32, h("result 3"), 3, 999),
    ("input invalid", 31337, address("marketplace a"), 4, h("image a"), h("input 4"),
     "0x" + "00" * 32, h("result 4"), 4, 0),
    ("code invalid", 31337, address("marketplace a"), 5, h("image runner"), h("input 5"),
     h("code 5"), h("result 5"), 5, 1),
    ("input unavailable", 31337, address("marketplace b"), 16, h("image a"), h("input 16"),
     "0x" + "00" * 32, "0x" + "00" * 32, 16, 0),
    ("image unavailable", 137, address("marketplace polygon"), 17, h("image d"), h("input 17"),
     "0x" + "00" * 32, "0x" + "00" * 32, 17, 0),
    ("input mismatch", 31337, address("marketplace a"), 6, h("image a"), h("input 6"),
     "0x" + "00" * 32, "0x" + "00" * 32, 6, 0),
    ("stalled", 31337, address("marketplace a"), 19, h("image a"), h("input 19"),
     "0x" + "00" * 32, "0x" + "00" * 32, 19, 40000),
    ("enclave failure, extreme values", U64_MAX, "0x" + "ff" * 20, U64_MAX, "0x" + "ff" * 32,
     "0x" + "ff" * 32, "0x" + "ff" * 32, "0x" + "ff" * 32, 18, U64_MAX),
    ("zero contract", 1, "0x" + "00" * 20, 1, "0x" + "00" * 32, "0x" + "00" * 32,
     "0x" + "00" * 32, "0x" + "00" * 32, 0, 0),
]


def cid_hash(label: str, empty: bool) -> str:
    """keccak256 of a CID's text; of the empty string for a proof without a result."""
    return "0x" + keccak(text="" if empty else f"bafk{label}").hex()


def vector(i, case):
    name, chain_id, contract, task_id, image_id, input_hash, code_hash, result_hash, status, \
        runtime = case
    contract = to_checksum_address(contract)
    domain = {"name": "ecld", "version": "1", "chainId": chain_id, "verifyingContract": contract}
    extreme = image_id == "0x" + "ff" * 32
    spec = {
        "imageId": image_id,
        "inputHash": input_hash,
        "inputCidHash": "0x" + "ff" * 32 if extreme else cid_hash(f"input {task_id}", False),
        "memoryMb": U32_MAX if extreme else 64 * (1 + i % 4),
        "maxRuntimeS": U32_MAX if extreme else 10 + i,
        "deadline": U64_MAX if extreme else 1_900_000_000 + i,
    }
    message = {
        "taskId": task_id,
        "spec": spec,
        "codeHash": code_hash,
        "resultHash": result_hash,
        "resultCidHash": "0x" + "ff" * 32 if extreme
        else cid_hash(f"result {task_id}", result_hash == "0x" + "00" * 32),
        "status": status,
        "runtimeMs": runtime,
    }
    signable = encode_typed_data(
        full_message={"types": TYPES, "primaryType": "Result", "domain": domain,
                      "message": message})
    private_key = key(i)
    signed = Account.sign_message(signable, private_key)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert digest == bytes(signed.message_hash)
    signature = bytes(signed.signature)
    assert len(signature) == 65 and signature[64] in (27, 28)
    signer = Account.from_key(private_key).address
    assert Account.recover_message(signable, signature=signature) == signer
    return {
        "name": name,
        "privateKey": private_key,
        "signer": signer,
        "domain": {"chainId": str(chain_id), "verifyingContract": contract},
        "message": {**message, "taskId": str(task_id), "runtimeMs": str(runtime),
                    "spec": {**spec, "deadline": str(spec["deadline"])}},
        "domainSeparator": "0x" + signable.header.hex(),
        "structHash": "0x" + signable.body.hex(),
        "digest": "0x" + digest.hex(),
        "signature": "0x" + signature.hex(),
    }


def main():
    out = {
        "generator": "tools/gen_eip712_vectors.py (eth-account)",
        "resultType": RESULT_TYPE,
        "resultTypeHash": "0x" + keccak(text=RESULT_TYPE).hex(),
        "domainType": DOMAIN_TYPE,
        "domainTypeHash": "0x" + keccak(text=DOMAIN_TYPE).hex(),
        "vectors": [vector(i, c) for i, c in enumerate(CASES)],
    }
    text = json.dumps(out, indent=2) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

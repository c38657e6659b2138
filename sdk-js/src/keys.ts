import { bech32 } from "@scure/base";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { type Hex, bytesToHex, hexToBytes, keccak256, toBytes } from "viem";
import { EcldError } from "./errors.js";

function keyError(msg: string, hint: string): EcldError {
  return new EcldError("KeyError", msg, { hint });
}

/** The age X25519 recipient (`age1…`) of an image's on-chain `enclaveKey` (raw public key). */
export function enclaveKeyToRecipient(enclaveKey: Hex): string {
  const bytes = hexToBytes(enclaveKey);
  if (bytes.length !== 32 || bytes.every((b) => b === 0))
    throw keyError(`enclave key ${enclaveKey} is not an X25519 public key`, "the image is misconfigured; pick another image");
  return bech32.encode("age", bech32.toWords(bytes), false);
}

/** The raw X25519 public key (bytes32) of an age recipient. */
export function recipientToKey(recipient: string): Hex {
  try {
    const { prefix, words } = bech32.decode(recipient.trim() as `${string}1${string}`, false);
    const bytes = bech32.fromWords(words);
    if (prefix !== "age" || bytes.length !== 32) throw new Error("not a 32-byte age key");
    return bytesToHex(bytes);
  } catch (cause) {
    throw new EcldError("KeyError", `${recipient.slice(0, 100)} is not an age X25519 recipient`, {
      cause,
      hint: "an age recipient starts with age1 and has 62 characters",
    });
  }
}

/** A fresh age X25519 identity (`AGE-SECRET-KEY-1…`) and its recipient. */
export async function generateResultIdentity(): Promise<{ identity: string; recipient: string }> {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

/** The age identity whose X25519 secret scalar is these 32 bytes. */
export function identityFromSecret(secret: Uint8Array): string {
  if (secret.length !== 32) throw keyError("an age secret key is 32 bytes", "pass 32 bytes");
  return bech32.encode("AGE-SECRET-KEY-", bech32.toWords(secret), false).toUpperCase();
}

/** The age recipient of an age identity. */
export async function recipientOf(identity: string): Promise<string> {
  try {
    return await identityToRecipient(identity);
  } catch (cause) {
    throw new EcldError("KeyError", "not an age X25519 identity", {
      cause,
      hint: "an identity starts with AGE-SECRET-KEY-1 (as age-keygen or `ecld keys new` write it)",
    });
  }
}

/**
 * The typed message a wallet signs to derive the user's result key (see web/README.md). It
 * names its purpose so a wallet shows what is being signed; it has no chain id so one key
 * serves every chain, and no nonce so the same wallet always derives the same key.
 */
export const RESULT_KEY_TYPED_DATA = {
  domain: { name: "ecld result key", version: "1" },
  types: {
    ResultKey: [
      { name: "purpose", type: "string" },
      { name: "warning", type: "string" },
    ],
  },
  primaryType: "ResultKey",
  message: {
    purpose: "Derive my ecld result decryption key",
    warning: "Sign this only on an ecld page you trust: the signature is your result key.",
  },
} as const;

/**
 * The age identity derived from a wallet's signature over {@link RESULT_KEY_TYPED_DATA}:
 * keccak256 of the 65 signature bytes, domain-separated. The same deterministic (RFC 6979)
 * signer always gives the same identity.
 */
export function identityFromSignature(signature: Hex): string {
  const sig = hexToBytes(signature);
  if (sig.length !== 65) throw keyError(`a signature is 65 bytes, got ${sig.length}`, "sign RESULT_KEY_TYPED_DATA with the wallet");
  const tag = toBytes("ecld-result-key-v1");
  const buf = new Uint8Array(tag.length + sig.length);
  buf.set(tag);
  buf.set(sig, tag.length);
  return identityFromSecret(hexToBytes(keccak256(buf)));
}

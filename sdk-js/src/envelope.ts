import { Decrypter, Encrypter, type ReadableStreamWithSize, armor } from "age-encryption";
import { EcldError } from "./errors.js";

/** Encrypts bytes to age X25519 recipients (binary age v1, like `ecld encrypt`). */
export async function encrypt(recipients: readonly string[], plaintext: Uint8Array): Promise<Uint8Array> {
  const e = new Encrypter();
  try {
    for (const r of recipients) e.addRecipient(r);
    return await e.encrypt(plaintext);
  } catch (cause) {
    throw new EcldError("EnvelopeError", "encryption failed", {
      cause,
      hint: "check the recipient: an age X25519 recipient starts with age1",
    });
  }
}

/**
 * Encrypts a stream to age X25519 recipients; the output is a stream too, whose `size(n)`
 * tells the ciphertext length of an `n`-byte plaintext.
 */
export async function encryptStream(
  recipients: readonly string[],
  plaintext: ReadableStream<Uint8Array>,
): Promise<ReadableStreamWithSize> {
  const e = new Encrypter();
  try {
    for (const r of recipients) e.addRecipient(r);
    return await e.encrypt(plaintext);
  } catch (cause) {
    throw new EcldError("EnvelopeError", "encryption failed", {
      cause,
      hint: "check the recipient: an age X25519 recipient starts with age1",
    });
  }
}

/** Decrypts an age file (binary or ASCII-armored) with an identity (`AGE-SECRET-KEY-1…`). */
export async function decrypt(identity: string, ciphertext: Uint8Array): Promise<Uint8Array> {
  const d = new Decrypter();
  try {
    d.addIdentity(identity);
    const head = new TextDecoder().decode(ciphertext.subarray(0, 34));
    const file = head.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")
      ? armor.decode(new TextDecoder().decode(ciphertext))
      : ciphertext;
    return await d.decrypt(file);
  } catch (cause) {
    throw new EcldError("EnvelopeError", "decryption failed", {
      cause,
      hint: "the file was encrypted to another key, or it is damaged; use the identity whose recipient the task named",
    });
  }
}

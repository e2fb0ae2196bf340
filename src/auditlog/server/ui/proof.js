// Checking, in the browser, that an event is in its tenant's log: the leaf hash of its bytes,
// its RFC 9162 inclusion proof up to a checkpoint's root, and the checkpoint's signature (a
// C2SP signed note, Ed25519). Pure functions over bytes and text, with WebCrypto for SHA-256
// and Ed25519; nothing here fetches. The specifications:
//   RFC 9162 §2.1.1 (hashes) and §2.1.3.2 (verifying an inclusion proof);
//   C2SP signed-note (note text, signature lines, key IDs, verifier keys);
//   C2SP tlog-checkpoint (origin, tree size, root hash);
//   C2SP tlog-cosignature (witnesses' cosignatures, Ed25519, key type 0x04);
//   the tenants log of API.md §13 (its leaves are the bodies of the tenants' checkpoints).

const encoder = new TextEncoder();

/** Whether this page may use WebCrypto: browsers offer it only to secure contexts (HTTPS, or
 * http://localhost and 127.0.0.1). */
export function webCryptoAvailable() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && globalThis.crypto.subtle);
}

export class ProofError extends Error {}

// -- bytes -----------------------------------------------------------------------------------

/** Bytes of standard base64 with padding (RFC 4648 §4), in its one canonical spelling. */
export function base64ToBytes(text) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new ProofError(`not standard base64: ${String(text).slice(0, 60)}`);
  }
  const binary = atob(text);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (bytesToBase64(bytes) !== text) {
    throw new ProofError(`not canonical base64: ${text.slice(0, 60)}`);
  }
  return bytes;
}

export function bytesToBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new ProofError(`not lowercase hex: ${text}`);
  return Uint8Array.from(text.match(/../g) || [], (pair) => Number.parseInt(pair, 16));
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
  return diff === 0;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// -- RFC 9162 hashes and inclusion proofs ----------------------------------------------------

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** RFC 9162 §2.1.1: the hash of a leaf, SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

/** RFC 9162 §2.1.1: the hash of an interior node, SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/**
 * The root that an inclusion proof (`proof`, hashes lowest first) of the leaf `index` with
 * hash `leaf` gives in a tree of `size` leaves: RFC 9162 §2.1.3.2, steps 1-5 but the last
 * comparison. Throws ProofError when the proof cannot be of that leaf in that tree (the index
 * outside it, or too many or too few hashes).
 */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (BigInt(index) >= BigInt(size) || BigInt(index) < 0n) {
    throw new ProofError(`leaf ${index} is not in a tree of ${size} leaves`);
  }
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) throw new ProofError("a proof hash is not 32 bytes");
    if (sn === 0n) throw new ProofError("the proof has more hashes than the tree has levels");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof has fewer hashes than the tree has levels");
  return r;
}

/** Whether `proof` proves the leaf hash `leaf` at `index` in the tree of `size` with `root`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  try {
    return equalBytes(await rootFromInclusionProof(index, size, leaf, proof), root);
  } catch (error) {
    if (error instanceof ProofError) return false;
    throw error;
  }
}

// -- C2SP signed notes and checkpoints -------------------------------------------------------

const SIGNATURE_PREFIX = "\u2014 ";

/**
 * A signed note split into its text (final newline included) and its signature lines, each
 * `{name, keyId, signature}` (4 and 64 bytes for Ed25519; other lengths are kept as they
 * are, and no key of ours matches them). Throws ProofError if it is not a signed note.
 */
export function parseNote(message) {
  if (!message.endsWith("\n")) throw new ProofError("the note does not end with a newline");
  const split = message.lastIndexOf("\n\n");
  if (split < 0) throw new ProofError("the note has no blank line before its signatures");
  const text = message.slice(0, split + 1);
  const lines = message.slice(split + 2, -1).split("\n");
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) {
      throw new ProofError(`not a signature line: ${line.slice(0, 60)}`);
    }
    const [name, b64, ...rest] = line.slice(SIGNATURE_PREFIX.length).split(" ");
    if (!name || !b64 || rest.length) throw new ProofError(`malformed signature line: ${line}`);
    const raw = base64ToBytes(b64);
    if (raw.length < 5) throw new ProofError(`signature of ${name} is too short`);
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text, signatures };
}

/** The checkpoint a note text holds: `{origin, size, rootHash, extensions}` (C2SP
 * tlog-checkpoint). Throws ProofError unless it is at least three lines of that form. */
export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new ProofError("the checkpoint does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new ProofError("a checkpoint has an origin, a size and a root");
  const [origin, size, root, ...extensions] = lines;
  if (!origin) throw new ProofError("the checkpoint's origin is empty");
  if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new ProofError(`tree size ${size} is not a number`);
  const rootHash = base64ToBytes(root);
  if (rootHash.length !== 32) throw new ProofError("the root hash is not 32 bytes");
  return { origin, size: Number(size), rootHash, extensions };
}

/** The key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4]. */
export async function keyId(name, publicKey) {
  const digest = await sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, 0x01), publicKey));
  return digest.slice(0, 4);
}

/** The key ID of an Ed25519 cosigner key (C2SP tlog-cosignature):
 * SHA-256(name || 0x0A || 0x04 || public key)[:4]. */
export async function cosignerKeyId(name, publicKey) {
  const digest = await sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, 0x04), publicKey));
  return digest.slice(0, 4);
}

/** `<name>+<hex key ID>+<base64(type || key)>` read and checked for the key `type`. */
async function parseKeyOf(vkey, type, idOf, what) {
  // The key's base64 may hold "+" too: only the first two separate.
  const text = String(vkey).trim();
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new ProofError(`${what} is <name>+<key ID>+<key>`);
  const [name, hexId, b64] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
  const raw = base64ToBytes(b64);
  if (raw.length !== 33 || raw[0] !== type) {
    throw new ProofError(`the ${what} of ${name} is not an Ed25519 key of type 0x0${type}`);
  }
  const publicKey = raw.slice(1);
  const id = await idOf(name, publicKey);
  if (toHex(id) !== hexId) {
    throw new ProofError(`the key ID ${hexId} of ${name} is not its key's (${toHex(id)})`);
  }
  return { name, keyId: id, publicKey };
}

/** A verifier key `<name>+<hex key ID>+<base64(0x01 || key)>` read and checked:
 * `{name, keyId, publicKey}`. Throws ProofError if it is malformed or its ID is not its key's. */
export function parseVerifierKey(vkey) {
  return parseKeyOf(vkey, 0x01, keyId, "verifier key");
}

/** A witness's key `<name>+<hex key ID>+<base64(0x04 || key)>` read and checked:
 * `{name, keyId, publicKey}`. Throws ProofError if it is malformed or its ID is not its key's. */
export function parseCosignerKey(vkey) {
  return parseKeyOf(vkey, 0x04, cosignerKeyId, "witness key");
}

/** The verifier of `publicKey` under another name (the tenants log's key is the tenants' key
 * under the name `tenants_origin`). */
export async function verifierNamed(name, publicKey) {
  return { name, keyId: await keyId(name, publicKey), publicKey };
}

/** A verifier key in text: `<name>+<hex key ID>+<base64(0x01 || key)>`. */
export function verifierKeyText(verifier) {
  return `${verifier.name}+${toHex(verifier.keyId)}+${bytesToBase64(concat(Uint8Array.of(1), verifier.publicKey))}`;
}

/** Whether `signature` is an Ed25519 signature of `message` (bytes) by `publicKey`. Throws
 * ProofError if this browser's WebCrypto has no Ed25519. */
export async function ed25519Verify(publicKey, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    throw new ProofError(`this browser cannot check Ed25519 signatures (${error.name})`);
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

/**
 * Checks a signed note against one verifier key (as parseVerifierKey gives it), as the
 * signed-note spec says: lines of other keys are ignored, the key's line must verify.
 * Answers `{ok, text, reason}`.
 */
export async function verifyNote(message, verifier) {
  const note = parseNote(message);
  const line = note.signatures.find(
    (s) => s.name === verifier.name && equalBytes(s.keyId, verifier.keyId),
  );
  if (!line) {
    return { ok: false, text: note.text, reason: `no signature by ${verifier.name}` };
  }
  if (line.signature.length !== 64) {
    return { ok: false, text: note.text, reason: "the signature is not 64 bytes" };
  }
  const ok = await ed25519Verify(verifier.publicKey, line.signature, encoder.encode(note.text));
  return { ok, text: note.text, reason: ok ? "" : `the signature by ${verifier.name} is wrong` };
}

// -- an event in its log ---------------------------------------------------------------------

function step(name, ok, detail) {
  return { name, ok, detail };
}

/**
 * Everything the console checks of one event, from what the API answered:
 *   eventBytes  the event's bytes exactly as GET /v1/events/{id} returned them
 *   seq         the event's seq (its leaf index)
 *   inclusion   GET /v1/log/proof/inclusion's answer for that seq and the checkpoint's size
 *   note        the checkpoint as a signed note (GET /v1/log/checkpoint, Accept: text/plain)
 *   vkey        the verifier key to trust (GET /v1/log/public-key's `vkey`, or one pinned)
 * Answers `{ok, steps: [{name, ok, detail}], checkpoint}`; every step is tried that can be,
 * so a failure says which part is wrong. Throws only if WebCrypto is missing.
 */
export async function checkEvent({ eventBytes, seq, inclusion, note, vkey }) {
  const steps = [];
  let verifier = null;
  try {
    verifier = await parseVerifierKey(vkey);
    steps.push(step("key", true, `verifier key ${verifier.name}+${toHex(verifier.keyId)}`));
  } catch (error) {
    if (!(error instanceof ProofError)) throw error;
    steps.push(step("key", false, error.message));
  }

  let checkpoint = null;
  let signed = false;
  try {
    const parsed = parseNote(note);
    checkpoint = parseCheckpoint(parsed.text);
    if (verifier) {
      const result = await verifyNote(note, verifier);
      signed = result.ok;
      steps.push(
        step(
          "signature",
          result.ok,
          result.ok
            ? `checkpoint of ${checkpoint.size} events signed by ${verifier.name} (Ed25519)`
            : result.reason,
        ),
      );
      if (checkpoint.origin !== verifier.name) {
        steps.push(
          step("origin", false, `the checkpoint's origin ${checkpoint.origin} is not the key's`),
        );
      }
    }
  } catch (error) {
    if (!(error instanceof ProofError)) throw error;
    steps.push(step("signature", false, `the checkpoint cannot be read: ${error.message}`));
  }

  const leaf = await leafHash(eventBytes);
  const served = inclusion && typeof inclusion.leaf_hash === "string" ? inclusion.leaf_hash : "";
  const leafMatches = served === bytesToBase64(leaf);
  steps.push(
    step(
      "leaf",
      leafMatches,
      leafMatches
        ? `SHA-256(0x00 || the event's ${eventBytes.length} bytes) is ${bytesToBase64(leaf)}, ` +
            `the log's leaf ${seq}`
        : `SHA-256(0x00 || the event's ${eventBytes.length} bytes) is ${bytesToBase64(leaf)}, ` +
            `but the log's leaf ${seq} is ${served || "missing"}: the event is not what the ` +
            "log holds",
    ),
  );

  if (checkpoint) {
    let included = false;
    let detail;
    try {
      const sameTree = inclusion.leaf_index === seq && inclusion.tree_size === checkpoint.size;
      const proof = (inclusion.hashes || []).map(base64ToBytes);
      const root = await rootFromInclusionProof(seq, checkpoint.size, leaf, proof);
      included = sameTree && equalBytes(root, checkpoint.rootHash);
      detail = included
        ? `${proof.length} proof hashes lead from the event to the checkpoint's root ` +
          `${bytesToBase64(root)}`
        : sameTree
          ? `the proof leads from the event to ${bytesToBase64(root)}, not to the ` +
            `checkpoint's root ${bytesToBase64(checkpoint.rootHash)}`
          : `the proof is of leaf ${inclusion.leaf_index} in a tree of ${inclusion.tree_size}, ` +
            `not of leaf ${seq} in the checkpoint's ${checkpoint.size}`;
    } catch (error) {
      if (!(error instanceof ProofError)) throw error;
      detail = error.message;
    }
    steps.push(step("inclusion", included, detail));
  }
  const ok = steps.length > 0 && steps.every((s) => s.ok) && signed && checkpoint !== null;
  return { ok, steps, checkpoint };
}

// -- witnesses: the tenants log and its cosignatures -----------------------------------------

/** The largest cosignature timestamp (2^63 - 1, C2SP tlog-cosignature). */
const MAX_TIMESTAMP = (1n << 63n) - 1n;

/**
 * Whether a signature line (as parseNote gives it) is `key`'s valid cosignature of the note
 * `text`: its bytes an 8-byte big-endian timestamp and a 64-byte Ed25519 signature of
 * "cosignature/v1\ntime <timestamp>\n" || text. Answers `{ok, timestamp, reason}`, the
 * timestamp in seconds (a Number) when the bytes hold one.
 */
export async function verifyCosignature(text, line, key) {
  if (line.signature.length !== 72) {
    return {
      ok: false,
      timestamp: null,
      reason: `the cosignature of ${key.name} has ${line.signature.length} bytes, not an ` +
        "8-byte time and a 64-byte Ed25519 signature",
    };
  }
  let time = 0n;
  for (const byte of line.signature.slice(0, 8)) time = (time << 8n) | BigInt(byte);
  if (time > MAX_TIMESTAMP) {
    return { ok: false, timestamp: null, reason: `the cosignature's time ${time} is beyond 2^63 - 1` };
  }
  const message = encoder.encode(`cosignature/v1\ntime ${time}\n${text}`);
  const ok = await ed25519Verify(key.publicKey, line.signature.slice(8), message);
  return {
    ok,
    timestamp: Number(time),
    reason: ok ? "" : `the cosignature of ${key.name} (time ${time}) does not verify`,
  };
}

/**
 * A quorum as GET /v1/log/witnesses writes it (`group q 2 a b c; quorum q`, the policy's
 * group lines then its quorum line): `{groups: Map(name -> {threshold, members}), quorum}`.
 * Throws ProofError if it is not of that form.
 */
export function parseQuorum(text) {
  const groups = new Map();
  let quorum = null;
  for (const part of String(text).split(";")) {
    const items = part.trim().split(/[ \t]+/);
    if (items[0] === "group" && items.length >= 4) {
      const [, name, threshold, ...members] = items;
      const k =
        threshold === "all" ? members.length : threshold === "any" ? 1 : Number(threshold);
      if (!Number.isInteger(k) || k < 1 || k > members.length) {
        throw new ProofError(`the quorum's group ${name} needs ${threshold} of ${members.length}`);
      }
      groups.set(name, { threshold: k, members });
    } else if (items[0] === "quorum" && items.length === 2 && quorum === null) {
      [, quorum] = items;
    } else {
      throw new ProofError(`the quorum cannot be read: ${part.trim().slice(0, 80)}`);
    }
  }
  if (quorum === null) throw new ProofError("the quorum names no quorum line");
  return { groups, quorum };
}

/** Whether the witnesses named in `cosigners` (a Set) meet `name` (a witness, a group of the
 * parsed quorum, or "none"). */
export function quorumMet(parsed, cosigners, name = parsed.quorum, seen = new Set()) {
  if (name === "none") return true;
  const group = parsed.groups.get(name);
  if (!group) return cosigners.has(name);
  if (seen.has(name)) return false;
  const inner = new Set([...seen, name]);
  const met = group.members.filter((m) => quorumMet(parsed, cosigners, m, inner)).length;
  return met >= group.threshold;
}

/** A cosignature's time (POSIX seconds) as RFC 3339 in UTC. */
export function cosignatureTime(seconds) {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(".000Z", "Z");
}

async function tried(steps, name, label, fn) {
  try {
    const [ok, detail] = await fn();
    steps.push({ name, label, ok, detail });
    return ok;
  } catch (error) {
    if (!(error instanceof ProofError)) throw error;
    steps.push({ name, label, ok: false, detail: error.message });
    return false;
  }
}

/**
 * Everything the console checks of the witnesses' view of an event (API.md §13), from what
 * the API answered:
 *   eventBytes, seq  the event, as for checkEvent
 *   vkey             the tenant's verifier key to trust (pinned, or the service's)
 *   witnessed        GET /v1/log/witnessed's answer
 *   inclusion        GET /v1/log/proof/inclusion of `seq` in the witnessed tenant checkpoint
 *   witnesses        GET /v1/log/witnesses's answer
 *   tenantsOrigin    the tenants log's origin (GET /v1/log/public-key, or the witnesses')
 * The tenants log is signed by the tenant's key under the name `tenantsOrigin`; each witness
 * of `witnesses` whose line is on the tenants checkpoint must have cosigned it; the quorum
 * must be met. Answers `{ok, steps, size, tenantsSize, cosigned: [{name, timestamp}],
 * missing: [witness], quorum, tenantsVkey}`. Throws only if WebCrypto is missing.
 */
export async function checkWitnessed({
  eventBytes,
  seq,
  vkey,
  witnessed,
  inclusion,
  witnesses,
  tenantsOrigin,
}) {
  const steps = [];
  const out = { steps, size: null, tenantsSize: null, cosigned: [], missing: [], tenantsVkey: "" };
  out.quorum = witnesses.quorum;

  let verifier = null;
  try {
    verifier = await parseVerifierKey(vkey);
  } catch (error) {
    if (!(error instanceof ProofError)) throw error;
    steps.push({ name: "witnessed-key", label: "Verifier key", ok: false, detail: error.message });
  }

  // The tenant's checkpoint that the tenants log holds, and the event in it.
  let tenant = null;
  await tried(steps, "witnessed-checkpoint", "Witnessed checkpoint", async () => {
    const note = parseNote(witnessed.checkpoint);
    tenant = { text: note.text, checkpoint: parseCheckpoint(note.text) };
    out.size = tenant.checkpoint.size;
    if (!verifier) return [false, "no verifier key to check its signature with"];
    const signed = await verifyNote(witnessed.checkpoint, verifier);
    if (!signed.ok) return [false, `the witnessed tenant checkpoint: ${signed.reason}`];
    if (tenant.checkpoint.origin !== verifier.name) {
      return [false, `its origin ${tenant.checkpoint.origin} is not the key's ${verifier.name}`];
    }
    return [true, `the tenant checkpoint of size ${out.size} is signed by ${verifier.name}`];
  });
  if (tenant) {
    await tried(steps, "witnessed-event", "Event in the witnessed checkpoint", async () => {
      const size = tenant.checkpoint.size;
      if (!inclusion || inclusion.leaf_index !== seq || inclusion.tree_size !== size) {
        return [false, `the service gave no proof of leaf ${seq} in a tree of ${size}`];
      }
      const leaf = await leafHash(eventBytes);
      const proof = (inclusion.hashes || []).map(base64ToBytes);
      const root = await rootFromInclusionProof(seq, size, leaf, proof);
      return equalBytes(root, tenant.checkpoint.rootHash)
        ? [true, `${proof.length} proof hashes lead from the event to that checkpoint's root`]
        : [false, `the proof leads from the event to ${bytesToBase64(root)}, not to the ` +
            `witnessed checkpoint's root ${bytesToBase64(tenant.checkpoint.rootHash)}`];
    });
  }

  // The tenants checkpoint: signed by the same key under the tenants log's origin.
  let tenants = null;
  await tried(steps, "tenants-signature", "Tenants checkpoint signature", async () => {
    const note = parseNote(witnessed.tenants_checkpoint);
    tenants = { note, checkpoint: parseCheckpoint(note.text) };
    out.tenantsSize = tenants.checkpoint.size;
    if (!verifier) return [false, "no verifier key to check its signature with"];
    const key = await verifierNamed(tenantsOrigin, verifier.publicKey);
    out.tenantsVkey = verifierKeyText(key);
    const signed = await verifyNote(witnessed.tenants_checkpoint, key);
    if (!signed.ok) return [false, `the tenants checkpoint: ${signed.reason}`];
    if (tenants.checkpoint.origin !== tenantsOrigin) {
      return [false, `its origin ${tenants.checkpoint.origin} is not the tenants log's ${tenantsOrigin}`];
    }
    if (witnessed.tenants_size !== tenants.checkpoint.size) {
      return [false, `its size ${tenants.checkpoint.size} is not the ${witnessed.tenants_size} answered`];
    }
    return [
      true,
      `the tenants checkpoint of size ${tenants.checkpoint.size} is signed by ${tenantsOrigin} ` +
        "with the log's key (Ed25519)",
    ];
  });
  if (tenant && tenants) {
    await tried(steps, "tenants-inclusion", "Tenant checkpoint in the tenants log", async () => {
      const index = witnessed.leaf_index;
      const size = tenants.checkpoint.size;
      if (!Number.isInteger(index)) return [false, "the answer has no leaf index"];
      const leaf = await leafHash(encoder.encode(tenant.text));
      const proof = (witnessed.inclusion_proof || []).map(base64ToBytes);
      const root = await rootFromInclusionProof(index, size, leaf, proof);
      return equalBytes(root, tenants.checkpoint.rootHash)
        ? [true, `the tenant checkpoint's body is leaf ${index} of the tenants log: ` +
            `${proof.length} proof hashes lead to its root`]
        : [false, `the proof leads from the tenant checkpoint's body (leaf ${index}) to ` +
            `${bytesToBase64(root)}, not to the tenants checkpoint's root ` +
            `${bytesToBase64(tenants.checkpoint.rootHash)}`];
    });
  }

  // Each witness of the service: its cosignature, if its line is there, must verify.
  const cosigners = new Set();
  if (tenants) {
    for (const witness of witnesses.witnesses || []) {
      const label = `Cosignature of ${witness.name}`;
      let key;
      try {
        key = await parseCosignerKey(witness.vkey);
      } catch (error) {
        if (!(error instanceof ProofError)) throw error;
        steps.push({ name: "cosignature", label, ok: false, detail: error.message });
        continue;
      }
      const line = tenants.note.signatures.find(
        (s) => s.name === key.name && equalBytes(s.keyId, key.keyId),
      );
      if (!line) {
        out.missing.push(witness);
        continue;
      }
      const result = await verifyCosignature(tenants.note.text, line, key);
      if (result.ok) {
        cosigners.add(witness.name);
        out.cosigned.push({ name: witness.name, timestamp: result.timestamp });
      }
      steps.push({
        name: "cosignature",
        label,
        ok: result.ok,
        detail: result.ok
          ? `cosigned at ${cosignatureTime(result.timestamp)} by ${key.name}+` +
            `${toHex(key.keyId)} (Ed25519)`
          : result.reason,
      });
    }
    await tried(steps, "quorum", "Quorum", async () => {
      if (witnesses.quorum === null || witnesses.quorum === undefined) {
        return [false, "the service names no quorum"];
      }
      const met = quorumMet(parseQuorum(witnesses.quorum), cosigners);
      const who = cosigners.size ? [...cosigners].join(", ") : "no witness";
      return [met, `${witnesses.quorum}: ${met ? "met" : "NOT met"} by ${who}`];
    });
  }
  out.ok = steps.length > 0 && steps.every((s) => s.ok) && tenant !== null && tenants !== null;
  return out;
}

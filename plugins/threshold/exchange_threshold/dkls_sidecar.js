// The DKLs23 sidecar of a threshold signer node: drives Silence Laboratories' DKLs23 library (WebAssembly, npm
// package @silencelaboratories/dkls-wasm-ll-node) for the node's Python process over stdin/stdout, one JSON object
// per line each way. It keeps protocol sessions in memory only; it never writes anything to disk and never logs.
//
// Request:  {"id": n, "op": "...", ...}     Reply: {"id": n, "ok": {...}} or {"id": n, "error": "...", "ban": p}
// Bytes travel as base64; a protocol message is {"from": party, "to": party | null (broadcast), "payload": b64}.
// "ban" is the library's party index it blames (AbortProtocolAndBanParty), when it names one.
"use strict";

const readline = require("readline");
const dkls = require(process.env.EXCHANGE_THRESHOLD_DKLS_MODULE || "@silencelaboratories/dkls-wasm-ll-node");

const SESSION_TTL_MS = 120000; // a session not finished within this is dropped
const sessions = new Map(); // session id -> {kind, obj, timer}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

function toWire(msgs) {
  return msgs.map((m) => {
    const out = { from: m.from_id, to: m.to_id === undefined ? null : m.to_id, payload: b64(m.payload) };
    m.free();
    return out;
  });
}

function fromWire(list) {
  return list.map((m) =>
    m.to === null ? new dkls.Message(unb64(m.payload), m.from) : new dkls.Message(unb64(m.payload), m.from, m.to)
  );
}

function open(id, kind, obj) {
  if (sessions.has(id)) {
    obj.free();
    throw new Error("session exists");
  }
  const timer = setTimeout(() => drop(id), SESSION_TTL_MS);
  timer.unref();
  sessions.set(id, { kind, obj, timer });
}

function get(id, kind) {
  const s = sessions.get(id);
  if (!s || s.kind !== kind) throw new Error(`no ${kind} session`);
  return s.obj;
}

function drop(id) {
  const s = sessions.get(id);
  if (!s) return;
  clearTimeout(s.timer);
  sessions.delete(id);
  try {
    s.obj.free();
  } catch (_) {
    // consumed by the library already (keyshare(), combine())
  }
}

function keyshareInfo(share) {
  return {
    keyshare: b64(share.toBytes()),
    public_key: b64(share.publicKey),
    party: share.partyId,
    threshold: share.threshold,
    participants: share.participants,
  };
}

const ops = {
  // -- key generation and key refresh (rotation): 5 steps --
  keygen_start(r) {
    let session;
    if (r.keyshare) {
      const old = dkls.Keyshare.fromBytes(unb64(r.keyshare));
      session = dkls.KeygenSession.initKeyRotation(old);
      old.free();
    } else {
      session = new dkls.KeygenSession(r.participants, r.threshold, r.party);
    }
    open(r.session, "keygen", session);
    return { msgs: toWire([session.createFirstMessage()]) };
  },
  keygen_round2(r) {
    const s = get(r.session, "keygen");
    const msgs = toWire(s.handleMessages(fromWire(r.msgs)));
    return { msgs, commitment: b64(s.calculateChainCodeCommitment()) };
  },
  keygen_round3(r) {
    return { msgs: toWire(get(r.session, "keygen").handleMessages(fromWire(r.msgs))) };
  },
  keygen_round4(r) {
    const commitments = r.commitments.map(unb64);
    return { msgs: toWire(get(r.session, "keygen").handleMessages(fromWire(r.msgs), commitments)) };
  },
  keygen_finish(r) {
    const s = get(r.session, "keygen");
    s.handleMessages(fromWire(r.msgs));
    sessions.delete(r.session); // keyshare() consumes the session
    const share = s.keyshare();
    const info = keyshareInfo(share);
    share.free();
    return info;
  },
  // -- signing: 5 steps (3 for the pre-signature, then the last message over the digest, then combine) --
  sign_start(r) {
    const share = dkls.Keyshare.fromBytes(unb64(r.keyshare));
    const session = new dkls.SignSession(share, r.chain_path || "m"); // consumes the keyshare
    open(r.session, "sign", session);
    return { msgs: toWire([session.createFirstMessage()]) };
  },
  sign_round2(r) {
    return { msgs: toWire(get(r.session, "sign").handleMessages(fromWire(r.msgs))) };
  },
  sign_round3(r) {
    return { msgs: toWire(get(r.session, "sign").handleMessages(fromWire(r.msgs))) };
  },
  sign_last(r) {
    const s = get(r.session, "sign");
    s.handleMessages(fromWire(r.msgs)); // the pre-signature, used exactly once just below
    return { msgs: toWire([s.lastMessage(unb64(r.digest))]) };
  },
  sign_combine(r) {
    const s = get(r.session, "sign");
    sessions.delete(r.session); // combine() consumes the session
    const [rr, ss] = s.combine(fromWire(r.msgs));
    return { r: b64(rr), s: b64(ss) };
  },
  abort(r) {
    drop(r.session);
    return {};
  },
  info(r) {
    const share = dkls.Keyshare.fromBytes(unb64(r.keyshare));
    const info = keyshareInfo(share);
    share.free();
    delete info.keyshare;
    return info;
  },
};

function handle(line) {
  let id = null;
  try {
    const r = JSON.parse(line);
    id = r.id;
    const op = ops[r.op];
    if (!op) throw new Error(`unknown operation ${r.op}`);
    try {
      return { id, ok: op(r) };
    } catch (err) {
      if (r.session !== undefined && r.op !== "abort") drop(r.session); // a failed step ends its session
      throw err;
    }
  } catch (err) {
    const message = String((err && err.message) || err).slice(0, 200);
    const ban = err && typeof err.banParty === "number" ? err.banParty : null;
    return { id, error: message, ban };
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  process.stdout.write(JSON.stringify(handle(line)) + "\n");
});
rl.on("close", () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true }) + "\n");

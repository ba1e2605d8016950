// Cohort client for Node.js, written from docs/protocol.md: calls services
// (promises, many in flight on one connection, matched by id) and subscribes
// to their events (live or durable, acknowledged, resumed after a reconnect).
// Depends on the npm packages `zeromq` (v6) and `@msgpack/msgpack`.
"use strict";

const zmq = require("zeromq");
const { encode, decode } = require("@msgpack/msgpack");

const PROTOCOL_VERSION = 1;
/** Acknowledge at least this often: keeps a subscription alive (the node's idle timeout is 30 s by default). */
const ACK_EVERY_MS = 5000;
/** Shards (and server keys) a ClusterClient remembers per service at most; a node allows up to 4096. */
const MAX_SHARDS = 4096;

/** An error reply, or a local failure (`local`: no reply came). `code` is the protocol's stable code. */
class CohortError extends Error {
  constructor(code, message, local = false, owner = null) {
    super(`${code}: ${message}`);
    this.code = code;
    this.local = local;
    this.transient = ["timeout", "unavailable", "overloaded", "storage_full", "storage_unavailable"].includes(code);
    /** wrong_shard only: the shard's owner {node, endpoint, serverKey, shard, shards, epoch} (docs/protocol.md). */
    this.owner = owner;
  }
}

/** The `owner` of a wrong_shard error body, checked field by field; null when absent or malformed. */
function shardOwner(body) {
  const o = body?.owner;
  if (body?.code !== "wrong_shard" || o === null || typeof o !== "object") return null;
  const text = (v) => (v === undefined ? "" : typeof v === "string" && v.length <= 1024 ? v : null);
  const num = (v) => (v === undefined ? 0 : (typeof v === "number" || typeof v === "bigint") && v >= 0 ? Number(v) : null);
  const out = { node: text(o.node), endpoint: text(o.endpoint), serverKey: text(o.server_key),
                shard: num(o.shard), shards: num(o.shards), epoch: num(o.epoch) };
  if (Object.values(out).some((v) => v === null) || !out.endpoint) return null;
  if (out.shards && out.shard >= out.shards) return null;
  return out;
}

/** The shard of entity `key` among `count` shards: FNV-1a 64 of its UTF-8 bytes mod count, as nodes compute it. */
function shardOfKey(key, count) {
  if (!count) return 0;
  let h = 14695981039346656037n;
  for (const b of Buffer.from(String(key), "utf8")) h = ((h ^ BigInt(b)) * 1099511628211n) & 0xffffffffffffffffn;
  return Number(h % BigInt(count));
}

/** Decodes msgpack; integers are JavaScript numbers (exact below 2^53: ids and sequence numbers stay below it). */
function unpack(bytes) {
  return decode(bytes);
}

function makeDealer(endpoint, curve) {
  const sock = new zmq.Dealer({ linger: 0 });
  if (curve) {
    sock.curveServerKey = curve.serverKey;
    sock.curvePublicKey = curve.publicKey;
    sock.curveSecretKey = curve.secretKey;
  }
  sock.connect(endpoint);
  return sock;
}

/**
 * A connection to a node (or gateway) at `endpoint` ("tcp://127.0.0.1:7400").
 * `curve`: {serverKey, publicKey, secretKey} (Z85) for a node that
 * authenticates clients (docs/security.md).
 */
class Client {
  constructor(endpoint, { timeoutMs = 5000, curve = null } = {}) {
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
    this._sock = makeDealer(endpoint, curve);
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._streams = new Map(); // _subscribe request id -> handler of its events
    this._sending = Promise.resolve();
    this._closed = false;
    this._reading = this._readLoop();
  }

  /**
   * Calls service.method with `args`; resolves with the result, rejects with
   * CohortError. Options: key (entity services), idempotencyKey, timeoutMs,
   * traceparent.
   */
  call(service, method, args = null, options = {}) {
    return this.callWithHeader(service, method, args, options).then((r) => r.result);
  }

  /**
   * Like call, resolving with {header, result}: the reply's header too (its
   * `shard` and `epoch` in a cluster). Option `shard` (clusters): serve it
   * only where the key's shard is owned, else reject with `wrong_shard`
   * naming the owner (ClusterClient does this for you).
   */
  callWithHeader(service, method, args = null, { key, idempotencyKey, timeoutMs, traceparent, shard } = {}) {
    const id = this._nextId++;
    const budget = timeoutMs ?? this.timeoutMs;
    const header = { v: PROTOCOL_VERSION, kind: "request", id, service, method, deadline_ms: budget, sent_ms: Date.now() };
    if (key !== undefined) header.key = key;
    if (idempotencyKey !== undefined) header.idem = idempotencyKey;
    if (traceparent !== undefined) header.traceparent = traceparent;
    if (shard !== undefined) header.shard = shard;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new CohortError("timeout", `no reply from ${service}.${method} within ${budget} ms`, true));
      }, budget);
      this._pending.set(id, { resolve, reject, timer });
      this._send([encode(header), encode(args)]).catch((e) => {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new CohortError("unavailable", `send failed: ${e.message}`, true));
      });
    });
  }

  /**
   * Subscribes to the events `service` publishes (docs/protocol.md, Events
   * for clients). Options: topics (array; default all), name (durable: the
   * node keeps its position and a subscription of the same name resumes
   * there), from (first sequence number wanted; 0: the oldest kept),
   * window, maxLag. Resolves with a Subscription once the node accepted it.
   */
  async subscribe(service, options = {}) {
    const sub = new Subscription(this, service, options);
    await sub._start(options.from);
    return sub;
  }

  async close() {
    this._closed = true;
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new CohortError("unavailable", "client closed", true));
    }
    this._pending.clear();
    for (const [, s] of this._streams) s._closed = true;
    this._sock.close();
    await this._reading.catch(() => {});
  }

  _send(frames) {
    // One send at a time: zeromq.js allows a single pending send per socket.
    this._sending = this._sending.then(() => this._sock.send(frames));
    return this._sending;
  }

  async _readLoop() {
    try {
      for await (const frames of this._sock) {
        if (frames.length !== 2) continue;
        let header, body;
        try {
          header = unpack(frames[0]);
          body = unpack(frames[1]);
        } catch {
          continue; // not a Cohort message
        }
        if (header.kind === "event") {
          const stream = this._streams.get(Number(header.id));
          if (stream) stream._onEvent(header, body);
          continue;
        }
        const p = this._pending.get(Number(header.id));
        if (!p) continue; // a late reply to a call that timed out
        this._pending.delete(Number(header.id));
        clearTimeout(p.timer);
        if (header.kind === "error")
          p.reject(new CohortError(body?.code ?? "internal", body?.message ?? "", false, shardOwner(body)));
        else p.resolve({ header, result: body });
      }
    } catch (e) {
      if (!this._closed) throw e;
    }
  }
}

/**
 * Events of one service, as they come: `for await (const e of sub)` or
 * `sub.next()`. An event is acknowledged when the next one is asked for (at
 * least once: after a reconnect, unacknowledged events come again; dedupe on
 * `eventId`). `sub.missed` counts events the node skipped (lagging); the
 * `onLagging(missed, next)` option is called when it does.
 */
class Subscription {
  constructor(client, service, { topics = [], name, window = 256, maxLag, onLagging } = {}) {
    this.client = client;
    this.service = service;
    this.topics = topics;
    this.name = name;
    this.window = window;
    this.maxLag = maxLag;
    this.onLagging = onLagging;
    this.missed = 0;
    this._queue = [];
    this._waiters = [];
    this._lastSeq = undefined;
    this._acked = undefined;
    this._handedOut = 0;
    this._closed = false;
    this._timer = setInterval(() => this._ack(true).catch(() => {}), ACK_EVERY_MS);
  }

  async _start(from) {
    const args = { window: this.window };
    if (this.topics.length) args.topics = this.topics;
    if (this.name) args.name = this.name;
    if (from !== undefined) args.from = from;
    if (this.maxLag) args.max_lag = this.maxLag;
    const id = this.client._nextId; // the id call() is about to use: events carry it
    this.client._streams.set(id, this);
    try {
      const r = await this.client.call(this.service, "_subscribe", args);
      this.id = r.subscription;
      this.head = r.head;
      this.resumed = r.resumed;
      this._requestId = id;
    } catch (e) {
      this.client._streams.delete(id);
      clearInterval(this._timer);
      throw e;
    }
  }

  /** The next event ({service, topic, seq, key, eventId, data}); acknowledges the ones before it. */
  async next() {
    if (this._lastSeq !== undefined && ++this._handedOut >= Math.max(1, this.window >> 1)) await this._ack(false);
    const e = this._queue.length ? this._queue.shift() : await new Promise((resolve) => this._waiters.push(resolve));
    if (e) this._lastSeq = e.seq;
    return e;
  }

  [Symbol.asyncIterator]() {
    return { next: async () => { const e = await this.next(); return e ? { value: e, done: false } : { value: undefined, done: true }; } };
  }

  /** Ends the subscription (a durable one keeps its position). */
  async close() {
    if (this._closed) return;
    clearInterval(this._timer);
    await this._ack(true).catch(() => {});
    this._closed = true;
    this.client._streams.delete(this._requestId);
    await this.client.call(this.service, "_unsubscribe", { subscription: this.id }).catch(() => {});
    for (const w of this._waiters.splice(0)) w(undefined);
  }

  async _ack(force) {
    if (this._closed || this.id === undefined) return;
    this._handedOut = 0;
    const args = { subscription: this.id };
    if (this._lastSeq !== undefined) args.seq = this._lastSeq;
    if (!force && this._acked === this._lastSeq) return;
    this._acked = this._lastSeq;
    try {
      await this.client.call(this.service, "_ack", args);
    } catch (e) {
      // The node no longer knows it (restarted, idle, taken over): subscribe again.
      if (e.code === "bad_request") await this._resubscribe();
    }
  }

  _onEvent(header, body) {
    const topic = header.method;
    if (topic === "_lagging") {
      this.missed += Number(body.missed);
      if (this.onLagging) this.onLagging(Number(body.missed), Number(body.next));
      return;
    }
    if (topic === "_end") {
      this._resubscribe().catch(() => {});
      return;
    }
    const e = { service: header.service, topic, seq: Number(header.seq), key: header.key, eventId: header.idem, data: body };
    const w = this._waiters.shift();
    if (w) w(e);
    else this._queue.push(e);
  }

  async _resubscribe() {
    if (this._closed) return;
    this.client._streams.delete(this._requestId);
    this._queue = [];
    const from = this.name ? undefined : this._lastSeq !== undefined ? this._lastSeq + 1 : undefined;
    await this._start(from);
  }
}

/**
 * Calls a cluster's services, each call with a `key` straight to the node
 * that owns its shard (docs/cluster.md, Clients that talk to owners): keyed
 * calls go with `shard` set, a node that does not own the shard answers
 * `wrong_shard` naming the owner, the call is sent there once, and the
 * shard's owner and the shard count are remembered for later calls. A
 * second `wrong_shard` (the map moved again) rejects: call again. `curve`
 * is for the seed; owners' connections use the same key pair and the
 * server key their redirect named. Calls without a key go to the seed.
 */
class ClusterClient {
  constructor(seed, { timeoutMs = 5000, curve = null } = {}) {
    this.seed = seed;
    this.timeoutMs = timeoutMs;
    this._curve = curve;
    this._connections = new Map(); // endpoint -> Client
    this._serverKeys = new Map(); // endpoint -> the key its redirect named
    this._routes = new Map(); // service -> {count, owners: Map(shard -> endpoint)}
    this.direct = 0;
    this.redirects = 0;
    this.forgotten = 0;
  }

  _connection(endpoint) {
    let c = this._connections.get(endpoint);
    if (c) return c;
    if (this._connections.size >= 64) {
      for (const [e, old] of this._connections)
        if (e !== this.seed) {
          old.close().catch(() => {});
          this._connections.delete(e);
          break;
        }
    }
    let curve = this._curve;
    if (curve && endpoint !== this.seed) {
      const serverKey = this._serverKeys.get(endpoint);
      curve = serverKey ? { ...curve, serverKey } : null; // a keyless owner: plain
    }
    c = new Client(endpoint, { timeoutMs: this.timeoutMs, curve });
    this._connections.set(endpoint, c);
    return c;
  }

  /** The owner this client remembers for `key` of `service` (undefined: none). */
  ownerEndpoint(service, key) {
    const r = this._routes.get(service);
    return r && r.count ? r.owners.get(shardOfKey(key, r.count)) : undefined;
  }

  async call(service, method, args = null, options = {}) {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (options.key === undefined) return this._connection(this.seed).call(service, method, args, { ...options, timeoutMs });
    let routes = this._routes.get(service);
    if (!routes) this._routes.set(service, (routes = { count: 0, owners: new Map() }));
    let endpoint = this.seed;
    let shard = 0; // "serve it only if you own it": the node computes the key's shard itself
    if (routes.count) {
      shard = shardOfKey(options.key, routes.count);
      if (routes.owners.has(shard)) {
        endpoint = routes.owners.get(shard);
        this.direct++;
      }
    }
    const started = Date.now();
    for (let followed = false; ; followed = true) {
      const left = Math.max(1, timeoutMs - (Date.now() - started));
      try {
        const { header, result } = await this._connection(endpoint).callWithHeader(service, method, args,
                                                                                     { ...options, timeoutMs: left, shard });
        const got = header.shard === undefined ? undefined : Number(header.shard);
        if (got !== undefined && (!routes.count || got < routes.count) && routes.owners.size < MAX_SHARDS)
          routes.owners.set(got, endpoint);
        return result;
      } catch (e) {
        const owner = e instanceof CohortError && e.code === "wrong_shard" ? e.owner : null;
        if (!owner) {
          if (endpoint !== this.seed && e instanceof CohortError && (e.local || e.code === "unavailable")) {
            for (const [s, ep] of routes.owners) if (ep === endpoint) routes.owners.delete(s);
            this.forgotten++;
          }
          throw e;
        }
        if (owner.shards && owner.shards !== routes.count) {
          if (routes.count) routes.owners.clear(); // re-sharded: forget it all
          routes.count = owner.shards;
          for (const s of [...routes.owners.keys()]) if (s >= routes.count) routes.owners.delete(s);
        }
        // Bounded like the reply path: a trusted node still cannot grow these without end.
        if (routes.count && owner.shard < routes.count &&
            (routes.owners.has(owner.shard) || routes.owners.size < MAX_SHARDS)) {
          routes.owners.set(owner.shard, owner.endpoint);
        }
        if (owner.serverKey && (this._serverKeys.has(owner.endpoint) || this._serverKeys.size < MAX_SHARDS)) {
          this._serverKeys.set(owner.endpoint, owner.serverKey);
        }
        if (followed || owner.endpoint === endpoint || Date.now() - started >= timeoutMs) throw e;
        this.redirects++;
        endpoint = owner.endpoint;
        shard = owner.shard;
      }
    }
  }

  async close() {
    await Promise.all([...this._connections.values()].map((c) => c.close()));
    this._connections.clear();
  }
}

module.exports = { Client, ClusterClient, Subscription, CohortError, PROTOCOL_VERSION, shardOfKey };

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

/** An error reply, or a local failure (`local`: no reply came). `code` is the protocol's stable code. */
class CohortError extends Error {
  constructor(code, message, local = false) {
    super(`${code}: ${message}`);
    this.code = code;
    this.local = local;
    this.transient = ["timeout", "unavailable", "overloaded", "storage_full", "storage_unavailable"].includes(code);
  }
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
  call(service, method, args = null, { key, idempotencyKey, timeoutMs, traceparent } = {}) {
    const id = this._nextId++;
    const budget = timeoutMs ?? this.timeoutMs;
    const header = { v: PROTOCOL_VERSION, kind: "request", id, service, method, deadline_ms: budget, sent_ms: Date.now() };
    if (key !== undefined) header.key = key;
    if (idempotencyKey !== undefined) header.idem = idempotencyKey;
    if (traceparent !== undefined) header.traceparent = traceparent;
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
        if (header.kind === "error") p.reject(new CohortError(body?.code ?? "internal", body?.message ?? ""));
        else p.resolve(body);
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

module.exports = { Client, Subscription, CohortError, PROTOCOL_VERSION };

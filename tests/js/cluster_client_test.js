#!/usr/bin/env node
// The JavaScript ClusterClient (js/) against a real two-node cluster: a real
// etcd on loopback, two `cohort run` members whose keys trust each other, a
// client key made by zeromq.js. Keyed calls reach their key's owner: at most
// one redirect per shard, then every call direct, and what the client
// remembers is what the nodes say.
// Usage: cluster_client_test.js PATH_TO_COHORT PATH_TO_JS_PACKAGE_DIR
"use strict";
const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const readline = require("readline");

const [cohort, pkg] = process.argv.slice(2);
const { Client, ClusterClient, CohortError, shardOfKey } = require(path.resolve(pkg));
const zmq = require(path.join(path.resolve(pkg), "node_modules", "zeromq"));
const SHARDS = 8;

function check(cond, what) {
  if (!cond) {
    console.error("FAIL:", what);
    process.exitCode = 1;
    throw new Error(what);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(fn, limitMs, what) {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    if (await fn()) return;
    await sleep(100);
  }
  check(false, `not within ${limitMs} ms: ${what}`);
}

function startNode(config) {
  const proc = spawn(cohort, ["run", "--config", config], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${config}: node did not start`)), 20000);
    let endpoint = null;
    readline.createInterface({ input: proc.stdout }).on("line", (line) => {
      const at = line.indexOf("listening on ");
      if (at >= 0 && endpoint === null) endpoint = line.slice(at + 13).trim();
      if (line.startsWith("cohort: ready")) {
        clearTimeout(timer);
        resolve({ proc, endpoint });
      }
    });
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cohort-jscluster-"));
  const etcdUrl = `http://127.0.0.1:${await freePort()}`;
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const etcd = spawn("/usr/bin/etcd", ["--name", "m", "--data-dir", path.join(dir, "etcd"), "--listen-client-urls", etcdUrl,
                                       "--advertise-client-urls", etcdUrl, "--listen-peer-urls", peerUrl,
                                       "--initial-advertise-peer-urls", peerUrl, "--initial-cluster", `m=${peerUrl}`,
                                       "--logger=zap", `--log-outputs=${path.join(dir, "etcd.log")}`], { stdio: "ignore" });
  const procs = [];
  const clients = [];
  try {
    await eventually(async () => {
      try {
        const r = await fetch(`${etcdUrl}/health`);
        return (await r.json()).health === "true";
      } catch {
        return false;
      }
    }, 20000, "etcd healthy");
    // Keys: the members' made by `cohort keys new`, this client's by zeromq.js.
    const keysDir = path.join(dir, "keys");
    const mine = zmq.curveKeyPair();
    const serverKey = {};
    let trust = `[[peer]]\nname = "js"\nrole = "client"\nkey = "${mine.publicKey}"\nservices = ["*"]\n`;
    for (const n of ["n1", "n2"]) {
      spawnSync(cohort, ["keys", "new", n, "--dir", keysDir], { stdio: "ignore" });
      const shown = spawnSync(cohort, ["keys", "show", path.join(keysDir, `${n}.key.pub`)], { encoding: "utf8" });
      serverKey[n] = shown.stdout.trim().split(/\s+/).pop();
      trust += `[[peer]]\nname = "${n}"\nrole = "node"\nkey = "${serverKey[n]}"\n`;
    }
    fs.writeFileSync(path.join(dir, "trust.toml"), trust);
    const endpoints = {};
    for (const n of ["n1", "n2"]) {
      // Ports the node picks and prints (a port found free and let go may be taken by then).
      const cfg = path.join(dir, `${n}.toml`);
      fs.writeFileSync(cfg, `[node]\nname = "${n}"\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\n` +
                            `data_dir = "${path.join(dir, n)}"\n[security]\nkeyless_loopback = false\n` +
                            `key_file = "${path.join(keysDir, `${n}.key`)}"\ntrust_file = "${path.join(dir, "trust.toml")}"\n` +
                            `[cluster]\netcd = ["${etcdUrl}"]\nname = "js"\nlease_ttl_ms = 3000\nshards = ${SHARDS}\n` +
                            `poll_ms = 100\n[services.counter]\n`);
      const started = await startNode(cfg);
      procs.push(started.proc);
      endpoints[n] = started.endpoint;
    }
    const curveTo = (n) => ({ serverKey: serverKey[n], publicKey: mine.publicKey, secretKey: mine.secretKey });
    const nodeOf = { [endpoints.n1]: "n1", [endpoints.n2]: "n2" };
    const keys = [...Array(40).keys()].map((i) => `k${i}`);
    const plain = new Client(endpoints.n1, { timeoutMs: 2000, curve: curveTo("n1") });
    clients.push(plain);
    await eventually(async () => {
      try {
        for (const k of keys) await plain.call("counter", "get", null, { key: k });
        return true;
      } catch {
        return false;
      }
    }, 30000, "every shard placed");
    await sleep(1000); // placement settles over the two

    const cc = new ClusterClient(endpoints.n1, { timeoutMs: 5000, curve: curveTo("n1") });
    clients.push(cc);
    for (const k of keys) check((await cc.call("counter", "add", { n: 1 }, { key: k })).value === 1, `first add of ${k}`);
    const first = cc.redirects;
    check(first > 0 && first <= SHARDS, `redirects after the first round: ${first}`);
    const directBefore = cc.direct;
    for (const k of keys) check((await cc.call("counter", "add", { n: 1 }, { key: k })).value === 2, `second add of ${k}`);
    check(cc.redirects === first, `no redirect in the second round (${cc.redirects} vs ${first})`);
    check(cc.direct - directBefore === keys.length, `every call of the second round direct (${cc.direct - directBefore})`);
    const owners = new Set(keys.map((k) => cc.ownerEndpoint("counter", k)));
    check(owners.size === 2 && owners.has(endpoints.n1) && owners.has(endpoints.n2), `both nodes own keys: ${[...owners]}`);
    // What it remembers is what the nodes say.
    for (const k of keys) {
      const at = cc.ownerEndpoint("counter", k);
      const other = at === endpoints.n1 ? endpoints.n2 : endpoints.n1;
      const owner = new Client(at, { timeoutMs: 2000, curve: curveTo(nodeOf[at]) });
      const notOwner = new Client(other, { timeoutMs: 2000, curve: curveTo(nodeOf[other]) });
      clients.push(owner, notOwner);
      const { header, result } = await owner.callWithHeader("counter", "get", null, { key: k, shard: 0 });
      check(result.value === 2 && Number(header.shard) === shardOfKey(k, SHARDS), `${k} at its owner`);
      try {
        await notOwner.call("counter", "get", null, { key: k, shard: 0 });
        check(false, `${other} served ${k}, which it does not own`);
      } catch (e) {
        check(e instanceof CohortError && e.code === "wrong_shard", `wrong_shard from the other node: ${e}`);
        check(e.owner.endpoint === at && e.owner.shards === SHARDS && e.owner.shard === shardOfKey(k, SHARDS),
              `the owner named: ${JSON.stringify(e.owner)}`);
      }
    }
    console.log(`ok: ${keys.length} keys, ${first} redirects followed, then every call straight to its owner`);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on("exit", r)))));
    etcd.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

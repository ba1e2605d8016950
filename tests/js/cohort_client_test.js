#!/usr/bin/env node
// The JavaScript client package (js/) against a real `cohort run` process
// hosting the shop: calls with promises (many in flight), errors with their
// codes, a local timeout, and event subscriptions to orders' order_placed
// (live, and durable resumed after the subscriber was away).
// Usage: cohort_client_test.js PATH_TO_COHORT PATH_TO_JS_PACKAGE_DIR
"use strict";
const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");

const [cohort, pkg] = process.argv.slice(2);
const { Client, CohortError } = require(path.resolve(pkg));
const SHOP = ["catalog", "inventory", "cart", "orders", "payments", "notifications", "greeter", "counter"];

function check(cond, what) {
  if (!cond) {
    console.error("FAIL:", what);
    process.exitCode = 1;
    throw new Error(what);
  }
}

function startNode(dir) {
  const cfg = path.join(dir, "node.toml");
  let text = `[node]\nname = "js"\nlisten = ["tcp://127.0.0.1:*"]\nadmin = "tcp://127.0.0.1:*"\ndata_dir = "${path.join(dir, "data")}"\n`;
  for (const s of SHOP) text += `[services.${s}]\n`;
  text += "[services.orders.events]\nlog = true\n";
  fs.writeFileSync(cfg, text);
  const proc = spawn(cohort, ["run", "--config", cfg], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let endpoint;
    const timer = setTimeout(() => reject(new Error("node did not start")), 20000);
    readline.createInterface({ input: proc.stdout }).on("line", (line) => {
      if (line.includes("listening on ") && !endpoint) endpoint = line.split("listening on ")[1].trim();
      if (line.startsWith("cohort: ready")) {
        clearTimeout(timer);
        resolve({ proc, endpoint });
      }
    });
  });
}

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms))]);
}

async function checkout(c, cart, order) {
  await c.call("cart", "add", { sku: "mug-001", qty: 1 }, { key: cart });
  const r = await c.call("orders", "checkout", { customer: "js", cart_id: cart, card: "4242" },
                         { key: order, idempotencyKey: order, timeoutMs: 20000 });
  check(r.status === "completed", `checkout ${order}: ${JSON.stringify(r)}`);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cohort-js-"));
  const { proc, endpoint } = await startNode(dir);
  try {
    check(spawnSync(cohort, ["seed-shop", "--endpoint", endpoint], { stdio: "inherit" }).status === 0, "seed-shop");
    const c = new Client(endpoint);
    // Promises, many in flight on one connection, each matched to its reply.
    const echoes = await Promise.all([...Array(200).keys()].map((i) => c.call("greeter", "echo", { data: `m${i}` })));
    check(echoes.every((r, i) => r.data === `m${i}`), "200 echoes in flight");
    for (const [args, code] of [[["nosuch", "x"], "unknown_service"], [["greeter", "nosuch"], "unknown_method"],
                                [["greeter", "fail", { code: "out_of_stock", message: "none" }], "out_of_stock"]]) {
      try {
        await c.call(...args);
        check(false, `${args} did not fail`);
      } catch (e) {
        check(e instanceof CohortError && e.code === code && !e.local, `${args}: ${e}`);
      }
    }
    try {
      await c.call("greeter", "sleep", { ms: 2000 }, { timeoutMs: 200 });
      check(false, "sleep did not time out");
    } catch (e) {
      check(e.code === "timeout" && e.local && e.transient, `sleep: ${e}`);
    }
    // Events: a live and a durable subscriber see the order placed.
    const live = await c.subscribe("orders", { topics: ["order_placed"] });
    const durable = await c.subscribe("orders", { topics: ["order_placed"], name: "js-billing" });
    check(!durable.resumed, "a new durable subscription does not resume");
    await checkout(c, "js-cart-1", "js-order-1");
    for (const sub of [live, durable]) {
      const e = await withTimeout(sub.next(), 10000, "order_placed");
      check(e.topic === "order_placed" && e.data.order_id === "js-order-1" && e.data.customer === "js" && e.seq > 0 && e.eventId,
            `order_placed: ${JSON.stringify(e)}`);
    }
    await live.close();
    await durable.close(); // acknowledges js-order-1
    await checkout(c, "js-cart-2", "js-order-2"); // while the durable subscriber is away
    const back = await c.subscribe("orders", { topics: ["order_placed"], name: "js-billing" });
    check(back.resumed, "the durable subscription resumes");
    const e = await withTimeout(back.next(), 10000, "resumed order_placed");
    check(e.data.order_id === "js-order-2", `resumed: ${JSON.stringify(e)}`);
    await back.close();
    try {
      await c.subscribe("cart");
      check(false, "a subscription to cart (no event log) was accepted");
    } catch (err) {
      check(err.code === "unknown_method", `cart subscription: ${err}`);
    }
    await c.close();
    console.log("ok");
  } finally {
    proc.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

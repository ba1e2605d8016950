#include "cohort/cluster/cluster_agent.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "agent_impl.hpp"
#include "cohort/cluster/placement.hpp"
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"

namespace cohort::cluster {

namespace {
using json = nlohmann::json;
std::int64_t to_ns(clock_type::time_point t) { return t.time_since_epoch().count(); }
}  // namespace

cluster_agent::impl::impl(cluster_config c, std::string n, std::string ep, std::string k, std::vector<std::string> s,
                          std::vector<std::string> hosted_here, std::vector<std::string> all, std::string dir,
                          cluster_host& h)
    : cfg(std::move(c)),
      node(std::move(n)),
      endpoint(std::move(ep)),
      public_key(std::move(k)),
      data_dir(std::move(dir)),
      sharded(std::move(s)),
      hosted(std::move(hosted_here)),
      all_hosted(std::move(all)),
      host(h),
      etcd(cfg.etcd, std::max(std::chrono::milliseconds(200), cfg.lease_ttl / 5)),
      prefix("/cohort/" + cfg.name + "/") {
  for (const auto& svc : sharded) {
    auto counters = std::make_unique<std::atomic<std::int64_t>[]>(max_shards);
    for (std::uint32_t i = 0; i < max_shards; ++i) counters[i] = 0;
    in_flight.emplace(svc, std::move(counters));
    auto seals = std::make_unique<std::atomic<bool>[]>(max_shards);
    for (std::uint32_t i = 0; i < max_shards; ++i) seals[i] = false;
    sealed.emplace(svc, std::move(seals));
    auto served = std::make_unique<std::atomic<bool>[]>(max_shards);
    for (std::uint32_t i = 0; i < max_shards; ++i) served[i] = false;
    precopying.emplace(svc, std::move(served));
  }
}

std::string cluster_agent::impl::member_json() const {
  return json{{"endpoint", endpoint}, {"key", public_key}, {"services", hosted}, {"hosts", all_hosted}}.dump();
}

void cluster_agent::impl::note(const std::string& line) {
  log::get("cluster")->info("{}", line);
  std::lock_guard<std::mutex> guard(status_mutex);
  handoff_log.push_back(line);
  if (handoff_log.size() > 32) handoff_log.pop_front();
}

cluster_agent::cluster_agent(cluster_config cfg, std::string node, std::string endpoint, std::string public_key,
                             std::vector<std::string> sharded, std::vector<std::string> hosted,
                             std::vector<std::string> all_hosted, std::string data_dir, cluster_host& host)
    : impl_(std::make_unique<impl>(std::move(cfg), std::move(node), std::move(endpoint), std::move(public_key),
                                   std::move(sharded), std::move(hosted), std::move(all_hosted), std::move(data_dir),
                                   host)) {}

cluster_agent::~cluster_agent() { stop(); }

void cluster_agent::start() {
  auto& p = *impl_;
  // The first lease and view before the node serves: it routes by shard from its first request.
  auto until = clock_type::now() + p.cfg.lease_ttl;
  while (clock_type::now() < until) {
    p.maintain_lease();
    p.refresh_view();
    if (p.lease.load() && p.load()->revision) break;
    std::this_thread::sleep_for(p.cfg.poll);
  }
  if (!p.lease.load())
    log::get("cluster")->warn("no etcd answered at start ({}): this node serves no shard until one does",
                              p.etcd_error);
  p.loop_thread = std::thread([this] {
    log::name_this_thread("cluster-loop");
    impl_->run_loop();
  });
  p.handoff_thread = std::thread([this] {
    log::name_this_thread("cluster-handoff");
    impl_->run_handoffs();
  });
  p.peer_thread = std::thread([this] {
    log::name_this_thread("cluster-peer");
    impl_->run_peer_answers();
  });
  p.watch_thread = std::thread([this] {
    log::name_this_thread("cluster-watch");
    impl_->run_watch();
  });
}

void cluster_agent::impl::run_watch() {
  // Every node watches the cluster's keys: a change is read at once (the
  // poll stays, as the fallback when the watch is down).
  for (;;) {
    // From just after the last read, never from "now": a watch made after a
    // change and before the next read would miss it (seen: a joining node
    // noticed an export for it only at its next poll, holding the moved
    // shards' requests that much longer).
    const auto from = load()->revision;
    if (from <= 0) {  // nothing read yet: the loop's first read comes at once
      std::unique_lock<std::mutex> lock(mutex);
      if (wake.wait_for(lock, std::chrono::milliseconds(10), [this] { return stopping; })) return;
      continue;
    }
    (void)etcd.watch_prefix(prefix, from + 1, [this](std::int64_t) {
      std::lock_guard<std::mutex> guard(mutex);
      view_stale = true;
      wake.notify_all();
    });
    std::unique_lock<std::mutex> lock(mutex);
    if (wake.wait_for(lock, cfg.poll, [this] { return stopping; })) return;
  }
}

void cluster_agent::stop() {
  auto& p = *impl_;
  {
    std::lock_guard<std::mutex> guard(p.mutex);
    if (p.stopping) return;
    p.stopping = true;
  }
  p.wake.notify_all();
  p.etcd.stop_watching();
  if (p.watch_thread.joinable()) p.watch_thread.join();
  if (p.loop_thread.joinable()) p.loop_thread.join();
  if (p.handoff_thread.joinable()) p.handoff_thread.join();
  for (auto& [key, running] : p.importing) running.done.wait();  // each ends at its next peer call's answer or timeout
  p.importing.clear();
  if (p.peer_thread.joinable()) p.peer_thread.join();
  p.serving_until_ns = 0;
  // Leaving: the node's key and the coordinator's key (if it held it) go at once.
  if (auto id = p.lease.exchange(0)) (void)p.etcd.lease_revoke(id);
  std::lock_guard<std::mutex> guard(p.mutex);
  for (auto& r : p.peer_requests) r->fail({errc::unavailable, "node is leaving the cluster"});
  p.peer_requests.clear();
}

void cluster_agent::impl::run_loop() {
  std::shared_ptr<const cluster_view> seen;
  bool was_serving = false;
  for (;;) {
    auto started = clock_type::now();
    maintain_lease();
    refresh_view();
    auto v = load();
    if (lease.load() && !term_confirmed.load()) confirm_term();
    if (lease.load() && etcd_reachable.load()) {
      if (v->coordinator == node)
        coordinate(*v);
      else if (v->coordinator.empty() || !v->members.count(v->coordinator))
        (void)etcd.put_if(key_coordinator(), node, 0, lease.load());  // campaign: the key dies with its holder's lease
    }
    const bool serving = lease_valid() && term_confirmed.load();
    if (v != seen || serving != was_serving) {
      std::lock_guard<std::mutex> guard(mutex);
      handoff_due = true;
    }
    wake.notify_all();
    // Every poll: held requests are routed again or time out; entities of
    // shards no longer served are let go.
    host.ownership_changed(serving != was_serving);
    seen = v, was_serving = serving;
    std::unique_lock<std::mutex> lock(mutex);
    if (wake.wait_until(lock, started + cfg.poll, [this] { return stopping || view_stale; })) {
      if (stopping) return;
    }
    view_stale = false;
  }
}

void cluster_agent::impl::maintain_lease() {
  const auto ttl_s = std::max<std::int64_t>(2, static_cast<std::int64_t>(std::ceil(cfg.lease_ttl.count() / 1000.0)));
  auto now = clock_type::now();
  if (!lease.load()) {
    auto sent = clock_type::now();
    auto id = etcd.lease_grant(std::chrono::seconds(ttl_s));
    if (!id) return mark_etcd(false, id.error().message);
    if (auto put = etcd.put(key_nodes() + node, member_json(), *id); !put) {
      (void)etcd.lease_revoke(*id);
      return mark_etcd(false, put.error().message);
    }
    mark_etcd(true);
    term_confirmed = false;
    {
      std::lock_guard<std::mutex> guard(status_mutex);
      swept.clear();
    }
    serving_until_ns = to_ns(sent + std::chrono::seconds(ttl_s) - margin());
    next_renewal = sent + std::chrono::seconds(ttl_s) / 3;
    lease = *id;
    log::get("cluster")->info("node '{}' joined cluster '{}' (lease {:x}, {} s)", node, cfg.name, *id, ttl_s);
    return;
  }
  if (now < next_renewal) return;
  auto sent = clock_type::now();
  auto left = etcd.lease_keepalive(lease.load());
  if (!left) {
    next_renewal = now + cfg.poll;
    mark_etcd(false, left.error().message);
    ride_out_etcd_outage();
    return;
  }
  mark_etcd(true);
  outage_confirmed = false;
  if (*left <= 0) {
    // Gone (we were paused or cut off past its TTL): fenced now; a new lease,
    // a new term, and the shards come back with their epochs bumped.
    serving_until_ns = 0;
    lease = 0;
    term_confirmed = false;
    log::get("cluster")->warn("node '{}' lost its lease: it serves nothing until it has joined again", node);
    return;
  }
  serving_until_ns = to_ns(sent + std::chrono::seconds(*left) - margin());
  next_renewal = sent + std::chrono::seconds(ttl_s) / 3;
}

void cluster_agent::impl::refresh_view() {
  const auto ticket = ++read_tickets;
  auto r = etcd.range_prefix(prefix);
  if (!r) return mark_etcd(false, r.error().message);
  mark_etcd(true);
  auto v = std::make_shared<cluster_view>();
  v->revision = r->revision;
  for (const auto& kv : r->kvs) {
    std::string_view k(kv.key);
    k.remove_prefix(prefix.size());
    if (k.rfind("nodes/", 0) == 0) {
      auto j = json::parse(kv.value, nullptr, false);
      if (j.is_discarded() || !j.is_object()) continue;
      member m;
      m.name = std::string(k.substr(6));
      m.endpoint = j.value("endpoint", "");
      m.key = j.value("key", "");
      for (const char* list : {"services", "hosts"})
        if (j.contains(list) && j[list].is_array())
          for (const auto& s : j[list])
            if (s.is_string()) (std::string(list) == "services" ? m.services : m.hosts).push_back(s.get<std::string>());
      m.lease = kv.lease;
      v->members.emplace(m.name, std::move(m));
    } else if (k.rfind("shards/", 0) == 0) {
      if (auto m = shard_map::decode(kv.value, kv.mod_revision))
        v->maps.emplace(std::string(k.substr(7)), std::move(*m));
      else
        log::get("cluster")->error("the shard map of '{}' in etcd does not decode: left alone", k.substr(7));
    } else if (k.rfind("drain/", 0) == 0) {
      v->draining.insert(std::string(k.substr(6)));
    } else if (k == "coordinator") {
      v->coordinator = kv.value;
    }
  }
  // Our key went (deleted by hand) while the lease lives: put it back.
  if (lease.load() && !v->members.count(node)) {
    (void)etcd.put(key_nodes() + node, member_json(), lease.load());
  }
  std::lock_guard<std::mutex> guard(view_mutex);
  // Several threads read (the loop, imports, handoff steps): an answer that
  // is older by both measures (an earlier read, a lower revision) never
  // replaces the view. By revision alone an etcd rebuilt from scratch would
  // never be believed; by read order alone a read that waited for the etcd
  // client behind a later one would be dropped.
  if (ticket < installed_ticket && v->revision < current->revision) return;
  installed_ticket = std::max(installed_ticket, ticket);
  current = std::move(v);
}

void cluster_agent::impl::mark_etcd(bool ok, const std::string& error) {
  etcd_reachable = ok;
  if (ok) etcd_answered_ns = to_ns(clock_type::now());
  std::lock_guard<std::mutex> guard(status_mutex);
  etcd_error = error;
}

void cluster_agent::impl::ride_out_etcd_outage() {
  // Near the deadline without etcd: is etcd down for everyone, or is this
  // node cut off from it? Only a majority of the members (this one
  // included) that cannot reach etcd either lets it serve on: then nobody
  // can change the map, so nobody else can own its shards. One member that
  // still reaches etcd, or too few answers, and it stops at its deadline.
  const auto now = clock_type::now();
  if (to_ns(now + 2 * cfg.poll) < serving_until_ns.load()) return;
  auto v = load();
  std::size_t cut_off = v->members.count(node) ? 1 : 0, asked = v->members.size();
  if (!v->members.count(node)) asked++;
  bool someone_reaches = false;
  for (const auto& [name, m] : v->members) {
    if (name == node) continue;
    auto answer = host.call_peer(m, "etcd_probe", probe_request(), cfg.poll * 2);
    if (!answer) continue;
    if (probe_says_reachable(*answer)) someone_reaches = true;
    else cut_off++;
  }
  const bool outage = !someone_reaches && cut_off * 2 > asked;
  if (outage != outage_confirmed.load())
    log::get("cluster")->warn(outage ? "etcd is unreachable from {} of {} members: an etcd outage; serving on (no "
                                       "shard can change hands without etcd)"
                                     : "etcd unreachable from here only ({} of {} members): this node stops serving "
                                       "its shards at its lease deadline",
                              cut_off, asked);
  outage_confirmed = outage;
  if (outage) serving_until_ns = to_ns(now + cfg.lease_ttl / 3);
}

result<bool> cluster_agent::impl::change_map(const std::string& service, const std::function<bool(shard_map&)>& edit) {
  for (int tries = 0; tries < 5; ++tries) {
    shard_map m;
    // First from the view: usually current (the watch keeps it so), and then
    // the change is one round trip. A stale one fails the compare-and-swap
    // and the map is read from etcd.
    auto v = tries == 0 ? load() : nullptr;
    const shard_map* seen = nullptr;
    if (v)
      if (auto it = v->maps.find(service); it != v->maps.end() && it->second.revision) seen = &it->second;
    if (seen) {
      m = *seen;
    } else {
      v = nullptr;
      auto r = etcd.range_prefix(key_shards(service));
      if (!r) return r.error();
      for (const auto& kv : r->kvs)
        if (kv.key == key_shards(service))
          if (auto d = shard_map::decode(kv.value, kv.mod_revision)) m = std::move(*d);
    }
    if (!edit(m)) {
      if (tries == 0 && v) continue;  // the view may be behind: decide on etcd's own copy
      return false;
    }
    auto put = etcd.put_if(key_shards(service), m.encode(), m.revision);
    if (!put) return put.error();
    if (*put) return true;
  }
  return error_info{errc::unavailable, "the shard map of '" + service + "' kept changing under us"};
}

void cluster_agent::impl::confirm_term() {
  for (const auto& service : hosted) {
    auto bumped = change_map(service, [&](shard_map& m) {
      bool any = false;
      for (auto& s : m.shards)
        if (s.owner == node) {
          s.epoch++, any = true;
          // An export made in the last term names the old epochs: made again.
          if (s.phase == "exported") s.phase = "moving";
        }
      return any;
    });
    if (!bumped) return;  // tried again next poll
  }
  refresh_view();  // serve with the new epochs, never the old ones
  term_confirmed = true;
  log::get("cluster")->info("node '{}' serves its shards in a new term (epochs bumped)", node);
}

std::set<std::string> cluster_agent::impl::live_for(const cluster_view& v, const std::string& service) const {
  std::set<std::string> out;
  for (const auto& [name, m] : v.members)
    if (std::find(m.services.begin(), m.services.end(), service) != m.services.end()) out.insert(name);
  return out;
}

void cluster_agent::impl::coordinate(const cluster_view& v) {
  for (const auto& service : sharded) {
    placement_input in;
    in.live = live_for(v, service);
    in.draining = v.draining;
    in.shards = cfg.shards;
    auto it = v.maps.find(service);
    shard_map current = it == v.maps.end() ? shard_map{} : it->second;
    auto next = plan(current, in);
    if (!next) continue;
    auto put = etcd.put_if(key_shards(service), next->encode(), current.revision);
    if (put && *put) {
      std::size_t moving = 0;
      std::string called_off;  // handoffs whose target left: named, they explain an epoch bump
      for (std::size_t i = 0; i < next->shards.size(); ++i) {
        moving += !next->shards[i].phase.empty();
        if (i < current.shards.size() && !current.shards[i].phase.empty() && next->shards[i].phase.empty() &&
            next->shards[i].owner == current.shards[i].owner)
          called_off += (called_off.empty() ? "" : ", ") + std::to_string(i) + " (to '" + current.shards[i].to + "')";
      }
      log::get("cluster")->info("coordinator '{}': new placement of '{}' ({} shards, {} moving{})", node, service,
                                next->shards.size(), moving,
                                called_off.empty() ? "" : "; called off, their target left: shard " + called_off);
    }
  }
}

bool cluster_agent::sharded(const std::string& service) const {
  if (impl_->in_flight.count(service)) return true;
  return impl_->load()->maps.count(service) > 0;
}

std::shared_ptr<const cluster_view> cluster_agent::view() const { return impl_->load(); }

route_decision cluster_agent::route(const std::string& service, std::string_view key, bool forwarded) const {
  auto& p = *impl_;
  route_decision d;
  auto v = p.load();
  auto it = v->maps.find(service);
  if (it == v->maps.end() || it->second.shards.empty()) {
    d.why = "the cluster has no shard map for '" + service + "' yet (no coordinator has placed it)";
    return d;
  }
  const auto& map = it->second;
  d.shard = shard_of(key, map.count());
  d.shards = map.count();
  const auto& s = map.shards[d.shard];
  d.epoch = s.epoch;
  d.owner = s.owner;
  const std::string where = "shard " + std::to_string(d.shard) + " of '" + service + "'";
  if (s.owner == p.node) {
    if (!p.lease_valid()) {
      d.why = where + ": this node could not renew its cluster lease in time, so it serves none of its shards "
                      "(fencing) until it has joined again";
      return d;
    }
    d.kind = s.phase.empty() && p.term_confirmed.load() ? route_decision::local : route_decision::hold;
    if (d.kind == route_decision::hold && s.phase == "moving" && p.term_confirmed.load() &&
        p.served_in_precopy(service, d.shard))
      d.kind = route_decision::local, d.precopy = true;  // served on while its snapshot is copied
    return d;
  }
  if (s.owner.empty()) {
    d.why = where + " has no owner";
    return d;
  }
  auto m = v->members.find(s.owner);
  if (m == v->members.end()) {
    d.why = where + " is owned by node '" + s.owner + "', which is gone (its lease expired): unavailable until it " +
            "returns, or an operator reassigns it with data loss (cohortctl cluster reassign)";
    return d;
  }
  d.endpoint = m->second.endpoint;
  d.key = m->second.key;
  if (forwarded) {
    d.kind = route_decision::wrong_shard;
    d.why = where + " is owned by node '" + s.owner + "' at " + d.endpoint + " (epoch " + std::to_string(s.epoch) + ")";
    return d;
  }
  d.kind = route_decision::forward;
  return d;
}

bool cluster_agent::serves(const std::string& service, std::string_view key) const {
  auto& p = *impl_;
  if (!p.lease_valid() || !p.term_confirmed.load()) return false;
  auto v = p.load();
  auto it = v->maps.find(service);
  if (it == v->maps.end() || it->second.shards.empty()) return false;
  const auto shard = shard_of(key, it->second.count());
  const auto& s = it->second.shards[shard];
  if (s.owner != p.node) return false;
  if (s.phase.empty()) return true;
  return s.phase == "moving" && p.served_in_precopy(service, shard);
}

bool cluster_agent::admits(const std::string& service, std::string_view key, std::uint64_t epoch) const {
  auto& p = *impl_;
  // Epoch 0: does this node still hold the shard's entities (for letting go of them)?
  if (epoch != 0 && (!p.lease_valid() || !p.term_confirmed.load())) return false;
  auto v = p.load();
  auto it = v->maps.find(service);
  auto seals = p.sealed.find(service);
  if (it == v->maps.end() || it->second.shards.empty() || seals == p.sealed.end()) return false;
  const auto shard = shard_of(key, it->second.count());
  const auto& s = it->second.shards[shard];
  if (s.owner != p.node || (epoch != 0 && s.epoch != epoch)) return false;
  return s.phase.empty() || (s.phase == "moving" && !seals->second[shard].load());
}

bool cluster_agent::track(detail::request& req, const std::string& service, std::uint32_t shard, bool precopy) {
  auto it = impl_->in_flight.find(service);
  if (it == impl_->in_flight.end() || shard >= impl::max_shards) return !precopy;
  auto* counter = &it->second[shard];
  counter->fetch_add(1);
  // Counted first, then the flag read again: the handoff clears the flag,
  // then waits for the count. One of the two sees the other (both seq_cst).
  if (precopy && !impl_->served_in_precopy(service, shard)) {
    counter->fetch_sub(1);
    return false;
  }
  req.observer = [counter, next = std::move(req.observer)](const detail::request& r, std::string_view code) {
    counter->fetch_sub(1);
    if (next) next(r, code);
  };
  return true;
}

void cluster_agent::handle(detail::request_ptr req) {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    if (!impl_->stopping && impl_->peer_requests.size() < 1024) {
      impl_->peer_requests.push_back(std::move(req));
      impl_->wake.notify_all();
      return;
    }
  }
  req->fail({errc::overloaded, "this node has too many cluster transfers queued"});
}

json cluster_agent::status_json() const {
  auto& p = *impl_;
  auto v = p.load();
  json nodes = json::array();
  for (const auto& [name, m] : v->members)
    nodes.push_back({{"name", name}, {"endpoint", m.endpoint}, {"services", m.services}, {"hosts", m.hosts},
                     {"lease", m.lease}, {"draining", v->draining.count(name) > 0},
                     {"coordinator", v->coordinator == name}});
  json services = json::object();
  for (const auto& [svc, map] : v->maps) {
    json owners = json::object();
    json moving = json::array();
    std::size_t unavailable = 0;
    for (std::size_t i = 0; i < map.shards.size(); ++i) {
      const auto& s = map.shards[i];
      owners[s.owner.empty() ? "-" : s.owner] = owners.value(s.owner.empty() ? "-" : s.owner, 0) + 1;
      if (!s.phase.empty()) moving.push_back({{"shard", i}, {"from", s.owner}, {"to", s.to}, {"phase", s.phase}});
      if (!s.owner.empty() && !v->members.count(s.owner)) unavailable++;
    }
    services[svc] = {{"shards", map.shards.size()}, {"owners", owners}, {"handoffs", moving},
                     {"unavailable", unavailable}, {"revision", map.revision}};
  }
  auto left_ms = (p.serving_until_ns.load() - clock_type::now().time_since_epoch().count()) / 1000000;
  std::lock_guard<std::mutex> guard(p.status_mutex);
  return {{"cluster", p.cfg.name},
          {"node", p.node},
          {"etcd", p.etcd.endpoint()},
          {"etcd_reachable", p.etcd_reachable.load()},
          {"etcd_outage", p.outage_confirmed.load()},
          {"etcd_error", p.etcd_error},
          {"lease", p.lease.load()},
          {"serving", p.lease_valid() && p.term_confirmed.load()},
          {"serving_for_ms", std::max<std::int64_t>(0, left_ms)},
          {"coordinator", v->coordinator},
          {"revision", v->revision},
          {"nodes", nodes},
          {"services", services},
          {"handoff_now", p.handoff_now},
          {"handoffs", json(std::vector<std::string>(p.handoff_log.begin(), p.handoff_log.end()))}};
}

result<json> cluster_agent::command(const std::string& verb, const json& args) {
  auto& p = *impl_;
  if (verb == "status") return status_json();
  if (verb == "shards") {
    auto v = p.load();
    json out = json::object();
    for (const auto& [svc, map] : v->maps) {
      json list = json::array();
      for (std::size_t i = 0; i < map.shards.size(); ++i) {
        const auto& s = map.shards[i];
        list.push_back({{"shard", i}, {"owner", s.owner}, {"epoch", s.epoch}, {"phase", s.phase}, {"to", s.to},
                        {"available", v->members.count(s.owner) > 0}});
      }
      out[svc] = std::move(list);
    }
    return json{{"services", out}};
  }
  auto name = args.value("node", "");
  if (verb == "drain" || verb == "undrain") {
    if (name.empty()) return error_info{errc::bad_request, "cluster " + verb + " needs a node"};
    auto done = verb == "drain" ? p.etcd.put(p.key_drain(name), "1") : p.etcd.erase(p.key_drain(name));
    if (!done) return done.error();
    return json{{"node", name}, {"draining", verb == "drain"}};
  }
  if (verb == "rebalance") {
    auto v = p.load();
    if (v->coordinator.empty()) return error_info{errc::unavailable, "the cluster has no coordinator now"};
    if (v->coordinator == p.node) p.coordinate(*v);
    return json{{"coordinator", v->coordinator}};
  }
  if (verb == "reassign") {
    auto service = args.value("service", "");
    auto shard = args.value("shard", -1);
    if (!args.value("accept_data_loss", false))
      return error_info{errc::bad_request, "reassign gives the shard to a node without its data: say --accept-data-loss"};
    if (service.empty() || shard < 0 || name.empty())
      return error_info{errc::bad_request, "reassign needs a service, a shard and a node (--to)"};
    auto v = p.load();
    if (!v->members.count(name)) return error_info{errc::bad_request, "node '" + name + "' is not a live member"};
    error_info refused;
    auto changed = p.change_map(service, [&](shard_map& m) {
      if (static_cast<std::size_t>(shard) >= m.shards.size()) {
        refused = {errc::bad_request, "'" + service + "' has no shard " + std::to_string(shard)};
        return false;
      }
      auto& s = m.shards[static_cast<std::size_t>(shard)];
      if (v->members.count(s.owner)) {
        refused = {errc::bad_request, "shard " + std::to_string(shard) + " is owned by '" + s.owner +
                                          "', which is alive: drain it instead (no data is lost)"};
        return false;
      }
      s.owner = name, s.epoch++, s.phase.clear(), s.to.clear();
      return true;
    });
    if (!changed) return changed.error();
    if (!*changed) return refused;
    log::get("cluster")->warn("operator reassigned shard {} of '{}' to '{}' accepting the loss of its data", shard,
                              service, name);
    return json{{"service", service}, {"shard", shard}, {"owner", name}};
  }
  return error_info{errc::bad_request, "unknown cluster verb '" + verb +
                                           "' (status, shards, drain, undrain, rebalance, reassign)"};
}

}  // namespace cohort::cluster

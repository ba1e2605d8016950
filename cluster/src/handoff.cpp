// Handoff of shards between nodes (docs/cluster.md, Handoff):
//   1. the coordinator marks the shards "moving" to the new owner;
//   2. pre-copy: the old owner starts recording which records of those
//      shards are written, serves them on, exports a snapshot of them
//      ("base": table files with a SHA-256 each) and tells the new owner
//      (`_cluster.exported`, stage "base"), which fetches and ingests it
//      while the shards still serve, and says so (`_cluster.base_taken`);
//   3. the old owner then holds new requests for them, waits for those it is
//      serving, lets their entities go, waits for queued writes, exports only
//      the records written since the base (current value or deletion; all of
//      them when there is no base), lists base and changes in a manifest,
//      tells the new owner (`_cluster.exported`, a hint) and marks them
//      "exported";
//   4. the new owner fetches the manifest and what it lacks from the old
//      owner's node (`_cluster.manifest`, small exports inline, else
//      `_cluster.chunk`) as soon as it is told, checks every checksum, and
//      once the map says "exported" ingests the changes over the base (or,
//      without the base, deletes anything it still had of those shards and
//      ingests base and changes), and takes the shards by compare-and-swap,
//      epoch + 1;
//   5. the old owner sees the new owner, routes the held requests to it and
//      deletes its copy.
// Requests are held only in step 3 and 4: the bulk moves in step 2.
// A crash anywhere repeats the step it interrupted: the map in etcd says
// where each shard is; a pre-copy is not remembered across restarts (the
// shards are held until a new one starts).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "agent_impl.hpp"
#include "handoff_payloads.hpp"
#include "cohort/log/log.hpp"

namespace cohort::cluster {

namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;
/// The most an answer to a peer carries, whatever it asks for.
constexpr std::size_t max_chunk_bytes = 4u << 20;

std::optional<std::string> sha256_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) out += hex[md[i] >> 4], out += hex[md[i] & 15];
  return out;
}

bool in_set(const std::vector<std::uint32_t>& shards, std::uint32_t s) {
  return std::find(shards.begin(), shards.end(), s) != shards.end();
}

/// The (shard, epoch) pairs the manifest in `dir` lists (none without one).
std::set<std::pair<std::uint32_t, std::uint64_t>> exported_in(const std::string& dir) {
  std::set<std::pair<std::uint32_t, std::uint64_t>> out;
  std::ifstream in(dir + "/manifest.json");
  if (!in) return out;
  auto m = json::parse(in, nullptr, false);
  if (!m.is_object() || !m.contains("shards") || !m["shards"].is_array()) return out;
  for (const auto& e : m["shards"])
    if (e.is_object()) out.emplace(e.value("shard", ~0u), e.value("epoch", std::uint64_t{0}));
  return out;
}

long long ms_between(clock_type::time_point a, clock_type::time_point b) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
}

bool safe_name(const std::string& s) {
  return !s.empty() && s.size() < 200 && s.find('/') == std::string::npos && s.find("..") == std::string::npos;
}
}  // namespace

std::string probe_request() { return pack_string("{}"); }

bool probe_says_reachable(const std::string& answer) {
  auto text = unpack_bytes(answer);
  auto j = text ? json::parse(*text, nullptr, false) : json();
  return j.is_object() && j.value("reachable", false);
}

std::string cluster_agent::impl::export_dir(const std::string& service, const std::string& to) const {
  return data_dir + "/.handoff/" + service + ".to." + to;
}

std::string cluster_agent::impl::import_dir(const std::string& service, const std::string& from) const {
  return data_dir + "/.handoff/" + service + ".from." + from;
}

void cluster_agent::impl::run_handoffs() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      // A pre-copy under way is looked at again soon: its wait for the target
      // may run out; a sweep waiting for quiet, a little later.
      const auto patience = !precopies.empty() ? std::chrono::milliseconds(20)
                            : retry_waiting    ? std::chrono::milliseconds(50)
                            : sweep_waiting    ? std::chrono::milliseconds(250)
                                               : std::chrono::milliseconds(60000);
      wake.wait_for(lock, patience, [this] { return stopping || handoff_due; });
      if (stopping) return;
      handoff_due = false;
    }
    try {
      handoff_step();
    } catch (const std::exception& e) {
      log::get("cluster")->error("handoff step failed: {}", e.what());
    }
    {
      std::lock_guard<std::mutex> guard(status_mutex);
      handoff_now.clear();
    }
  }
}

void cluster_agent::impl::handoff_step() {
  if (!lease.load() || !term_confirmed.load()) return;
  auto v = load();
  sweep_waiting = false;
  retry_waiting = false;
  for (const auto& service : hosted) {
    auto it = v->maps.find(service);
    if (it == v->maps.end()) continue;
    const auto& map = it->second;
    // A shard served here again (its handoff called off) takes writes again.
    auto& seals = sealed.at(service);
    for (std::uint32_t i = 0; i < map.count() && i < max_shards; ++i)
      if (map.shards[i].owner == node && map.shards[i].phase.empty()) seals[i] = false;
    std::map<std::string, std::vector<std::uint32_t>> outgoing, incoming;
    std::set<std::string> awaited;  ///< targets that have not taken this node's last export yet
    std::map<std::string, std::set<std::pair<std::uint32_t, std::uint64_t>>> on_disk;  ///< per target, read once
    for (std::uint32_t i = 0; i < map.count(); ++i) {
      const auto& s = map.shards[i];
      if (s.owner == node && s.phase == "moving") outgoing[s.to].push_back(i);
      if (s.to == node && s.owner != node && (s.phase == "exported" || s.phase == "moving"))
        incoming[s.owner].push_back(i);
      if (s.owner != node || s.phase != "exported") continue;
      // Exported, but the export on disk does not hold it (lost, or made for
      // another set): export it again. Else its target has yet to take it.
      auto listed = on_disk.find(s.to);
      if (listed == on_disk.end()) listed = on_disk.emplace(s.to, exported_in(export_dir(service, s.to))).first;
      if (listed->second.count({i, s.epoch}))
        awaited.insert(s.to);
      else
        (void)change_map(service, [&](shard_map& m) {
          if (i >= m.count() || m.shards[i].owner != node || m.shards[i].phase != "exported") return false;
          m.shards[i].phase = "moving";
          return true;
        });
    }
    // One export per target at a time: a new one would replace the files the
    // target may be fetching now. The shards wait for the next.
    for (const auto& [to, shards] : outgoing) {
      if (awaited.count(to)) continue;
      // Exported already, by a step whose map change this view does not show
      // yet (or that failed to change the map): only the map step is left.
      // Exporting again would replace the files the target may be fetching.
      auto listed = on_disk.find(to);
      if (listed == on_disk.end()) listed = on_disk.emplace(to, exported_in(export_dir(service, to))).first;
      const bool on_disk_already = std::all_of(shards.begin(), shards.end(), [&](std::uint32_t i) {
        return listed->second.count({i, map.shards[i].epoch}) > 0;
      });
      const auto key = service + "/" + to;
      auto pc = precopies.find(key);
      if (on_disk_already) {
        if (pc != precopies.end()) end_precopy(service, key);
        if (mark_exported(service, to, shards, map))
          note("marked " + std::to_string(shards.size()) + " shard(s) of '" + service + "' exported for '" + to +
               "': their export was on disk already");
        continue;
      }
      std::vector<std::pair<std::uint32_t, std::uint64_t>> wanted;
      for (auto s : shards) wanted.emplace_back(s, map.shards[s].epoch);
      if (pc != precopies.end() && pc->second.shards != wanted) {
        end_precopy(service, key);  // another set of shards now: a new base
        pc = precopies.end();
      }
      if (pc == precopies.end()) {
        begin_precopy(service, to, shards, map);
        continue;  // the target fetches the base while the shards serve on
      }
      bool taken = false;
      {
        std::lock_guard<std::mutex> guard(mutex);
        taken = base_taken.erase(key + "/" + pc->second.id) > 0;
      }
      // The target may be slow, or an older node that takes no base: after
      // a while the shards are sealed anyway, and it fetches base and changes.
      const auto patience = std::clamp(cfg.hold_timeout / 4, std::chrono::milliseconds(200), std::chrono::milliseconds(3000));
      if (!taken && clock_type::now() - pc->second.started < patience) continue;
      auto base = std::move(pc->second);
      base.taken = taken;
      precopies.erase(pc);
      export_shards(service, to, shards, map, &base);
    }
    // Pre-copies whose shards no longer move to their target (called off,
    // or moved on): those shards serve normally again, or are held.
    for (auto pc = precopies.begin(); pc != precopies.end();) {
      const auto slash = pc->first.find('/');
      const auto next = std::next(pc);
      if (pc->first.substr(0, slash) == service && !outgoing.count(pc->first.substr(slash + 1)))
        end_precopy(service, pc->first);
      pc = next;
    }
    // Imports run on their own threads, one per old owner at a time, and a
    // step does not wait for them: an export that is ready while another is
    // being imported is taken at once (the requests held at its old owner
    // wait for it).
    // An import starts when a shard is marked exported, or as soon as its
    // old owner says the export is on disk (the mark follows: the fetch runs
    // meanwhile, the ingest waits for it).
    // Old owners this node takes nothing from any more: their finished
    // imports and backoffs are forgotten (a later handoff starts afresh).
    auto done_with = [&](const std::string& key) {
      const auto slash = key.find('/');
      return key.substr(0, slash) == service && !incoming.count(key.substr(slash + 1));
    };
    for (auto r = import_retry.begin(); r != import_retry.end();) r = done_with(r->first) ? import_retry.erase(r) : std::next(r);
    for (auto i = importing.begin(); i != importing.end();) {
      const bool finished = i->second.done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
      i = finished && done_with(i->first) ? importing.erase(i) : std::next(i);
    }
    for (const auto& [from, shards] : incoming) {
      const auto key = service + "/" + from;
      if (auto running = importing.find(key); running != importing.end()) {
        if (running->second.done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) continue;
        const bool failed = !running->second.base;  // the export was imported and the shards are still incoming
        importing.erase(running);
        if (failed) {
          auto& [at, backoff] = import_retry[key];
          backoff = std::clamp(backoff * 2, std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
          at = clock_type::now() + backoff;
        }
      }
      if (auto r = import_retry.find(key); r != import_retry.end() && clock_type::now() < r->second.first) {
        retry_waiting = true;
        continue;
      }
      // The link to the old owner is ready before the export is.
      if (auto m = v->members.find(from); m != v->members.end()) host.connect_peer(m->second);
      const bool any_exported = std::any_of(shards.begin(), shards.end(), [&](std::uint32_t i) {
        return map.shards[i].phase == "exported";
      });
      bool base_ready = false;
      {
        std::lock_guard<std::mutex> guard(mutex);
        const bool told = told_exported.erase(key) > 0;
        base_ready = told_base.erase(key) > 0;
        if (!any_exported && !told && !base_ready) continue;
        if (any_exported || told) base_ready = false;  // the export itself is ready: take that
      }
      // The pre-copy's base, or the export itself; the next step looks again
      // when it ends (more may be ready).
      auto done = std::async(std::launch::async, [this, service, from = from, shards = shards, v, base_ready] {
        try {
          if (base_ready)
            import_base(service, from, shards, v->maps.at(service), *v);
          else
            import_shards(service, from, shards, v->maps.at(service), *v);
        } catch (const std::exception& e) {
          log::get("cluster")->error("{} of '{}' from '{}' failed: {}", base_ready ? "pre-copy" : "import", service, from,
                                     e.what());
        }
        {
          std::lock_guard<std::mutex> guard(mutex);
          handoff_due = true;
        }
        wake.notify_all();
      });
      importing.emplace(key, running_import{std::move(done), base_ready});
    }
    clean_up(service, map);
  }
}

/// The SHA-256, size and record count of each exported file, as a manifest lists them.
static std::optional<json> describe_files(const entity_export& exported, const std::string& stage, std::uint64_t& bytes) {
  json files = json::array();
  for (const auto& f : exported.files) {
    auto sum = sha256_of(f.path);
    std::error_code ec;
    auto size = fs::file_size(f.path, ec);
    if (!sum || ec) return std::nullopt;
    bytes += size;
    files.push_back({{"space", static_cast<int>(f.space)}, {"name", fs::path(f.path).filename().string()},
                     {"size", size}, {"sha256", *sum}, {"records", f.records}, {"stage", stage},
                     {"format", f.ops ? "changes" : "table"}});
  }
  return files;
}

static std::string new_precopy_id() {
  std::random_device r;
  std::ostringstream out;
  out << std::hex << r() << r();
  return out.str();
}

void cluster_agent::impl::begin_precopy(const std::string& service, const std::string& to,
                                        const std::vector<std::uint32_t>& shards, const shard_map& map) {
  auto* db = host.store_of(service);
  if (!db) return;
  const auto started = clock_type::now();
  const auto count = map.count();
  auto belongs = [shards, count](std::string_view key) { return in_set(shards, shard_of(key, count)); };
  // Tracked from before the snapshot: a write let in after this is exported
  // again with the changes; one queued before it is in the snapshot (barrier).
  precopy pc;
  pc.id = new_precopy_id();
  pc.tracking = db->track_changes(belongs);
  pc.started = started;
  for (auto s : shards) pc.shards.emplace_back(s, map.shards[s].epoch);
  auto& served = precopying.at(service);
  for (auto s : shards) served[s] = true;
  host.ownership_changed(false);  // requests held since the shards were marked moving run now
  db->barrier();
  const auto dir = export_dir(service, to);
  std::error_code ec;
  fs::remove_all(dir, ec);
  auto exported = db->export_entities(belongs, dir);
  std::uint64_t bytes = 0;
  auto files = exported ? describe_files(*exported, "base", bytes) : std::nullopt;
  if (!files) {
    log::get("cluster")->warn("pre-copy of '{}' for '{}' failed ({}): the shards are exported whole once sealed",
                              service, to, exported ? "cannot describe its files" : exported.error().message);
    db->stop_tracking(pc.tracking);
    pc.tracking = 0;
    pc.started = clock_type::time_point{};  // no base to wait for
    precopies[service + "/" + to] = std::move(pc);
    return;
  }
  pc.files = *files;
  json list = json::array();
  for (const auto& [s, epoch] : pc.shards) list.push_back({{"shard", s}, {"epoch", epoch}});
  json base{{"service", service}, {"from", node}, {"to", to}, {"count", count}, {"id", pc.id}, {"shards", list},
            {"files", pc.files}};
  std::ofstream(dir + "/base.json.tmp") << base.dump();
  fs::rename(dir + "/base.json.tmp", dir + "/base.json", ec);
  const auto id = pc.id;
  precopies[service + "/" + to] = std::move(pc);
  if (ec) return;
  {
    auto v = load();
    if (auto m = v->members.find(to); m != v->members.end())
      host.tell_peer(m->second, "exported",
                     pack_string(json{{"service", service}, {"from", node}, {"stage", "base"}}.dump()),
                     std::chrono::milliseconds(2000));
  }
  log::get("cluster")->info("pre-copy {} of {} shard(s) of '{}' for '{}': {} records, {} bytes in {} ms, served meanwhile",
                            id, shards.size(), service, to, exported->records, bytes, ms_between(started, clock_type::now()));
}

void cluster_agent::impl::end_precopy(const std::string& service, const std::string& key) {
  auto pc = precopies.find(key);
  if (pc == precopies.end()) return;
  if (auto* db = host.store_of(service); db && pc->second.tracking) db->stop_tracking(pc->second.tracking);
  auto& served = precopying.at(service);
  for (const auto& [s, epoch] : pc->second.shards) served[s] = false;
  precopies.erase(pc);
  host.ownership_changed(false);
}

void cluster_agent::impl::export_shards(const std::string& service, const std::string& to,
                                        const std::vector<std::uint32_t>& shards, const shard_map& map,
                                        const precopy* base) {
  auto* db = host.store_of(service);
  if (!db) return;
  {
    std::lock_guard<std::mutex> guard(status_mutex);
    handoff_now = "exporting " + std::to_string(shards.size()) + " shard(s) of '" + service + "' to '" + to + "'";
  }
  const auto started = clock_type::now();
  // From here new requests of these shards are held (a pre-copy served them
  // until now); wait for those already running, then for their writes.
  auto& served = precopying.at(service);
  for (auto s : shards) served[s] = false;
  auto& counters = in_flight.at(service);
  auto running = [&] {
    std::int64_t n = 0;
    for (auto s : shards) n += counters[s].load();
    return n;
  };
  auto until = clock_type::now() + std::chrono::seconds(5);
  while (running() > 0 && clock_type::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (running() > 0)
    log::get("cluster")->warn("export of '{}' to '{}': {} request(s) still running after 5 s; their writes are refused "
                              "(this node no longer serves those shards)",
                              service, to, running());
  // Sealed: from here no write of these shards is let in (the store's guard
  // asks under its queue's lock); the barrier then waits for those let in.
  const auto waited = clock_type::now();
  for (auto s : shards) sealed.at(service)[s] = true;
  host.ownership_changed(true);  // their entities go
  db->barrier();
  const auto drained = clock_type::now();
  const auto count = map.count();
  auto belongs = [&](std::string_view key) { return in_set(shards, shard_of(key, count)); };
  const auto dir = export_dir(service, to);
  std::error_code ec;
  // With a base: only what changed since its snapshot, listed after it. A
  // tracking that overflowed (or a base that failed) means everything again.
  std::optional<result<entity_export>> changes;
  if (base && base->tracking) {
    fs::remove(dir + "/manifest.json", ec);
    changes = db->export_changes(base->tracking, dir);
    if (!*changes)
      log::get("cluster")->warn("export of the changes of '{}' for '{}' failed ({}): exporting the shards whole",
                                service, to, (*changes).error().message);
  }
  const bool delta = changes && *changes;
  if (!delta) {
    if (base && base->tracking && !changes) db->stop_tracking(base->tracking);
    fs::remove_all(dir, ec);
  }
  auto exported = delta ? std::move(**changes) : db->export_entities(belongs, dir);
  if (!exported) {
    log::get("cluster")->error("export of '{}' to '{}' failed: {}", service, to, exported.error().message);
    return;
  }
  std::uint64_t bytes = 0;
  auto described = describe_files(*exported, delta ? "changes" : "whole", bytes);
  if (!described) return;
  json files = delta ? base->files : json::array();
  for (auto& f : *described) files.push_back(std::move(f));
  json list = json::array();
  for (auto s : shards) list.push_back({{"shard", s}, {"epoch", map.shards[s].epoch}});
  json manifest{{"service", service}, {"from", node}, {"to", to}, {"count", count}, {"shards", list}, {"files", files}};
  if (delta) manifest["base_id"] = base->id;
  std::ofstream(dir + "/manifest.json.tmp") << manifest.dump();
  fs::rename(dir + "/manifest.json.tmp", dir + "/manifest.json", ec);
  if (ec) return;
  const auto written = clock_type::now();
  // The target may start fetching now: the map's mark (an etcd round trip)
  // and its fetch overlap. It ingests only once the mark is there. A target
  // that holds the base gets the changes with the news (no fetch at all).
  {
    auto v = load();
    std::vector<std::pair<std::string, std::string>> pushed_files;
    if (delta && base->taken && bytes <= cfg.transfer_chunk_bytes)
      for (const auto& f : exported->files) {
        std::ifstream in(f.path, std::ios::binary);
        pushed_files.emplace_back(fs::path(f.path).filename().string(),
                                  std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
      }
    if (auto m = v->members.find(to); m != v->members.end()) {
      if (!pushed_files.empty())
        host.tell_peer(m->second, "export", pack_inline(manifest.dump(), pushed_files), std::chrono::milliseconds(2000));
      else
        host.tell_peer(m->second, "exported", pack_string(json{{"service", service}, {"from", node}}.dump()),
                       std::chrono::milliseconds(2000));
    }
  }
  if (mark_exported(service, to, shards, map))
    note("exported " + std::to_string(shards.size()) + " shard(s) of '" + service + "' for '" + to + "': " +
         (delta ? "after a pre-copy served for " + std::to_string(ms_between(base->started, started)) + " ms, " +
                      std::to_string(exported->records) + " changed records"
                : std::to_string(exported->records) + " records") +
         ", " + std::to_string(bytes) + " bytes; held " + std::to_string(ms_between(started, clock_type::now())) +
         " ms (running requests " + std::to_string(ms_between(started, waited)) + ", seal and queued writes " +
         std::to_string(ms_between(waited, drained)) + ", export " + std::to_string(ms_between(drained, written)) +
         ", map " + std::to_string(ms_between(written, clock_type::now())) + ")");
}

bool cluster_agent::impl::mark_exported(const std::string& service, const std::string& to,
                                        const std::vector<std::uint32_t>& shards, const shard_map& map) {
  auto marked = change_map(service, [&](shard_map& m) {
    bool any = false;
    for (auto s : shards) {
      if (s >= m.count()) continue;
      auto& e = m.shards[s];
      if (e.owner == node && e.phase == "moving" && e.to == to && e.epoch == map.shards[s].epoch)
        e.phase = "exported", any = true;
    }
    return any;
  });
  if (!marked || !*marked) return false;
  refresh_view();  // the next step sees them exported, and awaits the target
  return true;
}

bool cluster_agent::impl::await_exported(const std::string& service, const std::string& from,
                                         const std::vector<std::uint32_t>& shards, const shard_map& map) {
  const auto until = clock_type::now() + cfg.hold_timeout;
  auto refreshed = clock_type::now();
  for (;;) {
    auto v = load();
    auto it = v->maps.find(service);
    if (it == v->maps.end() || it->second.count() != map.count()) return false;
    bool all = true;
    for (auto s : shards) {
      const auto& e = it->second.shards[s];
      if (e.owner != from || e.to != node || e.epoch != map.shards[s].epoch ||
          (e.phase != "moving" && e.phase != "exported"))
        return false;  // called off, or moved on: this fetch is not needed
      all = all && e.phase == "exported";
    }
    if (all) return true;
    if (clock_type::now() > until || stopping_now()) return false;
    // The watch brings the mark within milliseconds; read etcd ourselves now and then.
    if (clock_type::now() - refreshed > std::chrono::milliseconds(250)) refresh_view(), refreshed = clock_type::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::optional<std::vector<entity_export::file>> cluster_agent::impl::fetch_files(
    const member& from, const std::string& service, const json& files,
    const std::map<std::string, std::string>& inline_files, const std::string& dir,
    const std::function<bool(const json&)>& wanted, int& answers, std::uint64_t& bytes) {
  const auto timeout = std::chrono::milliseconds(10000);
  std::vector<entity_export::file> out;
  for (const auto& f : files) {
    if (!f.is_object()) return std::nullopt;
    if (!wanted(f)) continue;
    auto name = f.value("name", "");
    auto size = f.value("size", std::uint64_t{0});
    auto space = f.value("space", -1);
    if (!safe_name(name) || space < 0 || space >= static_cast<int>(keyspace_count)) return std::nullopt;
    std::ofstream out_file(dir + "/" + name, std::ios::binary | std::ios::trunc);
    if (auto in = inline_files.find(name); in != inline_files.end()) {
      out_file.write(in->second.data(), static_cast<std::streamsize>(in->second.size()));
    } else {
      for (std::uint64_t offset = 0; offset < size;) {
        json c{{"service", service}, {"to", node}, {"name", name}, {"offset", offset},
               {"chunk", cfg.transfer_chunk_bytes}};
        auto part = host.call_peer(from, "chunk", pack_string(c.dump()), timeout);
        if (!part) {
          log::get("cluster")->warn("handoff of '{}' from '{}': fetching {} failed: {}", service, from.name, name,
                                    part.error().message);
          return std::nullopt;
        }
        auto bytes_part = unpack_bytes(*part);
        if (!bytes_part || bytes_part->empty()) return std::nullopt;
        answers++;
        out_file.write(bytes_part->data(), static_cast<std::streamsize>(bytes_part->size()));
        offset += bytes_part->size();
      }
    }
    out_file.close();
    auto sum = sha256_of(dir + "/" + name);
    if (!sum || *sum != f.value("sha256", "")) {
      log::get("cluster")->error("handoff of '{}' from '{}': {} does not match its SHA-256: fetched again later",
                                 service, from.name, name);
      return std::nullopt;
    }
    bytes += size;
    out.push_back({static_cast<keyspace>(space), dir + "/" + name, f.value("records", std::uint64_t{0}),
                   f.value("format", "table") == "changes"});
  }
  return out;
}

namespace {
/// The (shard, epoch) pairs a manifest lists when each is among `candidates`
/// at the epoch `map` gives it; empty when any is not.
std::vector<std::pair<std::uint32_t, std::uint64_t>> listed_shards(const json& manifest,
                                                                   const std::vector<std::uint32_t>& candidates,
                                                                   const shard_map& map) {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  for (const auto& e : manifest["shards"]) {
    auto s = e.is_object() ? e.value("shard", ~0u) : ~0u;
    auto epoch = e.is_object() ? e.value("epoch", std::uint64_t{0}) : 0;
    if (s >= map.count() || !in_set(candidates, s) || map.shards[s].epoch != epoch) return {};
    out.emplace_back(s, epoch);
  }
  return out;
}

bool describes(const json& manifest, const shard_map& map) {
  return manifest.is_object() && manifest.value("count", 0u) == map.count() && manifest.contains("shards") &&
         manifest["shards"].is_array() && manifest.contains("files") && manifest["files"].is_array();
}
}  // namespace

void cluster_agent::impl::import_base(const std::string& service, const std::string& from,
                                      const std::vector<std::uint32_t>& candidates, const shard_map& map,
                                      const cluster_view& v) {
  auto* db = host.store_of(service);
  auto m = v.members.find(from);
  if (!db || m == v.members.end()) return;
  const auto started = clock_type::now();
  json ask{{"service", service}, {"to", node}, {"stage", "base"}, {"inline", true}, {"chunk", cfg.transfer_chunk_bytes}};
  auto answer = host.call_peer(m->second, "manifest", pack_string(ask.dump()), std::chrono::milliseconds(10000));
  if (!answer) return;  // gone already (sealed and exported): the export itself is fetched
  auto got = unpack_manifest(*answer);
  auto manifest = got ? json::parse(got->text, nullptr, false) : json();
  if (!describes(manifest, map) || manifest.value("id", "").empty()) return;
  auto shards = listed_shards(manifest, candidates, map);
  if (shards.empty()) return;
  std::vector<std::uint32_t> ids;
  for (const auto& [s, epoch] : shards) ids.push_back(s);
  const auto count = map.count();
  auto belongs = [&](std::string_view key) { return in_set(ids, shard_of(key, count)); };
  // Whatever this node kept of these shards is stale: the base replaces it.
  if (auto erased = db->erase_entities(belongs); !erased) return;
  const auto dir = import_dir(service, from) + "-base";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  int answers = 1;
  std::uint64_t bytes = 0;
  auto files = fetch_files(m->second, service, manifest["files"], got->files, dir, [](const json&) { return true; },
                           answers, bytes);
  if (!files || !db->ingest(*files)) {
    fs::remove_all(dir, ec);
    return;
  }
  fs::remove_all(dir, ec);
  const auto id = manifest.value("id", "");
  {
    std::lock_guard<std::mutex> guard(mutex);
    have_base[service + "/" + from] = {id, shards};
  }
  host.tell_peer(m->second, "base_taken", pack_string(json{{"service", service}, {"to", node}, {"id", id}}.dump()),
                 std::chrono::milliseconds(2000));
  note("pre-copied " + std::to_string(shards.size()) + " shard(s) of '" + service + "' from '" + from + "' (base " + id +
       "): " + std::to_string(bytes) + " bytes in " + std::to_string(answers) + " answer(s), " +
       std::to_string(ms_between(started, clock_type::now())) + " ms, while the old owner served them");
}

void cluster_agent::impl::import_shards(const std::string& service, const std::string& from,
                                        const std::vector<std::uint32_t>& candidates, const shard_map& map,
                                        const cluster_view& v) {
  auto* db = host.store_of(service);
  auto m = v.members.find(from);
  if (!db || m == v.members.end()) return;  // the old owner is gone: the shards wait for it
  {
    std::lock_guard<std::mutex> guard(status_mutex);
    handoff_now = "importing shard(s) of '" + service + "' from '" + from + "'";
  }
  const auto started = clock_type::now();
  log::get("cluster")->info("importing shard(s) of '{}' from '{}'", service, from);
  const auto key = service + "/" + from;
  std::pair<std::string, std::vector<std::pair<std::uint32_t, std::uint64_t>>> held_base;
  {
    std::lock_guard<std::mutex> guard(mutex);
    if (auto b = have_base.find(key); b != have_base.end()) held_base = b->second;
  }
  json ask{{"service", service}, {"to", node}, {"inline", true}, {"chunk", cfg.transfer_chunk_bytes}};
  if (!held_base.first.empty()) ask["have_base"] = held_base.first;
  result<std::string> answer = error_info{errc::unavailable, "not asked"};
  {
    std::lock_guard<std::mutex> guard(mutex);
    if (auto p = pushed.find(key); p != pushed.end()) answer = std::move(p->second), pushed.erase(p);
  }
  int answers = 1;  // the manifest's
  if (!answer)
    answer = host.call_peer(m->second, "manifest", pack_string(ask.dump()), std::chrono::milliseconds(10000));
  else
    answers = 0;  // it came with the news
  if (!answer) {
    log::get("cluster")->warn("handoff of '{}' from '{}': no manifest yet ({})", service, from, answer.error().message);
    return;
  }
  auto got = unpack_manifest(*answer);
  auto manifest = got ? json::parse(got->text, nullptr, false) : json();
  if (!describes(manifest, map)) {
    log::get("cluster")->error("handoff of '{}' from '{}': the manifest does not describe this map", service, from);
    return;
  }
  // The export is one batch of the shards moving (or exported) to us, at
  // the epochs the map gives them: those are what this import takes.
  auto listed = listed_shards(manifest, candidates, map);
  if (listed.empty()) {
    log::get("cluster")->info("handoff of '{}' from '{}': the manifest is for other shards; waiting for a new export",
                              service, from);
    return;
  }
  std::vector<std::uint32_t> shards;
  for (const auto& [s, epoch] : listed) shards.push_back(s);
  // The base of a pre-copy this node ingested already: only the changes
  // since come now, ingested over it. Otherwise everything, over nothing.
  const bool over_base = !held_base.first.empty() && manifest.value("base_id", "") == held_base.first &&
                         held_base.second == listed;
  const auto count = map.count();
  auto belongs = [&](std::string_view k) { return in_set(shards, shard_of(k, count)); };
  // Whatever this node kept of these shards (an old copy: they are not
  // ours, so it is stale) is deleted while the files come: the ingested
  // records are the whole truth.
  std::future<result<std::uint64_t>> old_copy;
  if (!over_base) old_copy = std::async(std::launch::async, [&] { return db->erase_entities(belongs); });
  const auto dir = import_dir(service, from);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  std::uint64_t bytes = 0;
  auto files = fetch_files(m->second, service, manifest["files"], got->files, dir,
                           [&](const json& f) { return !over_base || f.value("stage", "") != "base"; }, answers, bytes);
  if (!files) {
    if (old_copy.valid()) old_copy.wait();
    return;
  }
  const auto fetched = clock_type::now();
  // Fetched ahead of the map's mark (the old owner told us first): nothing
  // is ingested before the map says these shards are exported to us.
  if (!await_exported(service, from, shards, map)) {
    if (old_copy.valid()) old_copy.wait();
    fs::remove_all(dir, ec);
    return;
  }
  const auto marked_at = clock_type::now();
  if (old_copy.valid())
    if (auto erased = old_copy.get(); !erased) return;
  const auto erased_at = clock_type::now();
  if (auto ingested = db->ingest(*files); !ingested) {
    log::get("cluster")->error("handoff of '{}' from '{}': ingest failed: {}", service, from,
                               ingested.error().message);
    return;
  }
  const auto ingested_at = clock_type::now();
  auto taken = change_map(service, [&](shard_map& mm) {
    bool any = false;
    for (auto s : shards) {
      if (s >= mm.count()) continue;
      auto& e = mm.shards[s];
      if (e.owner == from && e.phase == "exported" && e.to == node && e.epoch == map.shards[s].epoch) {
        e.owner = node, e.epoch++, e.phase.clear(), e.to.clear();
        any = true;
      }
    }
    return any;
  });
  fs::remove_all(dir, ec);
  {
    std::lock_guard<std::mutex> guard(mutex);
    have_base.erase(key);
  }
  if (!taken || !*taken) {
    // Called off meanwhile: what was ingested is not ours.
    (void)db->erase_entities(belongs);
    return;
  }
  std::uint64_t records = 0;
  for (const auto& f : *files) records += f.records;
  note("took " + std::to_string(shards.size()) + " shard(s) of '" + service + "' from '" + from + "': " +
       std::to_string(records) + " records" + (over_base ? " changed since the pre-copy" : "") + ", " +
       std::to_string(bytes) + " bytes in " + std::to_string(ms_between(started, clock_type::now())) + " ms (fetch " +
       std::to_string(ms_between(started, fetched)) + " in " + std::to_string(answers) + " answer(s)" +
       ", wait for the mark " + std::to_string(ms_between(fetched, marked_at)) + ", old copy after that " +
       std::to_string(ms_between(marked_at, erased_at)) + ", ingest " +
       std::to_string(ms_between(erased_at, ingested_at)) + ", map " +
       std::to_string(ms_between(ingested_at, clock_type::now())) + ")");
  // Serve them as soon as the map says so; their undelivered events and due
  // reminders are picked up at once.
  refresh_view();
  host.ownership_changed(true);
  host.data_arrived(service);
}

void cluster_agent::impl::clean_up(const std::string& service, const shard_map& map) {
  auto* db = host.store_of(service);
  if (!db) return;
  const auto count = map.count();
  // Records of shards this node neither owns nor is about to receive (a
  // finished handoff, an operator's reassign, a crash between the steps):
  // deleted once per term and after every handoff out.
  bool due = false;
  std::error_code ec;
  {
    std::lock_guard<std::mutex> guard(status_mutex);
    due = !swept.count(service);
  }
  const auto now = clock_type::now();
  for (const auto& s : map.shards)
    if (!s.phase.empty() && (s.owner == node || s.to == node)) handoff_seen[service] = now;
  std::vector<fs::path> finished;
  for (const auto& e : fs::directory_iterator(data_dir + "/.handoff", ec)) {
    auto name = e.path().filename().string();
    if (name.rfind(service + ".to.", 0) != 0) continue;
    auto to = name.substr(service.size() + 4);
    bool still = false;
    for (const auto& s : map.shards) still = still || (s.owner == node && !s.phase.empty() && s.to == to);
    if (!still) finished.push_back(e.path()), due = true;
  }
  if (!due) return;
  if (auto seen = handoff_seen.find(service); seen != handoff_seen.end() && now - seen->second < std::chrono::seconds(1)) {
    sweep_waiting = true;  // a rebalance is (or just was) under way: after it
    return;
  }
  auto mine = [&](std::uint32_t s) {
    const auto& e = map.shards[s];
    return e.owner == node || (e.to == node && !e.phase.empty());
  };
  auto erased = db->erase_entities([&](std::string_view key) { return !mine(shard_of(key, count)); });
  if (!erased) return;
  for (const auto& p : finished) fs::remove_all(p, ec);
  {
    std::lock_guard<std::mutex> guard(status_mutex);
    swept.insert(service);
  }
  if (*erased) note("deleted " + std::to_string(*erased) + " records of '" + service + "' whose shards left this node");
}

void cluster_agent::impl::run_peer_answers() {
  for (;;) {
    detail::request_ptr req;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [this] { return stopping || !peer_requests.empty(); });
      if (stopping) return;
      req = std::move(peer_requests.front());
      peer_requests.pop_front();
    }
    try {
      answer_peer(*req);
    } catch (const std::exception& e) {
      req->fail({errc::internal, std::string("cluster transfer failed: ") + e.what()});
    }
  }
}

void cluster_agent::impl::answer_peer(detail::request& req) {
  if (req.header.method == "export") {
    // An old owner's export for this node, the changes inline: kept for the
    // import (checked there like a fetched manifest), which starts now.
    auto got = unpack_manifest(req.payload);
    auto manifest = got ? json::parse(got->text, nullptr, false) : json();
    const auto service = manifest.is_object() ? manifest.value("service", "") : "";
    const auto from = manifest.is_object() ? manifest.value("from", "") : "";
    if (!in_flight.count(service) || !safe_name(from) || req.payload.size() > max_chunk_bytes + 65536) {
      req.fail({errc::bad_request, "_cluster.export: not an export of a sharded service of this node"});
      return;
    }
    {
      std::lock_guard<std::mutex> guard(mutex);
      if (pushed.size() < 64 || pushed.count(service + "/" + from)) pushed[service + "/" + from] = req.payload.str();
      if (told_exported.size() < 1024) told_exported.insert(service + "/" + from);
      handoff_due = true;
    }
    wake.notify_all();
    req.respond(pack_string("{}"));
    return;
  }
  auto text = unpack_bytes(req.payload);
  auto args = text ? json::parse(*text, nullptr, false) : json();
  if (!args.is_object()) {
    req.fail({errc::bad_request, "_cluster." + req.header.method + " takes a JSON object as a string"});
    return;
  }
  if (req.header.method == "etcd_probe") {
    // Whether this node heard from etcd in the last two polls (ride_out_etcd_outage).
    const bool heard = clock_type::now().time_since_epoch().count() - etcd_answered_ns.load() <
                       std::chrono::nanoseconds(cfg.poll * 2).count() + 1000000;
    req.respond(pack_string(json{{"reachable", etcd_reachable.load() && heard}}.dump()));
    return;
  }
  if (req.header.method == "exported") {
    // An old owner's export for this node is on disk: start fetching (handoff_step).
    auto service = args.value("service", "");
    auto from = args.value("from", "");
    if (!in_flight.count(service) || !safe_name(from)) {
      req.fail({errc::bad_request, "_cluster.exported: unknown service or node"});
      return;
    }
    {
      // stage "base": a pre-copy's snapshot (the shards still serve there).
      std::lock_guard<std::mutex> guard(mutex);
      auto& told = args.value("stage", "") == "base" ? told_base : told_exported;
      if (told.size() < 1024) told.insert(service + "/" + from);
      handoff_due = true;
    }
    wake.notify_all();
    req.respond(pack_string("{}"));
    return;
  }
  auto service = args.value("service", "");
  auto to = args.value("to", "");
  if (!in_flight.count(service) || !safe_name(to)) {
    req.fail({errc::bad_request, "_cluster." + req.header.method + ": unknown service or node"});
    return;
  }
  if (req.header.method == "base_taken") {
    // The target ingested this node's pre-copy: the shards may be sealed now.
    auto id = args.value("id", "");
    {
      std::lock_guard<std::mutex> guard(mutex);
      if (base_taken.size() < 1024 && safe_name(id)) base_taken.insert(service + "/" + to + "/" + id);
      handoff_due = true;
    }
    wake.notify_all();
    req.respond(pack_string("{}"));
    return;
  }
  const auto dir = export_dir(service, to);
  if (args.contains("chunk") && !args["chunk"].is_number_unsigned()) {
    req.fail({errc::bad_request, "_cluster." + req.header.method + ": 'chunk' is a byte count"});
    return;
  }
  // What the asking node takes in one answer (older nodes do not say: 512 KiB).
  const auto chunk_bytes = std::clamp<std::size_t>(args.value("chunk", std::size_t{512 * 1024}), 1024, max_chunk_bytes);
  if (req.header.method == "manifest") {
    const bool base = args.value("stage", "") == "base";
    std::ifstream in(dir + (base ? "/base.json" : "/manifest.json"));
    if (!in) {
      req.fail({errc::unavailable, "no export of '" + service + "' for '" + to + "' is ready here"});
      return;
    }
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Small exports go in the same answer (one round trip instead of one per file).
    auto listed = json::parse(body, nullptr, false);
    if (args.value("inline", false) && listed.is_object() && listed.contains("files") && listed["files"].is_array()) {
      // A target that holds the pre-copy's base needs only the changes.
      const bool skip_base = listed.contains("base_id") && args.value("have_base", "") == listed.value("base_id", "");
      json wanted = json::array();
      for (const auto& f : listed["files"])
        if (f.is_object() && !(skip_base && f.value("stage", "") == "base")) wanted.push_back(f);
      std::uint64_t total = 0;
      for (const auto& f : wanted) total += f.value("size", std::uint64_t{0});
      if (total <= chunk_bytes) {
        std::vector<std::pair<std::string, std::string>> files;
        for (const auto& f : wanted) {
          auto name = f.value("name", "");
          std::ifstream file(dir + "/" + name, std::ios::binary);
          if (!safe_name(name) || !file) {
            files.clear();
            break;
          }
          files.emplace_back(name, std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>()));
        }
        if (files.size() == wanted.size()) {
          req.respond(pack_inline(body, files));
          return;
        }
      }
    }
    req.respond(pack_string(body));
    return;
  }
  if (req.header.method == "chunk") {
    auto name = args.value("name", "");
    auto offset = args.value("offset", std::uint64_t{0});
    if (!safe_name(name) || name == "manifest.json" || name == "base.json") {
      req.fail({errc::bad_request, "_cluster.chunk: bad file name"});
      return;
    }
    std::ifstream in(dir + "/" + name, std::ios::binary);
    if (!in) {
      req.fail({errc::unavailable, "no file '" + name + "' in the export of '" + service + "' for '" + to + "'"});
      return;
    }
    in.seekg(static_cast<std::streamoff>(offset));
    std::string buf(chunk_bytes, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    req.respond(pack_bin(buf.data(), static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount()))));
    return;
  }
  req.fail({errc::unknown_method, "_cluster has no method '" + req.header.method + "'"});
}

}  // namespace cohort::cluster

#include "raw_durable_service.hpp"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <rocksdb/db.h>
#include <zmq_addon.hpp>

#include "raw_rocksdb.hpp"
#include "raw_router.hpp"

namespace cohort::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// A ROUTER thread: every request it can read without waiting goes into one
/// synced write batch (group commit, as a store's committer does), then each
/// is answered with its own 4-byte slot. A request is [slot:4][key...].
class durable_server {
 public:
  durable_server(const std::string& dir, std::size_t value_bytes) : value_(value_bytes, 'v') {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(o, dir, &raw).ok()) throw std::runtime_error("raw rocksdb open failed");
    db_.reset(raw);
    wo_.sync = true;
    router_ = std::make_unique<raw_router_thread>([this](zmq::socket_t& s) { serve_ready(s); });
  }
  const std::string& endpoint() const { return router_->endpoint(); }

 private:
  void serve_ready(zmq::socket_t& s) {
    group_.clear();
    rocksdb::WriteBatch batch;
    for (;;) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(s, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
      if (frames.size() != 2 || frames[1].size() <= 4) continue;
      batch.Put(rocksdb::Slice(frames[1].data<char>() + 4, frames[1].size() - 4), value_);
      group_.push_back(std::move(frames));
    }
    if (group_.empty()) return;
    if (!db_->Write(wo_, &batch).ok()) throw std::runtime_error("raw rocksdb write failed");
    for (auto& frames : group_) {
      char slot[4];
      std::memcpy(slot, frames[1].data(), sizeof slot);
      frames[1].rebuild(slot, sizeof slot);  // the slot back: "stored"
      zmq::send_multipart(s, frames, zmq::send_flags::dontwait);
    }
  }

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions wo_;
  std::string value_;
  std::vector<std::vector<zmq::message_t>> group_;
  std::unique_ptr<raw_router_thread> router_;  ///< last: its thread stops before the rest goes
};

}  // namespace

double raw_zmq_rocksdb_synced(int clients, std::chrono::milliseconds duration, std::size_t value_bytes) {
  scratch_dir dir("raw-service");
  durable_server server(dir.path.string(), value_bytes);
  zmq::context_t ctx{1};
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10000);  // a server that stopped answering ends the bench, not hangs it
  s.connect(server.endpoint());
  std::vector<std::uint64_t> round(static_cast<std::size_t>(clients), 0);
  auto send_one = [&](std::uint32_t slot) {
    // Each write on a key of its own (as the service bench's counters are).
    std::string msg(reinterpret_cast<const char*>(&slot), sizeof slot);
    msg += "k" + std::to_string(slot) + "-" + std::to_string(round[slot]++);
    s.send(zmq::buffer(msg), zmq::send_flags::none);
  };
  // Warm-up: the connection and the first write.
  send_one(0);
  zmq::message_t m;
  if (!s.recv(m)) throw std::runtime_error("raw service: no answer within 10 s");
  std::uint64_t done = 0;
  const auto start = clock_type::now();
  const auto until = start + duration;
  for (int i = 0; i < clients; ++i) send_one(static_cast<std::uint32_t>(i));
  int in_flight = clients;
  while (in_flight > 0) {
    if (!s.recv(m)) throw std::runtime_error("raw service: no answer within 10 s");
    in_flight--;
    if (m.size() != 4) throw std::runtime_error("raw service: a malformed answer");
    done++;
    std::uint32_t slot = 0;
    std::memcpy(&slot, m.data(), sizeof slot);
    if (clock_type::now() < until) send_one(slot), in_flight++;
  }
  return done / std::chrono::duration<double>(clock_type::now() - start).count();
}

}  // namespace cohort::bench

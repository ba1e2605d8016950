// A handler's calls out are kept by id until their replies come, in whatever
// order they come (method_runner::waiting_call finds a reply's call by its
// offset first, then by search; answered calls leave holes that are swept).
// Each continuation must get its own call's result, exactly once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cohort/transport/client.hpp"
#include "cohort/examples/example_services.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::test;

namespace {

struct spread_args {
  std::int64_t calls = 0;
  std::string order;  ///< how the holder answers: reverse, odd_first, in_order
  COHORT_FIELDS(calls, order);
};

struct spread_reply {
  std::int64_t answered = 0;  ///< continuations that ran
  std::int64_t wrong = 0;     ///< ...with another call's result
  COHORT_FIELDS(answered, wrong);
};

struct held_args {
  std::int64_t index = 0;
  std::int64_t of = 0;
  std::string order;
  COHORT_FIELDS(index, of, order);
};

struct held_reply {
  std::int64_t index = 0;
  COHORT_FIELDS(index);
};

/// The holder's requests, until all of one spread are in (one worker: its
/// handler runs for one request at a time).
std::mutex held_mutex;
std::vector<std::pair<std::int64_t, responder<held_reply>>> held;

/// The order in which `n` held calls are answered.
std::vector<std::int64_t> answer_order(std::int64_t n, const std::string& order) {
  std::vector<std::int64_t> out;
  if (order == "reverse") {
    for (auto i = n - 1; i >= 0; --i) out.push_back(i);
  } else if (order == "odd_first") {
    for (std::int64_t i = 1; i < n; i += 2) out.push_back(i);
    for (std::int64_t i = 0; i < n; i += 2) out.push_back(i);
  } else {
    for (std::int64_t i = 0; i < n; ++i) out.push_back(i);
  }
  return out;
}

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(worker_service("holder")
                  .method("hold",
                          [](method_context&, const held_args& a, responder<held_reply> respond) {
                            std::vector<std::pair<std::int64_t, responder<held_reply>>> all;
                            {
                              std::lock_guard<std::mutex> guard(held_mutex);
                              held.emplace_back(a.index, respond);
                              if (static_cast<std::int64_t>(held.size()) < a.of) return;
                              all.swap(held);
                            }
                            for (auto i : answer_order(a.of, a.order)) {
                              auto it = std::find_if(all.begin(), all.end(), [i](const auto& h) { return h.first == i; });
                              if (it != all.end()) it->second(held_reply{i});
                            }
                          })
                  .build());
  c.push_back(worker_service("spreader")
                  .method("spread",
                          [](method_context& ctx, const spread_args& a, responder<spread_reply> respond) {
                            auto tally = std::make_shared<spread_reply>();
                            for (std::int64_t i = 0; i < a.calls; ++i)
                              ctx.call<held_reply>("holder", "hold", held_args{i, a.calls, a.order},
                                                   [tally, i, n = a.calls, respond](result<held_reply> r) {
                                                     tally->answered++;
                                                     if (!r || r->index != i) tally->wrong++;
                                                     if (tally->answered == n) respond(*tally);
                                                   });
                          })
                  .build());
  return c;
}

}  // namespace

TEST_CASE("a handler's calls out each get their own reply, in whatever order the replies come",
          "[runtime][calls]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  service_named(cfg, "holder").workers = 1;
  service_named(cfg, "spreader").workers = 1;
  auto n = node::start(cfg, catalog());
  REQUIRE(n);
  client c((*n)->endpoints().front());
  for (const std::string order : {"reverse", "odd_first", "in_order"}) {
    for (std::int64_t calls : {1, 2, 3, 40, 129}) {
      INFO(order << ", " << calls << " calls");
      auto r = c.call_as<spread_reply>("spreader", "spread", spread_args{calls, order});
      REQUIRE(r.ok());
      CHECK(r->answered == calls);
      CHECK(r->wrong == 0);
    }
  }
}

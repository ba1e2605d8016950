// The shop split over two real node processes (front: orders, cart, catalog,
// notifications; back: inventory, payments), SIGKILLed at chosen moments in
// the middle of concurrent checkouts and started again on the same data and
// port. Afterwards every saga has ended and the shop's invariants hold.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include "child_process.hpp"
#include "cohort/shop/audit.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/workload.hpp"
#include "temp_dir.hpp"

using namespace cohort;
using namespace cohort::shop;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

const char* const entity_tuning =
    "durability = \"sync\"\nmax_restarts = 200\nrestart_period_ms = 1000\nresume_every_ms = 100\n";

/// One `cohort run` that can be killed and started again on the same port and data.
struct restartable_node {
  const temp_dir& dir;
  std::string name;
  std::string sections;
  std::string endpoint;  ///< learned at the first start, then kept
  std::unique_ptr<child_process> proc;

  restartable_node(const temp_dir& d, std::string n, std::string s)
      : dir(d), name(std::move(n)), sections(std::move(s)) {}

  void start() {
    auto cfg = dir / (name + ".toml");
    std::ofstream(cfg) << "[node]\nname = \"" << name << "\"\nlisten = [\""
                       << (endpoint.empty() ? std::string("tcp://127.0.0.1:*") : endpoint) << "\"]\nadmin = \"\"\n"
                       << "data_dir = \"" << (dir / ("data-" + name)) << "\"\n"
                       << sections;
    proc = std::make_unique<child_process>(std::vector<std::string>{COHORT_BINARY, "run", "--config", cfg});
    auto ep = proc->endpoint();
    REQUIRE(ep);
    endpoint = *ep;
    REQUIRE(proc->wait_for_line("ready"));
  }

  void kill() {
    proc->signal(SIGKILL);
    REQUIRE(proc->wait());
  }
};

}  // namespace

TEST_CASE("invariants hold when node processes are SIGKILLed in the middle of checkouts",
          "[integration][shop][invariants][crash]") {
  temp_dir dir;
  std::string services_back;
  for (const char* s : {"inventory", "payments"}) services_back += std::string("[services.") + s + "]\n" + entity_tuning;
  restartable_node back{dir, "back", services_back};
  back.start();
  std::string services_front;
  for (const char* s : {"orders", "cart", "catalog", "notifications"})
    services_front += std::string("[services.") + s + "]\n" + entity_tuning;
  for (const char* s : {"inventory", "payments"})
    services_front += std::string("[remote.") + s + "]\nendpoint = \"" + back.endpoint + "\"\n";
  restartable_node front{dir, "front", services_front};
  front.start();

  client c(front.endpoint);
  REQUIRE(seed_shop(c));
  std::map<std::string, std::int64_t> initial;
  for (const auto& p : sample_products()) initial[p.sku] = sample_initial_stock(p.sku);

  // Kills by progress, not by time, so that each lands in the middle of the run
  // on a fast or a slow machine: the back (inventory, payments) twice, the
  // front (orders, the sagas themselves) once.
  workload_options w;
  w.prefix = "k";
  w.orders = 240;
  w.concurrency = 12;
  w.customers = 8;
  w.seed = 42;
  w.products = sample_products();
  w.time_limit = 120s;
  std::size_t ticks = 0, kills = 0;
  std::set<std::string> seen;
  w.on_tick = [&](const std::vector<std::string>& in_flight) {
    ++ticks;
    for (const auto& o : in_flight) seen.insert(o);
    struct step {
      std::size_t after_orders;
      restartable_node* node;
    };
    const step plan[] = {{40, &back}, {110, &front}, {180, &back}};
    if (kills < 3 && seen.size() >= plan[kills].after_orders) {
      INFO("kill " << kills << " of " << plan[kills].node->name << " after " << seen.size() << " orders");
      plan[kills].node->kill();
      std::this_thread::sleep_for(50ms);  // requests to it pile up meanwhile
      plan[kills].node->start();
      ++kills;
    }
  };
  auto result = run_checkouts(c, w);
  INFO(result.completed << " completed, " << result.failed << " failed, " << result.unfinished << " unfinished in "
                        << result.seconds << " s; " << result.retried_calls << " calls retried");
  CHECK(kills == 3);
  CHECK(result.unfinished == 0);
  CHECK(result.completed > 0);

  auto report = audit_shop(c, result.order_ids, initial, 20s);
  for (const auto& v : report.violations) UNSCOPED_INFO(v);
  CHECK(report.ok());
  CHECK(report.unfinished == 0);
}

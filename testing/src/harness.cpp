#include "cohort/testing/harness.hpp"

#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace cohort::testing {

namespace {

std::string make_temp_dir() {
  auto pattern = (std::filesystem::temp_directory_path() / "cohort-harness-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot make a data directory in " + pattern);
  return pattern;
}

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

harness::harness(std::vector<service_definition> services, const std::function<void(node_config&)>& adjust)
    : data_dir_(make_temp_dir()), clock_(std::make_shared<std::atomic<std::uint64_t>>(wall_ms())) {
  auto cfg = default_node_config(services);
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir_;
  cfg.drain_timeout = std::chrono::milliseconds(2000);
  cfg.reminder_clock = [clock = clock_] { return clock->load(); };
  if (adjust) adjust(cfg);
  auto started = cohort::node::start(std::move(cfg), std::move(services));
  if (!started) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
    throw std::runtime_error("the test node did not start: " + started.error().message);
  }
  node_ = std::move(*started);
}

harness::~harness() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(data_dir_, ignored);
}

const std::string& harness::endpoint() const noexcept { return node_->endpoints().front(); }

std::unique_ptr<client> harness::connect() const { return std::make_unique<client>(endpoint()); }

bool harness::eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

void harness::stop() {
  if (node_) node_->stop();
}

}  // namespace cohort::testing

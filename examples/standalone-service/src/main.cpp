// tally-node: hosts the tally services. With no argument: on loopback with
// zero setup, like `cohort run`; with a TOML file: that node config
// (docs/operations.md).
#include <csignal>
#include <iostream>

#include <cohort/runtime/node.hpp>
#include <cohort/runtime/node_config.hpp>

#include "tally/services.hpp"

int main(int argc, char** argv) {
  auto services = tally::all_services();
  cohort::node_config cfg = cohort::default_node_config(services);
  if (argc > 1) {
    std::vector<std::string> known;
    for (const auto& s : services) known.push_back(s.name);
    auto loaded = cohort::load_node_config(argv[1], known);
    if (!loaded) {
      std::cerr << "tally-node: " << loaded.error().message << "\n";
      return 2;
    }
    cfg = std::move(*loaded);
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts: they inherit it
  auto node = cohort::node::start(cfg, services);
  if (!node) {
    std::cerr << "tally-node: " << node.error().message << "\n";
    return 1;
  }
  for (const auto& e : (*node)->endpoints()) std::cout << "tally-node: listening on " << e << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  (*node)->stop();
  return 0;
}

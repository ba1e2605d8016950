#include "echo_service.hpp"

#include <stdexcept>

#include "cohort/examples/example_messages.hpp"

namespace cohort::bench {

service_definition echo_service(const std::string& name) {
  return worker_service(name)
      // Arguments by value: moved in and moved out, as a user who echoes large
      // payloads would write it (a const& would copy them on return).
      .method("echo", [](method_context&, examples::echo_args a) { return a; }, true)
      // The supervision bench's crash loop on a service whose workers share the scheduler.
      .method("crash",
              [](method_context&, const examples::fail_args& a) -> no_args { throw std::runtime_error(a.message); })
      .internal("crash")
      .build();
}

service_config echo_service_config(const std::string& name, std::size_t workers) {
  service_config c;
  c.name = name;
  c.workers = workers;
  return c;
}

}  // namespace cohort::bench

#include "tally/services.hpp"

#include <chrono>
#include <sstream>

namespace tally {

cohort::service_definition tally_service() {
  return cohort::entity_service<tally_state>("tally")
      .method("add",
              [](cohort::entity_context<tally_state>& ctx, const add_args& a) {
                auto& s = ctx.state();
                s.value += a.n;
                s.expired = false;
                // A durable timer: it survives passivation, restarts and crashes.
                if (a.expire_after_ms > 0) ctx.remind_in("expire", std::chrono::milliseconds(a.expire_after_ms));
                return count{ctx.key(), s.value, false};
              })
      .query("get",
             [](cohort::query_context<tally_state>& ctx, const cohort::no_args&) {
               return count{ctx.key(), ctx.state().value, ctx.state().expired};
             })
      .on_reminder([](cohort::entity_context<tally_state>& ctx, const cohort::reminder& r) {
        if (r.name == "expire") ctx.state() = tally_state{0, true};
        return cohort::no_args{};
      })
      .build();
}

cohort::service_definition words_service() {
  return cohort::worker_service("words")
      .method("count",
              [](cohort::method_context&, const text& t) {
                std::istringstream in(t.body);
                std::string w;
                word_count out;
                while (in >> w) ++out.words;
                return out;
              },
              /*idempotent=*/true)
      .build();
}

std::vector<cohort::service_definition> all_services() { return {tally_service(), words_service()}; }

}  // namespace tally

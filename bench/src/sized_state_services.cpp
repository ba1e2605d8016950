#include "sized_state_services.hpp"

#include <string>

namespace cohort::bench {

namespace {

struct sized_state {
  std::string pad;
  std::uint64_t n = 0;
  COHORT_FIELDS(pad, n);
};

/// grow > 0: the state grows by that many bytes; 0: a bump.
struct sized_event {
  std::uint64_t grow = 0;
  COHORT_FIELDS(grow);
};

constexpr std::uint64_t max_growth = 64u << 20;  // one call grows the state by at most 64 MiB

std::uint64_t checked_growth(const grow_args& a) {
  if (a.bytes > max_growth) throw service_error(errc::bad_request, "grow: at most 64 MiB at a time");
  return a.bytes;
}

}  // namespace

service_definition sized_plain_service() {
  using ctx_t = entity_context<sized_state>;
  return entity_service<sized_state>("sized_plain")
      .method("grow",
              [](ctx_t& ctx, const grow_args& a) {
                ctx.state().pad.append(checked_growth(a), 'x');
                return bump_reply{ctx.state().n};
              })
      .method("bump", [](ctx_t& ctx, const no_args&) { return bump_reply{++ctx.state().n}; })
      .build();
}

service_definition sized_journal_service() {
  using ctx_t = event_context<sized_state, sized_event>;
  return event_sourced_service<sized_state, sized_event>("sized_journal",
                                                         [](sized_state& s, const sized_event& e) {
                                                           if (e.grow > 0)
                                                             s.pad.append(e.grow, 'x');
                                                           else
                                                             ++s.n;
                                                         })
      .command("grow",
               [](ctx_t& ctx, const grow_args& a) {
                 ctx.emit(sized_event{checked_growth(a)});
                 return bump_reply{ctx.state().n};
               })
      .command("bump",
               [](ctx_t& ctx, const no_args&) {
                 ctx.emit(sized_event{0});
                 return bump_reply{ctx.state().n};
               })
      .build();
}

}  // namespace cohort::bench

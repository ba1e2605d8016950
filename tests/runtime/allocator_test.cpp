// The allocator room: Cohort's programs run on jemalloc, and what it reports is real.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "cohort/allocator/allocator.hpp"

using namespace cohort;

TEST_CASE("test programs run on the malloc the cohort program is linked with", "[allocator]") {
#ifdef COHORT_RUNS_ON_JEMALLOC
  // The link keeps jemalloc even though no code calls it by name; were it
  // dropped (--as-needed), this process would be on glibc's malloc.
  CHECK_THAT(allocator::name(), Catch::StartsWith("jemalloc 5."));
#else
  CHECK(allocator::name() == "glibc");
#endif
}

TEST_CASE("bytes in use rise with an allocation and fall when it is freed", "[allocator]") {
  constexpr std::size_t size = 64u << 20;
  const auto before = allocator::bytes_in_use();
  auto block = std::make_unique<char[]>(size);
  std::memset(block.get(), 1, size);
  const auto held = allocator::bytes_in_use();
  CHECK(held >= before + size - (1u << 20));
  block.reset();
  const auto after = allocator::bytes_in_use();
  CHECK(after + size - (1u << 20) <= held);
}
